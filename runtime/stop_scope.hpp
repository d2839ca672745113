// StopScope (internal): a region of one task inside which everything the task
// waits for can be stopped together, by a deadline (io::with_timeout) or by a
// canceller (io::CancellationToken). It is what those two are built on.
//
// Scopes of one task nest strictly (a region opens and closes around an
// awaited child), so each task has a chain from its innermost scope outwards.
// The shard keeps a map from task to innermost scope. A wait that can be
// stopped (an I/O operation, a sleep, an accept, a multishot receive's next
// chunk) is a Member: when it starts it looks its task up and joins that
// scope, and leaves when it ends. Stopping a scope calls the stop function of
// every member of the scope and of every scope nested inside it; a wait that
// starts later inside a stopped scope fails at once. The map is empty unless
// some task is inside a scope, so a plain wait pays one branch for all this.
//
// What a stopped wait throws is the scope's to say (the I/O layer's
// TimeoutError and OperationCancelled), so a runtime wait such as a sleep
// fails with the same error as an I/O operation in the same region.
#pragma once

#include <veloq/runtime/task_state.hpp>
#include <veloq/runtime/timer_queue.hpp>

#include <cstddef>

namespace veloq::internal {

class StopScope {
 public:
  // Throws the error a wait stopped for `reason` (ETIMEDOUT or ECANCELED)
  // reports; `what` names the wait ("sleep", "accept 127.0.0.1:80").
  using ThrowStopped = void (*)(int reason, const char* what);

  // A wait the scope can stop. Trivial on purpose: an owner that never joins
  // a scope pays nothing for it. The owner joins when it starts waiting and
  // must leave before it is destroyed.
  struct Member {
    using StopFn = void (*)(void* owner, const StopScope& stopped_by) noexcept;

    // Joins `scope`; `on_stop(owner, stopped_by)` runs when the scope, or one
    // it is nested in (`stopped_by`), stops. It may leave() the member; it
    // must be idempotent, as an outer scope may stop after an inner one did.
    void join(StopScope& scope, StopFn on_stop, void* owner) noexcept;
    // Leaves the scope it joined, if any: when the wait ends, however it ends.
    void leave() noexcept {
      if (scope_ != nullptr) [[unlikely]] leave_joined();
    }
    bool joined() const noexcept { return scope_ != nullptr; }

   private:
    friend class StopScope;
    void leave_joined() noexcept;
    StopFn on_stop_;
    void* owner_;
    StopScope* scope_ = nullptr;
    Member* prev_;
    Member* next_;
  };

  // The scopes bound to one canceller (a CancellationToken), so that it can stop them all.
  class Binding {
   public:
    Binding() = default;
    Binding(const Binding&) = delete;
    Binding& operator=(const Binding&) = delete;
    ~Binding();  // unbinds the scopes still bound
    void stop_all(int reason) noexcept;

   private:
    friend class StopScope;
    StopScope* head_ = nullptr;
  };

  // Opens a scope for `task` (the running task), nested in its current innermost one.
  StopScope(TaskState* task, ThrowStopped throw_stopped);
  StopScope(const StopScope&) = delete;
  StopScope& operator=(const StopScope&) = delete;
  ~StopScope();

  // Ends the scope at `deadline`: it stops with ETIMEDOUT.
  void arm_deadline(Clock::time_point deadline);
  // Binds the scope to a canceller; `stopped_reason` (0: none) if it has fired already.
  void bind(Binding& binding, int stopped_reason) noexcept;

  // Stops the scope: `reason` is ETIMEDOUT or ECANCELED.
  void stop(int reason) noexcept;
  // ETIMEDOUT or ECANCELED once stopped, else 0.
  int reason() const noexcept { return reason_; }

  // The innermost scope of `task`, or null. Cheap when no task has a scope.
  static StopScope* innermost(TaskState* task) noexcept { return open_scopes == 0 ? nullptr : lookup(task); }
  // The first stopped scope from `inner` outwards, or null.
  static const StopScope* stopped_from(const StopScope* inner) noexcept {
    for (; inner != nullptr; inner = inner->outer_)
      if (inner->reason_ != 0) return inner;
    return nullptr;
  }
  // What a wait stopped by this scope throws (see ThrowStopped).
  ThrowStopped thrower() const noexcept { return throw_stopped_; }

  // Scopes open on this thread (a thread runs one shard at a time).
  static constinit inline thread_local std::size_t open_scopes = 0;

 private:
  struct DeadlineTimer {
    Timer timer;
    StopScope* owner = nullptr;
  };
  static void on_deadline(Timer* t) noexcept;
  static StopScope* lookup(TaskState* task) noexcept;
  void unbind() noexcept;
  void stop_members(const StopScope& by) noexcept;

  TaskState* task_;
  ThrowStopped throw_stopped_;
  StopScope* outer_;  // the enclosing scope of the same task
  Member* members_ = nullptr;
  Binding* binding_ = nullptr;
  StopScope* bound_prev_ = nullptr;  // the binding's list of scopes
  StopScope* bound_next_ = nullptr;
  DeadlineTimer deadline_;
  int reason_ = 0;
};

// A wait in the running task's scopes that needs no kernel operation (a
// sleep, an accept, a multishot receive's next chunk): it fails at once if a
// scope is stopped already, and is ended when one stops: the owner's
// `stop_waiting(const StopScope&) noexcept` calls note_stopped() and wakes
// the task, if it still waits (an outer scope may stop it again).
class StoppableWait {
 public:
  StoppableWait() = default;
  StoppableWait(const StoppableWait&) = delete;
  StoppableWait& operator=(const StoppableWait&) = delete;
  ~StoppableWait() { member_.leave(); }

  // True if the running task is inside a stopped scope (the wait must not start).
  bool stopped_before_start() noexcept {
    if (StopScope::open_scopes == 0) [[likely]] return false;
    return stopped_before_start_slow();
  }
  // Joins the task's innermost scope, if any.
  template <typename Owner>
  void join(TaskState* task, Owner* owner) noexcept {
    if (StopScope::open_scopes == 0) [[likely]] return;
    if (StopScope* scope = StopScope::innermost(task))
      member_.join(
          *scope, [](void* o, const StopScope& by) noexcept { static_cast<Owner*>(o)->stop_waiting(by); }, owner);
  }
  // Records that `by` stopped the wait (called from the owner's stop_waiting).
  void note_stopped(const StopScope& by) noexcept {
    record(by);
    member_.leave();
  }
  // The wait ended: leaves the scope, and throws what the scope says if one
  // stopped it (once: the awaitable may be awaited again). `what` names the
  // wait for the error message.
  void end(const char* what) {
    member_.leave();
    if (reason_ != 0) [[unlikely]] throw_stopped(what);
  }
  bool stopped() const noexcept { return reason_ != 0; }

 private:
  bool stopped_before_start_slow() noexcept;
  void record(const StopScope& by) noexcept {
    reason_ = by.reason();
    thrower_ = by.thrower();
  }
  [[noreturn]] void throw_stopped(const char* what);

  StopScope::Member member_;
  // Kept by value, not as the scope: the awaitable may outlive the region.
  StopScope::ThrowStopped thrower_;
  int reason_ = 0;
};

}  // namespace veloq::internal
