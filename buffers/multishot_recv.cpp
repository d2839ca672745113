#include <veloq/buffers/circular_queue.hpp>
#include <veloq/buffers/multishot_recv.hpp>
#include <veloq/io/completion.hpp>
#include <veloq/io/driver.hpp>
#include <veloq/io/io_error.hpp>
#include <veloq/runtime/local_executor.hpp>

#include <cassert>
#include <cerrno>
#include <new>
#include <string>
#include <system_error>
#include <utility>

namespace veloq::buffers {

// The receive's record: the io_uring completion target, the queue of chunks
// that arrived, the hook through which the ring re-arms it after ENOBUFS, and
// the link by which the ring cancels it while armed.
// It lives apart from the stream because the kernel may still post to it
// after the stream is gone (until the cancellation's final CQE).
struct MultishotRecv::Op : io::Completion, internal::RefillHook, internal::ArmedReceive {
  struct Chunk {
    std::uint16_t id;
    std::uint32_t bytes;
  };

  Op(internal::ProvidedRingCore& ring_core, int socket, std::size_t queue_limit)
      : core(&ring_core), fd(socket), max_queued(queue_limit) {
    on_complete = &Op::on_cqe;
    on_refill = &Op::on_buffers_back;
    target = this;
    core->add_ref();
  }

  internal::ProvidedRingCore* core;
  int fd;
  // Small, and grows only while chunks wait, so a connection's record does
  // not grow with the ring (at most one chunk per ring buffer can wait).
  internal::CircularQueue<Chunk> queue;
  std::size_t max_queued;  // at this many untaken chunks the receive pauses
  bool armed = false;      // a receive is in the kernel (until a CQE without F_MORE)
  bool pausing = false;    // its cancellation is on the way: the queue is full
  bool abandoned = false;  // the stream is gone; free the record at the final CQE
  bool ended = false;      // the peer closed
  int error = 0;           // a receive error, reported after the queued chunks
  bool ring_gone = false;  // the error is the ring's destruction: next() throws ClosedError
  std::uint64_t arms = 0;
  veloq::internal::TaskState* waiter = nullptr;
  std::coroutine_handle<> resume_at;
  bool* waiter_stream_gone = nullptr;  // the waiting NextChunk's flag; valid while `waiter` is set

  bool has_result() const noexcept { return !queue.empty() || ended || error != 0; }
  bool may_arm() const noexcept { return !armed && !ended && error == 0 && !abandoned; }
  // A paused receive resumes once the task has taken half of what waited.
  bool has_room() const noexcept { return queue.size() <= max_queued / 2; }

  // The task is not taking what arrives: stop receiving, so that this
  // socket holds no more of the ring's buffers (the kernel's socket buffer
  // fills instead, and TCP slows the sender). The next next() that finds
  // room re-arms.
  void pause() noexcept {
    try {
      io_uring_prep_cancel(core->driver().prepare(), this, 0);
      pausing = true;
    } catch (...) {
      // The submission queue stayed full: try again at the next chunk.
    }
  }

  // False when the queue had to grow and memory ran out.
  bool push(Chunk c) noexcept {
    try {
      queue.push_back(std::move(c));
      return true;
    } catch (const std::bad_alloc&) {
      return false;
    }
  }

  void arm() noexcept {
    try {
      io_uring_sqe* sqe = core->driver().prepare(this);
      io_uring_prep_recv_multishot(sqe, fd, nullptr, 0, 0);
      sqe->flags |= IOSQE_BUFFER_SELECT;
      sqe->buf_group = core->group_id();
      armed = true;
      ++arms;
      core->track(*this);
    } catch (...) {
      error = EBUSY;  // the submission queue stayed full
    }
  }

  // Arms now if the ring has a buffer to give, else waits for one.
  void arm_or_wait_for_buffers() noexcept {
    if (!core->registered()) {
      end_ring_gone();
    } else if (core->available() > 0) {
      arm();
    } else {
      core->link(*this);
    }
  }

  // The ring was destroyed under the stream (and cancelled the receive).
  void end_ring_gone() noexcept {
    error = ECANCELED;
    ring_gone = true;
  }

  void wake_if_ready() noexcept {
    if (waiter != nullptr && has_result()) std::exchange(waiter, nullptr)->wake_at(resume_at);
  }

  void free_record() noexcept {
    if (linked()) core->unlink(*this);
    while (!queue.empty()) internal::give_back_provided(core, queue.pop_front().id);
    internal::ProvidedRingCore* ring_core = core;
    delete this;
    ring_core->release_ref();
  }

  [[gnu::hot]] static void on_cqe(io::Completion* c, int result, std::uint32_t flags) noexcept {
    auto* op = static_cast<Op*>(c);
    const bool paused = op->pausing && !(flags & IORING_CQE_F_MORE);
    if (!(flags & IORING_CQE_F_MORE)) {
      op->armed = false;
      op->pausing = false;
      op->core->untrack(*op);
    }
    if (flags & IORING_CQE_F_BUFFER) {
      auto id = static_cast<std::uint16_t>(flags >> IORING_CQE_BUFFER_SHIFT);
      op->core->mark_taken(id);
      if (op->abandoned || result <= 0 || op->error != 0) {
        internal::give_back_provided(op->core, id);  // nothing after a lost chunk is delivered
      } else if (!op->push({id, static_cast<std::uint32_t>(result)})) {
        // The bytes cannot be kept in order: the stream ends with an error
        // rather than skipping them.
        internal::give_back_provided(op->core, id);
        if (op->error == 0) op->error = ENOMEM;
      } else if (op->armed && !op->pausing && op->queue.size() >= op->max_queued) [[unlikely]] {
        op->pause();
      }
    } else if (result == -ENOBUFS) {
      op->core->note_enobufs();
    } else if (result == -ECANCELED && !op->core->registered() && !op->abandoned) {
      op->end_ring_gone();
    } else if (result == -ECANCELED && paused) {
      // Paused with a full queue; not an error.
    } else if (result == 0) {
      op->ended = true;
    } else if (result < 0 && result != -EINTR && result != -EAGAIN && !op->abandoned) {
      op->error = -result;  // EINTR and EAGAIN only end this arming: the next next() re-arms
    }
    if (op->abandoned) {
      if (!op->armed) op->free_record();
      return;
    }
    // A receive the kernel ended early (ENOBUFS, or a last CQE that still
    // carried data) continues at once when a task is waiting with nothing to
    // take; otherwise the next next() re-arms it.
    if (op->may_arm() && op->waiter != nullptr && op->queue.empty()) op->arm_or_wait_for_buffers();
    op->wake_if_ready();
  }

  static void on_buffers_back(internal::RefillHook* hook) noexcept {
    auto* op = static_cast<Op*>(hook);
    if (op->may_arm() && op->has_room()) op->arm_or_wait_for_buffers();
    op->wake_if_ready();
  }
};

MultishotRecv::MultishotRecv(ProvidedBufferRing& ring, int fd, std::size_t max_queued)
    : op_(new Op(ring.core(), fd, max_queued > 0 ? max_queued : 1)) {
  assert(ring.core().on_home_thread() && "a multishot receive runs on its ring's shard");
}

MultishotRecv::~MultishotRecv() {
  Op* op = op_;
  // A task still waiting in next() (the stream was dropped by another task)
  // resumes with an error; it must not touch the record, which may go now.
  if (veloq::internal::TaskState* waiter = std::exchange(op->waiter, nullptr)) {
    *op->waiter_stream_gone = true;
    waiter->wake_at(op->resume_at);
  }
  if (!op->armed) {
    op->free_record();
    return;
  }
  op->abandoned = true;
  if (op->linked()) op->core->unlink(*op);
  while (!op->queue.empty()) internal::give_back_provided(op->core, op->queue.pop_front().id);
  try {
    io_uring_sqe* sqe = op->core->driver().prepare();
    io_uring_prep_cancel(sqe, op, 0);
  } catch (...) {
    // The submission queue stayed full: the receive ends when the socket
    // closes, or at the shard's shutdown, which cancels everything in flight.
  }
}

bool MultishotRecv::armed() const noexcept { return op_->armed; }
std::uint64_t MultishotRecv::arms() const noexcept { return op_->arms; }
std::size_t MultishotRecv::queued() const noexcept { return op_->queue.size(); }

MultishotRecv::NextChunk::~NextChunk() {
  // Destroyed while suspended: the awaiting task was cancelled.
  if (task_ != nullptr && !stream_gone_ && op_.waiter == task_) op_.waiter = nullptr;
}

bool MultishotRecv::NextChunk::await_ready() noexcept {
  if (stop_.stopped_before_start()) {
    stopped_fd_ = op_.fd;
    return true;
  }
  // Re-arm when the kernel stopped: now if there is nothing to hand out, or
  // a buffer to receive into and room to queue it (so receiving overlaps
  // with consuming), else on a later call.
  if (op_.may_arm() && (op_.queue.empty() || (op_.core->available() > 0 && op_.has_room())))
    op_.arm_or_wait_for_buffers();
  return op_.has_result();
}

void MultishotRecv::NextChunk::await_suspend(std::coroutine_handle<> h) noexcept {
  task_ = veloq::internal::running_task();
  task_->resume_point = h;
  op_.waiter = task_;
  op_.resume_at = h;
  op_.waiter_stream_gone = &stream_gone_;
  stop_.join(task_, this);
}

void MultishotRecv::NextChunk::stop_waiting(const veloq::internal::StopScope& by) noexcept {
  if (task_ == nullptr || stream_gone_ || op_.waiter != task_) return;  // no longer waiting: what woke it stands
  op_.waiter = nullptr;
  stopped_fd_ = op_.fd;
  stop_.note_stopped(by);
  // No longer the stream's waiter: from here on nothing looks at op_, which
  // may go with the stream before the task resumes.
  std::exchange(task_, nullptr)->wake();
}

std::optional<ProvidedBuffer> MultishotRecv::NextChunk::await_resume() {
  task_ = nullptr;
  if (stop_.stopped()) [[unlikely]]
    stop_.end(("recv_multishot fd " + std::to_string(stopped_fd_)).c_str());
  if (stream_gone_) throw io::IoError(EBADF, "recv_multishot on a stream that was destroyed");
  if (!op_.queue.empty()) {
    Op::Chunk c = op_.queue.pop_front();
    // The queue's reference on the ring passes to the view.
    return adopt(op_.core, c.id, c.bytes);
  }
  if (op_.ring_gone) throw ClosedError("veloq: the provided-buffer ring was destroyed under a multishot receive");
  if (op_.error != 0) throw io::IoError(op_.error, "recv_multishot fd " + std::to_string(op_.fd));
  return std::nullopt;
}

}  // namespace veloq::buffers
