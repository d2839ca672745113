// Gate: the basis of graceful shutdown. Work enters the gate (holding a
// Gate::Holder while it runs); close() stops new work from entering
// (enter() then throws ClosedError) and waits until every holder has left.
//
//   veloq::Gate gate;
//   auto holder = gate.enter();     // in each request handler
//   ...
//   co_await gate.close();          // in stop(): no new requests, wait for old ones
#pragma once

#include <veloq/runtime/errors.hpp>
#include <veloq/runtime/notify.hpp>

#include <cstddef>
#include <utility>

namespace veloq {

class Gate {
 public:
  class Holder {
   public:
    explicit Holder(Gate* g) noexcept : gate_(g) {}
    Holder(Holder&& other) noexcept : gate_(std::exchange(other.gate_, nullptr)) {}
    Holder& operator=(Holder&&) = delete;
    ~Holder() {
      if (gate_ && --gate_->holders_ == 0 && gate_->closed_) gate_->drained_.set();
    }

   private:
    Gate* gate_;
  };

  // Enters the gate; throws ClosedError once close() has been called.
  [[nodiscard("the holder keeps the gate open while it lives")]] Holder enter() {
    if (closed_) throw ClosedError("veloq: gate is closed");
    ++holders_;
    return Holder(this);
  }

  // Closes the gate to new work and waits for every holder to leave.
  Task<void> close() {
    closed_ = true;
    if (holders_ == 0) drained_.set();
    co_await drained_.wait();
  }

  bool closed() const noexcept { return closed_; }
  std::size_t holders() const noexcept { return holders_; }

 private:
  std::size_t holders_ = 0;
  bool closed_ = false;
  Event drained_;
};

}  // namespace veloq
