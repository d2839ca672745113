// poll_ready: waits until a descriptor is readable or writable
// (IORING_OP_POLL_ADD) -> the ready event mask. For descriptors whose reads
// must happen on the shard's own thread (a signalfd) or that other code reads.
//
//   unsigned events = co_await veloq::io::poll_ready(fd, POLLIN);
#pragma once

#include <veloq/io/operation.hpp>

#include <poll.h>

namespace veloq::io {

inline auto poll_ready(int fd, unsigned events) {
  return Operation("poll", fd, [=](io_uring_sqe* sqe) { io_uring_prep_poll_add(sqe, fd, events); },
                   [](int mask) noexcept { return static_cast<unsigned>(mask); });
}

}  // namespace veloq::io
