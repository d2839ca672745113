// Semaphore: counts units of a resource on one shard (no atomics). Waiters are
// served first come, first served, so a large request is not starved by a
// stream of small ones. close() fails every waiter and future acquire with
// ClosedError (used to shut a service down). Destroying the semaphore fails
// its waiters with ClosedError too, rather than leave them waiting for good;
// a waiter already granted its units, not yet resumed, keeps them.
//
//   veloq::Semaphore slots(64);
//   co_await slots.acquire();   // wait for a unit
//   ...
//   slots.release();
#pragma once

#include <veloq/runtime/errors.hpp>
#include <veloq/runtime/local_executor.hpp>
#include <veloq/runtime/wait_list.hpp>

#include <coroutine>
#include <cstddef>
#include <string>

namespace veloq {

class Semaphore {
 public:
  explicit Semaphore(std::size_t units) noexcept : Semaphore(units, "semaphore") {}
  Semaphore(const Semaphore&) = delete;
  Semaphore& operator=(const Semaphore&) = delete;

  std::size_t available() const noexcept { return units_; }
  std::size_t waiters() const noexcept { return waiters_.size(); }
  bool closed() const noexcept { return closed_; }

  bool try_acquire(std::size_t n = 1) noexcept {
    if (closed_ || !waiters_.empty() || units_ < n) return false;
    units_ -= n;
    return true;
  }

  class [[nodiscard("co_await sem.acquire()")]] Acquire : public internal::Waiter {
   public:
    Acquire(Semaphore& s, std::size_t n) noexcept : sem_(s), n_(n) {}
    Acquire(const Acquire&) = delete;
    ~Acquire() {
      // Listed means the semaphore is still there (its lists unlink
      // everything when it goes).
      if (!linked()) return;
      unlink();
      if (!woken) {
        // Cancelled while waiting: smaller requests queued behind this one
        // may fit in the units it was waiting for.
        sem_.serve();
      } else {
        // Granted, but the task was cancelled before it resumed: give the units back.
        sem_.release(n_);
      }
    }
    bool await_ready() {
      if (sem_.closed_) return true;
      return sem_.try_acquire(n_);
    }
    void await_suspend(std::coroutine_handle<> h) noexcept {
      sem_.waiters_.push_back(*this, internal::running_task(), h);
    }
    void await_resume() {
      throw_if_interrupted();
      unlink();  // the units, if granted, are the caller's now
      // A waiter woken (granted, or failed by close()) does not look at the
      // semaphore: it may be gone. One that never waited found it closed.
      if (closed_by_ == nullptr && !woken && sem_.closed_) closed_by_ = sem_.waiters_.owner();
      if (closed_by_ != nullptr) throw ClosedError(std::string("veloq: ") + closed_by_ + " closed");
    }

   private:
    friend class Semaphore;
    Semaphore& sem_;
    std::size_t n_;
    const char* closed_by_ = nullptr;  // failed by close(): what the error names
  };

  // Waits until `n` units are available and takes them.
  Acquire acquire(std::size_t n = 1) noexcept { return Acquire(*this, n); }

  void release(std::size_t n = 1) noexcept {
    units_ += n;
    serve();
  }

  // Fails every waiter and every later acquire with ClosedError.
  void close() noexcept {
    closed_ = true;
    while (!waiters_.empty()) {
      static_cast<Acquire*>(waiters_.front())->closed_by_ = waiters_.owner();
      waiters_.wake_front();
    }
  }

 private:
  friend class Mutex;
  template <typename T>
  friend class Channel;
  // A semaphore its errors call `name` (a string literal), for Mutex and Channel.
  Semaphore(std::size_t units, const char* name) noexcept : units_(units), waiters_(name), granted_(name) {
    // A waiter a stopped region took away may have held back smaller requests behind it.
    waiters_.on_waiter_stopped([](void* self) noexcept { static_cast<Semaphore*>(self)->serve(); }, this);
  }

  // Grants waiters in arrival order while the first one's request fits.
  void serve() noexcept {
    while (!waiters_.empty()) {
      auto* w = static_cast<Acquire*>(waiters_.front());
      if (w->n_ > units_) break;
      units_ -= w->n_;
      waiters_.wake_front();
      granted_.keep(*w);
    }
  }

  std::size_t units_;
  bool closed_ = false;
  internal::WaitList waiters_;
  internal::WaitList granted_;  // granted units, not yet resumed
};

}  // namespace veloq
