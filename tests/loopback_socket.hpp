// Blocking loopback TCP sockets for tests that drive one side by hand: a
// connection to a port, a connected pair, sending all of a buffer (inline
// or from a thread), small socket buffers so that sends come back partial,
// and closing at scope end.
#pragma once

#include <doctest/doctest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <thread>
#include <utility>
#include <vector>

namespace loopback {

struct FdCloser {
  int fd;
  ~FdCloser() {
    if (fd >= 0) close(fd);
  }
};

// A blocking TCP connection to 127.0.0.1:`port`. With `patience_s`, its
// receives give up after that many seconds of silence, so a lost reply
// fails a case instead of hanging it.
inline int connect_loopback(int port, long patience_s = 0) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  REQUIRE(fd >= 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<std::uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
  if (patience_s > 0) {
    timeval patience{patience_s, 0};
    REQUIRE(::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &patience, sizeof patience) == 0);
  }
  return fd;
}

// A connected TCP pair on 127.0.0.1 (blocking sockets).
inline std::pair<int, int> tcp_pair() {
  int listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  REQUIRE(listener >= 0);
  FdCloser close_listener{listener};
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  REQUIRE(listen(listener, 1) == 0);
  socklen_t len = sizeof addr;
  REQUIRE(getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
  int client = connect_loopback(ntohs(addr.sin_port));
  int server = accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
  REQUIRE(server >= 0);
  return {client, server};
}

inline void send_all(int fd, const char* data, std::size_t n) {
  while (n > 0) {
    ssize_t sent = send(fd, data, n, MSG_NOSIGNAL);
    REQUIRE(sent > 0);
    data += sent;
    n -= static_cast<std::size_t>(sent);
  }
}

// Sends `bytes` on blocking socket `fd` from its own thread, stopping early
// if the socket fails (the test closed its peer).
inline std::thread send_in_background(int fd, std::vector<char> bytes) {
  return std::thread([fd, bytes = std::move(bytes)] {
    std::size_t at = 0;
    while (at < bytes.size()) {
      ssize_t n = ::send(fd, bytes.data() + at, std::min<std::size_t>(1000, bytes.size() - at), MSG_NOSIGNAL);
      if (n <= 0) return;
      at += static_cast<std::size_t>(n);
    }
  });
}

// Shrinks both of `fd`'s socket buffers to 4 KiB.
inline void shrink_socket_buffers(int fd) {
  int small = 4096;
  REQUIRE(::setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &small, sizeof small) == 0);
  REQUIRE(::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small) == 0);
}

}  // namespace loopback
