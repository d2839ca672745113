// TransferAll (internal): the operation behind write_all and read_exact. It
// sends (or receives) a whole buffer, re-arming itself from the completion
// handler after each partial transfer, so the task wakes once per call, not
// once per chunk.
#pragma once

#include <veloq/io/io_error.hpp>
#include <veloq/io/operation.hpp>

#include <sys/socket.h>

#include <cstddef>

namespace veloq::io::internal {

class [[nodiscard("co_await the operation")]] TransferAll : public OpBase, public DeadlineSetters<TransferAll> {
 public:
  enum class Direction { send, receive };

  TransferAll(const char* name, int fd, void* data, std::size_t size, Direction direction) noexcept
      : OpBase(name, fd, Preparer<&TransferAll::prepare>{}), data_(static_cast<std::byte*>(data)), size_(size),
        direction_(direction) {
    set_continuation(&TransferAll::advance);
  }

  bool await_ready() { return size_ == 0 || ready(); }
  void await_suspend(std::coroutine_handle<> h) { suspend<&TransferAll::prepare>(h); }
  void await_resume() {
    if (size_ == 0) return;
    int last = take_result();
    if (last == 0 && done_ < size_) throw UnexpectedEof(describe(), done_, size_);
  }

 private:
  static void prepare(OpBase* self, io_uring_sqe* sqe) {
    auto* op = static_cast<TransferAll*>(self);
    if (op->direction_ == Direction::send)
      io_uring_prep_send(sqe, op->fd(), op->data_ + op->done_, io_length(op->size_ - op->done_), MSG_NOSIGNAL);
    else
      io_uring_prep_recv(sqe, op->fd(), op->data_ + op->done_, io_length(op->size_ - op->done_), 0);
  }
  static bool advance(OpBase* self, int result) noexcept {
    auto* op = static_cast<TransferAll*>(self);
    if (result <= 0) return false;
    op->done_ += static_cast<std::size_t>(result);
    return op->done_ < op->size_;
  }

  std::byte* data_;
  std::size_t size_;
  std::size_t done_ = 0;
  Direction direction_;
};

}  // namespace veloq::io::internal
