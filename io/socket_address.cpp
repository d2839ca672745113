#include <veloq/io/socket_address.hpp>

#include <arpa/inet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/un.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <stdexcept>

namespace veloq::io {

SocketAddress::SocketAddress(const sockaddr* address, socklen_t length) noexcept {
  if (length > sizeof storage_) length = sizeof storage_;
  std::memcpy(&storage_, address, length);
  length_ = length;
}

namespace {

// The interface index of an IPv6 scope: a number, or an interface name looked
// up once (if_nametoindex, a short ioctl: parse addresses at start-up).
std::uint32_t scope_id(std::string_view scope, std::string_view host) {
  auto bad = [&](const char* why) {
    return std::invalid_argument("veloq: '" + std::string(host) + "' " + why);
  };
  if (scope.empty()) throw bad("has an empty scope after '%'");
  if (std::all_of(scope.begin(), scope.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    std::uint64_t id = 0;
    for (char c : scope) {
      id = id * 10 + static_cast<std::uint64_t>(c - '0');
      if (id > UINT32_MAX) throw bad("has a scope id beyond 32 bits");
    }
    return static_cast<std::uint32_t>(id);
  }
  unsigned index = ::if_nametoindex(std::string(scope).c_str());
  if (index == 0) throw bad("names no network interface");
  return index;
}

}  // namespace

SocketAddress SocketAddress::ipv4(std::string_view host, std::uint16_t port) {
  SocketAddress a;
  auto* in = reinterpret_cast<sockaddr_in*>(&a.storage_);
  in->sin_family = AF_INET;
  in->sin_port = htons(port);
  std::string text(host);
  if (::inet_pton(AF_INET, text.c_str(), &in->sin_addr) != 1)
    throw std::invalid_argument("veloq: '" + text + "' is not a numeric IPv4 address");
  a.length_ = sizeof(sockaddr_in);
  return a;
}

SocketAddress SocketAddress::ipv6(std::string_view host, std::uint16_t port) {
  SocketAddress a;
  auto* in6 = reinterpret_cast<sockaddr_in6*>(&a.storage_);
  in6->sin6_family = AF_INET6;
  in6->sin6_port = htons(port);
  // A link-local address names its interface after a '%': "fe80::1%eth0" or "fe80::1%2".
  std::size_t percent = host.find('%');
  std::string text(host.substr(0, percent));
  if (::inet_pton(AF_INET6, text.c_str(), &in6->sin6_addr) != 1)
    throw std::invalid_argument("veloq: '" + std::string(host) + "' is not a numeric IPv6 address");
  if (percent != std::string_view::npos) in6->sin6_scope_id = scope_id(host.substr(percent + 1), host);
  a.length_ = sizeof(sockaddr_in6);
  return a;
}

SocketAddress SocketAddress::ip(std::string_view host, std::uint16_t port) {
  return host.find(':') != std::string_view::npos ? ipv6(host, port) : ipv4(host, port);
}

SocketAddress SocketAddress::parse(std::string_view text) {
  std::size_t colon = text.rfind(':');
  if (colon == std::string_view::npos || colon + 1 == text.size())
    throw std::invalid_argument("veloq: '" + std::string(text) + "' is not host:port");
  std::string_view host = text.substr(0, colon);
  unsigned long port = 0;
  for (char c : text.substr(colon + 1)) {
    if (c < '0' || c > '9' || port > 65535)
      throw std::invalid_argument("veloq: '" + std::string(text) + "' has a bad port");
    port = port * 10 + static_cast<unsigned long>(c - '0');
  }
  if (port > 65535) throw std::invalid_argument("veloq: '" + std::string(text) + "' has a bad port");
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']')
    return ipv6(host.substr(1, host.size() - 2), static_cast<std::uint16_t>(port));
  return ipv4(host, static_cast<std::uint16_t>(port));
}

SocketAddress SocketAddress::unix_path(std::string_view path) {
  SocketAddress a;
  auto* un = reinterpret_cast<sockaddr_un*>(&a.storage_);
  un->sun_family = AF_UNIX;
  // A path needs room for its NUL; an abstract name ('@' stands for the
  // leading NUL) may fill sun_path.
  const bool abstract = !path.empty() && path.front() == '@';
  if (path.empty() || path.size() > sizeof un->sun_path - (abstract ? 0 : 1))
    throw std::invalid_argument("veloq: Unix socket path '" + std::string(path) + "' is empty or too long");
  std::memcpy(un->sun_path, path.data(), path.size());
  if (abstract) un->sun_path[0] = '\0';  // abstract namespace
  a.length_ = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size() + (abstract ? 0 : 1));
  return a;
}

std::uint16_t SocketAddress::port() const noexcept {
  if (is_ipv4()) return ntohs(reinterpret_cast<const sockaddr_in*>(&storage_)->sin_port);
  if (is_ipv6()) return ntohs(reinterpret_cast<const sockaddr_in6*>(&storage_)->sin6_port);
  return 0;
}

SocketAddress SocketAddress::with_port(std::uint16_t port) const noexcept {
  SocketAddress a = *this;
  if (a.is_ipv4()) reinterpret_cast<sockaddr_in*>(&a.storage_)->sin_port = htons(port);
  if (a.is_ipv6()) reinterpret_cast<sockaddr_in6*>(&a.storage_)->sin6_port = htons(port);
  return a;
}

std::string SocketAddress::to_string() const {
  char text[INET6_ADDRSTRLEN] = {};
  if (is_ipv4()) {
    ::inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(&storage_)->sin_addr, text, sizeof text);
    return std::string(text) + ":" + std::to_string(port());
  }
  if (is_ipv6()) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(&storage_);
    ::inet_ntop(AF_INET6, &in6->sin6_addr, text, sizeof text);
    std::string scope = in6->sin6_scope_id != 0 ? "%" + std::to_string(in6->sin6_scope_id) : "";
    return "[" + std::string(text) + scope + "]:" + std::to_string(port());
  }
  if (is_unix()) {
    const auto* un = reinterpret_cast<const sockaddr_un*>(&storage_);
    std::size_t n = length_ > offsetof(sockaddr_un, sun_path) ? length_ - offsetof(sockaddr_un, sun_path) : 0;
    if (n == 0) return "(unnamed unix socket)";
    if (un->sun_path[0] == '\0') return "@" + std::string(un->sun_path + 1, n - 1);
    return std::string(un->sun_path, strnlen(un->sun_path, n));
  }
  return "(unspecified)";
}

bool operator==(const SocketAddress& a, const SocketAddress& b) noexcept {
  return a.length_ == b.length_ && std::memcmp(&a.storage_, &b.storage_, a.length_) == 0;
}

}  // namespace veloq::io
