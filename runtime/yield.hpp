// yield(): lets every other ready task of the shard run before this one
// continues. The task goes to the back of the ready queue; the shard does not
// sleep, spin or enter the kernel for it.
//
//   for (auto& item : big_batch) { process(item); co_await veloq::yield(); }
#pragma once

#include <veloq/runtime/local_executor.hpp>

#include <coroutine>

namespace veloq {

namespace internal {
struct YieldAwaiter {
  bool await_ready() const noexcept { return false; }
  void await_suspend(std::coroutine_handle<> h) const { running_task()->wake_at(h); }
  void await_resume() const noexcept {}
};
}  // namespace internal

[[nodiscard("co_await veloq::yield()")]] inline internal::YieldAwaiter yield() noexcept { return {}; }

}  // namespace veloq
