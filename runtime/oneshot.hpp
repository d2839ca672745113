// Oneshot: hands one value from one task to another on the same shard.
// make_oneshot<T>() returns the two ends. Awaiting the receiver yields the
// value, or throws ClosedError if the sender was dropped without sending
// (and on a second receive: the value is handed out once).
//
//   auto [tx, rx] = veloq::make_oneshot<int>();
//   veloq::spawn(producer(std::move(tx))).detach();
//   int v = co_await rx.receive();
#pragma once

#include <veloq/runtime/errors.hpp>
#include <veloq/runtime/notify.hpp>

#include <optional>
#include <utility>

namespace veloq {

namespace internal {
template <typename T>
struct OneshotState {
  std::optional<T> value;
  bool sender_gone = false;
  bool received = false;  // the value was taken: a second receive() is refused
  Event ready;
  int refs = 2;
  void release() noexcept {
    if (--refs == 0) delete this;
  }
};
}  // namespace internal

template <typename T>
class OneshotSender {
 public:
  explicit OneshotSender(internal::OneshotState<T>* s) noexcept : state_(s) {}
  OneshotSender(OneshotSender&& o) noexcept : state_(std::exchange(o.state_, nullptr)) {}
  OneshotSender& operator=(OneshotSender&&) = delete;
  ~OneshotSender() {
    if (!state_) return;
    state_->sender_gone = true;
    state_->ready.set();
    state_->release();
  }
  void send(T value) {
    if (!state_) throw ClosedError("veloq: oneshot already used");
    state_->value.emplace(std::move(value));
    state_->ready.set();
    std::exchange(state_, nullptr)->release();
  }

 private:
  internal::OneshotState<T>* state_;
};

template <typename T>
class OneshotReceiver {
 public:
  explicit OneshotReceiver(internal::OneshotState<T>* s) noexcept : state_(s) {}
  OneshotReceiver(OneshotReceiver&& o) noexcept : state_(std::exchange(o.state_, nullptr)) {}
  OneshotReceiver& operator=(OneshotReceiver&&) = delete;
  ~OneshotReceiver() {
    if (state_) state_->release();
  }

  Task<T> receive() {
    if (!state_) throw RuntimeMisuse("veloq: receive on a moved-from OneshotReceiver");
    co_await state_->ready.wait();
    if (state_->received) throw ClosedError("veloq: oneshot already received");
    if (!state_->value) throw ClosedError("veloq: oneshot sender dropped without sending");
    T value = std::move(*state_->value);
    state_->value.reset();
    state_->received = true;
    co_return value;
  }

 private:
  internal::OneshotState<T>* state_;
};

template <typename T>
std::pair<OneshotSender<T>, OneshotReceiver<T>> make_oneshot() {
  auto* s = new internal::OneshotState<T>();
  return {OneshotSender<T>(s), OneshotReceiver<T>(s)};
}

}  // namespace veloq
