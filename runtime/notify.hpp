// Notify: wakes tasks on one shard. notify_one() wakes the longest waiter, or,
// if nobody waits, leaves a single permit that the next wait() consumes at
// once (so a notification sent just before the wait is not lost). A waiter
// cancelled after notify_one() chose it, before it resumed, passes the
// notification on, so cancelling a task never swallows one.
// notify_all() wakes every current waiter and leaves no permit.
//
// Event: a flag tasks can wait for; set() releases every waiter and all later
// waits until reset().
//
// Destroying either while tasks wait on it fails them with ClosedError rather
// than leave them waiting for good; a waiter notify_one() already chose, not
// yet resumed, wakes normally.
#pragma once

#include <veloq/runtime/local_executor.hpp>
#include <veloq/runtime/wait_list.hpp>

#include <coroutine>

namespace veloq {

namespace internal {
// Awaits a place in `list` unless `ready` is already true.
class ListAwaiter : public Waiter {
 public:
  ListAwaiter(WaitList& list, bool ready) noexcept : list_(list), ready_(ready) {}
  bool await_ready() const noexcept { return ready_; }
  void await_suspend(std::coroutine_handle<> h) noexcept { list_.push_back(*this, running_task(), h); }
  void await_resume() const { throw_if_interrupted(); }

 private:
  WaitList& list_;
  bool ready_;
};
}  // namespace internal

class Notify {
 public:
  Notify() noexcept : Notify("notify") {}

  class [[nodiscard("co_await notify.wait()")]] Wait : public internal::Waiter {
   public:
    Wait(Notify& notify, bool ready) noexcept : notify_(notify), ready_(ready) {}
    Wait(const Wait&) = delete;
    ~Wait() {
      // Chosen, and destroyed before it resumed: still listed in `woken_`
      // unless the Notify is gone too.
      if (chosen_ && linked()) {
        unlink();
        notify_.notify_one();
      }
    }
    bool await_ready() const noexcept { return ready_; }
    void await_suspend(std::coroutine_handle<> h) noexcept {
      notify_.waiters_.push_back(*this, internal::running_task(), h);
    }
    void await_resume() {
      throw_if_interrupted();
      unlink();
    }

   private:
    friend class Notify;
    Notify& notify_;
    bool ready_;
    bool chosen_ = false;  // woken by notify_one(), which no other waiter saw
  };

  void notify_one() noexcept {
    if (waiters_.empty()) {
      permit_ = true;
      return;
    }
    auto* w = static_cast<Wait*>(waiters_.front());
    w->chosen_ = true;
    waiters_.wake_front();
    woken_.keep(*w);
  }
  void notify_all() noexcept {
    // Kept too, so that a Channel destroyed before they run can tell them (woken_by_destroyed).
    while (internal::Waiter* w = waiters_.front()) {
      waiters_.wake_front();
      woken_.keep(*w);
    }
  }
  std::size_t waiters() const noexcept { return waiters_.size(); }

  Wait wait() noexcept { return Wait(*this, std::exchange(permit_, false)); }

 private:
  template <typename T>
  friend class Channel;
  // A notify its errors call `name` (a string literal), for Channel.
  explicit Notify(const char* name) noexcept : waiters_(name), woken_(name) {}

  internal::WaitList waiters_;
  internal::WaitList woken_;  // woken, not yet resumed
  bool permit_ = false;
};

class Event {
 public:
  void set() noexcept {
    set_ = true;
    waiters_.wake_all();
  }
  void reset() noexcept { set_ = false; }
  bool is_set() const noexcept { return set_; }
  [[nodiscard("co_await event.wait()")]] internal::ListAwaiter wait() noexcept {
    return internal::ListAwaiter(waiters_, set_);
  }

 private:
  internal::WaitList waiters_{"event"};
  bool set_ = false;
};

}  // namespace veloq
