// Mutex: mutual exclusion between tasks of one shard, for critical sections
// that suspend (a plain section without co_await needs no lock at all on a
// shard). lock() hands back a guard that unlocks when it goes out of scope;
// waiters get the lock in arrival order. A mutex destroyed while tasks wait
// in lock() fails them with ClosedError, the one it had just granted the lock
// to included (its guard would unlock a mutex that is gone).
//
//   auto guard = co_await mutex.lock();
//   co_await write_both_files();
#pragma once

#include <veloq/runtime/semaphore.hpp>

#include <utility>

namespace veloq {

class Mutex {
 public:
  class [[nodiscard("the lock is released when the guard is destroyed")]] Guard {
   public:
    explicit Guard(Mutex* m) noexcept : mutex_(m) {}
    Guard(Guard&& other) noexcept : mutex_(std::exchange(other.mutex_, nullptr)) {}
    Guard& operator=(Guard&&) = delete;
    ~Guard() { unlock(); }
    void unlock() noexcept {
      if (mutex_) std::exchange(mutex_, nullptr)->units_.release();
    }

   private:
    Mutex* mutex_;
  };

  Task<Guard> lock() {
    Semaphore::Acquire unit = units_.acquire();
    co_await unit;
    if (unit.woken_by_destroyed()) throw ClosedError("veloq: mutex destroyed while a task waited on it");
    co_return Guard(this);
  }
  std::optional<Guard> try_lock() noexcept {
    if (!units_.try_acquire()) return std::nullopt;
    return std::optional<Guard>(std::in_place, this);
  }
  bool locked() const noexcept { return units_.available() == 0; }

 private:
  Semaphore units_{1, "mutex"};
};

}  // namespace veloq
