// UnixStream and UnixListener: stream sockets in the Unix domain, with the
// same ring-driven reads and writes as TCP (StreamSocket) and the same
// multishot accept (ListeningSocket).
//
//   auto listener = UnixListener::bind("/run/app.sock");   // "@name": abstract
//   auto client = co_await UnixStream::connect("/run/app.sock");
//   UnixStream server = co_await listener.accept();
//
// Binding does not remove a stale socket file; unlink it first if needed.
#pragma once

#include <veloq/io/accept_queue.hpp>
#include <veloq/io/listening_socket.hpp>
#include <veloq/io/stream_socket.hpp>
#include <veloq/runtime/task.hpp>

#include <string_view>

namespace veloq::io {

class UnixStream : public StreamSocket {
 public:
  UnixStream() noexcept = default;
  explicit UnixStream(FileDescriptor fd) noexcept : StreamSocket(std::move(fd)) {}

  // Connects through the ring (IORING_OP_CONNECT).
  static Task<UnixStream> connect(std::string_view path) { return connect(SocketAddress::unix_path(path)); }
  static Task<UnixStream> connect(SocketAddress address);
};

class UnixListener : public ListeningSocket {
 public:
  UnixListener() noexcept = default;

  static UnixListener bind(std::string_view path, const ListenOptions& options = {}) {
    UnixListener listener;
    listener.queue_ = open(SocketAddress::unix_path(path), options);
    return listener;
  }

  // Awaits the next connection -> UnixStream.
  internal::AcceptOperation<UnixStream> accept() noexcept { return internal::AcceptOperation<UnixStream>(queue_); }
};

}  // namespace veloq::io
