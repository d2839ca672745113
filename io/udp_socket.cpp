#include <veloq/io/io_error.hpp>
#include <veloq/io/udp_socket.hpp>

#include <unistd.h>

#include <cerrno>

namespace veloq::io {

UdpSocket UdpSocket::bind(const SocketAddress& address) {
  int raw = ::socket(address.family(), SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (raw < 0) throw IoError(errno, "udp socket " + address.to_string());
  FileDescriptor fd(raw);
  if (::bind(raw, address.data(), address.length()) != 0) {
    int error = errno;
    ::close(fd.release());
    throw IoError(error, "bind " + address.to_string());
  }
  return UdpSocket(std::move(fd));
}

SocketAddress UdpSocket::local_address() const {
  SocketAddress address;
  address.reset_for_fill();
  if (::getsockname(fd_.get(), address.data(), address.length_slot()) != 0)
    throw IoError(errno, "getsockname of a UDP socket");
  return address;
}

}  // namespace veloq::io
