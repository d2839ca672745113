#include <veloq/io/file_descriptor.hpp>
#include <veloq/runtime/runtime_context.hpp>

#include <unistd.h>

namespace veloq::io {

void FileDescriptor::close_in_background() noexcept {
  if (fd_ < 0) return;
  int fd = std::exchange(fd_, -1);
  if (RuntimeContext* context = RuntimeContext::current_or_null()) {
    try {
      io_uring_sqe* sqe = context->driver().prepare();
      io_uring_prep_close(sqe, fd);
      return;
    } catch (...) {
    }
  }
  ::close(fd);
}

void FileDescriptor::cancel_in_flight() {
  if (fd_ < 0) return;
  io_uring_sqe* sqe = RuntimeContext::current("cancel").driver().prepare();
  io_uring_prep_cancel_fd(sqe, fd_, IORING_ASYNC_CANCEL_ALL);
}

}  // namespace veloq::io
