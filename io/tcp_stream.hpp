// TcpStream: a connected TCP socket (IPv4 or IPv6). Reads, writes, shutdown
// and close are StreamSocket's, all through the ring; this adds connecting
// and the TCP-only options.
//
//   auto stream = co_await TcpStream::connect(SocketAddress::parse("127.0.0.1:8080"),
//                                             std::chrono::seconds(1));
//   stream.set_nodelay(true);
//   co_await stream.write_all(request.data(), request.size());
//
// Failures read like "connect 127.0.0.1:1: Connection refused (ECONNREFUSED)";
// a connect that outlives its timeout throws TimeoutError.
#pragma once

#include <veloq/io/stream_socket.hpp>
#include <veloq/runtime/task.hpp>

#include <chrono>

namespace veloq::io {

class TcpStream : public StreamSocket {
 public:
  TcpStream() noexcept = default;
  explicit TcpStream(FileDescriptor fd) noexcept : StreamSocket(std::move(fd)) {}

  // Connects through the ring (IORING_OP_CONNECT).
  static Task<TcpStream> connect(SocketAddress address);
  // Connects, giving up with TimeoutError after `timeout`.
  static Task<TcpStream> connect(SocketAddress address, Clock::duration timeout);

  // TCP_NODELAY: send small writes at once instead of coalescing them.
  void set_nodelay(bool on);
  bool nodelay() const;
};

}  // namespace veloq::io
