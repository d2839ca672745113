// TcpListener: accepts TCP connections on one shard.
//
// With `reuse_port`, every shard can bind its own listener to the same port
// and the kernel spreads new connections across them: the thread-per-core
// way to serve one port from every shard without sharing a socket.
//
//   auto listener = TcpListener::bind(SocketAddress::parse("127.0.0.1:8080"), {.reuse_port = true});
//   for (;;) {
//     TcpStream stream = co_await listener.accept();
//     veloq::spawn(serve(std::move(stream))).detach();
//   }
//
// Accepting uses one multishot IORING_OP_ACCEPT (see AcceptQueue).
#pragma once

#include <veloq/io/accept_queue.hpp>
#include <veloq/io/listening_socket.hpp>
#include <veloq/io/tcp_stream.hpp>

namespace veloq::io {

class TcpListener : public ListeningSocket {
 public:
  TcpListener() noexcept = default;

  // Binds and listens; port 0 lets the kernel pick (see local_address()).
  static TcpListener bind(const SocketAddress& address, const ListenOptions& options = {}) {
    TcpListener listener;
    listener.queue_ = open(address, options);
    return listener;
  }

  // Awaits the next connection -> TcpStream.
  internal::AcceptOperation<TcpStream> accept() noexcept { return internal::AcceptOperation<TcpStream>(queue_); }
};

}  // namespace veloq::io
