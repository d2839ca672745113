// FileDescriptor: owns one open file descriptor (socket, file, signalfd).
//
// Move-only. `co_await fd.close()` closes it through the ring
// (IORING_OP_CLOSE) and reports errors; dropping an open FileDescriptor
// queues an IORING_OP_CLOSE on the current shard's ring without waiting for
// it (or calls close(2) when the thread has no runtime context), so a
// destructor never blocks and the fd number is not reused before the close
// reaches the kernel.
#pragma once

#include <veloq/io/operation.hpp>

#include <utility>

namespace veloq::io {

class FileDescriptor {
 public:
  FileDescriptor() noexcept = default;
  explicit FileDescriptor(int fd) noexcept : fd_(fd) {}
  FileDescriptor(FileDescriptor&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  FileDescriptor& operator=(FileDescriptor&& other) noexcept {
    if (this != &other) {
      close_in_background();
      fd_ = std::exchange(other.fd_, -1);
    }
    return *this;
  }
  FileDescriptor(const FileDescriptor&) = delete;
  FileDescriptor& operator=(const FileDescriptor&) = delete;
  ~FileDescriptor() { close_in_background(); }

  int get() const noexcept { return fd_; }
  bool valid() const noexcept { return fd_ >= 0; }
  explicit operator bool() const noexcept { return valid(); }
  // Gives up ownership.
  int release() noexcept { return std::exchange(fd_, -1); }

  // Closes through the ring; the descriptor is invalid from this call on.
  // The close reaches the kernel even inside a stopped scope or past a
  // deadline (those do not apply to it), so it never leaks the descriptor.
  auto close() {
    int fd = std::exchange(fd_, -1);
    return Operation("close", fd, [fd](io_uring_sqe* sqe) { io_uring_prep_close(sqe, fd); }, CloseDone{});
  }

  // Queues the close on the shard's ring (or closes now off-shard); never throws.
  void close_in_background() noexcept;

  // Asks the kernel to cancel every operation in flight on this descriptor
  // (IORING_ASYNC_CANCEL_FD, kernel 5.19 or later), in this turn's
  // submission; a close prepared after it runs after it.
  void cancel_in_flight();

 private:
  struct CloseDone : internal::Unstoppable {
    void operator()(int) const noexcept {}
  };

  int fd_ = -1;
};

}  // namespace veloq::io
