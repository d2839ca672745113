// LocalExecutor: one shard's single-threaded scheduler.
//
// It owns the shard's ready queues (one per task class), its timers, its end
// of the mesh, its io_uring driver and its frame pool. Its loop, one turn at a
// time:
//   1. drain_inbound()     up to `mesh_budget` messages from other shards; the
//                          tasks they wake run in this turn's step 3
//   2. flush_outbound()    push staged mesh batches (replies computed in step 1
//                          leave before the tasks run), wake parked peers (an
//                          eventfd write, or with WakeMethod::msg_ring an SQE
//                          step 7 submits)
//   3. run_ready_tasks()   up to `task_budget` tasks; with several task
//                          classes, the class with the least virtual runtime
//                          first (runtime/class_scheduler.hpp)
//   4. fire_due_timers()
//   5. collect_blocking_results()  wake tasks whose spawn_blocking calls ended
//   6. flush_outbound()    again, for what steps 3-5 staged
//   7. poll_or_park()      the turn's single io_uring_enter: submit, collect,
//                          and sleep there if nothing else is left to do
//                          (after spinning `idle_spin_us` for work to arrive)
//   8. reap_completions()  run completion handlers (they wake tasks)
// Budgets on steps 1 and 3 keep mesh work and local tasks from starving each
// other; step 3 also ends early once the turn has used its time quota, or,
// every few tasks, when mesh messages wait to go out or come in.
// The functions every turn runs (here, in the driver, the mesh endpoint and
// the class scheduler) and every operation runs (completion handlers, the
// multishot receive, send queue and provided-buffer steps) are [[gnu::hot]]:
// the compiler gives them the .text.hot section, which the linker lays out
// in one piece, so a busy turn runs from three pages of code, not a dozen.
// Where every io_uring_enter empties the TLB (page-table isolation without
// PCID), each page a turn touches is a page walk.
// Nothing here is thread-safe except request_stop(): every other call
// belongs to the shard's own thread.
#pragma once

#include <veloq/io/driver.hpp>
#include <veloq/mesh/mesh.hpp>
#include <veloq/mesh/mesh_endpoint.hpp>
#include <veloq/runtime/errors.hpp>
#include <veloq/runtime/frame_pool.hpp>
#include <veloq/runtime/join_handle.hpp>
#include <veloq/runtime/class_scheduler.hpp>
#include <veloq/runtime/runtime_context.hpp>
#include <veloq/runtime/shard_config.hpp>
#include <veloq/runtime/task.hpp>
#include <veloq/runtime/task_class.hpp>
#include <veloq/runtime/timer_queue.hpp>

#include <cstdint>
#include <memory>
#include <optional>
#include <new>
#include <veloq/runtime/source_location.hpp>
#include <veloq/runtime/stall_detector.hpp>
#include <string>
#include <string_view>
#include <vector>

namespace veloq {

class BlockingPool;
namespace internal {
class BlockingInbox;
}  // namespace internal

// How to spawn a task: its name (shown in task dumps and failure logs) and
// its priority class (by default the spawning task's class).
struct SpawnOptions {
  const char* name = nullptr;
  TaskClass task_class{};
};

struct ExecutorStats {
  std::uint64_t tasks_spawned = 0;   // every class together
  std::uint64_t tasks_run = 0;       // resumptions, every class together
  std::uint64_t loop_turns = 0;
  std::uint64_t parks = 0;
  std::uint64_t timers_fired = 0;
  std::uint64_t blocking_results = 0;  // spawn_blocking calls that came back
  std::uint64_t parked_ns = 0;         // time asleep in the kernel
  std::int64_t started_ns = 0;         // steady clock when the executor was made
};

class LocalExecutor {
 public:
  // A standalone single-shard executor (tools, tests): shard 0 of 1.
  explicit LocalExecutor(const ShardConfig& config = {});
  // Shard `shard_id` of a runtime; call on the shard's own thread.
  LocalExecutor(const ShardConfig& config, mesh::Mesh& mesh, unsigned shard_id);
  LocalExecutor(const LocalExecutor&) = delete;
  LocalExecutor& operator=(const LocalExecutor&) = delete;
  // Destroys every remaining task and waits for the ring's operations to end.
  ~LocalExecutor();

  unsigned shard_id() const noexcept { return shard_id_; }
  unsigned shard_count() const noexcept { return mesh_->shard_count(); }

  // Makes `task` a task of this shard; it starts on a later loop turn. Only
  // the shard's own thread may spawn (RuntimeMisuse from any other: they
  // reach a shard with submit_to or run_on).
  template <typename T>
  JoinHandle<T> spawn(Task<T> task, const SpawnOptions& options = {},
                      SourceLocation site = SourceLocation::current());

  // Runs the loop until `task` finishes and returns its result. Enters this
  // executor's context for the duration. Refused from inside a task.
  template <typename T>
  T block_on(Task<T> task);

  // Runs the loop until request_stop().
  [[gnu::hot]] void run_until_stopped();
  // Asks the loop to return; callable from any thread. A standalone
  // executor's request ends one block_on or run_until_stopped, and the next
  // runs; a runtime shard stays stopped.
  void request_stop() noexcept { mesh_->signal(shard_id_).request_stop(); }
  bool stop_requested() const noexcept { return endpoint_.stop_requested(); }

  // Cancels and destroys every live task (shutdown).
  void destroy_all_tasks() noexcept;

  internal::TaskState* current_task() const noexcept { return current_; }
  void cancel(internal::TaskState* t) noexcept;

  // Priority classes (runtime/task_class.hpp). Classes are per shard; those
  // in ShardConfig::task_classes exist on every shard with the same ids.
  TaskClass create_task_class(std::string name, unsigned shares) { return classes_.add(std::move(name), shares); }
  void set_task_class_shares(TaskClass c, unsigned shares) { classes_.set_shares(c, shares); }
  // The class called `name`; throws RuntimeMisuse if this shard has none.
  TaskClass find_task_class(std::string_view name) const;
  std::vector<TaskClassStats> task_class_stats() const;

  internal::TimerQueue& timers() noexcept { return timers_; }
  io::Driver& driver() noexcept { return driver_; }
  mesh::MeshEndpoint& mesh() noexcept { return endpoint_; }
  internal::FramePool& frame_pool() noexcept { return frame_pool_; }
  // The shard's registered buffer pool (null when ShardConfig::buffer_pool is off).
  buffers::BufferPool* buffer_pool() noexcept { return buffer_pool_ ? &*buffer_pool_ : nullptr; }
  ExecutorStats stats() const noexcept;
  const ShardConfig& config() const noexcept { return config_; }

  // The pool behind spawn_blocking: the runtime's, or (standalone) one made on first use.
  BlockingPool& blocking_pool();
  // Called by the runtime before the loop starts.
  void attach_blocking_pool(BlockingPool& pool) noexcept;

  // What the stall detector and maybe_yield() read.
  internal::ShardHeartbeat& heartbeat() noexcept { return heartbeat_; }

  // One line per live task: name, spawn site, state and (with
  // ShardConfig::track_tasks) age. Defined in task_dump.cpp.
  std::string dump_tasks() const;
  std::size_t live_tasks() const noexcept { return live_count_; }
  // True on the thread that created the executor, the only one that may run it.
  bool on_own_thread() const noexcept { return &internal::this_thread_tag == owner_tag_; }

  template <typename T>
  static internal::TaskState* handle_state(const JoinHandle<T>& h) noexcept {
    return h.state_;
  }

  // Called from the running root's final suspend: finishes `t` and returns
  // the coroutine to continue with (its joiner, or a no-op back to the loop).
  std::coroutine_handle<> finish_running(internal::TaskState* t) noexcept;
  // Called from cancellation and by finish_running(). The running
  // task's reference is released here, or by the loop once resume() returns
  // when `t` is the task that is running (it must outlive its own resume()).
  void finish(internal::TaskState* t) noexcept {
    t->phase = internal::TaskState::Phase::done;
    unlink_live(t);
    if (internal::TaskState* joiner = std::exchange(t->join_waiter, nullptr)) joiner->wake();
    if (t != current_) t->release();
  }

 private:
  [[gnu::hot]] void run_turn();
  // block_on's loop: turns until `task` is done or a stop is requested.
  [[gnu::hot]] void run_until_done(const internal::TaskState& task);
  // The tasks of this turn have prepared ShardConfig::submit_batch SQEs.
  bool submit_batch_reached() const noexcept {
    return config_.submit_batch != 0 && driver_.unsubmitted() >= config_.submit_batch;
  }
  [[gnu::hot]] void run_ready_tasks();
  // Runs up to `budget` tasks of one class. A timed run also stops at `until`
  // and leaves in `*now` the class clock reading taken after its last task;
  // a batched one (ShardConfig::submit_batch set) once the batch is prepared.
  template <bool Timed, bool Batched>
  unsigned run_class(internal::ClassScheduler::Entry& cls, unsigned budget, std::uint64_t until, std::uint64_t* now);
  [[gnu::hot]] void fire_due_timers();
  [[gnu::hot]] void collect_blocking_results();
  [[gnu::hot]] void poll_or_park();
  // Looks for work for up to idle_spin_us before the shard parks; true if some arrived.
  bool spin_for_work(std::optional<Clock::time_point> deadline) noexcept;
  bool try_park() noexcept;
  void arm_wake_read();
  void cancel_now(internal::TaskState* t) noexcept;
  void link_live(internal::TaskState* t) noexcept {
    t->live_prev = nullptr;
    t->live_next = live_head_;
    if (live_head_) live_head_->live_prev = t;
    live_head_ = t;
    ++live_count_;
  }
  void unlink_live(internal::TaskState* t) noexcept {
    (t->live_prev ? t->live_prev->live_next : live_head_) = t->live_next;
    if (t->live_next) t->live_next->live_prev = t->live_prev;
    t->live_prev = t->live_next = nullptr;
    --live_count_;
  }

  // The class a task spawned with `requested` joins; throws for a class this shard lacks.
  std::uint8_t resolve_class(TaskClass requested) const;
  [[noreturn]] void refuse_foreign_spawn() const;
  // Tasks run between two looks at the mesh. Measured: 4 takes
  // the busy ping-pong from 761 to 681 ns with spawn + join unchanged; 1 costs
  // spawn + join 5%.
  static constexpr unsigned mesh_check_interval = 4;

  // After block_on's or run_until_stopped's loop: not a stall any more, and a
  // standalone executor's stop request is used up.
  void leave_loop() noexcept;

  struct WakeRead : io::Completion {
    LocalExecutor* owner = nullptr;
    std::uint64_t counter = 0;
  };

  ShardConfig config_;
  unsigned shard_id_;
  const char* owner_tag_ = &internal::this_thread_tag;  // the creating thread's (see on_own_thread)
  std::unique_ptr<mesh::Mesh> own_mesh_;  // standalone executors only
  mesh::Mesh* mesh_;
  std::unique_ptr<BlockingPool> own_blocking_pool_;  // standalone executors only; before the mesh goes
  BlockingPool* blocking_pool_ = nullptr;
  internal::BlockingInbox* blocking_inbox_ = nullptr;
  internal::FramePool frame_pool_;  // outlives the members below, which may still free frames into it
  io::Driver driver_;
  mesh::MeshEndpoint endpoint_;
  std::optional<buffers::BufferPool> buffer_pool_;  // before the driver goes: it unregisters from it
  internal::TimerQueue timers_;
  internal::TaskState* current_ = nullptr;
  internal::TaskState* live_head_ = nullptr;
  std::size_t live_count_ = 0;
  WakeRead wake_read_;
  internal::TaskState* block_on_task_ = nullptr;  // the loop must not park once it is done
  bool shutting_down_ = false;
  ExecutorStats stats_;
  internal::ShardHeartbeat heartbeat_;
  // Last: its 32 class entries are 3.5 KiB, of which a turn reads the first.
  // Every member a turn touches lies above it, on as few pages as they fit.
  internal::ClassScheduler classes_;
};

namespace internal {

inline TaskState* running_task() noexcept {
  return RuntimeContext::current("awaiting inside a task").executor().current_task();
}

inline TaskState* running_task_beside(const TaskState& peer) noexcept { return peer.executor->current_task(); }

template <typename T>
void destroy_typed_state(TaskState* t) noexcept {
  auto* s = static_cast<TypedTaskState<T>*>(t);
  s->~TypedTaskState<T>();
  // Into the calling thread's pool, not necessarily the task's executor's:
  // a JoinHandle may outlive its executor (any pool, or the heap, takes any block).
  FramePool::release_current(s, sizeof(TypedTaskState<T>), alignof(TypedTaskState<T>));
}

template <typename T>
void set_cancelled_outcome(TaskState* t) noexcept {
  static_cast<TypedTaskState<T>*>(t)->outcome.set_exception(std::make_exception_ptr(TaskCancelled()));
}

}  // namespace internal

template <typename T>
JoinHandle<T> LocalExecutor::spawn(Task<T> task, const SpawnOptions& options, SourceLocation site) {
  if (!on_own_thread()) [[unlikely]] refuse_foreign_spawn();
  if (!task.valid()) throw RuntimeMisuse("veloq: spawn of an empty Task");
  std::uint8_t cls = 0;
  if (classes_.count() > 1 || !options.task_class.inherits()) [[unlikely]] cls = resolve_class(options.task_class);
  // Default- rather than value-initialized (no "()"): every member has its own
  // initializer, and value-initialization would first zero the whole block.
  auto* s = new (frame_pool_.allocate(sizeof(internal::TypedTaskState<T>), alignof(internal::TypedTaskState<T>)))
      internal::TypedTaskState<T>;
  auto h = task.release();
  h.promise().set_root_task(s);
  h.promise().redirect_outcome(&s->outcome);
  s->root = h;
  s->resume_point = h;
  s->executor = this;
  s->owner_tag = owner_tag_;
  s->name = options.name;
  s->sched_class = cls;
  s->ready_queue = &classes_.entry(cls).queue;
  s->spawn_site = site;
  if (config_.track_tasks) s->spawned_at_ns = static_cast<std::uint64_t>(internal::ShardHeartbeat::now_ns());
  s->destroy_self = &internal::destroy_typed_state<T>;
  s->set_cancelled = &internal::set_cancelled_outcome<T>;
  link_live(s);
  ++stats_.tasks_spawned;
  if (cls != 0) ++classes_.entry(cls).stats.tasks_spawned;  // the default class's count is the rest
  s->wake();
  return JoinHandle<T>(s);
}

template <typename T>
T LocalExecutor::block_on(Task<T> task) {
  if (current_ != nullptr) throw RuntimeMisuse("veloq: block_on called from inside a running task");
  RuntimeContext context(*this);
  JoinHandle<T> handle = spawn(std::move(task), SpawnOptions{"block_on"});
  internal::TaskState* state = handle_state(handle);
  internal::TaskState* outer = std::exchange(block_on_task_, state);
  run_until_done(*state);
  leave_loop();
  block_on_task_ = outer;
  if (!handle.done()) {
    // Stopped: the task, cancelled, is destroyed once the ready queue reaches
    // it, which may take more than one budget of other ready tasks.
    handle.cancel();
    while (!handle.done()) run_ready_tasks();
  }
  return handle.take_result();
}

// Spawns `task` on the current shard.
template <typename T>
JoinHandle<T> spawn(Task<T> task, const SpawnOptions& options = {},
                    SourceLocation site = SourceLocation::current()) {
  return RuntimeContext::current("spawn").executor().spawn(std::move(task), options, site);
}

// The current shard's task class called `name`; throws RuntimeMisuse if it has none.
inline TaskClass find_task_class(std::string_view name) {
  return RuntimeContext::current("find_task_class").executor().find_task_class(name);
}

// Adds a task class to the current shard only (classes every shard needs go in
// ShardConfig::task_classes, so their ids agree).
inline TaskClass create_task_class(std::string name, unsigned shares) {
  return RuntimeContext::current("create_task_class").executor().create_task_class(std::move(name), shares);
}

}  // namespace veloq
