// Outcome<T>: the value or the exception a task finished with.
// Shared by Task (a child's result) and JoinHandle (a spawned task's result).
#pragma once

#include <exception>
#include <type_traits>
#include <utility>
#include <variant>

namespace veloq::internal {

template <typename T>
class Outcome {
 public:
  template <typename U>
  void set_value(U&& v) noexcept(std::is_nothrow_constructible_v<T, U&&>) {
    state_.template emplace<1>(std::forward<U>(v));
  }
  void set_exception(std::exception_ptr e) noexcept { state_.template emplace<2>(std::move(e)); }
  bool has_value_or_error() const noexcept { return state_.index() != 0; }

  // The exception the task ended with, if it failed.
  std::exception_ptr error() const noexcept { return state_.index() == 2 ? std::get<2>(state_) : nullptr; }

  // Moves the value out, or rethrows the stored exception.
  T take() {
    if (state_.index() == 2) std::rethrow_exception(std::get<2>(state_));
    return std::move(std::get<1>(state_));
  }

 private:
  std::variant<std::monostate, T, std::exception_ptr> state_;
};

template <>
class Outcome<void> {
 public:
  void set_value() noexcept { done_ = true; }
  void set_exception(std::exception_ptr e) noexcept {
    error_ = std::move(e);
    done_ = true;
  }
  bool has_value_or_error() const noexcept { return done_; }
  std::exception_ptr error() const noexcept { return error_; }
  void take() {
    if (error_) std::rethrow_exception(error_);
  }

 private:
  std::exception_ptr error_;
  bool done_ = false;
};

}  // namespace veloq::internal
