// JoinHandle<T>: the caller's end of a spawned task.
//
// `co_await handle` waits for the task and returns its value or rethrows its
// exception (TaskCancelled if it was cancelled). `detach()` (or dropping the
// handle) lets the task run on unobserved; `cancel()` asks it to stop at its
// next suspension point, destroying its frame so every operation it has in
// flight is cancelled too. Single-shard: no atomics; only the task's own shard
// may touch the handle.
#pragma once

#include <veloq/runtime/errors.hpp>
#include <veloq/runtime/outcome.hpp>
#include <veloq/runtime/task_state.hpp>

#include <coroutine>
#include <exception>
#include <utility>

namespace veloq {

class LocalExecutor;

namespace internal {

template <typename T>
class TypedTaskState : public TaskState {
 public:
  Outcome<T> outcome;
};

// Defined in local_executor.hpp.
inline TaskState* running_task() noexcept;
// The task running on `peer`'s shard (no thread-local lookup).
inline TaskState* running_task_beside(const TaskState& peer) noexcept;
void request_cancel(TaskState* task) noexcept;
// Logs the failure of a finished task whose handle is dropped unawaited (a
// cancellation is not one). Defined in local_executor.cpp.
void report_unobserved_failure(const TaskState* task, std::exception_ptr error) noexcept;

}  // namespace internal

template <typename T>
class [[nodiscard("await the handle, or call detach()")]] JoinHandle {
 public:
  JoinHandle() noexcept = default;
  explicit JoinHandle(internal::TypedTaskState<T>* state) noexcept : state_(state) {}
  JoinHandle(JoinHandle&& other) noexcept : state_(std::exchange(other.state_, nullptr)) {}
  JoinHandle& operator=(JoinHandle&& other) noexcept {
    if (this != &other) {
      detach();
      state_ = std::exchange(other.state_, nullptr);
    }
    return *this;
  }
  JoinHandle(const JoinHandle&) = delete;
  JoinHandle& operator=(const JoinHandle&) = delete;
  ~JoinHandle() { detach(); }

  bool valid() const noexcept { return state_ != nullptr; }
  bool done() const noexcept { return state_ != nullptr && state_->done(); }

  // Lets the task run to its end on its own; its failure, if any, is logged
  // (also one that came before the detach: nobody else will see it).
  void detach() noexcept {
    if (state_) {
      if (state_->done()) internal::report_unobserved_failure(state_, state_->outcome.error());
      state_->detached = true;
      std::exchange(state_, nullptr)->release();
    }
  }

  // Asks the task to stop; awaiting the handle then throws TaskCancelled
  // (unless the task had already finished).
  void cancel() noexcept {
    if (state_) internal::request_cancel(state_);
  }

  // The result of a finished task (for code outside coroutines, e.g. block_on).
  // Refused for a task still running (there is no result yet, and the handle
  // stays joinable) and for an empty handle.
  T take_result() {
    if (!done())
      throw RuntimeMisuse("veloq: take_result of a JoinHandle whose task has not finished, or that is empty");
    return take_finished();
  }

  auto operator co_await() && noexcept { return Awaiter{*this}; }
  auto operator co_await() & noexcept { return Awaiter{*this}; }

 private:
  friend class LocalExecutor;

  // take_result() for a task known to be done (an awaiter that has resumed).
  T take_finished() {
    internal::TypedTaskState<T>* s = std::exchange(state_, nullptr);
    struct Release {
      internal::TaskState* s;
      ~Release() { s->release(); }
    } release{s};
    return s->outcome.take();
  }

  struct Awaiter {
    JoinHandle& handle;
    internal::TaskState* joiner = nullptr;

    bool await_ready() const {
      // Detached, moved from or already joined: there is no task to wait for.
      if (handle.state_ == nullptr)
        throw RuntimeMisuse("veloq: co_await of an empty JoinHandle (detached, moved from or already joined)");
      return handle.state_->done();
    }
    void await_suspend(std::coroutine_handle<> h) {
      internal::TaskState* me = internal::running_task_beside(*handle.state_);
      // A task would wait for itself forever; a second joiner would take the
      // first one's place, and the first would never resume.
      if (me == handle.state_) throw RuntimeMisuse("veloq: a task awaited its own JoinHandle");
      if (handle.state_->join_waiter != nullptr)
        throw RuntimeMisuse("veloq: a JoinHandle awaited by a second task while another awaits it");
      joiner = me;
      joiner->resume_point = h;
      handle.state_->join_waiter = joiner;
    }
    T await_resume() { return handle.take_finished(); }
    ~Awaiter() {
      // Destroyed while still waiting: our task was cancelled.
      if (joiner != nullptr && handle.state_ != nullptr && handle.state_->join_waiter == joiner)
        handle.state_->join_waiter = nullptr;
    }
  };

  internal::TypedTaskState<T>* state_ = nullptr;
};

}  // namespace veloq
