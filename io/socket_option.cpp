#include <veloq/io/io_error.hpp>
#include <veloq/io/socket_address.hpp>
#include <veloq/io/socket_option.hpp>

#include <sys/socket.h>

#include <cerrno>
#include <string>

namespace veloq::io {

namespace {
std::string subject(int fd) {
  sockaddr_storage storage{};
  socklen_t len = sizeof storage;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&storage), &len) == 0)
    return SocketAddress(reinterpret_cast<const sockaddr*>(&storage), len).to_string();
  return "fd " + std::to_string(fd);
}
}  // namespace

void set_socket_option(int fd, int level, int name, int value, const char* name_text) {
  if (::setsockopt(fd, level, name, &value, sizeof value) != 0)
    throw IoError(errno, std::string("setsockopt ") + name_text + " " + subject(fd));
}

int get_socket_option(int fd, int level, int name, const char* name_text) {
  int value = 0;
  socklen_t len = sizeof value;
  if (::getsockopt(fd, level, name, &value, &len) != 0)
    throw IoError(errno, std::string("getsockopt ") + name_text + " " + subject(fd));
  return value;
}

}  // namespace veloq::io
