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
  if (has(in_flight)) cancel_and_wait();
  finish_waiting();
  if (has(owns_result_fd)) close_unclaimed_fd();
}

bool OpBase::ready_slow() {
  if (has(unstoppable)) return false;
  // An operation started inside a stopped scope fails without reaching the kernel.
  using veloq::internal::StopScope;
  StopScope* scope = StopScope::open_scopes != 0 ? StopScope::innermost(veloq::internal::running_task()) : nullptr;
  if (const StopScope* stopped = StopScope::stopped_from(scope)) {
    set_cancel_reason(stopped->reason());
    result_ = -ECANCELED;
    return true;
  }
  if (has(has_deadline) && deadline() <= Clock::now()) {
    set_cancel_reason(ETIMEDOUT);
    result_ = -ECANCELED;
    return true;
  }
  watch(scope);
  return false;
}

void OpBase::watch(veloq::internal::StopScope* scope) {
  if (has(has_deadline)) {
    DeadlineTimer* t = new (timer_storage_) DeadlineTimer{};
    set(timer_live | slow_completion);
    t->owner = this;
    RuntimeContext::current(name_).executor().timers().arm(t->timer, deadline(), &OpBase::on_deadline);
  }
  if (scope != nullptr) {
    ScopeMember* member = new (scope_storage_) ScopeMember{};
    set(scope_joined | slow_completion);
    member->join(
        *scope, [](void* self, const veloq::internal::StopScope& by) noexcept {
          static_cast<OpBase*>(self)->cancel(by.reason());
        },
        this);
  }
}

void OpBase::resubmit(PrepareFn prepare) {
  clear(has_early_result);
  io_uring_sqe* sqe = driver().prepare(this);
  prepare(this, sqe);
  set(in_flight);
}

void OpBase::complete_slow(int result, std::uint32_t flags, PrepareFn prepare) noexcept {
  if (flags & IORING_CQE_F_MORE) {
    // A zero-copy send reports its result first and frees the buffer later.
    early_result_ = result;
    set(has_early_result);
    return;
  }
  if ((flags & IORING_CQE_F_NOTIF) && has(has_early_result)) result = early_result_;
  clear(in_flight);
  if (!has(abandoned)) {
    bool again = false;
    if (result == -EINTR || result == -EAGAIN)
      again = !has(stopping);
    else if (has(has_continuation))
      again = continue_(this, result);  // records a partial transfer even when stopped
    if (again && has(stopping)) {
      result = -ECANCELED;  // stopped with part of the transfer left: never report it done
    } else if (again) {
      try {
        resubmit(prepare);
        return;
      } catch (...) {
        result = -EBUSY;  // the submission queue stays full
      }
    }
  }
  result_ = result;
  if (has(result_is_fd) && result >= 0) set(owns_result_fd);
  if (has(abandoned)) return;  // the destructor is waiting for exactly this
  finish_waiting();
  task_->wake();
}

void OpBase::finish_waiting() noexcept {
  if (has(timer_live)) {
    clear(timer_live);
    timer()->~DeadlineTimer();  // the timer's destructor takes it out of the queue
  }
  if (has(scope_joined)) {
    clear(scope_joined);
    scope_member()->leave();
    scope_member()->~ScopeMember();
  }
}

void OpBase::close_unclaimed_fd() noexcept {
  clear(owns_result_fd);
  // Through the ring, not waited for: the destructor must not block, and the
  // close keeps its order with other operations on the shard (the executor's
  // shutdown drain submits it too). close(2) only if the submission queue
  // stays full, as a destructor cannot wait for room.
  try {
    io_uring_sqe* sqe = driver().prepare();
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
  if (!has(in_flight) || has(stopping)) return;
  try {
    io_uring_sqe* sqe = driver().prepare();
    io_uring_prep_cancel64(sqe, reinterpret_cast<std::uintptr_t>(static_cast<Completion*>(this)), 0);
    set_cancel_reason(reason);  // only once sent: a later cancel may try again
    set(cancel_sent);
  } catch (...) {
    log().warn("{}: could not queue its cancellation; it runs on until it completes or is cancelled again", name_);
  }
}

void OpBase::cancel_and_wait() noexcept {
  set(abandoned | slow_completion);
  finish_waiting();
  if (!has(cancel_sent)) {
    set_cancel_reason(ECANCELED);
    while (has(in_flight)) {  // a reap below may bring its final CQE: no cancel needed then
      try {
        io_uring_sqe* sqe = driver().prepare();
        io_uring_prep_cancel64(sqe, reinterpret_cast<std::uintptr_t>(static_cast<Completion*>(this)), 0);
        break;
      } catch (...) {
        // The submission queue is full: hand it over, and reap, in case the
        // kernel takes no more until its overflowed completions are collected
        // (-EBUSY before 5.19), then try again.
        driver().enter(false);
        driver().reap();
      }
    }
  }
  // The kernel may still write into this frame until the final CQE: wait for it here.
  while (has(in_flight)) {
    try {
      driver().enter(true, Clock::now() + std::chrono::milliseconds(100));
    } catch (...) {
    }
    driver().reap();
  }
}

void OpBase::throw_result() {
  if (has(stopping) && (result_ == -ECANCELED || result_ == -EINTR || result_ == -EAGAIN)) {
    if (has(stopped_by_timeout)) throw TimeoutError(describe());
    throw OperationCancelled(describe());
  }
  throw_error(-result_);
}

void OpBase::throw_error(int error_number) const { throw IoError(error_number, describe()); }

std::string OpBase::describe() const {
  std::string text = name_;
  if (has(subject_is_path) && subject_.path != nullptr) {
    text += ' ';
    text += subject_.path;
  } else if (has(subject_is_address) && subject_.address != nullptr) {
    text += ' ';
    text += subject_.address->to_string();
  } else if (fd_ >= 0) {
    text += ' ';
    text += describe_fd(fd_);
  }
  return text;
}

}  // namespace veloq::io::internal
