// BufferPool: one shard's I/O buffers, carved from a single mmap'd region into
// size classes (4, 16 and 64 KiB by default) and registered with the shard's
// io_uring so READ_FIXED / WRITE_FIXED skip the per-I/O page pinning.
//
// Every buffer is page-aligned, so it can be the target of O_DIRECT I/O.
// `try_acquire(bytes)` hands out a Buffer of the smallest class that fits, or
// an empty one when that class is exhausted; `co_await acquire(bytes)` waits
// instead, in arrival order, and is handed the next buffer of its class that
// comes back. A Buffer returns to its own pool when dropped, from any shard.
//
// Registration pins the region, which counts against RLIMIT_MEMLOCK (commonly
// 8 MiB per user, shared by every ring of the user's processes, unless the
// process holds CAP_IPC_LOCK when it creates the ring). The default pool is
// 2 MiB so a few shards fit. When the kernel refuses (ENOMEM, EPERM, ...),
// the pool logs one warning and carries on unregistered: its buffers report
// `registered() == false` and I/O on them uses plain READ / WRITE.
//
// The pool owns its ring's fixed-buffer table (one table per ring): each size
// class is one registered iovec, so a buffer's buf_index is its size class.
//
// One pool per shard, created on the shard's own thread with that shard's
// driver, and bound to its RuntimeContext so I/O code finds it:
//
//   veloq::buffers::BufferPool pool(ctx.driver(), ctx.shard_id());
//   ctx.bind_buffer_pool(&pool);
//   ...
//   veloq::buffers::Buffer b = co_await veloq::buffers::BufferPool::current().acquire(4096);
//
// Destroy the pool on its shard when no fixed I/O into it is in flight.
// Buffers still out at that point keep its memory alive until they come back;
// a task waiting in acquire(), or awaiting one made before, gets ClosedError.
#pragma once

#include <veloq/buffers/buffer.hpp>
#include <veloq/runtime/wait_list.hpp>

#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace veloq::io {
class Driver;
}

namespace veloq::buffers {

struct SizeClass {
  std::size_t bytes;    // a multiple of the page size
  std::uint32_t count;  // buffers of this size
};

struct BufferPoolConfig {
  // Ascending sizes. Default: 128 x 4 KiB + 32 x 16 KiB + 16 x 64 KiB = 2 MiB.
  std::vector<SizeClass> classes{{4096, 128}, {16 * 1024, 32}, {64 * 1024, 16}};
  // Register the region with the ring (fixed-buffer I/O).
  bool register_buffers = true;
  // Behave as if the kernel had refused registration (tests, or to compare).
  bool simulate_registration_failure = false;
};

struct BufferPoolStats {
  std::uint64_t acquired = 0;         // buffers handed out
  std::uint64_t exhausted = 0;        // try_acquire calls that found the class empty
  std::uint64_t waited = 0;           // acquire calls that had to wait
  std::uint64_t remote_returns = 0;   // buffers that came home from another shard
};

namespace internal {
// A task waiting in acquire(): the buffer index it was handed, if any.
struct BufferGrant : veloq::internal::Waiter {
  std::uint32_t index = 0;
  bool pool_closed = false;
};
}  // namespace internal

class BufferPool {
 public:
  // Maps and (unless configured not to) registers the region with `driver`'s
  // ring. Call on the thread of shard `shard_id`, which owns `driver`.
  // Throws std::invalid_argument for a malformed configuration and
  // std::system_error when the memory cannot be mapped.
  BufferPool(io::Driver& driver, unsigned shard_id, const BufferPoolConfig& config = {});
  BufferPool(const BufferPool&) = delete;
  BufferPool& operator=(const BufferPool&) = delete;
  ~BufferPool();

  // The pool bound to the current shard's RuntimeContext; throws
  // RuntimeMisuse if none is bound (NoRuntimeContext outside a shard).
  static BufferPool& current();

  // A buffer of the smallest class holding `bytes`, or an empty Buffer if
  // that class has none free. Throws std::length_error when no class is that big.
  Buffer try_acquire(std::size_t bytes);

  class [[nodiscard("co_await pool.acquire(bytes)")]] AcquireAwaiter {
   public:
    // Keeps the pool's bookkeeping alive until it is destroyed, so it may be
    // awaited (or dropped) after the pool itself is gone.
    AcquireAwaiter(internal::PoolCore& core, std::uint16_t size_class) noexcept;
    AcquireAwaiter(const AcquireAwaiter&) = delete;
    AcquireAwaiter& operator=(const AcquireAwaiter&) = delete;
    // A buffer granted to a task that was cancelled before it resumed goes back.
    ~AcquireAwaiter();

    bool await_ready();
    void await_suspend(std::coroutine_handle<> h) noexcept;
    // Throws ClosedError if the pool was destroyed before or while the task waited.
    Buffer await_resume();

   private:
    internal::PoolCore& core_;
    std::uint16_t size_class_;
    bool taken_ = false;
    Buffer ready_;
    internal::BufferGrant grant_;
  };
  // Like try_acquire, but waits for a buffer of the class to come back.
  AcquireAwaiter acquire(std::size_t bytes);

  bool registered() const noexcept;
  unsigned shard_id() const noexcept;
  std::size_t class_count() const noexcept;
  std::size_t class_bytes(std::size_t size_class) const noexcept;
  std::uint32_t class_capacity(std::size_t size_class) const noexcept;
  std::uint32_t free_count(std::size_t size_class) const noexcept;
  std::size_t free_count() const noexcept;  // over every class
  std::size_t waiting(std::size_t size_class) const noexcept;
  std::size_t region_bytes() const noexcept;
  const BufferPoolStats& stats() const noexcept;

 private:
  internal::PoolCore* core_;
};

}  // namespace veloq::buffers
