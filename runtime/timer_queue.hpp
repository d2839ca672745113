// TimerQueue: a shard's timers, a binary min-heap of intrusive Timer entries
// ordered by deadline (ties fire in the order they were armed). Arming and
// cancelling are O(log n) without allocation beyond the heap's array, so tens
// of thousands of timers on a shard are cheap. The kernel only ever sees one
// timeout: the nearest deadline, passed to the shard's single io_uring wait.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <vector>

namespace veloq {

using Clock = std::chrono::steady_clock;

// The time point `d` from now, for every timeout in Veloq. A duration past
// half the clock's range (centuries) means never: Clock::time_point::max(),
// instead of an overflow that would land in the past. A negative one is now.
template <typename Rep, typename Period>
Clock::time_point deadline_after(std::chrono::duration<Rep, Period> d) noexcept {
  const Clock::time_point now = Clock::now();
  if (d <= d.zero()) return now;
  const double room = std::chrono::duration<double>(Clock::time_point::max() - now).count();
  if (std::chrono::duration<double>(d).count() >= room / 2) return Clock::time_point::max();
  return now + std::chrono::duration_cast<Clock::duration>(d);
}

namespace internal {

class TimerQueue;

class Timer {
 public:
  using Handler = void (*)(Timer* self) noexcept;

  Timer() = default;
  Timer(const Timer&) = delete;
  Timer& operator=(const Timer&) = delete;
  ~Timer() { cancel(); }

  bool armed() const noexcept { return queue_ != nullptr; }
  Clock::time_point deadline() const noexcept { return deadline_; }
  inline void cancel() noexcept;

 private:
  friend class TimerQueue;
  Clock::time_point deadline_{};
  std::uint64_t seq_ = 0;
  std::size_t index_ = 0;
  TimerQueue* queue_ = nullptr;
  Handler on_expire_ = nullptr;
};

class TimerQueue {
 public:
  TimerQueue() = default;
  TimerQueue(const TimerQueue&) = delete;
  TimerQueue& operator=(const TimerQueue&) = delete;
  ~TimerQueue() {
    for (Timer* t : heap_) t->queue_ = nullptr;
  }

  void arm(Timer& t, Clock::time_point deadline, Timer::Handler on_expire) {
    t.cancel();  // re-arming moves it, even from another queue
    heap_.push_back(&t);  // first: if it throws, the timer stays unarmed
    t.deadline_ = deadline;
    t.on_expire_ = on_expire;
    t.seq_ = next_seq_++;
    t.queue_ = this;
    t.index_ = heap_.size() - 1;
    sift_up(t.index_);
  }

  void remove(Timer& t) noexcept {
    std::size_t i = t.index_;
    t.queue_ = nullptr;
    Timer* last = heap_.back();
    heap_.pop_back();
    if (last != &t) {
      heap_[i] = last;
      last->index_ = i;
      sift_down(i);
      sift_up(last->index_);
    }
  }

  std::optional<Clock::time_point> next_deadline() const noexcept {
    if (heap_.empty()) return std::nullopt;
    return heap_.front()->deadline_;
  }

  // Fires every timer whose deadline is at or before `now`, earliest first.
  unsigned fire_due(Clock::time_point now) noexcept {
    unsigned fired = 0;
    while (!heap_.empty() && heap_.front()->deadline_ <= now) {
      Timer* t = heap_.front();
      remove(*t);
      ++fired;
      t->on_expire_(t);
    }
    return fired;
  }

  std::size_t size() const noexcept { return heap_.size(); }

 private:
  static bool earlier(const Timer* a, const Timer* b) noexcept {
    return a->deadline_ < b->deadline_ || (a->deadline_ == b->deadline_ && a->seq_ < b->seq_);
  }
  void place(std::size_t i, Timer* t) noexcept {
    heap_[i] = t;
    t->index_ = i;
  }
  void sift_up(std::size_t i) noexcept {
    Timer* t = heap_[i];
    while (i > 0) {
      std::size_t parent = (i - 1) / 2;
      if (!earlier(t, heap_[parent])) break;
      place(i, heap_[parent]);
      i = parent;
    }
    place(i, t);
  }
  void sift_down(std::size_t i) noexcept {
    Timer* t = heap_[i];
    std::size_t n = heap_.size();
    for (;;) {
      std::size_t child = 2 * i + 1;
      if (child >= n) break;
      if (child + 1 < n && earlier(heap_[child + 1], heap_[child])) ++child;
      if (!earlier(heap_[child], t)) break;
      place(i, heap_[child]);
      i = child;
    }
    place(i, t);
  }

  std::vector<Timer*> heap_;
  std::uint64_t next_seq_ = 0;
};

void Timer::cancel() noexcept {
  if (queue_) queue_->remove(*this);
}

}  // namespace internal
}  // namespace veloq
