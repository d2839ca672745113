// UdpSocket: datagrams over IPv4 or IPv6, sent and received through the ring
// (IORING_OP_SENDMSG / IORING_OP_RECVMSG, which carry the peer address).
//
//   auto socket = UdpSocket::bind(SocketAddress::parse("127.0.0.1:0"));
//   co_await socket.send_to(data, size, peer);
//   auto [size, from] = co_await socket.recv_from(buffer, sizeof buffer);
//
// A datagram larger than the buffer is truncated (Datagram::truncated says so).
#pragma once

#include <veloq/io/file_descriptor.hpp>
#include <veloq/io/operation.hpp>
#include <veloq/io/socket_address.hpp>

#include <sys/socket.h>
#include <sys/uio.h>

#include <cstddef>

namespace veloq::io {

struct Datagram {
  std::size_t size = 0;    // bytes stored in the buffer
  SocketAddress from;      // the sender
  bool truncated = false;  // the datagram was longer than the buffer
};

class UdpSocket {
 public:
  UdpSocket() noexcept = default;
  explicit UdpSocket(FileDescriptor fd) noexcept : fd_(std::move(fd)) {}

  // A socket bound to `address` (port 0: the kernel picks).
  static UdpSocket bind(const SocketAddress& address);

  int fd() const noexcept { return fd_.get(); }
  SocketAddress local_address() const;

  // Sends one datagram to `to` -> std::size_t sent.
  auto send_to(const void* data, std::size_t size, const SocketAddress& to) {
    struct Prepare {
      int fd;
      SocketAddress to;
      iovec buffer;
      msghdr message{};
      const SocketAddress* subject_address() const noexcept { return &to; }
      void operator()(io_uring_sqe* sqe) {
        message = {};
        message.msg_name = to.data();
        message.msg_namelen = to.length();
        message.msg_iov = &buffer;
        message.msg_iovlen = 1;
        io_uring_prep_sendmsg(sqe, fd, &message, 0);
      }
    };
    return Operation("sendmsg", fd_.get(), Prepare{fd_.get(), to, iovec{const_cast<void*>(data), size}},
                     [](int n) noexcept { return static_cast<std::size_t>(n); });
  }

  // Receives one datagram -> Datagram.
  auto recv_from(void* data, std::size_t size) {
    struct Prepare {
      int fd;
      iovec buffer;
      SocketAddress from;
      msghdr message{};
      void operator()(io_uring_sqe* sqe) {
        from.reset_for_fill();
        message = {};
        message.msg_name = from.data();
        message.msg_namelen = from.length();
        message.msg_iov = &buffer;
        message.msg_iovlen = 1;
        io_uring_prep_recvmsg(sqe, fd, &message, 0);
      }
    };
    return Operation("recvmsg", fd_.get(), Prepare{fd_.get(), iovec{data, size}, {}},
                     [](int n, Prepare& p) {
                       *p.from.length_slot() = p.message.msg_namelen;
                       return Datagram{static_cast<std::size_t>(n), p.from, (p.message.msg_flags & MSG_TRUNC) != 0};
                     });
  }

  auto close() { return fd_.close(); }

 private:
  FileDescriptor fd_;
};

}  // namespace veloq::io
