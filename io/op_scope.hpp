// OpScope (internal): a region of one task inside which its I/O operations
// can be stopped together, by a deadline (with_timeout) or by a
// CancellationToken (with_cancellation).
//
// Scopes of one task nest strictly (a region opens and closes around an
// awaited child), so each task has a chain from its innermost scope outwards.
// The shard keeps a map from task to innermost scope; an operation looks its
// task up when it starts and joins that scope. Stopping a scope cancels the
// operations of the scope and of every scope nested inside it; operations
// started later inside a stopped scope fail at once without reaching the kernel.
// The map is empty unless some task is inside a scope, so plain I/O pays one
// branch for all this.
#pragma once

#include <veloq/runtime/task_state.hpp>
#include <veloq/runtime/timer_queue.hpp>

#include <cstddef>

namespace veloq::io {
class CancellationToken;
}

namespace veloq::io::internal {

class OpBase;

class OpScope {
 public:
  // Opens a scope for `task` (the running task), nested in its current innermost one.
  explicit OpScope(veloq::internal::TaskState* task);
  OpScope(const OpScope&) = delete;
  OpScope& operator=(const OpScope&) = delete;
  ~OpScope();

  // Ends the scope at `deadline`: its operations then fail with TimeoutError.
  void arm_deadline(Clock::time_point deadline);
  // Binds the scope to `token`: cancelling the token stops the scope.
  void bind(CancellationToken& token) noexcept;

  // Stops the scope: `reason` is ETIMEDOUT or ECANCELED.
  void stop(int reason) noexcept;
  // ETIMEDOUT or ECANCELED once stopped, else 0.
  int reason() const noexcept { return reason_; }

  // The innermost scope of `task`, or null. Cheap when no task has a scope.
  static OpScope* innermost(veloq::internal::TaskState* task) noexcept {
    return open_scopes == 0 ? nullptr : lookup(task);
  }
  // The reason the task's operations must stop now (0: none), looking at
  // every scope from `inner` outwards.
  static int stop_reason_from(const OpScope* inner) noexcept {
    for (; inner != nullptr; inner = inner->outer_)
      if (inner->reason_ != 0) return inner->reason_;
    return 0;
  }

  // Scopes open on this thread (a thread runs one shard at a time).
  static constinit inline thread_local std::size_t open_scopes = 0;

  void attach(OpBase& op) noexcept;
  void detach(OpBase& op) noexcept;

 private:
  friend class veloq::io::CancellationToken;
  struct DeadlineTimer {
    veloq::internal::Timer timer;
    OpScope* owner = nullptr;
  };
  static void on_deadline(veloq::internal::Timer* t) noexcept;
  static OpScope* lookup(veloq::internal::TaskState* task) noexcept;
  void unbind() noexcept;
  void stop_own_ops(int reason) noexcept;

  veloq::internal::TaskState* task_;
  OpScope* outer_;               // the enclosing scope of the same task
  OpBase* ops_ = nullptr;        // operations in flight in this scope
  CancellationToken* token_ = nullptr;
  OpScope* token_prev_ = nullptr;  // the token's list of bound scopes
  OpScope* token_next_ = nullptr;
  DeadlineTimer deadline_;
  int reason_ = 0;
};

}  // namespace veloq::io::internal
