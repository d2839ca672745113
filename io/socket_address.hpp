// SocketAddress: an IPv4, IPv6 or Unix-domain socket address, held by value
// (a sockaddr_storage and its length) so it can be handed to the kernel as is.
//
//   auto a = SocketAddress::parse("127.0.0.1:8080");     // or "[::1]:8080", "[fe80::1%eth0]:8080"
//   auto b = SocketAddress::ipv4("0.0.0.0", 0);
//   auto c = SocketAddress::unix_path("/run/app.sock");
//   a.port();  a.to_string();   // 8080, "127.0.0.1:8080"
#pragma once

#include <sys/socket.h>

#include <cstdint>
#include <string>
#include <string_view>

namespace veloq::io {

class SocketAddress {
 public:
  SocketAddress() noexcept = default;
  // Copies a kernel-supplied address.
  SocketAddress(const sockaddr* address, socklen_t length) noexcept;

  // Parses "a.b.c.d:port" or "[v6]:port"; throws std::invalid_argument. A
  // link-local IPv6 host carries its interface as "%name" or "%index".
  static SocketAddress parse(std::string_view host_and_port);
  // A numeric IPv4 or IPv6 host and a port; throws std::invalid_argument.
  static SocketAddress ip(std::string_view host, std::uint16_t port);
  static SocketAddress ipv4(std::string_view host, std::uint16_t port);
  static SocketAddress ipv6(std::string_view host, std::uint16_t port);
  // A Unix-domain path; a leading '@' names an abstract socket.
  static SocketAddress unix_path(std::string_view path);

  int family() const noexcept { return storage_.ss_family; }
  bool is_ipv4() const noexcept { return family() == AF_INET; }
  bool is_ipv6() const noexcept { return family() == AF_INET6; }
  bool is_unix() const noexcept { return family() == AF_UNIX; }
  std::uint16_t port() const noexcept;  // 0 for Unix addresses
  SocketAddress with_port(std::uint16_t port) const noexcept;

  // "127.0.0.1:80", "[::1]:80", "[fe80::1%2]:80" (scope as an interface
  // index, which parse() takes back), a Unix path, or "(unspecified)".
  std::string to_string() const;

  const sockaddr* data() const noexcept { return reinterpret_cast<const sockaddr*>(&storage_); }
  sockaddr* data() noexcept { return reinterpret_cast<sockaddr*>(&storage_); }
  socklen_t length() const noexcept { return length_; }
  // For calls that fill the address in: the capacity, then the length they wrote.
  socklen_t* length_slot() noexcept { return &length_; }
  void reset_for_fill() noexcept { length_ = sizeof storage_; }

  friend bool operator==(const SocketAddress& a, const SocketAddress& b) noexcept;

 private:
  sockaddr_storage storage_{};
  socklen_t length_ = 0;
};

}  // namespace veloq::io
