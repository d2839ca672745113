#include <doctest/doctest.h>

#include "io_test_support.hpp"

#include <veloq/io/socket_address.hpp>
#include <veloq/io/unix_stream.hpp>
#include <veloq/runtime/runtime_context.hpp>
#include <veloq/runtime/local_executor.hpp>

#include <unistd.h>

#include <stdexcept>
#include <string>
#include <vector>

using namespace veloq;
using namespace veloq::io;

namespace {
Task<void> unix_round_trip(std::string path, std::size_t size) {
  auto listener = UnixListener::bind(path);
  auto client = co_await UnixStream::connect(path);
  auto server = co_await listener.accept();
  auto message = io_test::pattern(size);
  auto writer = spawn([](UnixStream& s, std::vector<std::byte>& m) -> Task<void> {
    co_await s.write_all(m.data(), m.size());
  }(client, message));
  std::vector<std::byte> got(size);
  co_await server.read_exact(got.data(), got.size());
  co_await writer;
  CHECK(got == message);
  co_await server.write_all("ok", 2);
  char reply[2];
  co_await client.read_exact(reply, 2);
  CHECK(std::string(reply, 2) == "ok");
}
}  // namespace

TEST_CASE("a small message makes a round trip over a Unix stream socket") {
  std::string path = "/tmp/veloq-io-test-" + std::to_string(::getpid()) + ".sock";
  ::unlink(path.c_str());
  LocalExecutor ex;
  ex.block_on(unix_round_trip(path, 100));
  ::unlink(path.c_str());
}

TEST_CASE("4 MiB cross an abstract Unix stream socket intact") {
  LocalExecutor ex;
  ex.block_on(unix_round_trip("@veloq-io-test-" + std::to_string(::getpid()), 4 << 20));
}

TEST_CASE("an abstract Unix name using all 107 bytes after the leading NUL binds and connects") {
  LocalExecutor ex;
  ex.block_on([]() -> Task<void> {
    std::string name = "@veloq-test-" + std::to_string(::getpid()) + "-";
    name.resize(108, 'x');  // '@' stands for sun_path[0] = '\0'; 107 name bytes follow
    auto listener = UnixListener::bind(name);
    auto client = co_await UnixStream::connect(name);
    auto server = co_await listener.accept();
    CHECK(listener.local_address().to_string() == name);
    co_await client.write_all("k", 1);
    char c = 0;
    co_await server.read_exact(&c, 1);
    CHECK(c == 'k');
  }());
  // A path name still needs its NUL: 108 bytes are refused.
  CHECK_THROWS_AS(SocketAddress::unix_path(std::string(108, 'p')), std::invalid_argument);
  CHECK_THROWS_AS(SocketAddress::unix_path("@" + std::string(108, 'p')), std::invalid_argument);
}

TEST_CASE("SEND_ZC on a Unix stream falls back to a plain send and keeps the shard's SEND_ZC") {
  LocalExecutor ex;
  ex.block_on([]() -> Task<void> {
    std::string name = "@veloq-test-zc-" + std::to_string(::getpid());
    auto listener = UnixListener::bind(name);
    auto client = co_await UnixStream::connect(name);
    auto server = co_await listener.accept();
    auto data = io_test::pattern(4096);
    std::size_t sent = co_await client.write_zero_copy_always(data.data(), data.size());
    CHECK(sent == data.size());
    std::vector<std::byte> got(sent);
    co_await server.read_exact(got.data(), got.size());
    CHECK(got == data);
    CHECK(RuntimeContext::current().driver().send_zc_supported());
  }());
}
