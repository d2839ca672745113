#include <doctest/doctest.h>

#include "io_test_support.hpp"

#include <veloq/io/udp_socket.hpp>
#include <veloq/runtime/local_executor.hpp>

#include <vector>

using namespace veloq;
using namespace veloq::io;

namespace {
Task<void> udp_round_trip(const char* bind_text, std::size_t size) {
  auto a = UdpSocket::bind(SocketAddress::parse(bind_text));
  auto b = UdpSocket::bind(SocketAddress::parse(bind_text));
  auto message = io_test::pattern(size);
  CHECK(co_await a.send_to(message.data(), message.size(), b.local_address()) == size);
  std::vector<std::byte> buffer(size + 16);
  Datagram d = co_await b.recv_from(buffer.data(), buffer.size());
  CHECK(d.size == size);
  CHECK_FALSE(d.truncated);
  CHECK(d.from == a.local_address());
  buffer.resize(d.size);
  CHECK(buffer == message);
  // And back to the address the datagram came from.
  CHECK(co_await b.send_to(buffer.data(), buffer.size(), d.from) == size);
  std::vector<std::byte> echoed(size);
  Datagram e = co_await a.recv_from(echoed.data(), echoed.size());
  CHECK(e.size == size);
  CHECK(echoed == message);
}
}  // namespace

TEST_CASE("a small UDP datagram makes a round trip with its sender's address (IPv4)") {
  LocalExecutor ex;
  ex.block_on(udp_round_trip("127.0.0.1:0", 32));
}

TEST_CASE("a large UDP datagram (60 KiB) makes a round trip (IPv6)") {
  LocalExecutor ex;
  ex.block_on(udp_round_trip("[::1]:0", 60 * 1024));
}

TEST_CASE("a UDP datagram longer than the buffer is reported as truncated") {
  LocalExecutor ex;
  ex.block_on([]() -> Task<void> {
    auto a = UdpSocket::bind(SocketAddress::parse("127.0.0.1:0"));
    auto b = UdpSocket::bind(SocketAddress::parse("127.0.0.1:0"));
    co_await a.send_to("0123456789", 10, b.local_address());
    char small[4];
    Datagram d = co_await b.recv_from(small, sizeof small);
    CHECK(d.size == 4);
    CHECK(d.truncated);
  }());
}
