#include <veloq/mesh/mesh.hpp>
#include <veloq/runtime/blocking_pool.hpp>
#include <veloq/runtime/log.hpp>

#include <semaphore.h>

#include <cerrno>
#include <condition_variable>
#include <ctime>
#include <mutex>
#include <thread>
#include <vector>

namespace veloq {

namespace internal {

void BlockingInbox::deliver(BlockingJob* job) noexcept {
  BlockingJob* head = head_.load(std::memory_order_relaxed);
  do {
    job->next = head;
  } while (!head_.compare_exchange_weak(head, job, std::memory_order_seq_cst, std::memory_order_relaxed));
  if (signal_.claim_wake()) signal_.wake();
}

unsigned BlockingInbox::resume_waiters() noexcept {
  if (!has_results()) return 0;
  // The stack holds the newest job first; reverse it to resume in finishing order.
  BlockingJob* newest = head_.exchange(nullptr, std::memory_order_seq_cst);
  BlockingJob* oldest = nullptr;
  while (newest != nullptr) oldest = std::exchange(newest, std::exchange(newest->next, oldest));
  unsigned count = 0;
  while (oldest != nullptr) {
    BlockingJob* job = std::exchange(oldest, oldest->next);
    ++count;
    if (job->waiter != nullptr) {
      job->delivered = true;
      job->waiter->wake_at(job->resume_at);
    } else {
      job->destroy(job);
    }
  }
  return count;
}

void BlockingInbox::discard() noexcept {
  BlockingJob* job = head_.exchange(nullptr, std::memory_order_seq_cst);
  while (job != nullptr) {
    BlockingJob* next = job->next;
    job->destroy(job);
    job = next;
  }
}

}  // namespace internal

struct BlockingPool::State {
  explicit State(const BlockingPoolConfig& c) : config(c) { sem_init(&jobs_available, 0, 0); }
  ~State() { sem_destroy(&jobs_available); }

  BlockingPoolConfig config;
  // One token per submitted job (and, at shutdown, one per thread).
  sem_t jobs_available;
  // Shards push here without a lock; helpers move it into the FIFO below.
  std::atomic<internal::BlockingJob*> submitted{nullptr};
  std::atomic<unsigned> threads{0};
  // Idle helpers minus submitted tokens no helper has taken yet: a submitter
  // that takes one from a positive count has claimed an idle helper for its
  // job; at zero or below, every idle helper is already spoken for, and it
  // starts a thread. (A plain idle count would let a second submitter count
  // on a helper the first one's token is already waking.)
  std::atomic<int> spare{0};
  std::atomic<std::uint64_t> started{0};
  std::atomic<bool> stopping{false};
  std::vector<std::unique_ptr<internal::BlockingInbox>> inboxes;

  std::mutex mutex;  // helper threads and the destructor only
  std::condition_variable all_exited;
  internal::BlockingJob* fifo_head = nullptr;
  internal::BlockingJob* fifo_tail = nullptr;

  // Takes the oldest queued job; the caller holds `mutex`.
  internal::BlockingJob* pop_locked() noexcept {
    if (fifo_head == nullptr) {
      internal::BlockingJob* newest = submitted.exchange(nullptr, std::memory_order_acq_rel);
      fifo_tail = newest;
      while (newest != nullptr) fifo_head = std::exchange(newest, std::exchange(newest->next, fifo_head));
    }
    internal::BlockingJob* job = fifo_head;
    if (job != nullptr) {
      fifo_head = job->next;
      if (fifo_head == nullptr) fifo_tail = nullptr;
    }
    return job;
  }

  // Waits up to the idle timeout for a token.
  bool wait_for_token() noexcept {
    timespec deadline{};
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(config.idle_timeout).count();
    deadline.tv_sec += static_cast<time_t>(ns / 1'000'000'000);
    deadline.tv_nsec += static_cast<long>(ns % 1'000'000'000);
    if (deadline.tv_nsec >= 1'000'000'000) {
      deadline.tv_nsec -= 1'000'000'000;
      ++deadline.tv_sec;
    }
    while (sem_clockwait(&jobs_available, CLOCK_MONOTONIC, &deadline) != 0)
      if (errno != EINTR) return false;
    return true;
  }
  // Waits for the token a submitter has claimed this helper for.
  void wait_for_claimed_token() noexcept {
    while (sem_wait(&jobs_available) != 0) {
    }
  }
  // An idle helper that timed out leaves the count; false if every idle
  // helper is claimed, one of them by a token on its way.
  bool leave_spare() noexcept {
    int n = spare.load(std::memory_order_seq_cst);
    while (n > 0)
      if (spare.compare_exchange_weak(n, n - 1, std::memory_order_seq_cst)) return true;
    return false;
  }
  // Counts a helper that has just retired back in, unless max_threads run
  // already (a new one then takes the work) or the pool is stopping.
  bool rejoin() noexcept {
    unsigned n = threads.load(std::memory_order_seq_cst);
    do {
      if (n >= config.max_threads) return false;
    } while (!threads.compare_exchange_weak(n, n + 1, std::memory_order_seq_cst));
    if (!stopping.load(std::memory_order_seq_cst)) return true;
    threads.fetch_sub(1, std::memory_order_seq_cst);
    return false;
  }
};

BlockingPool::BlockingPool(const BlockingPoolConfig& config, mesh::Mesh& mesh)
    : state_(std::make_shared<State>(config)) {
  if (state_->config.max_threads == 0) state_->config.max_threads = 1;
  for (unsigned s = 0; s < mesh.shard_count(); ++s)
    state_->inboxes.push_back(std::make_unique<internal::BlockingInbox>(mesh.signal(s)));
}

BlockingPool::~BlockingPool() {
  State& s = *state_;
  s.stopping.store(true, std::memory_order_seq_cst);
  // Every helper takes one token and, seeing `stopping`, exits; one still
  // running a call finishes it (and delivers it) first.
  for (unsigned i = s.threads.load(); i > 0; --i) sem_post(&s.jobs_available);
  std::unique_lock lock(s.mutex);
  s.all_exited.wait(lock, [&] { return s.threads.load() == 0; });
  while (internal::BlockingJob* job = s.pop_locked()) job->destroy(job);
  for (auto& inbox : s.inboxes) inbox->discard();
}

internal::BlockingInbox& BlockingPool::inbox(unsigned shard) noexcept { return *state_->inboxes[shard]; }
unsigned BlockingPool::threads() const noexcept { return state_->threads.load(); }
std::uint64_t BlockingPool::threads_started() const noexcept { return state_->started.load(); }

void BlockingPool::submit(internal::BlockingJob* job) noexcept {
  State& s = *state_;
  internal::BlockingJob* head = s.submitted.load(std::memory_order_relaxed);
  do {
    job->next = head;
  } while (!s.submitted.compare_exchange_weak(head, job, std::memory_order_seq_cst, std::memory_order_relaxed));
  bool claimed_idle_helper = s.spare.fetch_sub(1, std::memory_order_seq_cst) > 0;
  sem_post(&s.jobs_available);
  if (!claimed_idle_helper) start_thread();
}

void BlockingPool::start_thread() noexcept {
  State& s = *state_;
  unsigned n = s.threads.load();
  do {
    if (n >= s.config.max_threads) return;  // the job waits for a busy helper
  } while (!s.threads.compare_exchange_weak(n, n + 1));
  try {
    std::thread(&BlockingPool::helper_main, state_).detach();
    s.started.fetch_add(1);
  } catch (const std::exception& e) {
    // Queued work waits for a helper that becomes free or that a later submit starts.
    s.threads.fetch_sub(1);
    log().error("blocking pool: could not start a helper thread: {}", e.what());
  }
}

void BlockingPool::helper_main(std::shared_ptr<State> state) noexcept {
  State& s = *state;
  for (;;) {
    s.spare.fetch_add(1, std::memory_order_seq_cst);
    if (!s.wait_for_token()) {
      // Idle too long: retire, unless a submitter has claimed this helper
      // (the count went to zero or below), whose token is then on its way.
      if (s.leave_spare()) {
        s.threads.fetch_sub(1, std::memory_order_seq_cst);
        // A submitter that found no idle helper after we left the count, but
        // read `threads` before we left it too, saw the pool full and started
        // no thread: its token would wait with no helper left. Then stay.
        if (s.spare.load(std::memory_order_seq_cst) < 0 && s.rejoin()) continue;
        break;
      }
      s.wait_for_claimed_token();
    }
    if (s.stopping.load(std::memory_order_seq_cst)) {
      s.threads.fetch_sub(1, std::memory_order_seq_cst);
      break;
    }
    internal::BlockingJob* job;
    {
      std::lock_guard lock(s.mutex);
      job = s.pop_locked();
    }
    if (job == nullptr) continue;
    job->run(job);
    s.inboxes[job->shard]->deliver(job);
  }
  // Under the lock, so the destructor cannot miss this between its check and its wait.
  std::lock_guard lock(s.mutex);
  s.all_exited.notify_all();
}

}  // namespace veloq
