// RuntimeContext: the explicit guard through which a thread enters a shard.
//
// While a RuntimeContext is alive on a thread, runtime calls made on that
// thread (spawn, sleep_for, submit_to, I/O) reach that shard's executor,
// driver, mesh and pools through it; when it ends, the previous context (or
// none) is restored, so guards nest like scopes. Runtime::run enters one on
// every shard thread; a standalone LocalExecutor's block_on enters its own.
// Calling the runtime with no context entered throws NoRuntimeContext.
//
//   veloq::LocalExecutor executor;
//   veloq::RuntimeContext context(executor);
//   auto handle = veloq::spawn(work());   // runs on `executor`
#pragma once

#include <veloq/runtime/errors.hpp>

namespace veloq {

class LocalExecutor;
namespace internal {
class FramePool;
}
namespace mesh {
class MeshEndpoint;
}
namespace io {
class Driver;
}
namespace buffers {
class BufferPool;
}

class RuntimeContext;

namespace internal {
extern constinit thread_local RuntimeContext* current_context;
}

class RuntimeContext {
 public:
  // Enters `executor`'s shard on this thread. Refused (RuntimeMisuse) if the
  // executor belongs to another thread.
  explicit RuntimeContext(LocalExecutor& executor);
  RuntimeContext(const RuntimeContext&) = delete;
  RuntimeContext& operator=(const RuntimeContext&) = delete;
  ~RuntimeContext();

  // The innermost context entered on this thread; throws NoRuntimeContext,
  // naming `what_was_called`, if there is none.
  static RuntimeContext& current(const char* what_was_called = "this runtime call") {
    if (internal::current_context == nullptr) throw NoRuntimeContext(what_was_called);
    return *internal::current_context;
  }
  static RuntimeContext* current_or_null() noexcept { return internal::current_context; }

  LocalExecutor& executor() const noexcept { return *executor_; }
  unsigned shard_id() const noexcept { return shard_id_; }
  unsigned shard_count() const noexcept { return shard_count_; }
  mesh::MeshEndpoint& mesh() const noexcept { return *mesh_; }
  io::Driver& driver() const noexcept { return *driver_; }
  internal::FramePool& frame_pool() const noexcept { return *frame_pool_; }

  // The buffer pool I/O on this thread draws from, if one is bound.
  buffers::BufferPool* buffer_pool() const noexcept { return buffer_pool_; }
  void bind_buffer_pool(buffers::BufferPool* pool) noexcept { buffer_pool_ = pool; }

 private:
  LocalExecutor* executor_;
  RuntimeContext* previous_;
  unsigned shard_id_;
  unsigned shard_count_;
  mesh::MeshEndpoint* mesh_;
  io::Driver* driver_;
  internal::FramePool* frame_pool_;
  buffers::BufferPool* buffer_pool_;
};

// The current shard's id and the runtime's shard count.
inline unsigned shard_id() { return RuntimeContext::current("shard_id").shard_id(); }
inline unsigned shard_count() { return RuntimeContext::current("shard_count").shard_count(); }

}  // namespace veloq
