#include <veloq/io/socket_option.hpp>
#include <veloq/io/tcp_stream.hpp>

#include <netinet/in.h>
#include <netinet/tcp.h>

namespace veloq::io {

Task<TcpStream> TcpStream::connect(SocketAddress address) {
  co_return co_await connect(address, Clock::duration::max());
}

Task<TcpStream> TcpStream::connect(SocketAddress address, Clock::duration timeout) {
  FileDescriptor fd = internal::open_socket(address, SOCK_STREAM, "connect");
  co_await internal::connect_socket(fd.get(), address, deadline_after(timeout));
  co_return TcpStream(std::move(fd));
}

void TcpStream::set_nodelay(bool on) { set_socket_option(fd(), IPPROTO_TCP, TCP_NODELAY, on ? 1 : 0, "TCP_NODELAY"); }
bool TcpStream::nodelay() const { return get_socket_option(fd(), IPPROTO_TCP, TCP_NODELAY, "TCP_NODELAY") != 0; }

}  // namespace veloq::io
