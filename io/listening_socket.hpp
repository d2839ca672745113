// ListeningSocket: a bound, listening stream socket and its accept queue;
// the common base of TcpListener and UnixListener. Move-only. Dropping it
// stops accepting (the in-flight accept is cancelled through the ring) and
// closes connections that were accepted but never claimed.
#pragma once

#include <veloq/io/accept_queue.hpp>
#include <veloq/io/socket_address.hpp>

#include <sys/socket.h>

#include <utility>

namespace veloq::io {

struct ListenOptions {
  int backlog = SOMAXCONN;
  // SO_REUSEPORT: several sockets (one per shard) may listen on one port;
  // the kernel spreads incoming connections over them.
  bool reuse_port = false;
  // SO_REUSEADDR: rebinding a port with connections in TIME_WAIT is allowed.
  bool reuse_address = true;
  // IPV6_V6ONLY for IPv6 listeners (false: also accept IPv4-mapped peers).
  bool ipv6_only = false;
};

class ListeningSocket {
 public:
  ListeningSocket() noexcept = default;
  ListeningSocket(ListeningSocket&& other) noexcept : queue_(std::exchange(other.queue_, nullptr)) {}
  ListeningSocket& operator=(ListeningSocket&& other) noexcept {
    if (this != &other) {
      close();
      queue_ = std::exchange(other.queue_, nullptr);
    }
    return *this;
  }
  ListeningSocket(const ListeningSocket&) = delete;
  ListeningSocket& operator=(const ListeningSocket&) = delete;
  ~ListeningSocket() { close(); }

  bool is_open() const noexcept { return queue_ != nullptr; }
  int fd() const noexcept { return queue_ ? queue_->listen_fd() : -1; }
  // The bound address (with the port the kernel picked when bound to port 0).
  SocketAddress local_address() const;
  // Stops accepting and closes the socket.
  void close() noexcept {
    if (queue_ != nullptr) std::exchange(queue_, nullptr)->close();
  }

 protected:
  // Binds and listens on `address` (socket(2), bind(2), listen(2): one-time
  // setup calls with no ring equivalent on the kernels we support).
  static internal::AcceptQueue* open(const SocketAddress& address, const ListenOptions& options);
  internal::AcceptQueue* queue_ = nullptr;
};

}  // namespace veloq::io
