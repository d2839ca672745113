// TaskScope: structured concurrency for the tasks of one shard.
//
// Tasks spawned through a scope cannot outlive it. `co_await scope.join()`
// waits until every child has ended. The first child to fail cancels its
// siblings, and join() rethrows its exception. `scope.cancel()` cancels every
// child (cancellation destroys a child's frames, which cancels whatever I/O,
// timers or waits it had in flight). Destroying a scope whose children still
// run cancels them. Scopes nest: a child may open a scope of its own, and
// cancelling the outer child destroys the inner scope, which cancels its
// children in turn.
//
//   veloq::TaskScope scope;
//   for (auto& peer : peers) scope.spawn(sync_with(peer));
//   co_await scope.join();   // all synced, or the first error after the rest were cancelled
//
// Single-shard: a scope and its children live on the shard that made it.
// Children's results are not kept; a child reports back through what it
// captures. A task awaiting join() when the scope is destroyed resumes with
// RuntimeMisuse (the children were cancelled, and their errors are gone).
#pragma once

#include <veloq/runtime/local_executor.hpp>
#include <veloq/runtime/task.hpp>

#include <coroutine>
#include <cstddef>
#include <exception>
#include <utility>

namespace veloq {

class TaskScope {
 public:
  TaskScope() : executor_(&RuntimeContext::current("TaskScope").executor()) {}
  TaskScope(const TaskScope&) = delete;
  TaskScope& operator=(const TaskScope&) = delete;
  ~TaskScope() {
    // The children end after us (cancellation happens at the loop's next
    // safe point), so they must forget the scope first.
    for (Child* c = std::exchange(head_, nullptr); c != nullptr; c = c->next_) {
      c->scope_ = nullptr;
      executor_->cancel(c->task_);
    }
    tail_ = nullptr;
    if (JoinAwaiter* joining = std::exchange(awaiting_, nullptr)) {
      joining->scope_ = nullptr;
      joining->joiner_->wake();
    }
  }

  // Starts `task` as a child of this scope. On a cancelled or failed scope
  // the child is cancelled before it runs.
  template <typename T>
  void spawn(Task<T> task, const SpawnOptions& options = {}, SourceLocation site = SourceLocation::current()) {
    JoinHandle<void> handle = executor_->spawn(run_child(Child(*this), std::move(task)), options, site);
    // The Child now lives in the new frame and is our list's tail.
    tail_->task_ = LocalExecutor::handle_state(handle);
    handle.detach();
    if (cancelled_) executor_->cancel(tail_->task_);
  }

  // Cancels every child (and any spawned later).
  void cancel() noexcept {
    cancelled_ = true;
    for (Child* c = head_; c != nullptr; c = c->next_) executor_->cancel(c->task_);
  }

  std::size_t active() const noexcept { return active_; }

  class [[nodiscard("co_await scope.join()")]] JoinAwaiter {
   public:
    explicit JoinAwaiter(TaskScope& scope) noexcept : scope_(&scope) {}
    JoinAwaiter(const JoinAwaiter&) = delete;
    JoinAwaiter& operator=(const JoinAwaiter&) = delete;
    ~JoinAwaiter() {
      if (scope_ != nullptr && scope_->awaiting_ == this) scope_->awaiting_ = nullptr;  // our task was cancelled
    }
    bool await_ready() noexcept { return stop_.stopped_before_start() || scope_->active_ == 0; }
    void await_suspend(std::coroutine_handle<> h) {
      internal::TaskState* me = internal::running_task();
      // The scope wakes one joiner: a second would take the first one's
      // place, and the first would never resume. A child would wait for itself.
      if (scope_->awaiting_ != nullptr)
        throw RuntimeMisuse("veloq: TaskScope::join awaited by a second task while another awaits it");
      for (Child* c = scope_->head_; c != nullptr; c = c->next_)
        if (c->task_ == me) throw RuntimeMisuse("veloq: a child of a TaskScope awaited the scope's join");
      joiner_ = me;
      joiner_->resume_point = h;
      scope_->awaiting_ = this;
      stop_.join(me, this);
    }
    void await_resume() {
      stop_.end("join of a TaskScope");
      if (scope_ == nullptr) throw RuntimeMisuse("veloq: a TaskScope was destroyed while a task awaited its join");
      if (scope_->awaiting_ == this) scope_->awaiting_ = nullptr;
      if (scope_->first_error_) std::rethrow_exception(std::exchange(scope_->first_error_, nullptr));
    }

    // A region the joining task runs in stopped (io::with_timeout, a
    // cancellation token): the join is given up; the children run on.
    void stop_waiting(const internal::StopScope& by) noexcept {
      if (scope_ == nullptr || scope_->awaiting_ != this || scope_->active_ == 0) return;  // woken already
      scope_->awaiting_ = nullptr;
      scope_ = nullptr;  // no longer told if the scope goes
      stop_.note_stopped(by);
      joiner_->wake();
    }

   private:
    friend class TaskScope;
    TaskScope* scope_;                       // null once the scope was destroyed while we waited
    internal::TaskState* joiner_ = nullptr;  // our task, once suspended
    internal::StoppableWait stop_;
  };
  // Waits for every child; rethrows the first child failure.
  JoinAwaiter join() noexcept { return JoinAwaiter(*this); }

 private:
  // A child's entry in the scope's list. It lives in the child's root frame
  // (a parameter of run_child, so it exists even if the child never starts)
  // and leaves the list when that frame is destroyed: at the end, or on
  // cancellation.
  class Child {
   public:
    explicit Child(TaskScope& scope) noexcept : scope_(&scope) {
      prev_ = scope.tail_;
      (prev_ ? prev_->next_ : scope.head_) = this;
      scope.tail_ = this;
      ++scope.active_;
    }
    // Parameters are moved into the coroutine frame: take the entry's place.
    Child(Child&& other) noexcept
        : scope_(std::exchange(other.scope_, nullptr)), prev_(other.prev_), next_(other.next_), task_(other.task_) {
      if (scope_ == nullptr) return;
      (prev_ ? prev_->next_ : scope_->head_) = this;
      (next_ ? next_->prev_ : scope_->tail_) = this;
    }
    Child& operator=(Child&&) = delete;
    ~Child() {
      if (scope_ == nullptr) return;
      (prev_ ? prev_->next_ : scope_->head_) = next_;
      (next_ ? next_->prev_ : scope_->tail_) = prev_;
      // The joiner stays listed until it resumes: the scope may go first.
      if (--scope_->active_ == 0 && scope_->awaiting_ != nullptr) scope_->awaiting_->joiner_->wake();
    }
    TaskScope* scope() const noexcept { return scope_; }

   private:
    friend class TaskScope;
    TaskScope* scope_;
    Child* prev_ = nullptr;
    Child* next_ = nullptr;
    internal::TaskState* task_ = nullptr;
  };

  template <typename T>
  static Task<void> run_child(Child child, Task<T> task) {
    try {
      (void)co_await std::move(task);
    } catch (...) {
      if (TaskScope* scope = child.scope()) scope->child_failed(child, std::current_exception());
    }
  }

  void child_failed(Child& failed, std::exception_ptr error) noexcept {
    if (!first_error_ && !failed_) first_error_ = std::move(error);
    failed_ = true;
    cancelled_ = true;
    for (Child* c = head_; c != nullptr; c = c->next_)
      if (c != &failed) executor_->cancel(c->task_);
  }

  LocalExecutor* executor_;
  Child* head_ = nullptr;
  Child* tail_ = nullptr;
  std::size_t active_ = 0;
  JoinAwaiter* awaiting_ = nullptr;  // the join awaited, from suspension until it resumes
  std::exception_ptr first_error_;
  bool cancelled_ = false;
  bool failed_ = false;
};

}  // namespace veloq
