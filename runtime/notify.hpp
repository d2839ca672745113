// Notify: wakes tasks on one shard. notify_one() wakes the longest waiter, or,
// if nobody waits, leaves a single permit that the next wait() consumes at
// once (so a notification sent just before the wait is not lost).
// notify_all() wakes every current waiter and leaves no permit.
//
// Event: a flag tasks can wait for; set() releases every waiter and all later
// waits until reset().
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
  void await_resume() const noexcept {}

 private:
  WaitList& list_;
  bool ready_;
};
}  // namespace internal

class Notify {
 public:
  void notify_one() noexcept {
    if (!waiters_.wake_front()) permit_ = true;
  }
  void notify_all() noexcept { waiters_.wake_all(); }
  std::size_t waiters() const noexcept { return waiters_.size(); }

  [[nodiscard("co_await notify.wait()")]] internal::ListAwaiter wait() noexcept {
    bool had_permit = std::exchange(permit_, false);
    return internal::ListAwaiter(waiters_, had_permit);
  }

 private:
  internal::WaitList waiters_;
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
  internal::WaitList waiters_;
  bool set_ = false;
};

}  // namespace veloq
