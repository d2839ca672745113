// TaskState: the schedulable unit of a shard. One exists per spawned task; it
// is the node of the executor's intrusive ready queue (scheduling never
// allocates) and the meeting point between the task and its JoinHandle.
// A task is a chain of coroutines (the spawned root and the children it awaits);
// only one of them is suspended waiting to run at a time, and `resume_point`
// names it.
#pragma once

#include <bit>
#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <veloq/runtime/source_location.hpp>

namespace veloq {
class LocalExecutor;
}

namespace veloq::internal {

class ReadyQueue;

// One byte per thread, never read: its address tells threads apart in a
// couple of instructions (a thread-local offset, no call).
inline thread_local char this_thread_tag;

class TaskState {
 public:
  // Ordered: wake() tests `phase >= queued` for "queued or done".
  enum class Phase : std::uint8_t { created, running, suspended, queued, done };

  // What every scheduling step reads or writes comes first, within one cache
  // line: waking, queueing and resuming a task touch only this line.
  TaskState* next_ready = nullptr;          // ready queue link
  std::coroutine_handle<> resume_point;     // the coroutine to resume next
  ReadyQueue* ready_queue = nullptr;        // the queue of the task's class on its executor
  LocalExecutor* executor = nullptr;
  std::uint32_t refs = 2;                   // one for the running task, one for its JoinHandle
  std::uint8_t sched_class = 0;             // the executor's priority class index
  Phase phase = Phase::created;
  bool cancel_requested = false;
  bool detached = false;
  TaskState* join_waiter = nullptr;         // the task awaiting our JoinHandle
  std::coroutine_handle<> root;             // the spawned coroutine; null once done
  TaskState* live_prev = nullptr;           // the shard's list of live tasks
  TaskState* live_next = nullptr;
  const char* name = nullptr;
  SourceLocation spawn_site;
  std::uint64_t spawned_at_ns = 0;
  // The JoinHandle awaiter of `join_waiter`, from its suspension until it
  // resumes or is destroyed, so a handle moved or dropped meanwhile can tell
  // it where the join now lives. Typed by JoinHandle<T>, the only user.
  void* join_awaiter = nullptr;
  // The this_thread_tag of the shard thread that spawned the task: its
  // JoinHandle may be used there only (the executor may be gone by then).
  const char* owner_tag = nullptr;

  // phase == running && !cancel_requested, in one 16-bit comparison: what
  // the loop asks of nearly every task it has just resumed.
  bool running_uncancelled() const noexcept;

  bool queued() const noexcept { return phase == Phase::queued; }
  bool done() const noexcept { return phase == Phase::done; }

  // Schedules the task to continue at `h` on its own shard.
  void wake_at(std::coroutine_handle<> h) noexcept {
    resume_point = h;
    wake();
  }
  // Schedules the task to continue where it suspended (a no-op if it is
  // already queued or done). Defined in ready_queue.hpp.
  void wake() noexcept;

  void add_ref() noexcept { ++refs; }
  void release() noexcept {
    if (--refs == 0) destroy_self(this);
  }

  // Stores the outcome "cancelled" and frees the state's typed part when done.
  void (*set_cancelled)(TaskState*) noexcept = nullptr;
  void (*destroy_self)(TaskState*) noexcept = nullptr;
};

struct PhaseAndCancel {
  TaskState::Phase phase;
  bool cancel_requested;
};
static_assert(offsetof(TaskState, cancel_requested) == offsetof(TaskState, phase) + 1);
static_assert(sizeof(PhaseAndCancel) == sizeof(std::uint16_t));

inline bool TaskState::running_uncancelled() const noexcept {
  constexpr auto wanted = std::bit_cast<std::uint16_t>(PhaseAndCancel{Phase::running, false});
  std::uint16_t both;
  std::memcpy(&both, &phase, sizeof both);
  return both == wanted;
}

}  // namespace veloq::internal

// wake() is inline and needs ReadyQueue, which needs TaskState: both headers
// include each other, each after its own definitions.
#include <veloq/runtime/ready_queue.hpp>
