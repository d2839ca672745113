#include <veloq/io/io_error.hpp>
#include <veloq/io/operation.hpp>
#include <veloq/io/socket_address.hpp>
#include <veloq/runtime/log.hpp>

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>

namespace veloq::io::internal {

namespace {

// "127.0.0.1:8080" for a connected socket, the path for a file, "fd 7" otherwise.
std::string describe_fd(int fd) {
  sockaddr_storage storage{};
  socklen_t len = sizeof storage;
  if (::getpeername(fd, reinterpret_cast<sockaddr*>(&storage), &len) == 0)
    return SocketAddress(reinterpret_cast<const sockaddr*>(&storage), len).to_string();
  len = sizeof storage;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&storage), &len) == 0)
    return SocketAddress(reinterpret_cast<const sockaddr*>(&storage), len).to_string();
  char link[64];
  char target[512];
  std::snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
  ssize_t n = ::readlink(link, target, sizeof target - 1);
  if (n > 0) return std::string(target, static_cast<std::size_t>(n));
  return "fd " + std::to_string(fd);
}

}  // namespace

void OpBase::abandon() noexcept {
  if (in_flight_) cancel_and_wait();
  finish_waiting();
  if (owns_result_fd_) close_unclaimed_fd();
}

bool OpBase::ready_slow() noexcept {
  if (unstoppable_) return false;
  needs_watch_ = true;
  // An operation started inside a stopped scope fails without reaching the kernel.
  using veloq::internal::StopScope;
  if (StopScope::open_scopes != 0) {
    if (const StopScope* stopped = StopScope::stopped_from(StopScope::innermost(veloq::internal::running_task()))) {
      cancel_reason_ = stopped->reason();
      result_ = -ECANCELED;
      return true;
    }
  }
  if (deadline_ != Clock::time_point::max() && deadline_ <= Clock::now()) {
    cancel_reason_ = ETIMEDOUT;
    result_ = -ECANCELED;
    return true;
  }
  return false;
}

void OpBase::watch() {
  if (deadline_ != Clock::time_point::max()) {
    DeadlineTimer* t = new (timer_storage_) DeadlineTimer{};
    timer_live_ = true;
    t->owner = this;
    watched_ = slow_completion_ = true;
    RuntimeContext::current(name_).executor().timers().arm(t->timer, deadline_, &OpBase::on_deadline);
  }
  using veloq::internal::StopScope;
  if (StopScope::open_scopes != 0) {
    if (StopScope* scope = StopScope::innermost(task_)) {
      watched_ = slow_completion_ = true;
      scope_member_.join(
          *scope, [](void* self, const StopScope& by) noexcept { static_cast<OpBase*>(self)->cancel(by.reason()); },
          this);
    }
  }
}

void OpBase::resubmit() {
  has_early_result_ = false;
  io_uring_sqe* sqe = driver_->prepare(this);
  prepare_(this, sqe);
  in_flight_ = true;
}

void OpBase::on_cqe(Completion* self, int result, std::uint32_t flags) noexcept {
  auto* op = static_cast<OpBase*>(self);
  // The common case: a final, successful CQE for an operation a task awaits
  // and that needs no continuation.
  if (result >= 0 && (flags & (IORING_CQE_F_MORE | IORING_CQE_F_NOTIF)) == 0 && !op->slow_completion_) [[likely]] {
    op->in_flight_ = false;
    op->result_ = result;
    op->flags_ = flags;
    op->task_->wake();
    return;
  }
  op->complete_slow(result, flags);
}

void OpBase::complete_slow(int result, std::uint32_t flags) noexcept {
  if (flags & IORING_CQE_F_MORE) {
    // A zero-copy send reports its result first and frees the buffer later.
    early_result_ = result;
    has_early_result_ = true;
    return;
  }
  if ((flags & IORING_CQE_F_NOTIF) && has_early_result_) result = early_result_;
  in_flight_ = false;
  if (!abandoned_) {
    bool again = false;
    if (result == -EINTR || result == -EAGAIN)
      again = cancel_reason_ == 0;
    else if (continue_ != nullptr)
      again = continue_(this, result);  // records a partial transfer even when stopped
    if (again && cancel_reason_ != 0) {
      result = -ECANCELED;  // stopped with part of the transfer left: never report it done
    } else if (again) {
      try {
        resubmit();
        return;
      } catch (...) {
        result = -EBUSY;  // the submission queue stays full
      }
    }
  }
  result_ = result;
  flags_ = flags;
  owns_result_fd_ = result_is_fd_ && result >= 0;
  if (abandoned_) return;  // the destructor is waiting for exactly this
  finish_waiting();
  task_->wake();
}

void OpBase::finish_waiting() noexcept {
  if (!watched_) return;
  watched_ = false;
  if (timer_live_) {
    timer_live_ = false;
    timer()->~DeadlineTimer();  // the timer's destructor takes it out of the queue
  }
  scope_member_.leave();
}

void OpBase::close_unclaimed_fd() noexcept {
  owns_result_fd_ = false;
  // Through the ring, not waited for: the destructor must not block, and the
  // close keeps its order with other operations on the shard (the executor's
  // shutdown drain submits it too). close(2) only if the submission queue
  // stays full, as a destructor cannot wait for room.
  try {
    io_uring_sqe* sqe = driver_->prepare(nullptr);
    io_uring_prep_close(sqe, result_);
    return;
  } catch (...) {
  }
  ::close(result_);
}

void OpBase::on_deadline(veloq::internal::Timer* t) noexcept {
  reinterpret_cast<DeadlineTimer*>(t)->owner->cancel(ETIMEDOUT);
}

void OpBase::cancel(int reason) noexcept {
  if (!in_flight_ || cancel_reason_ != 0) return;
  try {
    io_uring_sqe* sqe = driver_->prepare(nullptr);
    io_uring_prep_cancel64(sqe, reinterpret_cast<std::uintptr_t>(static_cast<Completion*>(this)), 0);
    cancel_reason_ = reason;  // only once sent: a later cancel (scope, deadline) may try again
    cancel_sent_ = true;
  } catch (...) {
    log().warn("{}: could not queue its cancellation; it runs on until it completes or is cancelled again", name_);
  }
}

void OpBase::cancel_and_wait() noexcept {
  abandoned_ = slow_completion_ = true;
  finish_waiting();
  if (!cancel_sent_) {
    cancel_reason_ = ECANCELED;
    while (in_flight_) {  // a reap below may bring its final CQE: no cancel needed then
      try {
        io_uring_sqe* sqe = driver_->prepare(nullptr);
        io_uring_prep_cancel64(sqe, reinterpret_cast<std::uintptr_t>(static_cast<Completion*>(this)), 0);
        break;
      } catch (...) {
        // The submission queue is full: hand it over, and reap, in case the
        // kernel takes no more until its overflowed completions are collected
        // (-EBUSY before 5.19), then try again.
        driver_->enter(false);
        driver_->reap();
      }
    }
  }
  // The kernel may still write into this frame until the final CQE: wait for it here.
  while (in_flight_) {
    try {
      driver_->enter(true, Clock::now() + std::chrono::milliseconds(100));
    } catch (...) {
    }
    driver_->reap();
  }
}

void OpBase::throw_result() {
  if (cancel_reason_ != 0 && (result_ == -ECANCELED || result_ == -EINTR || result_ == -EAGAIN)) {
    if (cancel_reason_ == ETIMEDOUT) throw TimeoutError(describe());
    throw OperationCancelled(describe());
  }
  throw_error(-result_);
}

void OpBase::throw_error(int error_number) const { throw IoError(error_number, describe()); }

std::string OpBase::describe() const {
  std::string text = name_;
  if (path_ != nullptr) {
    text += ' ';
    text += path_;
  } else if (address_ != nullptr) {
    text += ' ';
    text += address_->to_string();
  } else if (fd_ >= 0) {
    text += ' ';
    text += describe_fd(fd_);
  }
  return text;
}

}  // namespace veloq::io::internal
