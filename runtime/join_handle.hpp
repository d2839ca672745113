// JoinHandle<T>: the caller's end of a spawned task.
//
// `co_await handle` waits for the task and returns its value or rethrows its
// exception (TaskCancelled if it was cancelled). `detach()` (or dropping the
// handle) lets the task run on unobserved; `cancel()` asks it to stop at its
// next suspension point, destroying its frame so every operation it has in
// flight is cancelled too. Single-shard: no atomics; only the task's own shard
// may touch the handle. Elsewhere (a handle returned through submit_to),
// awaiting it or taking its result throws RuntimeMisuse, and cancelling,
// detaching or dropping it logs an error and leaves the task alone (its
// state is then never freed): reach the task's shard with submit_to instead.
//
// While a task awaits a handle, the join is that task's: the handle may be
// moved (a vector of handles growing) and the result still comes out of it
// where it now lives; dropped or detached, the awaiting task inherits the
// join. Only one task may await a handle, and nobody may take its result in
// the meantime.
#pragma once

#include <veloq/runtime/errors.hpp>
#include <veloq/runtime/outcome.hpp>
#include <veloq/runtime/stop_scope.hpp>
#include <veloq/runtime/task_state.hpp>

#include <coroutine>
#include <exception>
#include <utility>

namespace veloq {

class LocalExecutor;

namespace internal {

template <typename T>
class TypedTaskState : public TaskState {
 public:
  Outcome<T> outcome;
};

// Defined in local_executor.hpp.
inline TaskState* running_task() noexcept;
// The task running on `peer`'s shard (no thread-local lookup).
inline TaskState* running_task_beside(const TaskState& peer) noexcept;
void request_cancel(TaskState* task) noexcept;
// Logs the failure of a finished task whose handle is dropped unawaited (a
// cancellation is not one). Defined in local_executor.cpp.
void report_unobserved_failure(const TaskState* task, std::exception_ptr error) noexcept;
// A JoinHandle used on a thread other than its task's shard: throws
// RuntimeMisuse naming `what` was attempted, or (`log_only`, for the noexcept
// paths) logs it. Defined in local_executor.cpp.
void refuse_foreign_handle(const char* what, bool log_only);

}  // namespace internal

template <typename T>
class [[nodiscard("await the handle, or call detach()")]] JoinHandle {
 public:
  JoinHandle() noexcept = default;
  explicit JoinHandle(internal::TypedTaskState<T>* state) noexcept : state_(state) {}
  JoinHandle(JoinHandle&& other) noexcept : state_(std::exchange(other.state_, nullptr)) { follow_awaiter(); }
  JoinHandle& operator=(JoinHandle&& other) noexcept {
    if (this != &other) {
      detach();
      state_ = std::exchange(other.state_, nullptr);
      follow_awaiter();
    }
    return *this;
  }
  JoinHandle(const JoinHandle&) = delete;
  JoinHandle& operator=(const JoinHandle&) = delete;
  ~JoinHandle() { detach(); }

  bool valid() const noexcept { return state_ != nullptr; }
  bool done() const noexcept { return state_ != nullptr && state_->done(); }

  // Lets the task run to its end on its own; its failure, if any, is logged
  // (also one that came before the detach: nobody else will see it). If a
  // task awaits the handle, that task keeps the join instead.
  void detach() noexcept {
    if (state_ == nullptr) return;
    if (!at_home()) [[unlikely]] {
      internal::refuse_foreign_handle("drop or detach", true);
      state_ = nullptr;
      return;
    }
    if (state_->join_awaiter != nullptr) {
      auto* awaiter = static_cast<Awaiter*>(state_->join_awaiter);
      awaiter->handle = nullptr;
      awaiter->inherited = std::exchange(state_, nullptr);
      return;
    }
    let_go(std::exchange(state_, nullptr));
  }

  // Asks the task to stop; awaiting the handle then throws TaskCancelled
  // (unless the task had already finished).
  void cancel() noexcept {
    if (state_ == nullptr) return;
    if (!at_home()) [[unlikely]] return internal::refuse_foreign_handle("cancel", true);
    internal::request_cancel(state_);
  }

  // The result of a finished task (for code outside coroutines, e.g. block_on).
  // Refused for a task still running (there is no result yet, and the handle
  // stays joinable), for a handle another task awaits, and for an empty handle.
  T take_result() {
    if (state_ != nullptr && !at_home()) [[unlikely]] internal::refuse_foreign_handle("take_result", false);
    if (!done())
      throw RuntimeMisuse("veloq: take_result of a JoinHandle whose task has not finished, or that is empty");
    if (state_->join_awaiter != nullptr) throw RuntimeMisuse("veloq: take_result of a JoinHandle another task awaits");
    return take_finished();
  }

  auto operator co_await() && noexcept { return Awaiter{this}; }
  auto operator co_await() & noexcept { return Awaiter{this}; }

 private:
  friend class LocalExecutor;

  // On the shard that spawned the task (the only place the state may be touched).
  bool at_home() const noexcept { return state_->owner_tag == &internal::this_thread_tag; }

  // take_result() for a task known to be done (an awaiter that has resumed).
  T take_finished() { return take_from(std::exchange(state_, nullptr)); }
  static T take_from(internal::TypedTaskState<T>* s) {
    struct Release {
      internal::TaskState* s;
      ~Release() { s->release(); }
    } release{s};
    return s->outcome.take();
  }
  // Gives up the handle's reference with nobody left to join the task.
  static void let_go(internal::TypedTaskState<T>* s) noexcept {
    if (s->done()) internal::report_unobserved_failure(s, s->outcome.error());
    s->detached = true;
    s->release();
  }
  // A moved handle tells the task awaiting it (if one does) where it went.
  void follow_awaiter() noexcept {
    if (state_ != nullptr && state_->join_awaiter != nullptr) static_cast<Awaiter*>(state_->join_awaiter)->handle = this;
  }

  struct Awaiter {
    explicit Awaiter(JoinHandle* h) noexcept : handle(h) {}
    JoinHandle* handle;                                // null once the handle was dropped while we wait
    internal::TypedTaskState<T>* inherited = nullptr;  // ... and then its state is ours
    internal::TaskState* joiner = nullptr;             // set while suspended, until resumed
    internal::StoppableWait stop_;

    bool await_ready() {
      // Detached, moved from or already joined: there is no task to wait for.
      if (handle->state_ == nullptr)
        throw RuntimeMisuse("veloq: co_await of an empty JoinHandle (detached, moved from or already joined)");
      if (!handle->at_home()) [[unlikely]] internal::refuse_foreign_handle("co_await", false);
      if (stop_.stopped_before_start()) return true;  // await_resume throws
      // A finished task another task is about to join is refused below.
      return handle->state_->done() && handle->state_->join_awaiter == nullptr;
    }
    void await_suspend(std::coroutine_handle<> h) {
      internal::TypedTaskState<T>* s = handle->state_;
      internal::TaskState* me = internal::running_task_beside(*s);
      // A task would wait for itself forever; a second joiner would take the
      // first one's place, and the first would never resume.
      if (me == s) throw RuntimeMisuse("veloq: a task awaited its own JoinHandle");
      if (s->join_awaiter != nullptr)
        throw RuntimeMisuse("veloq: a JoinHandle awaited by a second task while another awaits it");
      joiner = me;
      joiner->resume_point = h;
      s->join_waiter = joiner;
      s->join_awaiter = this;
      stop_.join(joiner, this);
    }
    // The join ends here: no handle refers to the state any more, so its
    // `join_awaiter` is left as it is.
    T await_resume() {
      stop_.end("join");
      joiner = nullptr;
      if (inherited == nullptr) [[likely]] return handle->take_finished();
      return take_from(std::exchange(inherited, nullptr));
    }
    // A region the joining task runs in stopped (io::with_timeout, a
    // cancellation token): the join is given up, and the handle (if any)
    // may be awaited again. The task runs on.
    void stop_waiting(const internal::StopScope& by) noexcept {
      if (joiner == nullptr) return;
      internal::TypedTaskState<T>* s = inherited != nullptr ? inherited : handle->state_;
      if (s->join_waiter != joiner) return;  // the task ended first: its result stands
      s->join_waiter = nullptr;
      s->join_awaiter = nullptr;
      stop_.note_stopped(by);
      std::exchange(joiner, nullptr)->wake();
    }
    ~Awaiter() {
      if (joiner == nullptr) {  // did not wait, resumed, or stopped
        if (inherited != nullptr) let_go(inherited);  // stopped after the handle went: nobody joins the task now
        return;
      }
      // Destroyed while waiting (our task was cancelled), or after the task
      // ended but before we resumed.
      internal::TypedTaskState<T>* s = inherited != nullptr ? inherited : handle->state_;
      if (s->join_waiter == joiner) s->join_waiter = nullptr;
      s->join_awaiter = nullptr;
      if (inherited != nullptr) let_go(inherited);  // the handle is gone: nobody joins the task now
    }
  };

  internal::TypedTaskState<T>* state_ = nullptr;
};

}  // namespace veloq
