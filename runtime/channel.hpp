// Channel<T>: a bounded queue between tasks of one shard. send() waits while
// the channel is full (back-pressure, nothing is dropped); recv() waits while
// it is empty and returns nullopt once the channel is closed and drained.
// Senders get free slots in the order they started waiting: a slot freed for
// a waiting sender is its own, and neither a try_send() nor a later send()
// can take it first. Sending on a closed channel throws ClosedError, and so
// does a send() or recv() waiting on a channel that is destroyed (also one
// woken just before, which has not run yet).
//
//   veloq::Channel<Request> queue(128);
//   co_await queue.send(request);               // producer
//   while (auto r = co_await queue.recv()) ...  // consumer
#pragma once

#include <veloq/runtime/errors.hpp>
#include <veloq/runtime/notify.hpp>
#include <veloq/runtime/semaphore.hpp>

#include <cstddef>
#include <deque>
#include <optional>

namespace veloq {

template <typename T>
class Channel {
 public:
  explicit Channel(std::size_t capacity) : capacity_(capacity == 0 ? 1 : capacity), room_(capacity_, "channel") {}
  Channel(const Channel&) = delete;
  Channel& operator=(const Channel&) = delete;

  std::size_t size() const noexcept { return items_.size(); }
  std::size_t capacity() const noexcept { return capacity_; }
  bool closed() const noexcept { return closed_; }

  // False when the channel is full, or a waiting sender has the free slot.
  bool try_send(T& value) {
    if (closed_) throw ClosedError("veloq: channel closed");
    if (!room_.try_acquire()) return false;
    push(value);
    return true;
  }

  Task<void> send(T value) {
    Semaphore::Acquire slot = room_.acquire();
    co_await slot;  // in arrival order; ClosedError "channel closed" once closed
    if (slot.woken_by_destroyed()) throw destroyed();
    if (closed_) {  // closed after the slot was ours
      room_.release();
      throw ClosedError("veloq: channel closed");
    }
    push(value);
  }

  std::optional<T> try_recv() {
    if (items_.empty()) return std::nullopt;
    std::optional<T> v(std::move(items_.front()));
    items_.pop_front();
    room_.release();
    return v;
  }

  Task<std::optional<T>> recv() {
    while (items_.empty() && !closed_) {
      Notify::Wait item = not_empty_.wait();
      co_await item;
      if (item.woken_by_destroyed()) throw destroyed();
    }
    co_return try_recv();
  }

  // No more sends; receivers drain what is queued, then get nullopt.
  void close() noexcept {
    closed_ = true;
    not_empty_.notify_all();
    room_.close();
  }

 private:
  // The error of a task woken by a channel destroyed before it ran (the
  // same as when the channel goes while it waits).
  static ClosedError destroyed() { return ClosedError("veloq: channel destroyed while a task waited on it"); }

  // Queues `value` into the slot the caller holds.
  void push(T& value) {
    try {
      items_.push_back(std::move(value));
    } catch (...) {
      room_.release();
      throw;
    }
    not_empty_.notify_one();
  }

  std::size_t capacity_;
  std::deque<T> items_;
  bool closed_ = false;
  Notify not_empty_{"channel"};
  Semaphore room_;  // free slots: capacity minus queued items and slots held by senders
};

}  // namespace veloq
