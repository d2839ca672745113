// LineReader and BufferedWriter over real loopback sockets and a real ring.
#include <doctest/doctest.h>

#include "loopback_socket.hpp"

#include <veloq/buffers/buffer_pool.hpp>
#include <veloq/buffers/buffered_writer.hpp>
#include <veloq/buffers/line_reader.hpp>
#include <veloq/buffers/multishot_recv.hpp>
#include <veloq/buffers/provided_buffer_ring.hpp>
#include <veloq/buffers/send_queue.hpp>
#include <veloq/io/with_timeout.hpp>
#include <veloq/runtime/local_executor.hpp>

#include <sys/socket.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

using namespace veloq;
using loopback::FdCloser;
using loopback::send_all;
using loopback::tcp_pair;
using veloq::buffers::BufferedWriter;
using veloq::buffers::LineReader;
using veloq::buffers::LineTooLong;
using veloq::buffers::MultishotRecv;
using veloq::buffers::ProvidedBufferRing;

namespace {

// Every line `reader` hands out until the end of the stream; a reader that
// waits for more than two seconds fails the test instead of hanging it.
Task<std::vector<std::string>> read_all_lines(LineReader& reader) {
  std::vector<std::string> lines;
  for (;;) {
    Task<std::optional<std::string_view>> next = reader.next();
    std::optional<std::string_view> line = co_await io::with_timeout(std::chrono::seconds(2), std::move(next));
    if (!line) co_return lines;
    lines.emplace_back(*line);
  }
}

// Reads `fd` to the end of its stream, from a thread of its own, starting
// after `delay`.
std::thread read_in_background(int fd, std::string& into, std::chrono::milliseconds delay = {}) {
  return std::thread([fd, &into, delay] {
    std::this_thread::sleep_for(delay);
    char piece[4096];
    for (ssize_t n; (n = ::recv(fd, piece, sizeof piece, 0)) > 0;) into.append(piece, static_cast<std::size_t>(n));
  });
}

}  // namespace

TEST_CASE("a line reader hands out lines that span chunks, many to a chunk, and a last one without an end of line") {
  LocalExecutor ex;
  // 16-byte buffers: every longer line is cut over several chunks.
  ProvidedBufferRing ring(ex.driver(), 0, {.group_id = 40, .entries = 64, .buffer_bytes = 16});
  auto [client, server] = tcp_pair();
  FdCloser c1{client}, c2{server};
  const std::string text = "a\nb\r\nc\n\nthis line is longer than one chunk\r\n\r\nlast";
  send_all(client, text.data(), text.size());
  ::shutdown(client, SHUT_WR);

  std::vector<std::string> lines = ex.block_on([](ProvidedBufferRing& ring, int fd) -> Task<std::vector<std::string>> {
    MultishotRecv received(ring, fd);
    LineReader reader(received);
    co_return co_await read_all_lines(reader);
  }(ring, server));
  CHECK(lines == std::vector<std::string>{"a", "b", "c", "", "this line is longer than one chunk", "", "last"});
  CHECK(ring.available() == 64);  // every chunk went back
}

TEST_CASE("a line reader returns 20,000 random lines intact, however they are cut, and says when one is buffered") {
  LocalExecutor ex;
  ProvidedBufferRing ring(ex.driver(), 0, {.group_id = 41, .entries = 256, .buffer_bytes = 64});
  auto [client, server] = tcp_pair();
  FdCloser c1{client}, c2{server};
  std::mt19937 random(7);
  std::vector<std::string> expected;
  std::string text;
  for (int i = 0; i < 20'000; ++i) {
    std::string line(random() % 300, 'x');
    for (char& c : line) c = static_cast<char>('a' + random() % 26);
    text += line;
    text += random() % 4 == 0 ? "\r\n" : "\n";
    expected.push_back(std::move(line));
  }
  std::thread writer = loopback::send_in_background(client, std::vector<char>(text.begin(), text.end()));

  std::size_t without_wait = 0;  // lines read while has_buffered_line() said one was there
  std::vector<std::string> lines = ex.block_on(
      [](ProvidedBufferRing& ring, int fd, std::size_t count,
         std::size_t& without_wait) -> Task<std::vector<std::string>> {
        MultishotRecv received(ring, fd);
        LineReader reader(received, {.max_line = 300});
        std::vector<std::string> lines;
        while (lines.size() < count) {
          const bool buffered = reader.has_buffered_line();
          std::optional<std::string_view> line = co_await reader.next();
          REQUIRE(line.has_value());
          lines.emplace_back(*line);
          if (buffered) ++without_wait;
        }
        co_return lines;
      }(ring, server, expected.size(), without_wait));
  writer.join();
  REQUIRE(lines.size() == expected.size());
  CHECK(lines == expected);
  CHECK(without_wait > 0);
  MESSAGE(without_wait << " of " << lines.size() << " lines were already buffered when asked for");
}

TEST_CASE("a line longer than max_line throws LineTooLong before its end arrives, and again on every later call") {
  LocalExecutor ex;
  ProvidedBufferRing ring(ex.driver(), 0, {.group_id = 42, .entries = 64, .buffer_bytes = 16});
  auto [client, server] = tcp_pair();
  FdCloser c1{client}, c2{server};
  // A line of exactly 32 bytes passes, with "\r\n" or "\n"; the third line
  // never ends, and the client keeps its side open.
  const std::string text = "ok\n" + std::string(32, 'x') + "\r\n" + std::string(32, 'y') + "\n" + std::string(40, 'z');
  send_all(client, text.data(), text.size());

  ex.block_on([](ProvidedBufferRing& ring, int fd) -> Task<void> {
    MultishotRecv received(ring, fd);
    LineReader reader(received, {.max_line = 32});
    std::optional<std::string_view> line = co_await reader.next();
    CHECK(line == "ok");
    line = co_await reader.next();
    CHECK(line == std::string(32, 'x'));
    line = co_await reader.next();
    CHECK(line == std::string(32, 'y'));
    for (int call = 0; call < 2; ++call) {
      bool threw = false;
      try {
        Task<std::optional<std::string_view>> next = reader.next();
        co_await io::with_timeout(std::chrono::seconds(2), std::move(next));
      } catch (const LineTooLong& e) {
        threw = true;
        CHECK(std::string(e.what()).find("longer than 32 bytes") != std::string::npos);
      }
      CHECK(threw);
    }
  }(ring, server));
}

TEST_CASE("a buffered writer sends its writes in order, one send per flush, and splits a write longer than a buffer") {
  LocalExecutor ex;
  auto [client, server] = tcp_pair();
  FdCloser c1{client}, c2{server};
  std::string arrived;
  std::thread reader = read_in_background(client, arrived);

  const std::size_t pool_free = ex.buffer_pool()->free_count();
  std::string expected;
  ex.block_on([](int fd, std::string& expected) -> Task<void> {
    buffers::SendQueue queue(fd);
    BufferedWriter writer(queue);
    for (int i = 0; i < 100; ++i) {
      const std::string reply = "reply " + std::to_string(i) + "\n";
      co_await writer.write(reply);
      expected += reply;
    }
    CHECK(queue.sends() == 0);  // nothing is pushed before the flush
    co_await writer.flush();
    co_await queue.drained();
    CHECK(queue.sends() == 1);
    const std::string long_write(10'000, 'L');
    co_await writer.write(long_write);  // two whole 4 KiB buffers, then the rest buffered
    expected += long_write;
    CHECK(writer.buffered() == 10'000 - 2 * 4096);
    co_await writer.flush();
    CHECK(writer.buffered() == 0);
    co_await queue.drained();
  }(server, expected));
  ::shutdown(server, SHUT_WR);
  reader.join();
  CHECK(arrived == expected);
  CHECK(ex.buffer_pool()->free_count() == pool_free);  // every buffer went home once sent
}

TEST_CASE("a buffered writer whose peer does not read holds max_unsent buffers at most, and all of it arrives") {
  LocalExecutor ex;
  auto [client, server] = tcp_pair();
  FdCloser c1{client}, c2{server};
  loopback::shrink_socket_buffers(client);
  loopback::shrink_socket_buffers(server);
  std::string arrived;
  // The writer meets a full socket first.
  std::thread reader = read_in_background(client, arrived, std::chrono::milliseconds(300));

  std::string expected;
  std::size_t most_unsent = 0;
  ex.block_on([](int fd, std::string& expected, std::size_t& most_unsent) -> Task<void> {
    buffers::SendQueue queue(fd);
    BufferedWriter writer(queue, {.buffer_bytes = 4096, .max_unsent = 2});
    for (int i = 0; i < 16; ++i) {
      const std::string piece(4096, static_cast<char>('a' + i));
      co_await writer.write(piece);
      expected += piece;
      most_unsent = std::max(most_unsent, queue.queued());
    }
    co_await writer.flush();
    co_await queue.drained();
  }(server, expected, most_unsent));
  ::shutdown(server, SHUT_WR);
  reader.join();
  CHECK(most_unsent <= 2);
  CHECK(arrived.size() == expected.size());
  CHECK(arrived == expected);
}
