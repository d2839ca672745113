// Driver: a shard's io_uring. Created on the shard's own thread, used only by
// it (IORING_SETUP_SINGLE_ISSUER | DEFER_TASKRUN where the kernel allows).
//
// Operations are prepared during a loop turn and reach the kernel together in
// the one `enter()` the executor makes per turn; that same call is where a
// parked shard sleeps, so I/O completions, the nearest timer deadline and mesh
// wake-ups all end the same wait.
#pragma once

#include <veloq/io/completion.hpp>
#include <veloq/io/uring_compat.hpp>

#include <chrono>
#include <cstdint>
#include <optional>

namespace veloq::io {

struct DriverConfig {
  unsigned entries = 256;      // submission queue size; the completion queue is twice that
  bool single_issuer = true;   // IORING_SETUP_SINGLE_ISSUER
  bool defer_taskrun = true;   // IORING_SETUP_DEFER_TASKRUN (needs single_issuer)
  bool coop_taskrun = true;    // IORING_SETUP_COOP_TASKRUN (when defer_taskrun is refused)
  bool submit_all = true;      // IORING_SETUP_SUBMIT_ALL
};

struct DriverStats {
  std::uint64_t submitted = 0;
  std::uint64_t completed = 0;
  std::uint64_t enters = 0;
  std::uint64_t waits = 0;
};

class Driver {
 public:
  using Clock = std::chrono::steady_clock;

  Driver(const DriverConfig& config, unsigned shard_id);
  Driver(const Driver&) = delete;
  Driver& operator=(const Driver&) = delete;
  ~Driver();

  // An SQE whose completion will be delivered to `c`.
  // Only when the submission queue is full does this call into the kernel.
  // Inline: it is on every operation's path. The ring is never set up with
  // SQPOLL or SQE128, and the kernel's head only moves forward, so a slot
  // below the last known limit (its head plus the ring size) is free without
  // reading the shared ring; the head is read again only at that limit.
  [[gnu::always_inline]] io_uring_sqe* prepare(Completion* c) {
    io_uring_sq& sq = ring_.sq;
    unsigned tail = sq.sqe_tail;
    if (static_cast<int>(sq_limit_ - tail) <= 0) [[unlikely]]
      sq_limit_ = IO_URING_READ_ONCE(*sq.khead) + sq.ring_entries;
    io_uring_sqe* sqe;
    if (static_cast<int>(sq_limit_ - tail) > 0) [[likely]] {
      sqe = &sq.sqes[tail & sq.ring_mask];
      sq.sqe_tail = tail + 1;
    } else {
      sqe = sqe_after_flush();
    }
    io_uring_sqe_set_data(sqe, c);
    return sqe;
  }
  // An SQE whose completion nobody waits for (a cancel request, a close).
  io_uring_sqe* prepare() { return prepare(&ignored_); }
  // The completion whose handler does nothing: what prepare() points an SQE
  // at, and what a peer's MSG_RING wake-up names (see MeshEndpoint). One for
  // the process, never written; every CQE names a completion, so reaping
  // never tests for none.
  static Completion* ignored() noexcept { return &ignored_; }
  // prepare() for an operation that stays armed for the shard's whole life
  // (the wake-up read): it does not by itself make a busy loop poll the ring.
  // Its handler calls background_finished() when its final CQE arrives.
  io_uring_sqe* prepare_background(Completion* c) {
    io_uring_sqe* sqe = prepare(c);
    ++background_in_flight_;
    return sqe;
  }
  void background_finished() noexcept { --background_in_flight_; }

  // Makes this turn's one kernel entry: submits what was prepared and, if
  // `wait`, sleeps until a completion arrives or `deadline` passes.
  // Without `wait` and with nothing to submit or collect, it makes no syscall.
  [[gnu::hot]] void enter(bool wait, std::optional<Clock::time_point> deadline = std::nullopt);

  // Runs the handlers of every completion that has arrived; returns how many
  // (counting those a handler's nested reap ran).
  // Each CQE's slot is released before its handler runs, so a handler may
  // prepare operations or even reap (a destructor waiting for its own CQE).
  [[gnu::hot]] unsigned reap() noexcept;

  // Cancels every operation in flight and reaps until none is left (shutdown).
  void cancel_all_and_drain() noexcept;

  // Completions are waiting to be reaped, or (DEFER_TASKRUN) the kernel has
  // work to run for us at the next enter. Plain memory reads; no syscall.
  bool has_pending_completions() const noexcept {
    return io_uring_cq_ready(&ring_) > 0 ||
           (IO_URING_READ_ONCE(*ring_.sq.kflags) & (IORING_SQ_TASKRUN | IORING_SQ_CQ_OVERFLOW)) != 0;
  }
  // Operations submitted or prepared whose final CQE has not been reaped:
  // SQEs taken less CQEs consumed, plus the CQEs that were not an
  // operation's last. Both ring counters start at 0 and only grow, so their
  // difference is right across wrap-around.
  unsigned in_flight() const noexcept {
    return ring_.sq.sqe_tail - IO_URING_READ_ONCE(*ring_.cq.khead) + static_cast<unsigned>(more_to_come_);
  }
  bool has_unsubmitted() const noexcept { return io_uring_sq_ready(&ring_) > 0; }
  // SQEs prepared since the last submission (plain reads of our own ring state).
  unsigned unsubmitted() const noexcept { return ring_.sq.sqe_tail - ring_.sq.sqe_head; }
  int ring_fd() const noexcept { return ring_.ring_fd; }
  unsigned setup_flags() const noexcept { return setup_flags_; }
  unsigned features() const noexcept { return ring_.features; }
  // Whether this kernel takes IORING_OP_SEND_ZC: probed when the ring is
  // created, and turned off if the kernel refuses the opcode anyway.
  bool send_zc_supported() const noexcept { return send_zc_supported_; }
  void send_zc_refused() noexcept { send_zc_supported_ = false; }
  io_uring& ring() noexcept { return ring_; }
  DriverStats stats() const noexcept {
    DriverStats s = stats_;
    s.submitted += ring_.sq.sqe_tail - counted_tail_;
    s.completed += IO_URING_READ_ONCE(*ring_.cq.khead) - counted_head_;
    return s;
  }

 private:
  // The submission queue is full: submits it to make room (prepare's slow path).
  [[gnu::noinline]] io_uring_sqe* sqe_after_flush();
  // Brings stats_ up to the ring's tail and head: prepare() and reap() move
  // those anyway, so the 64-bit counts are updated once per enter rather
  // than per operation (and a 32-bit counter cannot wrap twice in between).
  void count_ring_progress() noexcept {
    stats_ = stats();
    counted_tail_ = ring_.sq.sqe_tail;
    counted_head_ = IO_URING_READ_ONCE(*ring_.cq.khead);
  }

  static Completion ignored_;

  io_uring ring_{};
  unsigned sq_limit_ = 0;  // SQEs below this tail value are known to be free
  unsigned setup_flags_ = 0;
  std::uint64_t more_to_come_ = 0;  // CQEs reaped that were not final (IORING_CQE_F_MORE)
  // stats_.submitted and .completed up to these values of the ring's own SQ
  // tail and CQ head (see count_ring_progress).
  unsigned counted_tail_ = 0;
  unsigned counted_head_ = 0;
  unsigned background_in_flight_ = 0;
  bool defer_taskrun_ = false;
  bool taskrun_flag_ = false;  // the kernel flags pending completions in the SQ ring
  bool send_zc_supported_ = false;
  DriverStats stats_;
};

}  // namespace veloq::io
