// with_timeout / with_deadline: bound how long a piece of I/O work may take.
//
//   auto n = co_await veloq::io::with_timeout(std::chrono::seconds(2), read_request(stream));
//
// The result is a Task (await it, or spawn it); the work runs inline in it. If it is still running at
// the deadline, every I/O operation it has in flight is cancelled, its sleep
// ends, and every such wait it starts afterwards fails at once; with_timeout then throws TimeoutError
// (errno ETIMEDOUT). If the task finishes first, its result is returned.
// The deadline is a shard timer, not a kernel timeout, so thousands of
// concurrent with_timeout calls still cost the kernel one timeout per wait.
// For a single operation, `op.with_timeout(d)` does the same without a task.
//
// What is interrupted: Veloq I/O operations, sleeps, `accept()` and
// `MultishotRecv::next()` (the shared multishot operation behind the last two
// stays armed for the next caller). A task waiting on a single-shard
// primitive (a lock, a semaphore, a channel) is stopped at its next such
// wait. Cancel its JoinHandle to stop it wherever it waits.
#pragma once

#include <veloq/io/scoped_task.hpp>
#include <veloq/runtime/task.hpp>

#include <chrono>

namespace veloq::io {

// Runs `task` and throws TimeoutError if it has not finished by `deadline`.
template <typename T>
Task<T> with_deadline(Clock::time_point deadline, Task<T> task) {
  co_return co_await internal::ScopedTask<T>(std::move(task), nullptr, false, deadline, 0);
}

// Runs `task` and throws TimeoutError if it has not finished within `timeout`
// (counted from when the returned task starts).
template <typename T, typename Rep, typename Period>
Task<T> with_timeout(std::chrono::duration<Rep, Period> timeout, Task<T> task) {
  // In milliseconds for the error message; clamped, as a duration of hours can overflow them.
  const double ms = std::chrono::duration<double, std::milli>(timeout).count();
  co_return co_await internal::ScopedTask<T>(std::move(task), nullptr, false, deadline_after(timeout),
                                             static_cast<long long>(ms < 1e15 ? ms : 1e15));
}

}  // namespace veloq::io
