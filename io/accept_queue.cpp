#include <veloq/io/accept_queue.hpp>
#include <veloq/io/uring_compat.hpp>
#include <veloq/runtime/local_executor.hpp>

#include <unistd.h>

#include <cerrno>

namespace veloq::io::internal {

AcceptQueue::AcceptQueue(int listen_fd, std::string description) noexcept
    : listen_fd_(listen_fd), description_(std::move(description)) {
  on_complete = &AcceptQueue::on_cqe;
}

bool AcceptQueue::try_take(Waiter& w) noexcept {
  if (ready_.empty()) return false;
  w.result = ready_.front();
  ready_.pop_front();
  w.done = true;
  return true;
}

void AcceptQueue::wait(Waiter& w, veloq::internal::TaskState* task, Driver& driver) {
  w.task = task;
  w.prev = tail_;
  w.next = nullptr;
  (tail_ ? tail_->next : head_) = &w;
  tail_ = &w;
  w.linked = true;
  if (!armed_) arm(driver);
}

void AcceptQueue::unlink(Waiter& w) noexcept {
  if (!w.linked) return;
  (w.prev ? w.prev->next : head_) = w.next;
  (w.next ? w.next->prev : tail_) = w.prev;
  w.linked = false;
}

void AcceptQueue::arm(Driver& driver) {
  driver_ = &driver;
  io_uring_sqe* sqe = driver.prepare(this);
  if (multishot_)
    io_uring_prep_multishot_accept(sqe, listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
  else
    io_uring_prep_accept(sqe, listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
  armed_ = true;
  cancel_sent_ = false;
}

void AcceptQueue::deliver(int result) {
  if (Waiter* w = head_) {
    if (result < 0) w->failed_op = operation();  // may throw: nothing changed yet
    unlink(*w);
    w->result = result;
    w->done = true;
    w->task->wake();
    return;
  }
  if (result >= 0)
    ready_.push_back(result);
  // An error nobody waits for concerns a connection that no longer exists.
}

void AcceptQueue::on_cqe(Completion* self, int result, std::uint32_t flags) noexcept {
  auto* q = static_cast<AcceptQueue*>(self);
  const bool final = (flags & IORING_CQE_F_MORE) == 0;
  if (final) q->armed_ = false;
  if (q->closed_) {
    if (result >= 0) ::close(result);
    if (final) delete q;
    return;
  }
  if (final && result == -EINVAL && q->multishot_) {
    q->multishot_ = false;  // a kernel without multishot accept
  } else if (result >= 0) {
    try {
      q->deliver(result);
    } catch (...) {
      ::close(result);
    }
  } else if (result != -ECANCELED && result != -EINTR && result != -EAGAIN && result != -ECONNABORTED) {
    try {
      q->deliver(result);
    } catch (...) {
    }
  }
  if (!q->armed_ && q->head_ != nullptr && q->driver_ != nullptr) {
    try {
      q->arm(*q->driver_);
    } catch (...) {
      try {
        q->deliver(-EBUSY);
      } catch (...) {
      }
    }
  }
  // Back-pressure: stop accepting while many connections wait unclaimed.
  if (q->armed_ && q->multishot_ && !q->cancel_sent_ && q->ready_.size() >= max_queued) {
    try {
      io_uring_sqe* sqe = q->driver_->prepare();
      io_uring_prep_cancel64(sqe, reinterpret_cast<std::uintptr_t>(static_cast<Completion*>(q)), 0);
      q->cancel_sent_ = true;
    } catch (...) {
    }
  }
}

void AcceptQueue::close() noexcept {
  closed_ = true;
  for (int fd : ready_) ::close(fd);
  ready_.clear();
  // Tasks still waiting (on a listener another task dropped) fail with EBADF.
  while (Waiter* w = head_) {
    unlink(*w);
    w->result = -EBADF;
    w->done = true;
    w->queue_closed = true;
    w->task->wake();
  }
  if (!armed_) {
    ::close(listen_fd_);
    delete this;
    return;
  }
  // The cancel runs before the close in the same submission, so the accept ends first.
  try {
    io_uring_sqe* sqe = driver_->prepare();
    io_uring_prep_cancel64(sqe, reinterpret_cast<std::uintptr_t>(static_cast<Completion*>(this)), 0);
    sqe = driver_->prepare();
    io_uring_prep_close(sqe, listen_fd_);
  } catch (...) {
    ::close(listen_fd_);
  }
}

}  // namespace veloq::io::internal
