// WaitList: the tasks waiting on a single-shard primitive (semaphore, notify,
// mutex, gate, channel), in arrival order. Each Waiter lives in the awaiting
// coroutine's frame and unlinks itself if that frame is destroyed while it
// waits, so cancelling a waiting task never leaves a dangling entry.
//
// A list destroyed while tasks still wait in it (its primitive was destroyed
// under them) wakes each of them, its Waiter marked orphaned, rather than
// leave them suspended until the shard shuts down: the awaiter's
// await_resume calls throw_if_interrupted() before anything else, which
// throws ClosedError naming the primitive, and so never touches the freed
// primitive.
//
// A task waiting inside io::with_timeout or io::with_cancellation is taken
// off the list and woken when the region stops, and throw_if_interrupted()
// throws the region's TimeoutError or OperationCancelled. Its primitive is
// told (a Semaphore then serves the requests queued behind it). What woke
// the waiter first wins: a waiter already granted or notified is not stopped.
#pragma once

#include <veloq/runtime/stop_scope.hpp>
#include <veloq/runtime/task_state.hpp>

#include <coroutine>
#include <cstddef>

namespace veloq::internal {

class WaitList;

class Waiter {
 public:
  Waiter() = default;
  Waiter(const Waiter&) = delete;
  Waiter& operator=(const Waiter&) = delete;
  ~Waiter() { unlink(); }

  bool linked() const noexcept { return list_ != nullptr; }
  // Set by whoever wakes the waiter, before waking it (for example "granted").
  bool woken = false;
  inline void unlink() noexcept;

  // Throws ClosedError if the list this waiter waited in was destroyed while
  // it waited, or what the region says if a stopped region woke it (see the
  // top of the file). Awaiters call it first thing in await_resume: if it
  // throws, their primitive may be gone and must not be looked at.
  void throw_if_interrupted() const {
    if (orphaned_by_ != nullptr || stop_reason_ != 0) [[unlikely]] throw_interrupted();
  }
  // True if the list was destroyed after this waiter was woken and kept (see
  // WaitList::keep), before it resumed: the wake stands, but a primitive
  // built on this one (Mutex, Channel) must not touch its own state.
  bool woken_by_destroyed() const noexcept { return woken_by_destroyed_; }

 private:
  friend class WaitList;
  [[noreturn]] void throw_interrupted() const;
  void join_scope() noexcept;
  void stop(const StopScope& by) noexcept;
  static void on_scope_stop(void* self, const StopScope& by) noexcept;

  Waiter* prev_ = nullptr;
  Waiter* next_ = nullptr;
  WaitList* list_ = nullptr;
  TaskState* task_ = nullptr;
  std::coroutine_handle<> resume_at_;
  const char* orphaned_by_ = nullptr;  // the destroyed list's owner, once orphaned
  bool woken_by_destroyed_ = false;
  StopScope::Member scope_member_;        // joined while listed to wait inside a region
  StopScope::ThrowStopped stop_thrower_;  // what the region that stopped it throws
  int stop_reason_ = 0;                   // ETIMEDOUT or ECANCELED once stopped
  const char* stopped_owner_ = nullptr;   // its list's owner then, for the error
};

class WaitList {
 public:
  // `owner` names what the list belongs to ("semaphore"), for errors that
  // speak of it; a string literal, it is kept by pointer.
  explicit WaitList(const char* owner) noexcept : owner_(owner) {}
  // `fn(context)` runs when a stopped region takes a waiter off the list
  // (a Semaphore serves the waiters behind it).
  void on_waiter_stopped(void (*fn)(void* context) noexcept, void* context) noexcept {
    waiter_stopped_ = fn;
    waiter_stopped_context_ = context;
  }
  WaitList(const WaitList&) = delete;
  WaitList& operator=(const WaitList&) = delete;
  // Wakes every task still waiting, orphaned (see the top of the file).
  // Entries added with keep() have no task: they were woken already, and
  // are only unlinked and marked, so that they know not to call back.
  ~WaitList() {
    while (Waiter* w = head_) {
      w->unlink();
      if (w->task_ == nullptr) {
        w->woken_by_destroyed_ = true;
        continue;
      }
      w->orphaned_by_ = owner_;
      w->task_->wake_at(w->resume_at_);
    }
  }

  bool empty() const noexcept { return head_ == nullptr; }
  // What the list belongs to, as its errors name it ("semaphore", "channel").
  const char* owner() const noexcept { return owner_; }
  std::size_t size() const noexcept { return size_; }
  Waiter* front() const noexcept { return head_; }

  // Enqueues `w` for the task currently running, which suspends at `h`.
  void push_back(Waiter& w, TaskState* task, std::coroutine_handle<> h) noexcept {
    w.task_ = task;
    w.resume_at_ = h;
    w.woken = false;
    w.stop_reason_ = 0;
    w.list_ = this;
    w.prev_ = tail_;
    w.next_ = nullptr;
    (tail_ ? tail_->next_ : head_) = &w;
    tail_ = &w;
    ++size_;
    if (StopScope::open_scopes != 0 && task != nullptr) [[unlikely]] w.join_scope();
  }

  // Lists `w`, a waiter already woken, until it resumes or is destroyed, so
  // that if the list's owner goes first, the list's destructor unlinks it and
  // `w` knows not to call back (see Notify and Semaphore).
  void keep(Waiter& w) noexcept {
    bool woken = w.woken;
    push_back(w, nullptr, {});
    w.woken = woken;
  }

  // Removes the first waiter and schedules its task; false if none waits.
  bool wake_front() noexcept {
    Waiter* w = head_;
    if (!w) return false;
    w->unlink();
    w->woken = true;
    w->task_->wake_at(w->resume_at_);
    return true;
  }
  void wake_all() noexcept {
    while (wake_front()) {
    }
  }

 private:
  friend class Waiter;
  Waiter* head_ = nullptr;
  Waiter* tail_ = nullptr;
  std::size_t size_ = 0;
  const char* owner_;
  void (*waiter_stopped_)(void*) noexcept = nullptr;
  void* waiter_stopped_context_ = nullptr;
};

void Waiter::unlink() noexcept {
  if (!list_) return;
  (prev_ ? prev_->next_ : list_->head_) = next_;
  (next_ ? next_->prev_ : list_->tail_) = prev_;
  --list_->size_;
  list_ = nullptr;
  prev_ = next_ = nullptr;
  scope_member_.leave();  // off the list, the wait has ended (woken, stopped or destroyed)
}

}  // namespace veloq::internal
