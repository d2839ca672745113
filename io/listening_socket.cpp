#include <veloq/io/file_descriptor.hpp>
#include <veloq/io/io_error.hpp>
#include <veloq/io/listening_socket.hpp>
#include <veloq/io/socket_option.hpp>

#include <netinet/in.h>
#include <sys/socket.h>

#include <cerrno>

namespace veloq::io {

SocketAddress ListeningSocket::local_address() const {
  SocketAddress address;
  address.reset_for_fill();
  if (::getsockname(fd(), address.data(), address.length_slot()) != 0)
    throw IoError(errno, "getsockname of a listener");
  return address;
}

internal::AcceptQueue* ListeningSocket::open(const SocketAddress& address, const ListenOptions& options) {
  const std::string where = address.to_string();
  int raw = ::socket(address.family(), SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (raw < 0) throw IoError(errno, "listen " + where + ": socket");
  // A plain close(2) on failure: the socket was never seen by the ring.
  struct Guard {
    int fd;
    ~Guard() {
      if (fd >= 0) ::close(fd);
    }
  } guard{raw};
  if (!address.is_unix()) {
    if (options.reuse_address) set_socket_option(raw, SOL_SOCKET, SO_REUSEADDR, 1, "SO_REUSEADDR");
    if (options.reuse_port) set_socket_option(raw, SOL_SOCKET, SO_REUSEPORT, 1, "SO_REUSEPORT");
    if (address.is_ipv6()) set_socket_option(raw, IPPROTO_IPV6, IPV6_V6ONLY, options.ipv6_only ? 1 : 0, "IPV6_V6ONLY");
  }
  if (::bind(raw, address.data(), address.length()) != 0) throw IoError(errno, "bind " + where);
  if (::listen(raw, options.backlog) != 0) throw IoError(errno, "listen " + where);
  SocketAddress bound;
  bound.reset_for_fill();
  if (::getsockname(raw, bound.data(), bound.length_slot()) == 0 && !address.is_unix()) {
    auto* queue = new internal::AcceptQueue(raw, bound.to_string());
    guard.fd = -1;
    return queue;
  }
  auto* queue = new internal::AcceptQueue(raw, where);
  guard.fd = -1;
  return queue;
}

}  // namespace veloq::io
