// Channel<T>: a bounded queue between tasks of one shard. send() waits while
// the channel is full (back-pressure, nothing is dropped); recv() waits while
// it is empty and returns nullopt once the channel is closed and drained.
// Sending on a closed channel throws ClosedError, and so does a send() or
// recv() waiting on a channel that is destroyed.
//
//   veloq::Channel<Request> queue(128);
//   co_await queue.send(request);               // producer
//   while (auto r = co_await queue.recv()) ...  // consumer
#pragma once

#include <veloq/runtime/errors.hpp>
#include <veloq/runtime/notify.hpp>

#include <cstddef>
#include <deque>
#include <optional>

namespace veloq {

template <typename T>
class Channel {
 public:
  explicit Channel(std::size_t capacity) : capacity_(capacity == 0 ? 1 : capacity) {}
  Channel(const Channel&) = delete;
  Channel& operator=(const Channel&) = delete;

  std::size_t size() const noexcept { return items_.size(); }
  std::size_t capacity() const noexcept { return capacity_; }
  bool closed() const noexcept { return closed_; }

  bool try_send(T& value) {
    if (closed_) throw ClosedError("veloq: send on a closed channel");
    if (items_.size() >= capacity_) return false;
    items_.push_back(std::move(value));
    not_empty_.notify_one();
    return true;
  }

  Task<void> send(T value) {
    while (!closed_ && items_.size() >= capacity_) co_await not_full_.wait();
    if (!try_send(value)) throw ClosedError("veloq: send on a closed channel");
  }

  std::optional<T> try_recv() {
    if (items_.empty()) return std::nullopt;
    std::optional<T> v(std::move(items_.front()));
    items_.pop_front();
    not_full_.notify_one();
    return v;
  }

  Task<std::optional<T>> recv() {
    while (items_.empty() && !closed_) co_await not_empty_.wait();
    co_return try_recv();
  }

  // No more sends; receivers drain what is queued, then get nullopt.
  void close() noexcept {
    closed_ = true;
    not_empty_.notify_all();
    not_full_.notify_all();
  }

 private:
  std::size_t capacity_;
  std::deque<T> items_;
  bool closed_ = false;
  Notify not_empty_{"channel"};
  Notify not_full_{"channel"};
};

}  // namespace veloq
