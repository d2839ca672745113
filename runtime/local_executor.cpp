#include <veloq/runtime/blocking_pool.hpp>
#include <veloq/runtime/local_executor.hpp>
#include <veloq/runtime/log.hpp>

#include <exception>
#include <utility>

namespace veloq {

namespace internal {

void finish_root(TaskState* task, std::coroutine_handle<> root) noexcept {
  // The root frame has finished and written its outcome: free the frame now
  // (we are in its final suspend, so destroying it is allowed).
  task->root = nullptr;
  root.destroy();
  task->executor->finish(task);
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

void request_cancel(TaskState* task) noexcept { task->executor->cancel(task); }

void TaskState::wake() noexcept { executor->schedule(this); }

}  // namespace internal

LocalExecutor::LocalExecutor(const ShardConfig& config)
    : config_(config),
      shard_id_(0),
      owner_(std::this_thread::get_id()),
      own_mesh_(std::make_unique<mesh::Mesh>(1, config.mesh.ring_capacity)),
      mesh_(own_mesh_.get()),
      driver_(config.driver, 0),
      endpoint_(*mesh_, 0, config.mesh) {
  heartbeat_.quota_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(config.task_quota).count();
  heartbeat_.thread = pthread_self();
  stats_.started_ns = internal::ShardHeartbeat::now_ns();
  arm_wake_read();
  if (config.buffer_pool) buffer_pool_.emplace(driver_, shard_id_, config.buffers);
}

LocalExecutor::LocalExecutor(const ShardConfig& config, mesh::Mesh& mesh, unsigned shard_id)
    : config_(config),
      shard_id_(shard_id),
      owner_(std::this_thread::get_id()),
      mesh_(&mesh),
      driver_(config.driver, shard_id),
      endpoint_(mesh, shard_id, config.mesh) {
  mesh.create_inbound_rings(shard_id);
  heartbeat_.quota_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(config.task_quota).count();
  heartbeat_.shard = shard_id;
  heartbeat_.thread = pthread_self();
  stats_.started_ns = internal::ShardHeartbeat::now_ns();
  arm_wake_read();
  if (config.buffer_pool) buffer_pool_.emplace(driver_, shard_id_, config.buffers);
}

LocalExecutor::~LocalExecutor() {
  RuntimeContext context(*this);
  destroy_all_tasks();
  shutting_down_ = true;
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

void LocalExecutor::attach_blocking_pool(BlockingPool& pool) noexcept {
  blocking_pool_ = &pool;
  blocking_inbox_ = &pool.inbox(shard_id_);
}

void LocalExecutor::arm_wake_read() {
  wake_read_.owner = this;
  wake_read_.background = true;
  wake_read_.on_complete = [](io::Completion* c, int, std::uint32_t) noexcept {
    auto* self = static_cast<WakeRead*>(c);
    // The read only ends the kernel wait; pending bits say what arrived.
    if (!self->owner->shutting_down_) self->owner->arm_wake_read();
  };
  io_uring_sqe* sqe = driver_.prepare(&wake_read_);
  io_uring_prep_read(sqe, endpoint_.wake_fd(), &wake_read_.counter, sizeof wake_read_.counter, 0);
}

void LocalExecutor::schedule(internal::TaskState* t) noexcept {
  using Phase = internal::TaskState::Phase;
  if (t->phase == Phase::queued || t->phase == Phase::done) return;
  t->phase = Phase::queued;
  ready_.push_back(t);
}

void LocalExecutor::cancel(internal::TaskState* t) noexcept {
  using Phase = internal::TaskState::Phase;
  if (t->phase == Phase::done || t->cancel_requested) return;
  t->cancel_requested = true;
  // A suspended task is queued so the loop destroys it at a safe point; a
  // running one is destroyed when it next suspends (see run_ready_tasks).
  if (t->phase == Phase::suspended) schedule(t);
}

void LocalExecutor::run_until_stopped() {
  if (current_ != nullptr) throw RuntimeMisuse("veloq: run_until_stopped called from inside a running task");
  RuntimeContext context(*this);
  while (!stop_requested()) run_turn();
  heartbeat_.going_to_sleep();  // out of the loop is not a stall
}

void LocalExecutor::run_turn() {
  ++stats_.loop_turns;
  heartbeat_.begin_turn();
  run_ready_tasks();
  fire_due_timers();
  collect_blocking_results();
  endpoint_.drain_inbound(config_.mesh_budget);
  endpoint_.flush_outbound();
  poll_or_park();
  driver_.reap();
}

void LocalExecutor::run_ready_tasks() {
  using Phase = internal::TaskState::Phase;
  for (unsigned budget = config_.task_budget; budget > 0; --budget) {
    internal::TaskState* t = ready_.pop_front();
    if (t == nullptr) break;
    if (t->cancel_requested) {
      cancel_now(t);
      continue;
    }
    t->phase = Phase::running;
    t->add_ref();  // the task may finish (and be freed) inside resume()
    current_ = t;
    ++stats_.tasks_run;
    t->resume_point.resume();
    current_ = nullptr;
    if (t->phase == Phase::running) {
      t->phase = Phase::suspended;
      if (t->cancel_requested) cancel_now(t);
    }
    t->release();
    if (heartbeat_.quota_expired.load(std::memory_order_relaxed)) break;  // let I/O and the mesh in
  }
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

void LocalExecutor::poll_or_park() {
  bool idle = ready_.empty() && !endpoint_.has_inbound_backlog() && !stop_requested() &&
              !(block_on_task_ != nullptr && block_on_task_->done());
  std::optional<Clock::time_point> deadline = timers_.next_deadline();
  if (idle && deadline && *deadline <= Clock::now()) idle = false;
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

void LocalExecutor::finish(internal::TaskState* t) noexcept {
  t->phase = internal::TaskState::Phase::done;
  unlink_live(t);
  if (internal::TaskState* joiner = std::exchange(t->join_waiter, nullptr)) joiner->wake();
  t->release();  // the running task's reference
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
  while (live_head_ != nullptr || !ready_.empty()) {
    while (internal::TaskState* q = ready_.pop_front()) q->phase = internal::TaskState::Phase::suspended;
    if (live_head_ != nullptr) {
      internal::TaskState* t = live_head_;
      t->cancel_requested = true;
      cancel_now(t);
    }
  }
}

void LocalExecutor::link_live(internal::TaskState* t) noexcept {
  t->live_prev = nullptr;
  t->live_next = live_head_;
  if (live_head_) live_head_->live_prev = t;
  live_head_ = t;
  ++live_count_;
}

void LocalExecutor::unlink_live(internal::TaskState* t) noexcept {
  (t->live_prev ? t->live_prev->live_next : live_head_) = t->live_next;
  if (t->live_next) t->live_next->live_prev = t->live_prev;
  t->live_prev = t->live_next = nullptr;
  --live_count_;
}

}  // namespace veloq
