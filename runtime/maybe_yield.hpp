// maybe_yield(): a cheap preemption point for long loops.
//
// A shard runs one task at a time, so a loop that never suspends holds up
// every other task, the mesh and I/O of its shard. Put `co_await
// maybe_yield()` in such a loop: it yields (as yield() does) only once the
// current loop turn has used its time quota (ShardConfig::task_quota, 500 us
// by default), and otherwise continues at once without suspending. The check
// is an ordinary load of the shard's "quota expired" flag, and on every 32nd
// call a read of the shard's own clock.
//
//   for (auto& row : table) {
//     score(row);
//     co_await veloq::maybe_yield();
//   }
#pragma once

#include <veloq/runtime/local_executor.hpp>

#include <coroutine>

namespace veloq {

namespace internal {

class MaybeYieldAwaiter {
 public:
  bool await_ready() const noexcept {
    return !RuntimeContext::current("maybe_yield").executor().heartbeat().quota_used();
  }
  void await_suspend(std::coroutine_handle<> h) const { running_task()->wake_at(h); }
  void await_resume() const noexcept {}
};

}  // namespace internal

[[nodiscard("co_await veloq::maybe_yield()")]] inline internal::MaybeYieldAwaiter maybe_yield() noexcept {
  return {};
}

}  // namespace veloq
