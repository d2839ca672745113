#include <veloq/io/io_error.hpp>
#include <veloq/io/socket_option.hpp>
#include <veloq/io/stream_socket.hpp>
#include <veloq/runtime/runtime_context.hpp>

#include <netinet/in.h>
#include <sys/socket.h>

#include <cerrno>
#include <string>
#include <string_view>

namespace veloq::io {

namespace {
SocketAddress name_of(int fd, bool peer) {
  SocketAddress address;
  address.reset_for_fill();
  int rc = peer ? ::getpeername(fd, address.data(), address.length_slot())
                : ::getsockname(fd, address.data(), address.length_slot());
  if (rc != 0) throw IoError(errno, std::string(peer ? "getpeername" : "getsockname") + " fd " + std::to_string(fd));
  return address;
}
}  // namespace

namespace {
// The address bytes of an IP address (IPv4-mapped IPv6 as IPv4), or empty.
std::string_view ip_bytes(const SocketAddress& a) {
  if (a.is_ipv4()) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(a.data());
    return {reinterpret_cast<const char*>(&in->sin_addr), sizeof in->sin_addr};
  }
  if (a.is_ipv6()) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(a.data());
    if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr)) return {reinterpret_cast<const char*>(&in6->sin6_addr) + 12, 4};
    return {reinterpret_cast<const char*>(&in6->sin6_addr), sizeof in6->sin6_addr};
  }
  return {};
}

// A peer reached through the loopback device: a loopback address, or one of
// this host's own (the connection's two ends share an address).
bool peer_is_local(int fd) {
  try {
    SocketAddress peer = name_of(fd, true);
    SocketAddress local = name_of(fd, false);
    std::string_view p = ip_bytes(peer);
    if (p.empty()) return true;  // not IP (a Unix socket): no zero-copy there
    if (p.size() == 4 && static_cast<unsigned char>(p[0]) == 127) return true;
    if (p.size() == 16 && IN6_IS_ADDR_LOOPBACK(&reinterpret_cast<const sockaddr_in6*>(peer.data())->sin6_addr))
      return true;
    return p == ip_bytes(local);
  } catch (const IoError&) {
    return true;  // not connected: the send reports it
  }
}
}  // namespace

bool StreamSocket::zero_copy_pays(std::size_t size) const {
  if (size < zero_copy_min_bytes || !RuntimeContext::current("zero_copy_pays").driver().send_zc_supported())
    return false;
  if (peer_ == Peer::unknown) peer_ = peer_is_local(fd_.get()) ? Peer::local : Peer::remote;
  return peer_ == Peer::remote;
}

SocketAddress StreamSocket::local_address() const { return name_of(fd_.get(), false); }
SocketAddress StreamSocket::peer_address() const { return name_of(fd_.get(), true); }

void StreamSocket::set_keepalive(bool on) {
  set_socket_option(fd_.get(), SOL_SOCKET, SO_KEEPALIVE, on ? 1 : 0, "SO_KEEPALIVE");
}
bool StreamSocket::keepalive() const { return get_socket_option(fd_.get(), SOL_SOCKET, SO_KEEPALIVE, "SO_KEEPALIVE"); }
void StreamSocket::set_send_buffer_size(int bytes) {
  set_socket_option(fd_.get(), SOL_SOCKET, SO_SNDBUF, bytes, "SO_SNDBUF");
}
int StreamSocket::send_buffer_size() const { return get_socket_option(fd_.get(), SOL_SOCKET, SO_SNDBUF, "SO_SNDBUF"); }
void StreamSocket::set_receive_buffer_size(int bytes) {
  set_socket_option(fd_.get(), SOL_SOCKET, SO_RCVBUF, bytes, "SO_RCVBUF");
}
int StreamSocket::receive_buffer_size() const {
  return get_socket_option(fd_.get(), SOL_SOCKET, SO_RCVBUF, "SO_RCVBUF");
}

void StreamSocket::set_linger(std::optional<std::chrono::seconds> linger) {
  ::linger value{};
  value.l_onoff = linger.has_value() ? 1 : 0;
  value.l_linger = linger ? static_cast<int>(linger->count()) : 0;
  if (::setsockopt(fd_.get(), SOL_SOCKET, SO_LINGER, &value, sizeof value) != 0)
    throw IoError(errno, "setsockopt SO_LINGER fd " + std::to_string(fd_.get()));
}

namespace internal {

FileDescriptor open_socket(const SocketAddress& address, int type, const char* what) {
  int fd = ::socket(address.family(), type | SOCK_CLOEXEC, 0);
  if (fd < 0) throw IoError(errno, std::string(what) + " " + address.to_string() + ": socket");
  return FileDescriptor(fd);
}

Task<void> connect_socket(int fd, SocketAddress address, Clock::time_point deadline) {
  struct Prepare {
    int fd;
    SocketAddress address;
    const SocketAddress* subject_address() const noexcept { return &address; }
    void operator()(io_uring_sqe* sqe) { io_uring_prep_connect(sqe, fd, address.data(), address.length()); }
  };
  co_await Operation("connect", fd, Prepare{fd, address}, [](int) noexcept {}).with_deadline(deadline);
}

}  // namespace internal

}  // namespace veloq::io
