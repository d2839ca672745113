// CircularQueue: a first-in first-out queue in an array whose size is a power
// of two and doubles when full. For the few items one socket's receive or
// send keeps waiting: small to begin with, no allocation while it does not
// grow, a mask instead of a division to find a slot. Private to buffers/.
#pragma once

#include <bit>
#include <cstddef>
#include <utility>
#include <vector>

namespace veloq::buffers::internal {

template <typename T>
class CircularQueue {
 public:
  static constexpr std::size_t initial_slots = 4;
  static_assert(std::has_single_bit(initial_slots));

  CircularQueue() : items_(initial_slots), mask_(initial_slots - 1) {}

  std::size_t size() const noexcept { return count_; }
  bool empty() const noexcept { return count_ == 0; }
  T& front() noexcept { return items_[head_]; }

  // Throws std::bad_alloc when it must grow and cannot; the queue is then unchanged.
  void push_back(T&& item) {
    if (count_ > mask_) grow();
    items_[slot(head_ + count_)] = std::move(item);
    ++count_;
  }
  T pop_front() noexcept {
    T item = std::move(items_[head_]);
    head_ = slot(head_ + 1);
    --count_;
    return item;
  }

 private:
  void grow() {
    std::vector<T> grown(2 * items_.size());
    for (std::size_t i = 0; i < count_; ++i) grown[i] = std::move(items_[slot(head_ + i)]);
    items_.swap(grown);
    mask_ = items_.size() - 1;
    head_ = 0;
  }
  std::size_t slot(std::size_t position) const noexcept { return position & mask_; }

  std::vector<T> items_;
  std::size_t mask_;  // items_.size() - 1, kept so that finding a slot reads no vector bounds
  std::size_t head_ = 0;
  std::size_t count_ = 0;
};

}  // namespace veloq::buffers::internal
