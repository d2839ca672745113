// Blocking pool: helper threads (not shards) for work that would stall a
// shard, such as a blocking system call, a library without an async API, or a
// long computation.
//
//   std::string text = co_await veloq::spawn_blocking([path] { return read_whole_file(path); });
//
// spawn_blocking(fn) hands `fn` to the runtime's pool and suspends the caller;
// `fn` runs on a helper thread and the caller resumes on its own shard with
// the result, or with the exception `fn` threw. The pool starts empty; a call
// that finds no idle helper left unclaimed by earlier calls starts a thread,
// up to `max_threads` (beyond that, calls queue), and a thread that finds no
// work for `idle_timeout` exits. A runtime has one pool
// for all its shards; a standalone LocalExecutor makes its own on first use.
//
// Cancelling the awaiting task does not stop `fn` (a thread cannot be
// interrupted safely); its result is dropped when it comes back.
//
// The shard never takes a lock here. Submitting pushes onto a lock-free stack
// and posts a semaphore; the result comes back through the shard's
// BlockingInbox, another lock-free stack, followed by the ShardSignal wake-up
// the mesh uses (see the inbox for why no wake-up is lost). Only the helper
// threads share a mutex, to take jobs in order.
//
// g++ 12 destroys a lambda temporary twice when it is written inside a
// co_await expression and captures something with a destructor: name such a
// lambda before awaiting spawn_blocking(lambda).
#pragma once

#include <veloq/runtime/local_executor.hpp>
#include <veloq/runtime/outcome.hpp>
#include <veloq/runtime/shard_config.hpp>

#include <atomic>
#include <coroutine>
#include <memory>
#include <type_traits>
#include <utility>

namespace veloq {

namespace mesh {
class Mesh;
class ShardSignal;
}  // namespace mesh

namespace internal {

// One call handed to the pool. `run` executes on a helper thread; the job then
// travels back to the shard that submitted it, which frees it.
struct BlockingJob {
  BlockingJob* next = nullptr;                       // link in the pool's queue, then in an inbox
  void (*run)(BlockingJob*) noexcept = nullptr;      // helper thread: calls fn, stores the outcome
  void (*destroy)(BlockingJob*) noexcept = nullptr;  // whoever holds the job last
  unsigned shard = 0;                                // whose inbox receives the finished job
  // Touched by the submitting shard only:
  TaskState* waiter = nullptr;  // null once the awaiting task is gone
  std::coroutine_handle<> resume_at;
  bool delivered = false;
};

// Finished jobs waiting for their shard: a stack that helper threads push
// onto and the shard empties in one exchange (so there is no ABA problem).
//
// Why no wake-up is lost: the helper pushes (seq_cst) and then claims the
// shard's wake-up (seq_cst load of `parked`); the shard publishes `parked`
// (seq_cst) and then looks at the stack (seq_cst) before it sleeps. In the
// single order of those four operations either the shard sees the job or the
// helper sees the shard parked and writes its eventfd.
class BlockingInbox {
 public:
  explicit BlockingInbox(mesh::ShardSignal& signal) noexcept : signal_(signal) {}

  // Helper thread: hands a finished job back and wakes the shard if it sleeps.
  void deliver(BlockingJob* job) noexcept;

  // Shard: true if finished jobs are waiting.
  bool has_results() const noexcept { return head_.load(std::memory_order_seq_cst) != nullptr; }
  // Shard: resumes the tasks whose jobs finished (in finishing order) and
  // frees the jobs nobody waits for any more. Returns how many came back.
  unsigned resume_waiters() noexcept;

  // Shutdown, once no helper thread runs: frees what was never collected.
  void discard() noexcept;

 private:
  std::atomic<BlockingJob*> head_{nullptr};
  mesh::ShardSignal& signal_;
};

}  // namespace internal

class BlockingPool {
 public:
  // A pool serving every shard of `mesh`.
  BlockingPool(const BlockingPoolConfig& config, mesh::Mesh& mesh);
  BlockingPool(const BlockingPool&) = delete;
  BlockingPool& operator=(const BlockingPool&) = delete;
  // Lets running calls finish, stops the helper threads and frees every job
  // that never ran or was never collected. No shard may submit any more.
  ~BlockingPool();

  // Queues `job` (any shard thread; never blocks on a lock).
  void submit(internal::BlockingJob* job) noexcept;

  internal::BlockingInbox& inbox(unsigned shard) noexcept;
  // Helper threads alive now.
  unsigned threads() const noexcept;
  // Helper threads started so far.
  std::uint64_t threads_started() const noexcept;

 private:
  struct State;
  // Starts one more helper, unless max_threads are running.
  void start_thread() noexcept;
  static void helper_main(std::shared_ptr<State> state) noexcept;

  std::shared_ptr<State> state_;  // shared with the (detached) helper threads
};

namespace internal {

template <typename F>
class BlockingJobFor : public BlockingJob {
 public:
  using R = std::invoke_result_t<F&>;

  explicit BlockingJobFor(F&& f) : fn_(std::move(f)) {
    run = &BlockingJobFor::run_fn;
    destroy = [](BlockingJob* job) noexcept { delete static_cast<BlockingJobFor*>(job); };
  }
  R take() { return outcome_.take(); }

 private:
  static void run_fn(BlockingJob* base) noexcept {
    auto* job = static_cast<BlockingJobFor*>(base);
    try {
      if constexpr (std::is_void_v<R>) {
        job->fn_();
        job->outcome_.set_value();
      } else {
        job->outcome_.set_value(job->fn_());
      }
    } catch (...) {
      job->outcome_.set_exception(std::current_exception());
    }
  }

  F fn_;
  Outcome<R> outcome_;
};

template <typename F>
class [[nodiscard("co_await spawn_blocking(fn)")]] BlockingCall {
 public:
  using R = typename BlockingJobFor<F>::R;

  explicit BlockingCall(F&& f) : job_(new BlockingJobFor<F>(std::move(f))) {}
  BlockingCall(BlockingCall&& other) noexcept
      : job_(std::exchange(other.job_, nullptr)), submitted_(other.submitted_) {}
  BlockingCall& operator=(BlockingCall&&) = delete;
  ~BlockingCall() {
    if (job_ == nullptr) return;
    if (submitted_ && !job_->delivered)
      job_->waiter = nullptr;  // still on the pool: the shard frees it when it comes back
    else
      job_->destroy(job_);
  }

  bool await_ready() const noexcept { return false; }
  void await_suspend(std::coroutine_handle<> h) {
    LocalExecutor& executor = RuntimeContext::current("spawn_blocking").executor();
    BlockingPool& pool = executor.blocking_pool();
    job_->waiter = executor.current_task();
    job_->resume_at = h;
    job_->shard = executor.shard_id();
    submitted_ = true;
    pool.submit(job_);
  }
  R await_resume() { return job_->take(); }

 private:
  BlockingJobFor<F>* job_;
  bool submitted_ = false;
};

}  // namespace internal

// Runs `fn()` on a helper thread of the pool; await the result. See the file comment.
template <typename F>
internal::BlockingCall<std::decay_t<F>> spawn_blocking(F&& fn) {
  return internal::BlockingCall<std::decay_t<F>>(std::decay_t<F>(std::forward<F>(fn)));
}

}  // namespace veloq
