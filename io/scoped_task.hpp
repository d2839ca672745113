// ScopedTask (internal): the awaitable behind with_timeout, with_deadline and
// with_cancellation. It runs a child task inline inside a StopScope, so that
// the child's waits can be stopped by the scope's deadline or token, and turns
// the child's failure into TimeoutError / OperationCancelled when the scope
// was the reason it failed.
#pragma once

#include <veloq/io/io_error.hpp>
#include <veloq/runtime/errors.hpp>
#include <veloq/runtime/local_executor.hpp>
#include <veloq/runtime/stop_scope.hpp>
#include <veloq/runtime/task.hpp>

#include <cerrno>
#include <coroutine>
#include <optional>
#include <string>
#include <utility>

namespace veloq::io::internal {

template <typename T>
class [[nodiscard("co_await it")]] ScopedTask {
 public:
  // `binding`: a token's scopes, with `cancelled` if it has fired already (null: no token).
  ScopedTask(Task<T> task, veloq::internal::StopScope::Binding* binding, bool cancelled, Clock::time_point deadline,
             long long timeout_ms)
      : child_(task.release()), binding_(binding), cancelled_(cancelled), deadline_(deadline),
        timeout_ms_(timeout_ms) {
    if (!child_) throw RuntimeMisuse("veloq: with_timeout/with_cancellation was given an empty Task");
  }
  ScopedTask(const ScopedTask&) = delete;
  ScopedTask& operator=(const ScopedTask&) = delete;
  ~ScopedTask() {
    // Destroying the child first lets its operations leave the scope before the scope closes.
    if (child_) std::exchange(child_, {}).destroy();
  }

  bool await_ready() const noexcept { return false; }
  std::coroutine_handle<> await_suspend(std::coroutine_handle<> h) {
    scope_.emplace(veloq::internal::running_task(), &throw_stopped);
    if (binding_ != nullptr) scope_->bind(*binding_, cancelled_ ? ECANCELED : 0);
    if (deadline_ != Clock::time_point::max()) scope_->arm_deadline(deadline_);
    child_.promise().set_continuation(h);
    return child_;
  }
  T await_resume() {
    const int reason = scope_->reason();
    scope_.reset();
    struct DestroyChild {
      typename Task<T>::Handle& child;
      ~DestroyChild() { std::exchange(child, {}).destroy(); }
    } destroy_child{child_};
    try {
      return child_.promise().own_outcome().take();
    } catch (const TimeoutError&) {
      throw;
    } catch (const OperationCancelled&) {
      if (reason == ETIMEDOUT) throw TimeoutError(what());
      throw;
    } catch (...) {
      if (reason == ETIMEDOUT) throw TimeoutError(what());
      if (reason == ECANCELED) throw OperationCancelled(what());
      throw;
    }
  }

 private:
  // What a wait in the region, stopped by the scope, throws.
  [[noreturn]] static void throw_stopped(int reason, const char* what) {
    if (reason == ETIMEDOUT) throw TimeoutError(what);
    throw OperationCancelled(what);
  }
  std::string what() const {
    if (binding_ != nullptr) return "with_cancellation";
    if (timeout_ms_ > 0) return "with_timeout(" + std::to_string(timeout_ms_) + " ms)";
    return "with_deadline";
  }

  typename Task<T>::Handle child_;
  veloq::internal::StopScope::Binding* binding_;
  bool cancelled_;
  Clock::time_point deadline_;
  long long timeout_ms_;
  std::optional<veloq::internal::StopScope> scope_;
};

}  // namespace veloq::io::internal
