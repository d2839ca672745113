#include <veloq/runtime/blocking_pool.hpp>
#include <veloq/runtime/local_executor.hpp>
#include <veloq/runtime/log.hpp>

#include <exception>
#include <stdexcept>
#include <utility>

namespace veloq {

namespace internal {

std::coroutine_handle<> finish_root(TaskState* task, std::coroutine_handle<> root) noexcept {
  // The root frame has finished and written its outcome: free the frame now
  // (we are in its final suspend, so destroying it is allowed).
  task->root = nullptr;
  root.destroy();
  return task->executor->finish_running(task);
}

void report_detached_failure(const TaskState* task, std::exception_ptr error) noexcept {
  try {
    std::rethrow_exception(std::move(error));
  } catch (const std::exception& e) {
    log().warn("detached task {} ({}:{}) failed: {}", task->name ? task->name : "(unnamed)",
               task->spawn_site.file, task->spawn_site.line, e.what());
  } catch (...) {
    log().warn("detached task {} ({}:{}) failed with a non-standard exception", task->name ? task->name : "(unnamed)",
               task->spawn_site.file, task->spawn_site.line);
  }
}

void report_unobserved_failure(const TaskState* task, std::exception_ptr error) noexcept {
  if (!error) return;
  try {
    std::rethrow_exception(error);
  } catch (const TaskCancelled&) {
    return;
  } catch (...) {
  }
  report_detached_failure(task, std::move(error));
}

void refuse_foreign_handle(const char* what, bool log_only) {
  static constexpr const char* why =
      " of a JoinHandle on a thread other than its task's shard (a handle belongs to the shard that spawned "
      "the task; reach that shard with submit_to)";
  if (!log_only) throw RuntimeMisuse(std::string("veloq: ") + what + why);
  log().error("veloq: {}{}; ignored, and the task's state is never freed", what, why);
}

void request_cancel(TaskState* task) noexcept {
  // A finished task's executor may be gone (its JoinHandle outlived it).
  if (!task->done()) task->executor->cancel(task);
}

}  // namespace internal

namespace {

// Refuses settings under which the loop could never run a mesh message,
// before any member (the ring, its armed read) is built.
const ShardConfig& checked(const ShardConfig& config) {
  if (config.mesh_budget == 0) throw std::invalid_argument("veloq: ShardConfig::mesh_budget must be at least 1");
  if (config.task_budget == 0) throw std::invalid_argument("veloq: ShardConfig::task_budget must be at least 1");
  return config;
}

}  // namespace

LocalExecutor::LocalExecutor(const ShardConfig& config)
    : config_(checked(config)),
      shard_id_(0),
      own_mesh_(std::make_unique<mesh::Mesh>(1, config.mesh.ring_capacity)),
      mesh_(own_mesh_.get()),
      driver_(config.driver, 0),
      endpoint_(*mesh_, 0, config.mesh, &driver_) {
  heartbeat_.quota_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(config.task_quota).count();
  heartbeat_.thread = pthread_self();
  stats_.started_ns = internal::ShardHeartbeat::now_ns();
  arm_wake_read();
  if (config.buffer_pool) buffer_pool_.emplace(driver_, shard_id_, config.buffers);
  for (const TaskClassConfig& c : config.task_classes) classes_.add(c.name, c.shares);
}

LocalExecutor::LocalExecutor(const ShardConfig& config, mesh::Mesh& mesh, unsigned shard_id)
    : config_(checked(config)),
      shard_id_(shard_id),
      mesh_(&mesh),
      driver_(config.driver, shard_id),
      endpoint_(mesh, shard_id, config.mesh, &driver_) {
  mesh.create_inbound_rings(shard_id);
  heartbeat_.quota_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(config.task_quota).count();
  heartbeat_.shard = shard_id;
  heartbeat_.thread = pthread_self();
  stats_.started_ns = internal::ShardHeartbeat::now_ns();
  arm_wake_read();
  if (config.buffer_pool) buffer_pool_.emplace(driver_, shard_id_, config.buffers);
  for (const TaskClassConfig& c : config.task_classes) classes_.add(c.name, c.shares);
}

LocalExecutor::~LocalExecutor() {
  RuntimeContext context(*this);
  destroy_all_tasks();
  shutting_down_ = true;
  // The drain cancels with IORING_ASYNC_CANCEL_ANY, which kernels before 5.19
  // refuse: the shard's own wake-up read, always in flight, is cancelled by
  // name first, so shutdown does not wait out the drain's time limit there.
  try {
    io_uring_prep_cancel(driver_.prepare(), static_cast<io::Completion*>(&wake_read_), 0);
  } catch (...) {
  }
  driver_.cancel_all_and_drain();
  own_blocking_pool_.reset();
  buffer_pool_.reset();
}

BlockingPool& LocalExecutor::blocking_pool() {
  if (blocking_pool_ == nullptr) {
    own_blocking_pool_ = std::make_unique<BlockingPool>(config_.blocking_pool, *mesh_);
    attach_blocking_pool(*own_blocking_pool_);
  }
  return *blocking_pool_;
}

void LocalExecutor::refuse_foreign_spawn() const {
  throw RuntimeMisuse("veloq: spawn on shard " + std::to_string(shard_id_) +
                      " from another thread (reach a shard with submit_to or run_on)");
}

void LocalExecutor::attach_blocking_pool(BlockingPool& pool) noexcept {
  blocking_pool_ = &pool;
  blocking_inbox_ = &pool.inbox(shard_id_);
}

void LocalExecutor::arm_wake_read() {
  wake_read_.owner = this;
  wake_read_.on_complete = [](io::Completion* c, int, std::uint32_t) noexcept {
    auto* self = static_cast<WakeRead*>(c);
    self->owner->driver_.background_finished();
    // The read only ends the kernel wait; pending bits say what arrived.
    if (!self->owner->shutting_down_) self->owner->arm_wake_read();
  };
  io_uring_sqe* sqe = driver_.prepare_background(&wake_read_);
  io_uring_prep_read(sqe, endpoint_.wake_fd(), &wake_read_.counter, sizeof wake_read_.counter, 0);
}

void LocalExecutor::cancel(internal::TaskState* t) noexcept {
  using Phase = internal::TaskState::Phase;
  if (t->phase == Phase::done || t->cancel_requested) return;
  t->cancel_requested = true;
  // A suspended task is queued so the loop destroys it at a safe point; a
  // running one is destroyed when it next suspends (see run_ready_tasks).
  if (t->phase == Phase::suspended) t->wake();
}

void LocalExecutor::run_until_stopped() {
  if (current_ != nullptr) throw RuntimeMisuse("veloq: run_until_stopped called from inside a running task");
  RuntimeContext context(*this);
  while (!stop_requested()) run_turn();
  leave_loop();
}

void LocalExecutor::run_until_done(const internal::TaskState& task) {
  while (!task.done() && !stop_requested()) run_turn();
}

void LocalExecutor::leave_loop() noexcept {
  heartbeat_.going_to_sleep();
  if (own_mesh_) own_mesh_->signal(shard_id_).clear_stop();
}

void LocalExecutor::run_turn() {
  mesh::MeshEndpoint::TurnScope turn(endpoint_);  // MSG_RING wake-ups of peers ride on this turn's enter
  ++stats_.loop_turns;
  heartbeat_.begin_turn();
  endpoint_.drain_inbound(config_.mesh_budget);
  endpoint_.flush_outbound();
  run_ready_tasks();
  fire_due_timers();
  collect_blocking_results();
  endpoint_.flush_outbound();
  poll_or_park();
  driver_.reap();
}

void LocalExecutor::run_ready_tasks() {
  const bool batched = config_.submit_batch != 0;
  if (classes_.count() == 1) {
    if (batched)
      run_class<false, true>(classes_.entry(0), config_.task_budget, 0, nullptr);
    else
      run_class<false, false>(classes_.entry(0), config_.task_budget, 0, nullptr);
    return;
  }
  // One clock reading per task: the end of a task is the start of the next.
  unsigned budget = config_.task_budget;
  std::uint64_t now = classes_.clock().now();
  while (budget > 0) {
    internal::ClassScheduler::Entry* cls = classes_.pick();
    if (cls == nullptr) break;
    std::uint64_t started = now;
    std::uint64_t until = started + classes_.slice_ticks();
    budget -= batched ? run_class<true, true>(*cls, budget, until, &now)
                      : run_class<true, false>(*cls, budget, until, &now);
    // Clamped: a thread that moved to another CPU may read a smaller counter.
    internal::ClassScheduler::charge(*cls, now > started ? now - started : 0);
    if (heartbeat_.quota_expired.load(std::memory_order_relaxed)) break;
    if (endpoint_.has_staged() || endpoint_.inbound_waiting()) break;
    if (submit_batch_reached()) break;
  }
}

template <bool Timed, bool Batched>
unsigned LocalExecutor::run_class(internal::ClassScheduler::Entry& cls, unsigned budget, std::uint64_t until,
                                  std::uint64_t* now) {
  using Phase = internal::TaskState::Phase;
  internal::ReadyQueue& queue = cls.queue;
  unsigned ran = 0;
  unsigned cancelled = 0;
  unsigned until_mesh_check = mesh_check_interval;
  unsigned mesh_checks = 0;
  while (ran < budget) {
    // Every few tasks, end early if the mesh has something to send or to
    // receive, so tasks that keep yielding do not hold messages back for a
    // whole budget; every fourth time, also once the turn has used its
    // quota by the shard's own clock.
    if (--until_mesh_check == 0) {
      until_mesh_check = mesh_check_interval;
      if (endpoint_.has_staged() || endpoint_.inbound_waiting()) break;
      if ((++mesh_checks & 3) == 0 && heartbeat_.quota_elapsed()) break;
    }
    internal::TaskState* t = queue.pop_front();
    if (t == nullptr) break;
    ++ran;
    if (t->cancel_requested) [[unlikely]] {
      cancel_now(t);
      ++cancelled;
      continue;
    }
    t->phase = Phase::running;
    current_ = t;
    t->resume_point.resume();
    t = std::exchange(current_, nullptr);  // another task, if `t` finished and handed over to its joiner
    if (t->running_uncancelled()) [[likely]] {
      t->phase = Phase::suspended;
    } else if (t->phase == Phase::running) {
      t->phase = Phase::suspended;
      cancel_now(t);
    } else if (t->phase == Phase::done) {
      t->release();  // the running task's reference, which finish() left to us
    }
    if constexpr (Timed) {
      // Read before any early exit: the caller charges the class up to *now,
      // so a task that ends its slice early is charged too.
      *now = classes_.clock().now();
      if (*now >= until) break;
    }
    if (heartbeat_.quota_expired.load(std::memory_order_relaxed)) break;  // let I/O and the mesh in
    if constexpr (Batched) {
      if (submit_batch_reached()) break;  // this turn's enter carries enough
    }
  }
  cls.stats.tasks_run += ran - cancelled;
  return ran;
}

void LocalExecutor::fire_due_timers() {
  if (timers_.size() == 0) return;
  stats_.timers_fired += timers_.fire_due(Clock::now());
}

void LocalExecutor::collect_blocking_results() {
  if (blocking_inbox_ != nullptr) stats_.blocking_results += blocking_inbox_->resume_waiters();
}

bool LocalExecutor::try_park() noexcept {
  if (!endpoint_.try_park()) return false;
  // After publishing "parked" (see BlockingInbox for why this order matters).
  if (blocking_inbox_ != nullptr && blocking_inbox_->has_results()) {
    endpoint_.unpark();
    return false;
  }
  return true;
}

bool LocalExecutor::spin_for_work(std::optional<Clock::time_point> deadline) noexcept {
  if (config_.idle_spin_us == 0) return false;
  Clock::time_point until = Clock::now() + std::chrono::microseconds(config_.idle_spin_us);
  if (deadline && *deadline < until) until = *deadline;
  for (unsigned i = 0;; ++i) {
    if (endpoint_.inbound_waiting() || driver_.has_pending_completions() || stop_requested()) return true;
    if (blocking_inbox_ != nullptr && blocking_inbox_->has_results()) return true;
#if defined(__x86_64__)
    __builtin_ia32_pause();
#endif
    if ((i & 63) == 63) {
      Clock::time_point now = Clock::now();
      if (now >= until) return deadline && *deadline <= now;
    }
  }
}

void LocalExecutor::poll_or_park() {
  // MSG_RING wake-ups of parked peers prepared this turn leave with the enter
  // below.
  const bool woke_peers = endpoint_.end_turn();
  // The busy turn: SQEs were prepared (nothing they wait for can complete
  // before the kernel has them) or tasks are ready. No park, no spin.
  if (driver_.has_unsubmitted() || !classes_.empty()) {
    driver_.enter(false);
    return;
  }
  bool idle = !endpoint_.has_inbound_backlog() && !stop_requested() &&
              !(block_on_task_ != nullptr && block_on_task_->done());
  // An idle shard sends its wake-ups before it spins, so the peers do not
  // wait for the spin, and reaps its own CQEs for them, so they end neither
  // the spin nor the park. What those completions stage for other shards (a
  // buffer going home) goes now, not after the park (its wake-ups by
  // eventfd, as the turn's enter has gone).
  if (woke_peers && idle) {
    driver_.enter(false);
    driver_.reap();
    endpoint_.flush_outbound();
    idle = classes_.empty();
  }
  std::optional<Clock::time_point> deadline = timers_.next_deadline();
  if (idle && deadline && *deadline <= Clock::now()) idle = false;
  // Operations prepared this turn cannot complete before an enter submits
  // them: submit now and spin on a later turn.
  if (idle && (driver_.has_unsubmitted() || spin_for_work(deadline))) idle = false;
  if (!idle || !try_park()) {
    driver_.enter(false);
    return;
  }
  ++stats_.parks;
  heartbeat_.going_to_sleep();
  std::int64_t slept_at = internal::ShardHeartbeat::now_ns();
  driver_.enter(true, deadline);
  stats_.parked_ns += static_cast<std::uint64_t>(internal::ShardHeartbeat::now_ns() - slept_at);
  endpoint_.unpark();
}

std::coroutine_handle<> LocalExecutor::finish_running(internal::TaskState* t) noexcept {
  using Phase = internal::TaskState::Phase;
  internal::TaskState* joiner = t->join_waiter;
  // Hand-off: when the joiner would be the next task to run anyway (its class
  // has nothing else ready), it continues at once on this thread by symmetric
  // transfer, without a trip through the ready queue. Not across classes and
  // not once the turn's quota is spent, so order, class shares and quotas are
  // as if it had been queued.
  bool hand_off = joiner != nullptr && joiner->phase == Phase::suspended && !joiner->cancel_requested &&
                  joiner->sched_class == t->sched_class && t->ready_queue->empty() &&
                  !heartbeat_.quota_expired.load(std::memory_order_relaxed);
  if (!hand_off) {
    finish(t);
    return std::noop_coroutine();
  }
  t->join_waiter = nullptr;  // not queued: it runs next, below
  finish(t);                 // `t` is still current_, so its running reference stays ours
  joiner->phase = Phase::running;
  current_ = joiner;
  ++classes_.entry(joiner->sched_class).stats.tasks_run;
  t->release();
  return joiner->resume_point;
}

void LocalExecutor::cancel_now(internal::TaskState* t) noexcept {
  std::coroutine_handle<> root = std::exchange(t->root, nullptr);
  t->phase = internal::TaskState::Phase::done;  // a cancel() during the destruction below is a no-op
  internal::TaskState* saved = std::exchange(current_, nullptr);
  // Destroying the root frame destroys the whole chain of awaited children;
  // their awaiters unlink from wait lists and timers and cancel their I/O.
  if (root) root.destroy();
  current_ = saved;
  t->set_cancelled(t);
  finish(t);
}

void LocalExecutor::destroy_all_tasks() noexcept {
  // Queued tasks are all live (finished tasks are never queued), so emptying
  // the queue and cancelling every live task leaves nothing behind.
  while (live_head_ != nullptr || !classes_.empty()) {
    for (unsigned c = 0; c < classes_.count(); ++c)
      while (internal::TaskState* q = classes_.entry(c).queue.pop_front()) q->phase = internal::TaskState::Phase::suspended;
    if (live_head_ != nullptr) {
      internal::TaskState* t = live_head_;
      t->cancel_requested = true;
      cancel_now(t);
    }
  }
}

ExecutorStats LocalExecutor::stats() const noexcept {
  ExecutorStats s = stats_;
  for (unsigned c = 0; c < classes_.count(); ++c) s.tasks_run += classes_.entry(c).stats.tasks_run;
  return s;
}

std::uint8_t LocalExecutor::resolve_class(TaskClass requested) const {
  if (requested.inherits()) return current_ != nullptr ? current_->sched_class : 0;
  if (requested.index() >= classes_.count())
    throw RuntimeMisuse("veloq: spawn with a task class this shard does not have");
  return requested.index();
}

TaskClass LocalExecutor::find_task_class(std::string_view name) const {
  if (std::optional<TaskClass> c = classes_.find(name)) return *c;
  throw RuntimeMisuse("veloq: shard " + std::to_string(shard_id_) + " has no task class '" + std::string(name) + "'");
}

std::vector<TaskClassStats> LocalExecutor::task_class_stats() const {
  std::vector<TaskClassStats> all;
  std::uint64_t spawned_elsewhere = 0;
  for (unsigned c = 0; c < classes_.count(); ++c) {
    all.push_back(classes_.stats(c));
    if (c != 0) spawned_elsewhere += all.back().tasks_spawned;
  }
  all[0].tasks_spawned = stats_.tasks_spawned - spawned_elsewhere;
  return all;
}

}  // namespace veloq
