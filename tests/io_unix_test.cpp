#include <doctest/doctest.h>

#include "io_test_support.hpp"

#include <veloq/io/unix_stream.hpp>
#include <veloq/runtime/local_executor.hpp>

#include <unistd.h>

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
