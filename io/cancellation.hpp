// CancellationToken: stops the I/O of the tasks that run under it.
//
// A task comes under a token by awaiting work through `with_cancellation`.
// `token.cancel()` then cancels every operation those regions have in flight
// (IORING_OP_ASYNC_CANCEL; they throw OperationCancelled), and every
// operation they start afterwards fails at once the same way. The token
// belongs to one shard: cancel it on that shard (from another shard, send the
// call there with submit_to).
//
//   veloq::io::CancellationToken stop;
//   auto worker = veloq::spawn(veloq::io::with_cancellation(stop, serve(stream)));
//   ...
//   stop.cancel();   // serve()'s pending read throws OperationCancelled
//
// Only Veloq I/O operations that each have their own SQE are interrupted; a
// region waiting on something else notices the cancellation at its next such
// operation: a sleep, a lock, and also `accept()` and
// `MultishotRecv::next()`, which wait for what a shared multishot operation
// queues (not yet stopped by a token). To stop a task wherever it waits,
// cancel its JoinHandle instead.
#pragma once

#include <veloq/io/scoped_task.hpp>
#include <veloq/runtime/task.hpp>

namespace veloq::io {

class CancellationToken {
 public:
  CancellationToken() = default;
  CancellationToken(const CancellationToken&) = delete;
  CancellationToken& operator=(const CancellationToken&) = delete;
  ~CancellationToken();

  // Cancels the operations of every region under this token, now and later.
  void cancel() noexcept;
  bool cancelled() const noexcept { return cancelled_; }

 private:
  friend class internal::OpScope;
  internal::OpScope* scopes_ = nullptr;  // the regions currently running under the token
  bool cancelled_ = false;
};

// Runs `task` with its I/O under `token` and returns its result (a Task:
// await it, or spawn it). Rethrows what the task throws; if the token was
// cancelled and the task failed, throws OperationCancelled.
template <typename T>
Task<T> with_cancellation(CancellationToken& token, Task<T> task) {
  co_return co_await internal::ScopedTask<T>(std::move(task), &token, Clock::time_point::max(), 0);
}

}  // namespace veloq::io
