#include <veloq/io/unix_stream.hpp>

namespace veloq::io {

Task<UnixStream> UnixStream::connect(SocketAddress address) {
  FileDescriptor fd = internal::open_socket(address, SOCK_STREAM, "connect");
  co_await internal::connect_socket(fd.get(), address, Clock::time_point::max());
  co_return UnixStream(std::move(fd));
}

}  // namespace veloq::io
