#include <doctest/doctest.h>

#include <veloq/io/io_error.hpp>
#include <veloq/io/socket_address.hpp>
#include <veloq/io/udp_socket.hpp>
#include <veloq/runtime/local_executor.hpp>

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>

#include <cerrno>
#include <optional>
#include <stdexcept>
#include <string>

using namespace veloq;
using namespace veloq::io;

namespace {

// "fe80::…%name" for the first link-local IPv6 address of this machine, if any.
std::optional<std::string> link_local_host() {
  ifaddrs* list = nullptr;
  if (::getifaddrs(&list) != 0) return std::nullopt;
  std::optional<std::string> found;
  for (ifaddrs* i = list; i != nullptr && !found; i = i->ifa_next) {
    if (i->ifa_addr == nullptr || i->ifa_addr->sa_family != AF_INET6) continue;
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(i->ifa_addr);
    if (!IN6_IS_ADDR_LINKLOCAL(&in6->sin6_addr)) continue;
    char text[INET6_ADDRSTRLEN] = {};
    ::inet_ntop(AF_INET6, &in6->sin6_addr, text, sizeof text);
    found = std::string(text) + "%" + i->ifa_name;
  }
  ::freeifaddrs(list);
  return found;
}

}  // namespace

TEST_CASE("addresses parse and print back") {
  for (const char* text : {"127.0.0.1:80", "0.0.0.0:0", "[::1]:65535", "[fe80::1%1]:8080"})
    CHECK(SocketAddress::parse(text).to_string() == text);
  CHECK(SocketAddress::parse("[::1]:7").is_ipv6());
  CHECK(SocketAddress::parse("10.1.2.3:7").port() == 7);
  CHECK(SocketAddress::parse("[::1]:7").with_port(9).to_string() == "[::1]:9");
}

TEST_CASE("malformed addresses are refused with invalid_argument") {
  for (const char* text : {"127.0.0.1", "127.0.0.1:", "127.0.0.1:65536", "127.0.0.1:8o", "localhost:80",
                           "::1:80", "[::1]", "[::1%]:80", "[fe80::1%4294967296]:80", "[fe80::1%no-such-if0]:80"})
    CHECK_THROWS_AS(SocketAddress::parse(text), std::invalid_argument);
}

TEST_CASE("an IPv6 interface name becomes its index, which the address prints") {
  const unsigned lo = ::if_nametoindex("lo");
  REQUIRE(lo != 0);
  auto a = SocketAddress::parse("[fe80::1%lo]:53");
  CHECK(reinterpret_cast<const sockaddr_in6*>(a.data())->sin6_scope_id == lo);
  CHECK(a.to_string() == "[fe80::1%" + std::to_string(lo) + "]:53");
  CHECK(SocketAddress::parse(a.to_string()) == a);
}

TEST_CASE("a datagram makes a round trip over a link-local IPv6 address named with its interface") {
  auto host = link_local_host();
  if (!host) {
    MESSAGE("skipped: this machine has no link-local IPv6 address");
    return;
  }
  LocalExecutor ex;
  ex.block_on([](std::string host) -> Task<void> {
    // Without its interface the kernel cannot place a link-local address.
    std::string bare = host.substr(0, host.find('%'));
    try {
      (void)UdpSocket::bind(SocketAddress::parse("[" + bare + "]:0"));
      FAIL("binding a link-local address with no interface succeeded");
    } catch (const IoError& e) {
      CHECK(e.code().value() == EINVAL);
    }
    auto a = UdpSocket::bind(SocketAddress::parse("[" + host + "]:0"));
    auto b = UdpSocket::bind(SocketAddress::parse("[" + host + "]:0"));
    const std::string to = b.local_address().to_string();
    CHECK(to.find('%') != std::string::npos);
    char message[] = "link-local";
    CHECK(co_await a.send_to(message, sizeof message, SocketAddress::parse(to)) == sizeof message);
    char buffer[64] = {};
    Datagram d = co_await b.recv_from(buffer, sizeof buffer);
    CHECK(d.size == sizeof message);
    CHECK(std::string(buffer) == message);
    CHECK(d.from == a.local_address());
    CHECK(SocketAddress::parse(d.from.to_string()) == d.from);
  }(*host));
}
