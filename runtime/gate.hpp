// Gate: the basis of graceful shutdown. Work enters the gate (holding a
// Gate::Holder while it runs); close() stops new work from entering at once
// (enter() then throws ClosedError), and awaiting what it returns waits until
// every holder has left. A gate destroyed while a task awaits close() fails
// that task with ClosedError; holders still inside then leave nothing behind
// (the gate lists them, and forgets them as it goes).
//
//   veloq::Gate gate;
//   auto holder = gate.enter();     // in each request handler
//   ...
//   co_await gate.close();          // in stop(): no new requests, wait for old ones
#pragma once

#include <veloq/runtime/errors.hpp>
#include <veloq/runtime/local_executor.hpp>
#include <veloq/runtime/wait_list.hpp>

#include <coroutine>
#include <cstddef>
#include <utility>

namespace veloq {

class Gate {
 public:
  class Holder {
   public:
    Holder(Holder&& other) noexcept : gate_(std::exchange(other.gate_, nullptr)), prev_(other.prev_), next_(other.next_) {
      if (gate_ == nullptr) return;
      (prev_ ? prev_->next_ : gate_->head_) = this;
      if (next_) next_->prev_ = this;
    }
    Holder& operator=(Holder&&) = delete;
    ~Holder() {
      if (gate_ == nullptr) return;
      (prev_ ? prev_->next_ : gate_->head_) = next_;
      if (next_) next_->prev_ = prev_;
      if (gate_->head_ == nullptr && gate_->closed_) gate_->drain_waiters_.wake_all();
    }

   private:
    friend class Gate;
    explicit Holder(Gate* g) noexcept : gate_(g), next_(g->head_) {
      if (next_) next_->prev_ = this;
      g->head_ = this;
    }
    Gate* gate_;  // null once moved from, or once the gate is gone
    Holder* prev_ = nullptr;
    Holder* next_ = nullptr;
  };

  Gate() = default;
  Gate(const Gate&) = delete;
  Gate& operator=(const Gate&) = delete;
  ~Gate() {
    for (Holder* h = head_; h != nullptr; h = h->next_) h->gate_ = nullptr;
  }

  // Enters the gate; throws ClosedError once close() has been called.
  [[nodiscard("the holder keeps the gate open while it lives")]] Holder enter() {
    if (closed_) throw ClosedError("veloq: gate is closed");
    return Holder(this);
  }

  // Resumes its awaiter once the gate has no holders.
  class [[nodiscard("co_await gate.close()")]] Drained {
   public:
    explicit Drained(Gate& gate) noexcept : gate_(gate) {}
    bool await_ready() const noexcept { return gate_.head_ == nullptr; }
    void await_suspend(std::coroutine_handle<> h) noexcept {
      gate_.drain_waiters_.push_back(waiter_, internal::running_task(), h);
    }
    void await_resume() const { waiter_.throw_if_interrupted(); }

   private:
    Gate& gate_;
    internal::Waiter waiter_;
  };

  // Closes the gate to new work now; co_await the result to wait for every
  // holder to leave.
  Drained close() noexcept {
    closed_ = true;
    return Drained(*this);
  }

  bool closed() const noexcept { return closed_; }
  // Counts the holders inside (a walk over them: for tests and diagnostics).
  std::size_t holders() const noexcept {
    std::size_t n = 0;
    for (const Holder* h = head_; h != nullptr; h = h->next_) ++n;
    return n;
  }

 private:
  Holder* head_ = nullptr;  // the holders inside, so the gate can forget them when it goes
  bool closed_ = false;
  internal::WaitList drain_waiters_{"gate"};
};

}  // namespace veloq
