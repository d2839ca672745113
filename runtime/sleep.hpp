// sleep_for / sleep_until: suspend the current task until a time has passed.
// The timer lives in the task's frame; cancelling the task removes it. A shard
// with many sleeping tasks asks the kernel for one timeout only, the nearest.
// Inside io::with_timeout or io::with_cancellation, a sleep ends early when
// the region is stopped, throwing TimeoutError or OperationCancelled.
//
//   co_await veloq::sleep_for(std::chrono::milliseconds(5));
#pragma once

#include <veloq/runtime/local_executor.hpp>
#include <veloq/runtime/stop_scope.hpp>
#include <veloq/runtime/timer_queue.hpp>

#include <chrono>
#include <coroutine>

namespace veloq {

namespace internal {

class SleepAwaiter {
 public:
  explicit SleepAwaiter(Clock::time_point deadline) noexcept : deadline_(deadline) {}
  bool await_ready() noexcept {
    return stop_.stopped_before_start() || deadline_ <= Clock::now();
  }
  void await_suspend(std::coroutine_handle<> h) {
    task_ = running_task();
    task_->resume_point = h;
    task_->executor->timers().arm(entry_.timer, deadline_, &SleepAwaiter::expire);
    entry_.task = task_;
    stop_.join(task_, this);
  }
  void await_resume() { stop_.end("sleep"); }

  // A scope the task runs in stopped (with_timeout, a cancellation token).
  void stop_waiting(const StopScope& by) noexcept {
    if (!entry_.timer.armed()) return;  // already woken by its own deadline
    entry_.timer.cancel();
    stop_.note_stopped(by);
    task_->wake();
  }

 private:
  struct Entry {
    Timer timer;  // first member: expire() converts the Timer* back
    TaskState* task = nullptr;
  };
  static void expire(Timer* t) noexcept { reinterpret_cast<Entry*>(t)->task->wake(); }

  Clock::time_point deadline_;
  TaskState* task_ = nullptr;
  Entry entry_;
  StoppableWait stop_;
};

}  // namespace internal

[[nodiscard("co_await veloq::sleep_until(deadline)")]] inline internal::SleepAwaiter sleep_until(
    Clock::time_point deadline) noexcept {
  return internal::SleepAwaiter(deadline);
}

template <typename Rep, typename Period>
[[nodiscard("co_await veloq::sleep_for(duration)")]] internal::SleepAwaiter sleep_for(
    std::chrono::duration<Rep, Period> d) noexcept {
  return internal::SleepAwaiter(deadline_after(d));
}

}  // namespace veloq
