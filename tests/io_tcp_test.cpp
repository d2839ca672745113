#include <doctest/doctest.h>

#include "io_test_support.hpp"

#include <veloq/io/io_error.hpp>
#include <veloq/io/tcp_listener.hpp>
#include <veloq/io/tcp_stream.hpp>
#include <veloq/runtime/local_executor.hpp>
#include <veloq/runtime/sleep.hpp>
#include <veloq/runtime/yield.hpp>

#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <memory>
#include <string>
#include <vector>

using namespace veloq;
using namespace veloq::io;
using namespace std::chrono_literals;

namespace {

Task<void> echo_once(TcpStream stream, std::size_t size) {
  std::vector<std::byte> buffer(64 * 1024);
  std::size_t done = 0;
  while (done < size) {
    std::size_t n = co_await stream.read(buffer.data(), buffer.size());
    if (n == 0) break;
    co_await stream.write_all(buffer.data(), n);
    done += n;
  }
}

Task<void> round_trip(SocketAddress bind_address, std::size_t size) {
  auto listener = TcpListener::bind(bind_address);
  auto client = co_await TcpStream::connect(listener.local_address());
  auto server = spawn(echo_once(co_await listener.accept(), size));
  auto sent = io_test::pattern(size);
  // Write and read concurrently: a large payload does not fit in the socket buffers.
  auto writer = spawn([](TcpStream& s, std::vector<std::byte>& data) -> Task<void> {
    co_await s.write_all(data.data(), data.size());
  }(client, sent));
  std::vector<std::byte> received(size);
  co_await client.read_exact(received.data(), received.size());
  co_await writer;
  co_await server;
  CHECK(received == sent);
}

}  // namespace

TEST_CASE("a small message makes a round trip over loopback TCP (IPv4)") {
  LocalExecutor ex;
  ex.block_on(round_trip(SocketAddress::parse("127.0.0.1:0"), 5));
}

TEST_CASE("4 MiB make a round trip over loopback TCP intact") {
  LocalExecutor ex;
  ex.block_on(round_trip(SocketAddress::parse("127.0.0.1:0"), 4 << 20));
}

TEST_CASE("a message makes a round trip over loopback TCP (IPv6)") {
  LocalExecutor ex;
  ex.block_on(round_trip(SocketAddress::parse("[::1]:0"), 1000));
}

TEST_CASE("one shard serves 1,000 concurrent connections") {
  constexpr int connections = 1000;
  io_test::raise_fd_limit(4 * connections);
  LocalExecutor ex;
  int completed = ex.block_on([]() -> Task<int> {
    auto listener = TcpListener::bind(SocketAddress::parse("127.0.0.1:0"), {.backlog = 4096});
    auto address = listener.local_address();
    auto acceptor = spawn([](TcpListener& l) -> Task<void> {
      for (int i = 0; i < connections; ++i) spawn(echo_once(co_await l.accept(), 16)).detach();
    }(listener));
    std::vector<JoinHandle<bool>> clients;
    for (int i = 0; i < connections; ++i)
      clients.push_back(spawn([](SocketAddress to, int id) -> Task<bool> {
        auto stream = co_await TcpStream::connect(to);
        auto message = io_test::pattern(16, static_cast<std::uint32_t>(id));
        co_await stream.write_all(message.data(), message.size());
        std::vector<std::byte> reply(16);
        co_await stream.read_exact(reply.data(), reply.size());
        co_return reply == message;
      }(address, i)));
    int ok = 0;
    for (auto& c : clients) ok += co_await c ? 1 : 0;
    co_await acceptor;
    co_return ok;
  }());
  CHECK(completed == connections);
}

TEST_CASE("read_exact reports a peer that closes mid-message as UnexpectedEof") {
  LocalExecutor ex;
  ex.block_on([]() -> Task<void> {
    auto pair = co_await io_test::connected_pair();
    co_await pair.server.write_all("abc", 3);
    co_await pair.server.close();
    char buffer[10];
    CHECK_THROWS_AS(co_await pair.client.read_exact(buffer, sizeof buffer), UnexpectedEof);
    // A plain read after the end of the stream returns 0.
    CHECK(co_await pair.client.read(buffer, sizeof buffer) == 0);
  }());
}

TEST_CASE("a peer that resets mid-read gives ECONNRESET and the shard keeps running") {
  LocalExecutor ex;
  ex.block_on([]() -> Task<void> {
    auto pair = co_await io_test::connected_pair();
    auto reader = spawn([](TcpStream& s) -> Task<int> {
      char buffer[64];
      try {
        co_await s.read(buffer, sizeof buffer);
      } catch (const IoError& e) {
        CHECK(std::string(e.what()).find("ECONNRESET") != std::string::npos);
        co_return e.code().value();
      }
      co_return 0;
    }(pair.client));
    co_await veloq::yield();
    pair.server.set_linger(std::chrono::seconds(0));
    co_await pair.server.close();  // linger 0: RST instead of FIN
    CHECK(co_await reader == ECONNRESET);
    // The shard still does I/O.
    auto again = co_await io_test::connected_pair();
    co_await again.client.write_all("x", 1);
    char c = 0;
    co_await again.server.read_exact(&c, 1);
    CHECK(c == 'x');
  }());
}

TEST_CASE("writing to a peer that reset gives EPIPE or ECONNRESET") {
  LocalExecutor ex;
  ex.block_on([]() -> Task<void> {
    auto pair = co_await io_test::connected_pair();
    pair.server.set_linger(std::chrono::seconds(0));
    co_await pair.server.close();
    auto chunk = io_test::pattern(1 << 20);
    int error = 0;
    try {
      for (int i = 0; i < 64; ++i) co_await pair.client.write_all(chunk.data(), chunk.size());
    } catch (const IoError& e) {
      error = e.code().value();
    }
    CHECK((error == EPIPE || error == ECONNRESET));
  }());
}

TEST_CASE("a peer that resets mid-write gives EPIPE or ECONNRESET") {
  LocalExecutor ex;
  ex.block_on([]() -> Task<void> {
    auto pair = co_await io_test::connected_pair();
    // 16 MiB cannot fit in the socket buffers: the write is in flight when the reset arrives.
    auto writer = spawn([](TcpStream& s) -> Task<int> {
      auto data = io_test::pattern(16 << 20);
      try {
        co_await s.write_all(data.data(), data.size());
      } catch (const IoError& e) {
        co_return e.code().value();
      }
      co_return 0;
    }(pair.client));
    char buffer[4096];
    co_await pair.server.read_exact(buffer, sizeof buffer);  // the write has started
    pair.server.set_linger(std::chrono::seconds(0));
    co_await pair.server.close();
    int error = co_await writer;
    CHECK((error == EPIPE || error == ECONNRESET));
  }());
}

TEST_CASE("connecting to a port nobody listens on throws ECONNREFUSED naming the address") {
  LocalExecutor ex;
  ex.block_on([]() -> Task<void> {
    SocketAddress address;
    {
      auto probe = TcpListener::bind(SocketAddress::parse("127.0.0.1:0"));
      address = probe.local_address();
    }
    try {
      co_await TcpStream::connect(address);
      FAIL("connect succeeded");
    } catch (const IoError& e) {
      CHECK(e.code().value() == ECONNREFUSED);
      CHECK(std::string(e.what()) == "connect " + address.to_string() + ": Connection refused (ECONNREFUSED)");
    }
  }());
}

TEST_CASE("connect gives up with TimeoutError when the listener's backlog is full") {
  LocalExecutor ex;
  ex.block_on([]() -> Task<void> {
    // Nobody accepts, so the queue of a listen(0) socket fills after one or two
    // connections and the kernel drops further SYNs: those connects hang.
    auto listener = TcpListener::bind(SocketAddress::parse("127.0.0.1:0"), {.backlog = 0});
    std::vector<TcpStream> held;
    bool timed_out = false;
    for (int i = 0; i < 16 && !timed_out; ++i) {
      try {
        held.push_back(co_await TcpStream::connect(listener.local_address(), 200ms));
      } catch (const TimeoutError& e) {
        timed_out = true;
        CHECK(e.code().value() == ETIMEDOUT);
        CHECK(std::string(e.what()).find("connect 127.0.0.1:") == 0);
      }
    }
    CHECK(timed_out);
  }());
}

TEST_CASE("TCP socket options can be set and read back") {
  LocalExecutor ex;
  ex.block_on([]() -> Task<void> {
    auto pair = co_await io_test::connected_pair();
    pair.client.set_nodelay(true);
    CHECK(pair.client.nodelay());
    pair.client.set_keepalive(true);
    CHECK(pair.client.keepalive());
    pair.client.set_send_buffer_size(64 * 1024);
    CHECK(pair.client.send_buffer_size() >= 64 * 1024);
    pair.client.set_receive_buffer_size(64 * 1024);
    CHECK(pair.client.receive_buffer_size() >= 64 * 1024);
    CHECK(pair.client.peer_address() == pair.server.local_address());
  }());
}

TEST_CASE("shutdown sends end-of-stream while the other direction stays open") {
  LocalExecutor ex;
  ex.block_on([]() -> Task<void> {
    auto pair = co_await io_test::connected_pair();
    co_await pair.client.shutdown(SHUT_WR);
    char c = 0;
    CHECK(co_await pair.server.read(&c, 1) == 0);
    co_await pair.server.write_all("y", 1);
    co_await pair.client.read_exact(&c, 1);
    CHECK(c == 'y');
  }());
}

// Before, the read held the socket open: the reader waited for good and the
// peer never saw the end (both checks failed).
TEST_CASE("closing a stream while another task reads it ends the read with ECANCELED and the peer sees the end") {
  LocalExecutor ex;
  ex.block_on([]() -> Task<void> {
    auto pair = co_await io_test::connected_pair();
    auto reader = spawn([](TcpStream& s) -> Task<int> {
      char buffer[16];
      try {
        (void)co_await s.read(buffer, sizeof buffer);
        co_return 0;
      } catch (const IoError& e) {
        co_return e.code().value();
      }
    }(pair.client));
    co_await yield();  // the read is in flight
    co_await pair.client.close();
    char c = 0;
    CHECK(co_await pair.server.read(&c, 1).with_timeout(10s) == 0);
    for (int i = 0; i < 1000 && !reader.done(); ++i) co_await sleep_for(10ms);
    REQUIRE(reader.done());
    CHECK(co_await reader == ECANCELED);
  }());
}

TEST_CASE("writev sends several buffers in one operation; zero-copy send delivers its bytes") {
  LocalExecutor ex;
  ex.block_on([]() -> Task<void> {
    auto pair = co_await io_test::connected_pair();
    char a[] = "hello ", b[] = "world";
    iovec parts[] = {{a, 6}, {b, 5}};
    CHECK(co_await pair.client.writev(parts, 2) == 11);
    char received[11];
    co_await pair.server.read_exact(received, sizeof received);
    CHECK(std::string(received, 11) == "hello world");
    // The kernel lets go of a zero-copy buffer only once the peer has taken the
    // data (on loopback), so the reader runs concurrently.
    auto big = io_test::pattern(256 * 1024);
    auto reader = spawn([](TcpStream& s, std::size_t size) -> Task<std::vector<std::byte>> {
      std::vector<std::byte> got(size);
      std::size_t n = 0;
      while (n < size) {
        std::size_t r = co_await s.read(got.data() + n, size - n);
        if (r == 0) break;
        n += r;
      }
      got.resize(n);
      co_return got;
    }(pair.server, big.size()));
    // SEND_ZC whatever the size; a kernel that refuses it gets plain sends.
    std::size_t sent = 0;
    while (sent < big.size()) sent += co_await pair.client.write_zero_copy_always(big.data() + sent, big.size() - sent);
    co_await pair.client.shutdown(SHUT_WR);
    auto got = co_await reader;
    CHECK(got.size() == big.size());
    CHECK(std::equal(got.begin(), got.end(), big.begin()));
  }());
}

TEST_CASE("write_zero_copy sends plainly to a loopback peer, where zero-copy measured slower") {
  LocalExecutor ex;
  ex.block_on([]() -> Task<void> {
    auto pair = co_await io_test::connected_pair();
    CHECK_FALSE(pair.client.zero_copy_pays(100));
    CHECK_FALSE(pair.client.zero_copy_pays(16 << 20));
    // A plain send completes without waiting for the reader, so no reader task is needed.
    auto data = io_test::pattern(64 * 1024);
    std::size_t sent = co_await pair.client.write_zero_copy(data.data(), data.size());
    CHECK(sent > 0);
    std::vector<std::byte> got(sent);
    co_await pair.server.read_exact(got.data(), got.size());
    CHECK(std::equal(got.begin(), got.end(), data.begin()));
  }());
}

TEST_CASE("a shard whose kernel refused SEND_ZC sends zero-copy writes plainly; other shards are not affected") {
  LocalExecutor ex;
  ex.block_on([]() -> Task<void> {
    io::Driver& driver = RuntimeContext::current().driver();
    CHECK(driver.send_zc_supported());  // kernels from 6.0 on have the opcode
    driver.send_zc_refused();           // what an EINVAL for the opcode records
    auto pair = co_await io_test::connected_pair();
    // Let what setting up the pair left in flight (a close) complete; the
    // shard's own wake-up read stays armed.
    for (int i = 0; i < 1000 && driver.in_flight() > 1; ++i) co_await sleep_for(1ms);
    // A plain send ends in one CQE; SEND_ZC in two (the result, then the
    // notification that the kernel let go of the buffer).
    auto data = io_test::pattern(64 * 1024);
    std::uint64_t completed_before = driver.stats().completed;
    std::size_t sent = co_await pair.client.write_zero_copy_always(data.data(), data.size());
    CHECK(driver.stats().completed - completed_before == 1);
    CHECK(sent > 0);
    std::vector<std::byte> got(sent);
    co_await pair.server.read_exact(got.data(), got.size());
    CHECK(std::equal(got.begin(), got.end(), data.begin()));
  }());
  LocalExecutor other;
  CHECK(other.driver().send_zc_supported());
}

namespace {
Task<void> accept_one(TcpListener& listener) {
  TcpStream stream = co_await listener.accept();
  co_await veloq::yield();
}
}  // namespace

TEST_CASE("accepts whose task is cancelled at any moment leak no descriptor") {
  // Connections race the cancels: some are accepted and handed out, some
  // reach a task that is gone (they wait in the listener's queue), some wake
  // a task that is cancelled before it runs. Closing the listener and the
  // clients must leave the process with the descriptors it started with.
  const int before = io_test::open_fd_count();
  {
    LocalExecutor ex;
    ex.block_on([]() -> Task<void> {
      auto listener = TcpListener::bind(SocketAddress::parse("127.0.0.1:0"));
      SocketAddress address = listener.local_address();
      std::vector<int> clients;
      for (int round = 0; round < 100; ++round) {
        std::vector<JoinHandle<void>> acceptors;
        for (int i = 0; i < 4; ++i) acceptors.push_back(spawn(accept_one(listener)));
        for (int i = 0; i < 4; ++i) {
          // Loopback connects complete in the backlog without an accept.
          int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
          REQUIRE(::connect(fd, address.data(), address.length()) == 0);
          clients.push_back(fd);
        }
        for (int y = 0; y < round % 4; ++y) co_await veloq::yield();
        co_await io_test::cancel_and_join(acceptors);
      }
      for (int fd : clients) ::close(fd);
    }());
  }
  CHECK(io_test::open_fd_count() == before);
}

namespace {
Task<std::size_t> read_one_byte(TcpStream& stream, char& byte) { co_return co_await stream.read(&byte, 1); }
}  // namespace

TEST_CASE("a busy shard whose receives wait in the kernel enters it only when something is due") {
  LocalExecutor ex;
  ex.block_on([](LocalExecutor& executor) -> Task<void> {
    auto pair = co_await io_test::connected_pair();
    char byte = 0;
    auto reader = spawn(read_one_byte(pair.client, byte));
    for (int i = 0; i < 10; ++i) co_await yield();  // the receive is armed in the kernel now
    std::uint64_t enters = executor.driver().stats().enters;
    std::uint64_t turns = executor.stats().loop_turns;
    for (int i = 0; i < 100'000; ++i) co_await yield();  // hundreds of busy turns, nothing completes
    CHECK(executor.stats().loop_turns - turns > 100);
    CHECK(executor.driver().stats().enters - enters < 20);
    co_await pair.server.write_all("x", 1);
    CHECK(co_await reader == 1);  // the completion is still collected
    CHECK(byte == 'x');
  }(ex));
}

// The ASan build checks this one: the error woke the task, then the
// listener closed before it ran, and await_resume built its message from
// the freed accept queue (heap-use-after-free).
TEST_CASE("an accept error still names the listener when the listener closed before the task ran") {
  rlimit saved{};
  REQUIRE(::getrlimit(RLIMIT_NOFILE, &saved) == 0);
  LocalExecutor ex;
  std::vector<int> filler;
  ex.block_on([](rlimit saved, std::vector<int>& filler) -> Task<void> {
    auto listener = std::make_unique<TcpListener>(TcpListener::bind(SocketAddress::parse("127.0.0.1:0")));
    auto client = co_await TcpStream::connect(listener->local_address());
    io::Driver& driver = RuntimeContext::current().driver();
    const unsigned baseline = driver.in_flight();
    rlimit low = saved;
    low.rlim_cur = static_cast<rlim_t>(io_test::open_fd_count() + 8);
    REQUIRE(::setrlimit(RLIMIT_NOFILE, &low) == 0);
    for (int fd = ::dup(0); fd >= 0; fd = ::dup(0)) filler.push_back(fd);
    auto acceptor = spawn([](TcpListener& l) -> Task<std::string> {
      try {
        TcpStream s = co_await l.accept();
        co_return "accepted";
      } catch (const IoError& e) {
        co_return e.what();
      }
    }(*listener));
    // The acceptor arms the accept; its EMFILE completion wakes the
    // acceptor, and this task runs first on that turn.
    for (int i = 0; i < 100000; ++i) {
      co_await yield();
      if (driver.in_flight() == baseline) break;
    }
    REQUIRE_FALSE(acceptor.done());
    listener.reset();
    std::string what = co_await acceptor;
    CHECK(what.substr(0, 17) == "accept 127.0.0.1:");
    CHECK(what.substr(what.size() - 8) == "(EMFILE)");
  }(saved, filler));
  for (int fd : filler) ::close(fd);
  ::setrlimit(RLIMIT_NOFILE, &saved);
}

TEST_CASE("accept reports EMFILE naming the listener, and accepts the waiting connection once a descriptor frees") {
  rlimit saved{};
  REQUIRE(::getrlimit(RLIMIT_NOFILE, &saved) == 0);
  LocalExecutor ex;
  ex.block_on([](rlimit saved) -> Task<void> {
    auto listener = TcpListener::bind(SocketAddress::parse("127.0.0.1:0"));
    auto client = co_await TcpStream::connect(listener.local_address());
    // Fill every descriptor below a low limit.
    const int in_use = io_test::open_fd_count();
    rlimit low = saved;
    low.rlim_cur = static_cast<rlim_t>(in_use + 8);
    REQUIRE(::setrlimit(RLIMIT_NOFILE, &low) == 0);
    std::vector<int> filler;
    for (;;) {
      int fd = ::dup(0);
      if (fd < 0) break;
      filler.push_back(fd);
    }
    std::string message;
    int error = 0;
    try {
      TcpStream s = co_await listener.accept();
    } catch (const IoError& e) {
      error = e.code().value();
      message = e.what();
    }
    ::close(filler.back());
    filler.pop_back();
    for (int fd : filler) ::close(fd);
    ::setrlimit(RLIMIT_NOFILE, &saved);
    INFO(message);
    CHECK(error == EMFILE);
    CHECK(message.find("accept 127.0.0.1:") == 0);
    TcpStream server = co_await listener.accept();
    co_await client.write_all("z", 1);
    char c = 0;
    co_await server.read_exact(&c, 1);
    CHECK(c == 'z');
  }(saved));
  ::setrlimit(RLIMIT_NOFILE, &saved);
}

TEST_CASE("a listener dropped during a connection storm leaks no descriptor") {
  const int before = io_test::open_fd_count();
  {
    LocalExecutor ex;
    ex.block_on([]() -> Task<void> {
      std::vector<int> clients;
      for (int round = 0; round < 20; ++round) {
        auto listener = TcpListener::bind(SocketAddress::parse("127.0.0.1:0"));
        SocketAddress address = listener.local_address();
        {
          auto first_client = co_await TcpStream::connect(address);
          TcpStream first = co_await listener.accept();  // arms the multishot accept
        }
        for (int i = 0; i < 20; ++i) {
          int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
          REQUIRE(::connect(fd, address.data(), address.length()) == 0);
          clients.push_back(fd);
          if (i == 10) listener.close();
          if (i % 3 == 0) co_await yield();
          if (!listener.is_open()) break;
        }
      }
      for (int fd : clients) ::close(fd);
      io::Driver& driver = RuntimeContext::current().driver();
      for (int i = 0; i < 10000 && driver.in_flight() > 1; ++i) co_await yield();
    }());
  }
  CHECK(io_test::open_fd_count() == before);
}
