#include <veloq/io/driver.hpp>
#include <veloq/runtime/log.hpp>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <system_error>

namespace veloq::io {

namespace {

// Flag sets from most to least capable; the first one the kernel accepts wins.
struct FlagStep {
  unsigned flags;
  const char* name;
};

unsigned wanted(const DriverConfig& c, unsigned flag) {
  switch (flag) {
    case IORING_SETUP_SINGLE_ISSUER: return c.single_issuer ? flag : 0;
    case IORING_SETUP_DEFER_TASKRUN: return c.single_issuer && c.defer_taskrun ? flag : 0;
    case IORING_SETUP_COOP_TASKRUN: return c.coop_taskrun ? flag : 0;
    case IORING_SETUP_SUBMIT_ALL: return c.submit_all ? flag : 0;
    // Lets a spinning shard see pending completions as IORING_SQ_TASKRUN
    // without entering the kernel (Driver::has_pending_completions).
    case IORING_SETUP_TASKRUN_FLAG: return flag;
    default: return 0;
  }
}

}  // namespace

Driver::Driver(const DriverConfig& config, unsigned shard_id) {
  const FlagStep steps[] = {
      {IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_TASKRUN_FLAG | IORING_SETUP_SUBMIT_ALL,
       "SINGLE_ISSUER|DEFER_TASKRUN|TASKRUN_FLAG|SUBMIT_ALL"},
      {IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_SUBMIT_ALL,
       "SINGLE_ISSUER|DEFER_TASKRUN|SUBMIT_ALL"},
      {IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG | IORING_SETUP_SUBMIT_ALL,
       "SINGLE_ISSUER|COOP_TASKRUN|TASKRUN_FLAG|SUBMIT_ALL"},
      {IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_COOP_TASKRUN | IORING_SETUP_SUBMIT_ALL,
       "SINGLE_ISSUER|COOP_TASKRUN|SUBMIT_ALL"},
      {IORING_SETUP_COOP_TASKRUN | IORING_SETUP_SUBMIT_ALL, "COOP_TASKRUN|SUBMIT_ALL"},
      {IORING_SETUP_COOP_TASKRUN, "COOP_TASKRUN"},
      {0, "no flags"},
  };
  int ret = -EINVAL;
  unsigned features = 0;
  for (const FlagStep& step : steps) {
    unsigned flags = 0;
    for (unsigned bit = 1; bit != 0; bit <<= 1)
      if (step.flags & bit) flags |= wanted(config, bit);
    if (flags != step.flags && step.flags != 0) continue;  // the configuration turned a flag of this step off
    io_uring_params params{};
    params.flags = flags;
    ret = io_uring_queue_init_params(config.entries, &ring_, &params);
    if (ret == 0) {
      features = params.features;
      setup_flags_ = flags;
      defer_taskrun_ = (flags & IORING_SETUP_DEFER_TASKRUN) != 0;
      taskrun_flag_ = (flags & IORING_SETUP_TASKRUN_FLAG) != 0;
      log().debug("io_uring created with {} ({} entries)", step.name, config.entries);
      break;
    }
    log().debug("io_uring refused {}: {}; stepping down", step.name, std::strerror(-ret));
  }
  if (ret != 0)
    throw std::system_error(-ret, std::generic_category(),
                            "io_uring_queue_init on shard " + std::to_string(shard_id));
  // Waiting with a timeout must not cost an SQE: without EXT_ARG, liburing
  // would queue a timeout request whose completion no operation owns.
  if ((features & IORING_FEAT_EXT_ARG) == 0) {
    io_uring_queue_exit(&ring_);
    throw std::system_error(ENOSYS, std::generic_category(),
                            "io_uring on shard " + std::to_string(shard_id) +
                                " lacks IORING_FEAT_EXT_ARG (Linux 5.11 or later is needed)");
  }
  if (io_uring_register_ring_fd(&ring_) < 0) log().debug("io_uring_register_ring_fd refused; using the plain fd");
  if (io_uring_probe* probe = io_uring_get_probe_ring(&ring_)) {
    send_zc_supported_ = io_uring_opcode_supported(probe, IORING_OP_SEND_ZC) != 0;
    io_uring_free_probe(probe);
  }
  if (!send_zc_supported_) log().debug("IORING_OP_SEND_ZC not supported; zero-copy writes send plainly");
}

constinit Completion Driver::ignored_{[](Completion*, int, std::uint32_t) noexcept {}};

Driver::~Driver() { io_uring_queue_exit(&ring_); }

io_uring_sqe* Driver::sqe_after_flush() {
  // The submission queue filled within one turn: hand it over early.
  io_uring_submit(&ring_);
  ++stats_.enters;
  io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
  if (sqe == nullptr) throw std::runtime_error("io_uring submission queue stays full");
  return sqe;
}

void Driver::enter(bool wait, std::optional<Clock::time_point> deadline) {
  count_ring_progress();
  if (wait) {
    ++stats_.enters;
    ++stats_.waits;
    io_uring_cqe* cqe = nullptr;
    if (deadline) {
      auto left = std::chrono::duration_cast<std::chrono::nanoseconds>(*deadline - Clock::now()).count();
      if (left < 0) left = 0;
      __kernel_timespec ts{};
      ts.tv_sec = left / 1'000'000'000;
      ts.tv_nsec = left % 1'000'000'000;
      io_uring_submit_and_wait_timeout(&ring_, &cqe, 1, &ts, nullptr);
    } else {
      io_uring_submit_and_wait(&ring_, 1);
    }
    return;  // -ETIME and -EINTR only mean "look again"
  }
  if (has_unsubmitted()) {
    ++stats_.enters;
    if (defer_taskrun_)
      io_uring_submit_and_get_events(&ring_);
    else
      io_uring_submit(&ring_);
  } else if (defer_taskrun_ && ((!taskrun_flag_ && in_flight() > background_in_flight_) ||
                                 (IO_URING_READ_ONCE(*ring_.sq.kflags) & IORING_SQ_TASKRUN) != 0)) {
    // Completions of a DEFER_TASKRUN ring are only posted when we ask. With
    // TASKRUN_FLAG the kernel raises IORING_SQ_TASKRUN when it has some for
    // us, so a busy turn with operations still waiting makes no syscall;
    // without it, any operation in flight may have finished.
    ++stats_.enters;
    io_uring_get_events(&ring_);
  }
}

unsigned Driver::reap() noexcept {
  // Walks the completion ring in place rather than copying batches out
  // (io_uring_peek_batch_cqe): one load of the kernel's tail per batch, one
  // store of our head per CQE. Releasing each slot before its handler runs
  // keeps a nested reap (a destroyed operation waiting for its own CQE inside
  // a handler) from seeing a CQE twice; re-reading the head afterwards picks
  // up whatever such a nested reap consumed.
  // The ring's geometry never changes: held in locals, it stays in
  // registers across the handlers' calls instead of being read again.
  unsigned* const khead = ring_.cq.khead;
  const unsigned* const ktail = ring_.cq.ktail;
  const unsigned mask = ring_.cq.ring_mask;
  const io_uring_cqe* const cqes = ring_.cq.cqes;
  const unsigned head_before = IO_URING_READ_ONCE(*khead);
  bool flushed_overflow = false;
  for (;;) {
    unsigned head = IO_URING_READ_ONCE(*khead);
    unsigned tail = io_uring_smp_load_acquire(ktail);
    if (head == tail) {
      // CQEs the kernel could not post (a full CQ ring) are flushed by one enter.
      if (flushed_overflow || (IO_URING_READ_ONCE(*ring_.sq.kflags) & IORING_SQ_CQ_OVERFLOW) == 0) break;
      flushed_overflow = true;
      io_uring_get_events(&ring_);
      continue;
    }
    while (static_cast<int>(tail - head) > 0) {  // a nested reap may have gone past `tail`
      const io_uring_cqe& cqe = cqes[head & mask];
      auto* target = reinterpret_cast<Completion*>(static_cast<std::uintptr_t>(cqe.user_data));
      const int result = cqe.res;
      const std::uint32_t flags = cqe.flags;
      io_uring_smp_store_release(khead, head + 1);
      if (flags & IORING_CQE_F_MORE) [[unlikely]] ++more_to_come_;
      target->on_complete(target, result, flags);
      head = IO_URING_READ_ONCE(*khead);
    }
  }
  return IO_URING_READ_ONCE(*khead) - head_before;
}

void Driver::cancel_all_and_drain() noexcept {
  if (in_flight() == 0) return;
  // Through prepare(): if the shutdown filled the submission queue (tasks
  // destroyed just before queue their closes), it is handed over first.
  try {
    io_uring_sqe* sqe = prepare();
    io_uring_prep_cancel(sqe, nullptr, IORING_ASYNC_CANCEL_ANY);
  } catch (...) {
  }
  auto give_up = Clock::now() + std::chrono::seconds(5);
  while (in_flight() > 0 && Clock::now() < give_up) {
    try {
      enter(true, Clock::now() + std::chrono::milliseconds(100));
    } catch (...) {
    }
    reap();
  }
  if (in_flight() > 0) log().warn("{} io_uring operations still in flight at shutdown", in_flight());
}

}  // namespace veloq::io
