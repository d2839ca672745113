// Task<T>: a lazily started coroutine that produces a T (or throws).
//
// A Task does nothing until it is awaited (`co_await child()` runs it inline
// on the awaiting task, resuming the parent by symmetric transfer when it
// finishes) or spawned (`spawn(child())` makes it a task of its own and
// returns a JoinHandle). An exception thrown inside propagates to whoever
// awaits it. Frames come from the shard's FramePool.
//
//   veloq::Task<int> add(int a, int b) { co_return a + b; }
//   veloq::Task<void> caller() { int sum = co_await add(1, 2); ... }
#pragma once

#include <veloq/runtime/errors.hpp>
#include <veloq/runtime/frame_pool.hpp>
#include <veloq/runtime/outcome.hpp>
#include <veloq/runtime/task_state.hpp>

#include <coroutine>
#include <exception>
#include <utility>

namespace veloq {

template <typename T = void>
class Task;

namespace internal {

// Finishes the spawned task whose root coroutine just completed: frees the
// root frame and wakes a joiner. Returns the coroutine to continue with: the
// joiner itself when the executor hands the thread straight to it, else a
// no-op (back to the loop). Defined in local_executor.cpp.
std::coroutine_handle<> finish_root(TaskState* task, std::coroutine_handle<> root) noexcept;
// Logs the exception that ended a detached task: nobody else will see it.
void report_detached_failure(const TaskState* task, std::exception_ptr error) noexcept;

class PromiseBase {
 public:
  static void* operator new(std::size_t bytes) { return FramePool::allocate_current(bytes); }
  static void operator delete(void* frame, std::size_t bytes) noexcept { FramePool::release_current(frame, bytes); }

  std::suspend_always initial_suspend() noexcept { return {}; }

  struct FinalAwaiter {
    bool await_ready() const noexcept { return false; }
    template <typename Promise>
    std::coroutine_handle<> await_suspend(std::coroutine_handle<Promise> self) noexcept {
      PromiseBase& p = self.promise();
      if (p.continuation_) return p.continuation_;
      return finish_root(p.root_task_, self);
    }
    void await_resume() const noexcept {}
  };
  FinalAwaiter final_suspend() noexcept { return {}; }

  void set_continuation(std::coroutine_handle<> c) noexcept { continuation_ = c; }
  void set_root_task(TaskState* t) noexcept { root_task_ = t; }

 protected:
  void note_failure() noexcept {
    if (root_task_ != nullptr && root_task_->detached) report_detached_failure(root_task_, std::current_exception());
  }

 private:
  std::coroutine_handle<> continuation_;  // the awaiting parent, if awaited
  TaskState* root_task_ = nullptr;        // the task this coroutine is the root of, if spawned
};

template <typename T>
class Promise : public PromiseBase {
 public:
  // The frame holds the result: an over-aligned T needs an over-aligned frame.
  static void* operator new(std::size_t bytes) { return FramePool::allocate_current(bytes, alignof(Promise)); }
  static void operator delete(void* frame, std::size_t bytes) noexcept {
    FramePool::release_current(frame, bytes, alignof(Promise));
  }

  Task<T> get_return_object() noexcept;
  template <typename U>
  void return_value(U&& v) {
    outcome_->set_value(std::forward<U>(v));
  }
  void unhandled_exception() noexcept {
    note_failure();
    outcome_->set_exception(std::current_exception());
  }

  Outcome<T>& own_outcome() noexcept { return own_; }
  void redirect_outcome(Outcome<T>* o) noexcept { outcome_ = o; }

 private:
  Outcome<T> own_;
  Outcome<T>* outcome_ = &own_;  // a spawned root writes straight into its JoinHandle's state
};

template <>
class Promise<void> : public PromiseBase {
 public:
  Task<void> get_return_object() noexcept;
  void return_void() noexcept { outcome_->set_value(); }
  void unhandled_exception() noexcept {
    note_failure();
    outcome_->set_exception(std::current_exception());
  }

  Outcome<void>& own_outcome() noexcept { return own_; }
  void redirect_outcome(Outcome<void>* o) noexcept { outcome_ = o; }

 private:
  Outcome<void> own_;
  Outcome<void>* outcome_ = &own_;
};

}  // namespace internal

template <typename T>
class [[nodiscard("a Task does nothing until it is awaited or spawned")]] Task {
 public:
  using promise_type = internal::Promise<T>;
  using value_type = T;
  using Handle = std::coroutine_handle<promise_type>;

  Task() noexcept = default;
  explicit Task(Handle h) noexcept : coro_(h) {}
  Task(Task&& other) noexcept : coro_(std::exchange(other.coro_, {})) {}
  Task& operator=(Task&& other) noexcept {
    if (this != &other) {
      reset();
      coro_ = std::exchange(other.coro_, {});
    }
    return *this;
  }
  Task(const Task&) = delete;
  Task& operator=(const Task&) = delete;
  ~Task() { reset(); }

  bool valid() const noexcept { return static_cast<bool>(coro_); }

  // Throws RuntimeMisuse for an empty Task (moved from, or already awaited).
  auto operator co_await() && noexcept {
    struct Awaiter {
      Handle child;
      bool await_ready() const {
        if (!child) [[unlikely]] throw RuntimeMisuse("veloq: co_await of an empty Task (moved from or already awaited)");
        return false;
      }
      std::coroutine_handle<> await_suspend(std::coroutine_handle<> parent) noexcept {
        child.promise().set_continuation(parent);
        return child;
      }
      T await_resume() { return child.promise().own_outcome().take(); }
    };
    return Awaiter{coro_};
  }

  // Gives up ownership of the coroutine (used by spawn).
  Handle release() noexcept { return std::exchange(coro_, {}); }

 private:
  void reset() noexcept {
    if (coro_) std::exchange(coro_, {}).destroy();
  }
  Handle coro_;
};

namespace internal {
template <typename T>
Task<T> Promise<T>::get_return_object() noexcept {
  return Task<T>(std::coroutine_handle<Promise<T>>::from_promise(*this));
}
inline Task<void> Promise<void>::get_return_object() noexcept {
  return Task<void>(std::coroutine_handle<Promise<void>>::from_promise(*this));
}
}  // namespace internal

}  // namespace veloq
