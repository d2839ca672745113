// StreamSocket: a connected byte stream (TCP or Unix), the part TcpStream and
// UnixStream share. Every transfer goes through the shard's ring and is
// awaited; each call returns an Operation, so a deadline can be attached:
//
//   std::size_t n = co_await stream.read(buffer);              // 0: the peer closed
//   co_await stream.write_all(reply.data(), reply.size());
//   co_await stream.read_exact(header, sizeof header).with_timeout(2s);
//   co_await stream.shutdown();  co_await stream.close();
//
// Writes use MSG_NOSIGNAL: a peer that went away gives EPIPE or ECONNRESET,
// never SIGPIPE. The buffers passed in must stay valid until the awaited call
// returns (a cancelled task's frame is not freed before the kernel lets go).
// One reader and one writer task may use a stream at the same time.
#pragma once

#include <veloq/io/file_descriptor.hpp>
#include <veloq/io/operation.hpp>
#include <veloq/io/socket_address.hpp>
#include <veloq/io/transfer_all.hpp>
#include <veloq/io/uring_compat.hpp>
#include <veloq/io/zero_copy_send.hpp>

#include <sys/socket.h>
#include <sys/uio.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>

namespace veloq::io {

namespace internal {
struct ToSize {
  std::size_t operator()(int result) const noexcept { return static_cast<std::size_t>(result); }
};
}  // namespace internal

class StreamSocket {
 public:
  StreamSocket() noexcept = default;
  explicit StreamSocket(FileDescriptor fd) noexcept : fd_(std::move(fd)) {}

  int fd() const noexcept { return fd_.get(); }
  bool is_open() const noexcept { return fd_.valid(); }

  // Receives up to `size` bytes (IORING_OP_RECV) -> std::size_t; 0 at end of stream.
  auto read(void* data, std::size_t size) {
    int fd = fd_.get();
    return Operation("recv", fd,
                     [=](io_uring_sqe* sqe) { io_uring_prep_recv(sqe, fd, data, internal::io_length(size), 0); },
                     internal::ToSize{});
  }
  auto read(std::span<std::byte> buffer) { return read(buffer.data(), buffer.size()); }

  // Sends up to `size` bytes (IORING_OP_SEND) -> std::size_t sent.
  auto write(const void* data, std::size_t size) {
    int fd = fd_.get();
    return Operation("send", fd,
                     [=](io_uring_sqe* sqe) {
                       io_uring_prep_send(sqe, fd, data, internal::io_length(size), MSG_NOSIGNAL);
                     },
                     internal::ToSize{});
  }
  auto write(std::span<const std::byte> buffer) { return write(buffer.data(), buffer.size()); }

  // Sends from several buffers in one operation (IORING_OP_SENDMSG) -> std::size_t sent.
  // The iovec array must stay valid until the call returns.
  auto writev(const iovec* buffers, std::size_t count) {
    int fd = fd_.get();
    struct Prepare {
      int fd;
      const iovec* buffers;
      std::size_t count;
      msghdr message{};
      void operator()(io_uring_sqe* sqe) {
        message = {};
        message.msg_iov = const_cast<iovec*>(buffers);
        message.msg_iovlen = count;
        io_uring_prep_sendmsg(sqe, fd, &message, MSG_NOSIGNAL);
      }
    };
    return Operation("sendmsg", fd, Prepare{fd, buffers, count}, internal::ToSize{});
  }

  // Receives exactly `size` bytes; throws UnexpectedEof if the stream ends first.
  internal::TransferAll read_exact(void* data, std::size_t size) noexcept {
    return internal::TransferAll("read_exact", fd_.get(), data, size, internal::TransferAll::Direction::receive);
  }
  internal::TransferAll read_exact(std::span<std::byte> buffer) noexcept {
    return read_exact(buffer.data(), buffer.size());
  }

  // Sends all `size` bytes, continuing after partial sends.
  internal::TransferAll write_all(const void* data, std::size_t size) noexcept {
    return internal::TransferAll("write_all", fd_.get(), const_cast<void*>(data), size,
                                 internal::TransferAll::Direction::send);
  }
  internal::TransferAll write_all(std::span<const std::byte> buffer) noexcept {
    return write_all(buffer.data(), buffer.size());
  }

  // Sends up to `size` bytes -> std::size_t sent, zero-copy
  // (IORING_OP_SEND_ZC, Linux 6.0+) where that pays, a plain send otherwise.
  // A zero-copy send returns once the kernel no longer needs `data`, which can
  // be only after the peer has read it: do not wait for this call before
  // reading what the peer sends back.
  //
  // Policy (zero_copy_pays): SEND_ZC only for payloads of at least
  // zero_copy_min_bytes to a peer on another host. Measured with
  // veloq-bench-zc-send (loopback, one send in flight, kernel 6.18, 2 vCPUs):
  // SEND_ZC reached 0.04-0.07x of plain send's throughput at 4 KiB (62 MB/s
  // against 1.5 GB/s), 0.16-0.26x at 64 KiB and 0.35-0.40x at 1 MiB (1.3
  // against 3.7 GB/s), over two runs. A local peer gets copies anyway (the kernel
  // copies zero-copy pages when it hands them to a local socket), so SEND_ZC
  // only adds its notification and a wait for the reader. Off-host peers were
  // not measurable here (loopback only); the 64 KiB floor there follows the
  // same figures (the gap shrinks as payloads grow) and is the value to check
  // on a real NIC. A kernel that refuses SEND_ZC gets plain sends.
  internal::ZeroCopySend write_zero_copy(const void* data, std::size_t size) {
    return internal::ZeroCopySend(fd_.get(), data, size, zero_copy_pays(size));
  }
  // SEND_ZC whatever the size and peer (plain send only if the kernel refuses
  // it): for benchmarks, and callers who measured their own path.
  internal::ZeroCopySend write_zero_copy_always(const void* data, std::size_t size) {
    return internal::ZeroCopySend(fd_.get(), data, size, true);
  }
  // Whether write_zero_copy of `size` bytes would use SEND_ZC on this stream.
  bool zero_copy_pays(std::size_t size) const;
  static constexpr std::size_t zero_copy_min_bytes = 64 * 1024;

  // Shuts down one or both directions (IORING_OP_SHUTDOWN); SHUT_WR sends FIN.
  auto shutdown(int how = SHUT_WR) {
    int fd = fd_.get();
    return Operation("shutdown", fd, [=](io_uring_sqe* sqe) { io_uring_prep_shutdown(sqe, fd, how); },
                     [](int) noexcept {});
  }

  // Closes through the ring (IORING_OP_CLOSE); the stream is closed from this
  // call on. Reads and writes other tasks still have in flight on it are
  // cancelled first (they fail with ECANCELED): a close only drops the
  // descriptor, and they would hold the socket open, their tasks waiting and
  // the peer never told.
  auto close() {
    fd_.cancel_in_flight();
    return fd_.close();
  }

  SocketAddress local_address() const;
  SocketAddress peer_address() const;

  // SO_KEEPALIVE.
  void set_keepalive(bool on);
  bool keepalive() const;
  // SO_SNDBUF / SO_RCVBUF (the kernel doubles what is asked and applies limits).
  void set_send_buffer_size(int bytes);
  int send_buffer_size() const;
  void set_receive_buffer_size(int bytes);
  int receive_buffer_size() const;
  // SO_LINGER: with zero seconds, closing sends RST instead of FIN.
  void set_linger(std::optional<std::chrono::seconds> linger);

  // Gives up the descriptor.
  FileDescriptor release() noexcept {
    peer_ = Peer::unknown;
    return std::move(fd_);
  }

 protected:
  FileDescriptor fd_;

 private:
  // Where the peer is, looked up (getpeername) the first time it matters.
  enum class Peer : std::uint8_t { unknown, local, remote };
  mutable Peer peer_ = Peer::unknown;
};

namespace internal {
// Creates a socket of `type` for `address`'s family (SOCK_CLOEXEC), throwing IoError.
FileDescriptor open_socket(const SocketAddress& address, int type, const char* what);
// Connects `fd` to `address` through the ring (IORING_OP_CONNECT), with an optional deadline.
Task<void> connect_socket(int fd, SocketAddress address, Clock::time_point deadline);
}  // namespace internal

}  // namespace veloq::io
