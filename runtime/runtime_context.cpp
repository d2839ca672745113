#include <veloq/runtime/local_executor.hpp>
#include <veloq/runtime/runtime_context.hpp>


namespace veloq {

namespace internal {
constinit thread_local RuntimeContext* current_context = nullptr;
}

RuntimeContext::RuntimeContext(LocalExecutor& executor)
    : executor_(&executor),
      previous_(internal::current_context),
      shard_id_(executor.shard_id()),
      shard_count_(executor.shard_count()),
      mesh_(&executor.mesh()),
      driver_(&executor.driver()),
      frame_pool_(&executor.frame_pool()),
      buffer_pool_(previous_ != nullptr && previous_->executor_ == &executor ? previous_->buffer_pool_
                                                                               : executor.buffer_pool()) {
  if (!executor.on_own_thread())
    throw RuntimeMisuse("veloq: a RuntimeContext was entered for shard " + std::to_string(executor.shard_id()) +
                        " on a thread that does not own it; a shard is entered only on its own thread");
  internal::current_context = this;
}

RuntimeContext::~RuntimeContext() { internal::current_context = previous_; }

}  // namespace veloq
