// The veloq-kv example as a client sees it: a real server process with two
// shards, talked to over loopback TCP with plain blocking sockets.
#include <doctest/doctest.h>

#include "example_process.hpp"
#include "loopback_socket.hpp"

#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstddef>
#include <string>
#include <vector>

namespace {

std::string kv_binary() { return example_test::example_binary("VELOQ_KV", "examples/kv/veloq-kv"); }

// A blocking loopback connection that gives up after 10 s of silence.
struct Client {
  int fd;
  explicit Client(int port) : fd(loopback::connect_loopback(port, 10)) {}
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;
  ~Client() { ::close(fd); }

  void send(const std::string& bytes) const { loopback::send_all(fd, bytes.data(), bytes.size()); }
  // The next `lines` reply lines, joined; fewer if the server closes or goes silent.
  std::string read_lines(std::size_t lines) const {
    std::string text;
    std::size_t seen = 0;
    char c;
    while (seen < lines && ::recv(fd, &c, 1, 0) == 1) {
      text.push_back(c);
      if (c == '\n') ++seen;
    }
    return text;
  }
  // True once the server has closed the connection (reads end of stream).
  bool closed_by_server() const {
    char c;
    return ::recv(fd, &c, 1, 0) == 0;
  }
};

}  // namespace

TEST_CASE("veloq-kv keeps keys on both shards, answers pipelined requests in order, and stops on SIGINT") {
  std::string binary = kv_binary();
  if (!example_test::example_built(binary)) return;
  example_test::ServerProcess server(binary, {"--shards", "2", "--port", "0"});
  const int port = server.port();

  // Each connection lands on one shard, and half of its keys belong to the
  // other: every SET and GET below that crosses shards is a mesh call.
  constexpr int keys = 200;
  {
    Client writer(port);
    std::string sets;
    for (int k = 0; k < keys; ++k) sets += "SET key" + std::to_string(k) + " value of " + std::to_string(k) + "\n";
    writer.send(sets);  // all at once: many requests per received chunk
    std::string expected;
    for (int k = 0; k < keys; ++k) expected += "OK\n";
    CHECK(writer.read_lines(keys) == expected);
  }
  for (int c = 0; c < 3; ++c) {
    Client reader(port);
    std::string gets, expected;
    for (int k = c; k < keys; k += 3) {
      gets += "GET key" + std::to_string(k) + "\r\n";
      expected += "VALUE value of " + std::to_string(k) + "\n";
    }
    gets += "GET absent\n";
    expected += "NOT_FOUND\n";
    // A byte at a time for the first requests: a request split over many receives.
    for (std::size_t i = 0; i < 40; ++i) reader.send(gets.substr(i, 1));
    reader.send(gets.substr(40));
    CHECK(reader.read_lines(static_cast<std::size_t>(std::count(expected.begin(), expected.end(), '\n'))) ==
          expected);
  }
  {
    Client deleter(port);
    deleter.send("DEL key7\nDEL key7\nGET key7\nGET key8\n");
    CHECK(deleter.read_lines(4) == "DELETED\nNOT_FOUND\nNOT_FOUND\nVALUE value of 8\n");
  }
  {
    // A last request without "\n", then the client's side shut: it is still
    // answered, and then the server closes.
    Client closer(port);
    closer.send("SET last 1\nGET last");
    REQUIRE(::shutdown(closer.fd, SHUT_WR) == 0);
    CHECK(closer.read_lines(2) == "OK\nVALUE 1\n");
    CHECK(closer.closed_by_server());
  }

  server.interrupt_and_expect_clean_exit();
  // 200 SETs, 200 GETs of present keys and 3 of an absent one, 4 deletes and gets, 2 at the end of a stream.
  CHECK(example_test::read_until(server.out, server.text, "total: connections 6, requests 409, errors 0", 5000));
  for (const char* shard : {"shard 0: connections", "shard 1: connections"})
    CHECK(server.text.find(shard) != std::string::npos);
}

TEST_CASE("veloq-kv answers malformed requests with ERROR and goes on; a line over 2 KiB closes only its connection") {
  std::string binary = kv_binary();
  if (!example_test::example_built(binary)) return;
  example_test::ServerProcess server(binary, {"--shards", "2", "--port", "0"});
  const int port = server.port();

  Client client(port);
  client.send("FLY me\nGET\nSET lonely\nGET a b\nGET " + std::string(251, 'k') + "\nSET a 1\nGET a\n");
  CHECK(client.read_lines(7) ==
        "ERROR unknown command\n"
        "ERROR key must be 1 to 250 bytes without spaces\n"
        "ERROR SET needs a value\n"
        "ERROR too many arguments\n"
        "ERROR key must be 1 to 250 bytes without spaces\n"
        "OK\n"
        "VALUE 1\n");

  Client flooder(port);
  flooder.send("GET a\n" + std::string(3000, 'x'));  // no newline in sight
  CHECK(flooder.read_lines(2) == "VALUE 1\nERROR line too long\n");
  CHECK(flooder.closed_by_server());

  // The server, and the first connection, carry on.
  client.send("GET a\n");
  CHECK(client.read_lines(1) == "VALUE 1\n");
  Client late(port);
  late.send("GET a\n");
  CHECK(late.read_lines(1) == "VALUE 1\n");

  server.interrupt_and_expect_clean_exit();
  CHECK(example_test::read_until(server.out, server.text, "errors 6", 5000));
}
