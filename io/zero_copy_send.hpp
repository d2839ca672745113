// ZeroCopySend (internal): the operation behind StreamSocket::write_zero_copy.
// It sends with IORING_OP_SEND_ZC or with plain IORING_OP_SEND, whichever the
// caller's policy chose, and turns a refusal of SEND_ZC into a plain send of
// the same bytes: EINVAL (a kernel before 6.0 does not know the opcode; the
// shard's Driver, which probed for it, then records the refusal, and later
// calls on that shard send plainly at once) or EOPNOTSUPP (a socket that
// cannot do it). The result is the bytes sent (possibly fewer than asked,
// like write()).
#pragma once

#include <veloq/io/operation.hpp>
#include <veloq/io/uring_compat.hpp>

#include <sys/socket.h>

#include <cerrno>
#include <cstddef>

namespace veloq::io::internal {

class [[nodiscard("co_await the operation")]] ZeroCopySend : public OpBase, public DeadlineSetters<ZeroCopySend> {
 public:
  ZeroCopySend(int fd, const void* data, std::size_t size, bool zero_copy) noexcept
      : OpBase(zero_copy ? "send_zc" : "send", fd, Preparer<&ZeroCopySend::prepare>{}), data_(data), size_(size),
        zero_copy_(zero_copy) {
    set_continuation(&ZeroCopySend::fall_back);
  }

  bool await_ready() { return ready(); }
  void await_suspend(std::coroutine_handle<> h) { suspend<&ZeroCopySend::prepare>(h); }
  std::size_t await_resume() { return static_cast<std::size_t>(take_result()); }

 private:
  static void prepare(OpBase* self, io_uring_sqe* sqe) {
    auto* op = static_cast<ZeroCopySend*>(self);
    if (op->zero_copy_ && !op->driver().send_zc_supported()) op->zero_copy_ = false;
    if (op->zero_copy_)
      io_uring_prep_send_zc(sqe, op->fd(), op->data_, io_length(op->size_), MSG_NOSIGNAL, 0);
    else
      io_uring_prep_send(sqe, op->fd(), op->data_, io_length(op->size_), MSG_NOSIGNAL);
  }
  // A refused SEND_ZC sends again, plainly; nothing was sent by the refused one.
  static bool fall_back(OpBase* self, int result) noexcept {
    auto* op = static_cast<ZeroCopySend*>(self);
    if (!op->zero_copy_ || (result != -EINVAL && result != -EOPNOTSUPP)) return false;
    op->zero_copy_ = false;
    if (result == -EINVAL) op->driver().send_zc_refused();
    return true;
  }

  const void* data_;
  std::size_t size_;
  bool zero_copy_;
};

}  // namespace veloq::io::internal
