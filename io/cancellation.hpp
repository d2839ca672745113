// CancellationToken: stops the waits (I/O, sleeps, locks, joins) of the tasks that run under it.
//
// A task comes under a token by awaiting work through `with_cancellation`.
// `token.cancel()` then cancels every operation those regions have in flight
// (IORING_OP_ASYNC_CANCEL; they throw OperationCancelled), ends their other
// waits the same way, and every wait they start afterwards fails at once.
// The token belongs to one shard: cancel it on that shard (from another
// shard, send the call there with submit_to).
//
//   veloq::io::CancellationToken stop;
//   auto worker = veloq::spawn(veloq::io::with_cancellation(stop, serve(stream)));
//   ...
//   stop.cancel();   // serve()'s pending read throws OperationCancelled
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
// To end a task outright, cancel its JoinHandle.
#pragma once

#include <veloq/io/scoped_task.hpp>
#include <veloq/runtime/stop_scope.hpp>
#include <veloq/runtime/task.hpp>

#include <cerrno>

namespace veloq::io {

class CancellationToken {
 public:
  CancellationToken() = default;
  CancellationToken(const CancellationToken&) = delete;
  CancellationToken& operator=(const CancellationToken&) = delete;
  ~CancellationToken() = default;

  // Cancels the operations of every region under this token, now and later.
  void cancel() noexcept {
    cancelled_ = true;
    scopes_.stop_all(ECANCELED);
  }
  bool cancelled() const noexcept { return cancelled_; }

 private:
  template <typename T>
  friend Task<T> with_cancellation(CancellationToken& token, Task<T> task);
  veloq::internal::StopScope::Binding scopes_;  // the regions currently running under the token
  bool cancelled_ = false;
};

// Runs `task` with its I/O under `token` and returns its result (a Task:
// await it, or spawn it). Rethrows what the task throws; if the token was
// cancelled and the task failed, throws OperationCancelled.
template <typename T>
Task<T> with_cancellation(CancellationToken& token, Task<T> task) {
  co_return co_await internal::ScopedTask<T>(std::move(task), &token.scopes_, token.cancelled(),
                                             Clock::time_point::max(), 0);
}

}  // namespace veloq::io
