// with_timeout / with_deadline: bound how long a piece of work may take.
//
//   auto n = co_await veloq::io::with_timeout(std::chrono::seconds(2), read_request(stream));
//
// The result is a Task (await it, or spawn it); the work runs inline in it.
// If it is still running at the deadline, the wait it is in is stopped (an
// I/O operation in flight is cancelled), and every wait it starts afterwards
// fails at once; with_timeout then throws TimeoutError (errno ETIMEDOUT). If
// the task finishes first, its result is returned.
// The deadline is a shard timer, not a kernel timeout, so thousands of
// concurrent with_timeout calls still cost the kernel one timeout per wait.
// For a single operation, `op.with_timeout(d)` does the same without a task.
//
// What is stopped: every wait that suspends the task. Veloq I/O operations
// (cancelled in the kernel), sleeps, `accept()` and `MultishotRecv::next()`
// (the multishot operation behind them stays armed for the next caller),
// waits on a Semaphore, Mutex, Notify, Event, Channel, Gate, BufferPool or
// mesh room_for,
// and awaits of a JoinHandle, a TaskScope's join or a submit_to reply (the
// work behind those runs on; the handle or call may be awaited again). Not
// stopped: a wait that does not suspend (a free lock is taken) and a
// spawn_blocking call.
// The work's own code decides what to do about it (catch, clean up, rethrow).
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
