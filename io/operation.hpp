// Operation: one io_uring operation awaited by a task.
//
// Every I/O call in Veloq (stream.read, file.write_at, ...) returns an
// Operation: an awaitable that, when awaited, prepares one SQE on the shard's
// ring (it reaches the kernel in the loop's single io_uring_enter), suspends
// the task, and resumes it on its own shard when the CQE arrives. The result
// is returned, or an IoError naming the operation and errno is thrown.
// EINTR and EAGAIN are retried, never reported.
//
//   std::size_t n = co_await stream.read(buffer);
//   std::size_t n = co_await stream.read(buffer).with_timeout(std::chrono::seconds(5));
//
// A deadline on one operation (`with_deadline`, `with_timeout`) is a shard
// timer, not a kernel timeout: the shard keeps asking the kernel for one
// timeout only, the nearest. When it expires the operation is cancelled with
// IORING_OP_ASYNC_CANCEL and TimeoutError is thrown (unless the operation
// finished first, in which case its result stands).
//
// Lifetime. The operation record (and the arguments the kernel reads) live in
// the awaiting coroutine's frame. If that frame is destroyed while the
// operation is in flight (the task was cancelled), the destructor submits
// IORING_OP_ASYNC_CANCEL and waits, on the spot, for the operation's final
// CQE, reaping other completions meanwhile. Only then is the frame freed, so
// neither the record nor the caller's buffers (which the kernel may still be
// writing) are released early. Sockets cancel within one ring round trip;
// file I/O already running in the kernel finishes first.
//
// Descriptors nobody receives. An operation whose result is a new descriptor
// (open/openat: its Finish derives from internal::ResultIsFd) may complete successfully
// after all: the cancel came too late, or the task was destroyed between the
// CQE and its resumption. The descriptor then belongs to nobody, so the
// destructor closes it: through the ring (IORING_OP_CLOSE, not waited for,
// like FileDescriptor's destructor), or with close(2) if the submission
// queue stays full, since a destructor cannot wait for room.
//
// Cost. The common path (no deadline, no scope, a plain successful CQE) is
// inline: a few branches in await_ready, the SQE reservation and one store
// of the resume point in await_suspend, and a handful of stores when the CQE
// arrives; deadlines, scopes, retries and cancellation live out of line.
//
// Not thread-safe: an operation belongs to the shard that awaits it.
#pragma once

#include <veloq/io/completion.hpp>
#include <veloq/io/driver.hpp>
#include <veloq/runtime/local_executor.hpp>
#include <veloq/runtime/stop_scope.hpp>
#include <veloq/runtime/timer_queue.hpp>

#include <cerrno>
#include <chrono>
#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <new>
#include <string>
#include <type_traits>
#include <utility>

namespace veloq::io {

class SocketAddress;

namespace internal {

// The part of every operation that does not depend on what it prepares.
class OpBase : public Completion {
 public:
  OpBase(const OpBase&) = delete;
  OpBase& operator=(const OpBase&) = delete;
  OpBase& operator=(OpBase&&) = delete;

  // Asks the kernel to stop the operation; `reason` (ETIMEDOUT or ECANCELED)
  // decides what the awaiting task sees if it does stop.
  void cancel(int reason) noexcept;

  // Fails the operation with TimeoutError if it has not completed by
  // `deadline`; set before it is awaited (see DeadlineSetters).
  void set_deadline(Clock::time_point deadline) noexcept {
    deadline_ = deadline.time_since_epoch().count();
    set(has_deadline);
  }

  // What the error messages call this operation's target.
  void set_subject_path(const char* path) noexcept {
    subject_.path = path;
    clear(subject_is_address);
    set(subject_is_path);
  }
  void set_subject_address(const SocketAddress* address) noexcept {
    subject_.address = address;
    clear(subject_is_path);
    set(subject_is_address);
  }

 protected:
  // Fills the operation's SQE, when it is first submitted and again on a retry.
  using PrepareFn = void (*)(OpBase* self, io_uring_sqe* sqe);
  // Names an operation type's PrepareFn for the constructor. It becomes part
  // of the completion handler's type, not a field: constructing an operation
  // stores one pointer less, and only a retry needs it.
  template <PrepareFn Prepare>
  struct Preparer {};

  template <PrepareFn Prepare>
  OpBase(const char* name, int fd, Preparer<Prepare>) noexcept : name_(name), fd_(fd) {
    on_complete = &OpBase::on_cqe<Prepare>;
  }
  // Moving is only allowed before the operation is awaited (some compilers
  // move the awaitable into the coroutine frame before awaiting it).
  OpBase(OpBase&& other) noexcept
      : Completion(other), name_(other.name_), fd_(other.fd_), state_(other.state_) {
    if (has(has_deadline)) deadline_ = other.deadline_;
    if (has(subject_is_path | subject_is_address)) subject_ = other.subject_;
    if (has(has_continuation)) continue_ = other.continue_;
  }
  ~OpBase() {
    // Still in flight (the task was destroyed), still watched by a deadline
    // timer or a scope, or holding a descriptor nobody took: the out-of-line cleanup.
    if (has(in_flight | watched | owns_result_fd)) [[unlikely]] abandon();
  }

  // With a deadline or inside a stop scope, the operation either fails at
  // once (already stopped, deadline passed) or starts its deadline timer and
  // joins its scope here, before the SQE is prepared.
  bool ready() {
    if (veloq::internal::StopScope::open_scopes == 0 && !has(has_deadline)) [[likely]] return false;
    return ready_slow();
  }
  // await_suspend in two halves around filling the SQE, so that a typed
  // operation fills it inline: begin_suspend reserves it, end_suspend marks
  // the operation in flight.
  io_uring_sqe* begin_suspend(std::coroutine_handle<> h) {
    RuntimeContext& context = RuntimeContext::current(name_);
    task_ = context.executor().current_task();
    io_uring_sqe* sqe = context.driver().prepare(this);
    task_->resume_point = h;
    return sqe;
  }
  void end_suspend() noexcept { set(in_flight); }
  template <PrepareFn Prepare>
  void suspend(std::coroutine_handle<> h) {
    io_uring_sqe* sqe = begin_suspend(h);
    Prepare(this, sqe);
    end_suspend();
  }
  // The result (>= 0), or throws the error the completion reported.
  int take_result() {
    if (result_ >= 0) [[likely]] return result_;
    throw_result();
  }
  // take_result() for an operation whose result is a new descriptor: from
  // here on it belongs to the caller.
  int take_result_fd() {
    int fd = take_result();
    clear(owns_result_fd);
    return fd;
  }
  // The shard's driver; known once the operation has been awaited.
  Driver& driver() const noexcept { return task_->executor->driver(); }
  int fd() const noexcept { return fd_; }
  // The result is a new descriptor the caller will own (see "Descriptors nobody receives").
  void mark_result_is_fd() noexcept { set(result_is_fd | slow_completion); }
  // Neither a stopped scope nor a deadline keeps it from the kernel.
  void mark_unstoppable() noexcept { set(unstoppable); }

  // Prepares the operation again (a partial transfer continuing, EINTR, EAGAIN).
  void resubmit(PrepareFn prepare);

  // Called before a completion is accepted: returns true if the operation
  // re-armed itself (for operations that continue a partial transfer).
  using ContinueFn = bool (*)(OpBase* self, int result) noexcept;
  void set_continuation(ContinueFn fn) noexcept {
    continue_ = fn;
    set(has_continuation | slow_completion);
  }

  [[noreturn]] void throw_error(int error_number) const;
  std::string describe() const;

 private:
  struct DeadlineTimer {
    veloq::internal::Timer timer;
    OpBase* owner = nullptr;
  };
  using ScopeMember = veloq::internal::StopScope::Member;

  // The operation's state, one bit each (`watched` names two), in one word:
  // constructing an operation stores it once, and the destructor tests it once.
  enum : std::uint16_t {
    in_flight = 1 << 0,
    timer_live = 1 << 1,    // a deadline timer is armed
    scope_joined = 1 << 2,  // a stop scope holds the operation
    watched = timer_live | scope_joined,
    cancel_sent = 1 << 3,
    abandoned = 1 << 4,
    has_early_result = 1 << 5,
    result_is_fd = 1 << 6,
    owns_result_fd = 1 << 7,  // result_ is a descriptor not yet handed out
    // A cancel was sent, or the operation was stopped before it started
    // (set_cancel_reason); `stopped_by_timeout` tells which reason.
    stopping = 1 << 8,
    unstoppable = 1 << 9,
    // A completion needs more than storing the result and waking the task: a
    // continuation, a descriptor result, a deadline or scope to leave, or a
    // destructor waiting. Set with any of those; on_cqe tests only this.
    slow_completion = 1 << 10,
    has_deadline = 1 << 11,
    has_continuation = 1 << 12,
    subject_is_path = 1 << 13,
    subject_is_address = 1 << 14,
    stopped_by_timeout = 1 << 15,
  };
  bool has(unsigned bits) const noexcept { return (state_ & bits) != 0; }
  void set(unsigned bits) noexcept { state_ = static_cast<std::uint16_t>(state_ | bits); }
  void clear(unsigned bits) noexcept { state_ = static_cast<std::uint16_t>(state_ & ~bits); }
  // Marks the operation stopping for `reason` (ETIMEDOUT or ECANCELED). Two
  // state bits rather than a field, so that constructing an operation stores
  // one word.
  void set_cancel_reason(int reason) noexcept {
    clear(stopped_by_timeout);
    set(reason == ETIMEDOUT ? stopping | stopped_by_timeout : stopping);
  }

  // The completion handler. The common case, inline here: a successful CQE
  // for an operation a task awaits and that needs no continuation. Only a
  // zero-copy send (slow_completion) gets more than one CQE
  // (IORING_CQE_F_MORE, then IORING_CQE_F_NOTIF).
  template <PrepareFn Prepare>
  [[gnu::hot]] static void on_cqe(Completion* self, int result, std::uint32_t flags) noexcept {
    auto* op = static_cast<OpBase*>(self);
    if (result >= 0 && !op->has(slow_completion)) [[likely]] {
      op->clear(in_flight);
      op->result_ = result;
      op->task_->wake();
      return;
    }
    op->complete_slow(result, flags, Prepare);
  }
  static void on_deadline(veloq::internal::Timer* t) noexcept;
  // The slow paths stay out of line even under LTO: inlined into on_cqe or an
  // awaiting coroutine they would add register saves to every operation.
  [[gnu::noinline]] bool ready_slow();
  void watch(veloq::internal::StopScope* scope);
  [[gnu::noinline]] void complete_slow(int result, std::uint32_t flags, PrepareFn prepare) noexcept;
  [[noreturn, gnu::noinline]] void throw_result();
  [[gnu::noinline]] void abandon() noexcept;
  [[gnu::noinline]] void finish_waiting() noexcept;
  void cancel_and_wait() noexcept;
  void close_unclaimed_fd() noexcept;

  // What every operation reads or writes comes first, in 34 bytes, so that
  // an awaiting coroutine's frame spends as little of its cache as it can on
  // its operation. Constructing one stores the handler, name_, fd_ and the
  // state word only. The rest is written before it is read: task_ when
  // suspending, result_ on completion or in ready_slow, the others by the
  // setter that raises their state bit. The deadline timer and the scope
  // membership are built in place when used.
  veloq::internal::TaskState* task_;  // the awaiting task; its executor's driver is the one used
  const char* name_;
  int fd_;
  int result_;
  std::uint16_t state_ = 0;
  union Subject {
    const char* path;
    const SocketAddress* address;
  };
  Subject subject_;  // under subject_is_path or subject_is_address
  Clock::rep deadline_;  // under has_deadline; a bare count, which constructing leaves unwritten
  ContinueFn continue_;  // under has_continuation
  int early_result_;     // under has_early_result
  alignas(ScopeMember) unsigned char scope_storage_[sizeof(ScopeMember)];  // under scope_joined
  alignas(DeadlineTimer) unsigned char timer_storage_[sizeof(DeadlineTimer)];  // under timer_live
  Clock::time_point deadline() const noexcept { return Clock::time_point(Clock::duration(deadline_)); }
  DeadlineTimer* timer() noexcept { return std::launder(reinterpret_cast<DeadlineTimer*>(timer_storage_)); }
  ScopeMember* scope_member() noexcept { return std::launder(reinterpret_cast<ScopeMember*>(scope_storage_)); }
};

// The deadline setters of an awaitable operation type `Self` (CRTP), chained
// on the temporary: `co_await stream.read(buffer).with_timeout(5s)`.
template <typename Self>
struct DeadlineSetters {
  Self&& with_deadline(Clock::time_point deadline) && noexcept {
    auto& self = static_cast<Self&>(*this);
    self.set_deadline(deadline);
    return std::move(self);
  }
  template <typename Rep, typename Period>
  Self&& with_timeout(std::chrono::duration<Rep, Period> timeout) && noexcept {
    return std::move(*this).with_deadline(deadline_after(timeout));
  }
};

// The most one read, write, send or receive asks of the kernel: its own cap
// (MAX_RW_COUNT with 4 KiB pages). A longer request is cut to it and comes
// back as a short transfer, instead of wrapping in the SQE's 32-bit length.
inline constexpr std::size_t max_io_length = 0x7ffff000;
inline unsigned io_length(std::size_t size) noexcept {
  return static_cast<unsigned>(size < max_io_length ? size : max_io_length);
}

// An explicit position as the SQE carries it. To the kernel an offset of -1
// (2^64-1) means "at the file position", which File does not have: pass -2
// instead, which, like every offset past INT64_MAX, fails with EINVAL as
// pread/pwrite would, rather than reading or writing at the cursor.
inline std::uint64_t explicit_offset(std::uint64_t offset) noexcept {
  return offset == UINT64_MAX ? UINT64_MAX - 1 : offset;
}

// Base of a Finish whose result is a new descriptor the caller takes over.
struct ResultIsFd {};
// Base of a Finish whose operation always reaches the kernel: stopped scopes
// and deadlines do not apply to it (a close, which must not leak the descriptor).
struct Unstoppable {};

struct ReturnResult {
  int operator()(int result) const noexcept { return result; }
};

}  // namespace internal

// Prepare: void(io_uring_sqe*), fills the SQE (called again on retries) for
// an operation that ends with one CQE (multishot and zero-copy operations
// have types of their own); it lives inside the operation, so what it holds
// stays put while the kernel reads it. It may name the target for error
// messages with subject_path() or subject_address().
// Finish: T(int result) or T(int result, Prepare&), turns the non-negative
// result into the value returned.
template <typename Prepare, typename Finish = internal::ReturnResult>
class [[nodiscard("co_await the operation")]] Operation
    : public internal::OpBase, public internal::DeadlineSetters<Operation<Prepare, Finish>> {
 public:
  Operation(const char* name, int fd, Prepare prepare, Finish finish = {})
      : OpBase(name, fd, Preparer<&Operation::prepare_thunk>{}),
        prepare_(std::move(prepare)),
        finish_(std::move(finish)) {
    name_subject();
    if constexpr (std::is_base_of_v<internal::ResultIsFd, Finish>) mark_result_is_fd();
    if constexpr (std::is_base_of_v<internal::Unstoppable, Finish>) mark_unstoppable();
  }
  Operation(Operation&& other) noexcept
      : OpBase(std::move(other)), prepare_(std::move(other.prepare_)), finish_(std::move(other.finish_)) {
    name_subject();
  }

  bool await_ready() { return ready(); }
  void await_suspend(std::coroutine_handle<> h) {
    io_uring_sqe* sqe = begin_suspend(h);
    prepare_(sqe);  // inline here; retries go through prepare_thunk
    end_suspend();
  }
  decltype(auto) await_resume() {
    int result;
    if constexpr (std::is_base_of_v<internal::ResultIsFd, Finish>)
      result = take_result_fd();
    else
      result = take_result();
    if constexpr (std::is_invocable_v<Finish&, int, Prepare&>)
      return finish_(result, prepare_);
    else
      return finish_(result);
  }

 private:
  void name_subject() noexcept {
    if constexpr (requires { prepare_.subject_path(); }) set_subject_path(prepare_.subject_path());
    if constexpr (requires { prepare_.subject_address(); }) set_subject_address(prepare_.subject_address());
  }
  static void prepare_thunk(OpBase* self, io_uring_sqe* sqe) { static_cast<Operation*>(self)->prepare_(sqe); }

  Prepare prepare_;
  Finish finish_;
};

}  // namespace veloq::io
