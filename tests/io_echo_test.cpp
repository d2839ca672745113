#include <doctest/doctest.h>

#include "io_test_support.hpp"

#include <veloq/io/tcp_stream.hpp>
#include <veloq/runtime/local_executor.hpp>

#include "example_process.hpp"
#include "loopback_socket.hpp"

#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <netinet/in.h>

#include <fstream>
#include <iterator>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

using namespace veloq;
using namespace veloq::io;
using example_test::read_until;

namespace {

std::string echo_binary() { return example_test::example_binary("VELOQ_ECHO", "examples/echo/veloq-echo"); }

}  // namespace

TEST_CASE("veloq-echo echoes, dumps its tasks on SIGUSR2, stops on SIGINT with status 0 and prints its counters") {
  std::string binary = echo_binary();
  if (!example_test::example_built(binary)) return;
  example_test::ServerProcess server(binary, {"--shards", "2", "--port", "0"});
  const int port = server.port();
  std::string& text = server.text;
  const int out = server.out;

  LocalExecutor ex;
  ex.block_on([](int p) -> Task<void> {
    for (int c = 0; c < 4; ++c) {
      auto stream = co_await TcpStream::connect(SocketAddress::ipv4("127.0.0.1", static_cast<std::uint16_t>(p)));
      auto message = io_test::pattern(1000, static_cast<std::uint32_t>(c));
      co_await stream.write_all(message.data(), message.size());
      std::vector<std::byte> reply(message.size());
      co_await stream.read_exact(reply.data(), reply.size());
      CHECK(reply == message);
    }
  }(port));

  // SIGUSR2: a dump of every shard's live tasks, naming the acceptors.
  REQUIRE(::kill(server.pid, SIGUSR2) == 0);
  CHECK(read_until(out, text, "echo acceptor", 10000));
  CHECK(text.find("task dump:") != std::string::npos);
  CHECK(text.find("task dumper") != std::string::npos);

  server.interrupt_and_expect_clean_exit();
  CHECK(read_until(out, text, "total: connections 4, bytes 4000", 5000));
  // Each shard's line ends with its loop's counters; both shards ran turns.
  for (const char* shard : {"shard 0: connections", "shard 1: connections"}) {
    auto line = text.find(shard);
    REQUIRE(line != std::string::npos);
    auto turns = text.find("loop turns ", line);
    REQUIRE(turns != std::string::npos);
    CHECK(std::stoull(text.substr(turns + 11)) > 0);
    CHECK(text.find("io_uring enters ", turns) < text.find('\n', turns));
    // Four connections of one message each never needed more than the first offer.
    auto offered = text.find("receive buffers offered ", turns);
    REQUIRE(offered < text.find('\n', turns));
    CHECK(std::stoul(text.substr(offered + 24)) == 64);
    CHECK(text.find("ran dry 0 times", offered) < text.find('\n', turns));
  }
}

TEST_CASE("veloq-echo keeps serving a shard's other connections while one client sends and never reads") {
  std::string binary = echo_binary();
  if (!example_test::example_built(binary)) return;
  example_test::ServerProcess server(binary, {"--shards", "1", "--port", "0"});
  const int port = server.port();
  // The flood: 32 MiB, eight times the shard's 4 MiB of receive buffers,
  // from a client that reads nothing back. It ends when its socket is shut
  // down, at the end of the case or when a check fails.
  struct Flood {
    int fd;
    std::thread sender;
    ~Flood() {
      ::shutdown(fd, SHUT_RDWR);
      sender.join();
      ::close(fd);
    }
  } flood{loopback::connect_loopback(port, 5), {}};
  flood.sender = std::thread([fd = flood.fd] {
    std::vector<char> block(64 * 1024, 'f');
    for (int i = 0; i < 512; ++i)
      if (::send(fd, block.data(), block.size(), MSG_NOSIGNAL) <= 0) return;
  });
  ::usleep(300 * 1000);  // let the flood fill what it can

  int client = loopback::connect_loopback(port, 5);
  for (int i = 0; i < 20; ++i) {
    std::string message = "round trip " + std::to_string(i);
    REQUIRE(::send(client, message.data(), message.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(message.size()));
    std::string reply(message.size(), '\0');
    REQUIRE(::recv(client, reply.data(), reply.size(), MSG_WAITALL) == static_cast<ssize_t>(message.size()));
    CHECK(reply == message);
  }
  ::close(client);
  server.interrupt_and_expect_clean_exit();
}

namespace {
// CPU time a process has used (utime + stime from /proc/PID/stat, in clock ticks).
long cpu_ticks(pid_t pid) {
  std::ifstream stat_file("/proc/" + std::to_string(pid) + "/stat");
  std::string stat_text((std::istreambuf_iterator<char>(stat_file)), std::istreambuf_iterator<char>());
  std::istringstream fields(stat_text.substr(stat_text.rfind(')') + 2));
  std::vector<std::string> field((std::istream_iterator<std::string>(fields)), std::istream_iterator<std::string>());
  return std::stol(field[11]) + std::stol(field[12]);
}
}  // namespace

TEST_CASE("veloq-echo out of descriptors waits for one to free instead of spinning on EMFILE") {
  std::string binary = echo_binary();
  if (!example_test::example_built(binary)) return;
  char log_path[] = "/tmp/veloq-echo-emfile-XXXXXX";
  int log_fd = ::mkstemp(log_path);
  REQUIRE(log_fd >= 0);
  int out[2];
  REQUIRE(::pipe2(out, O_CLOEXEC) == 0);
  pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    // A hard limit, so veloq-echo cannot raise it: 40 descriptors in all.
    rlimit limit{40, 40};
    ::setrlimit(RLIMIT_NOFILE, &limit);
    ::dup2(out[1], 1);
    ::dup2(log_fd, 2);
    char* argv[] = {binary.data(), nullptr};
    ::execv(binary.c_str(), argv);
    ::_exit(127);
  }
  ::close(out[1]);
  ::close(log_fd);
  std::string text;
  REQUIRE(read_until(out[0], text, "listening on 127.0.0.1:", 10000));
  const int port = std::stoi(text.substr(text.find("listening on 127.0.0.1:") + 23));

  // More clients than the server has descriptors: loopback connects complete in the backlog.
  io_test::raise_fd_limit(4096);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<std::uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::vector<int> clients;
  for (int i = 0; i < 60; ++i) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
    clients.push_back(fd);
  }
  const long ticks_before = cpu_ticks(pid);
  ::usleep(500 * 1000);
  const long ticks = cpu_ticks(pid) - ticks_before;  // what the server burned meanwhile
  // Half the clients leave: the last one, still in the backlog, gets served.
  for (int i = 0; i < 30; ++i) ::close(clients[static_cast<std::size_t>(i)]);
  int last = clients.back();
  timeval two_seconds{2, 0};
  ::setsockopt(last, SOL_SOCKET, SO_RCVTIMEO, &two_seconds, sizeof two_seconds);
  REQUIRE(::send(last, "ping", 4, MSG_NOSIGNAL) == 4);
  char reply[4] = {};
  CHECK(::recv(last, reply, sizeof reply, MSG_WAITALL) == 4);
  CHECK(std::string(reply, 4) == "ping");
  for (std::size_t i = 30; i < clients.size(); ++i) ::close(clients[i]);

  REQUIRE(::kill(pid, SIGINT) == 0);
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  CHECK(WIFEXITED(status));
  std::ifstream log_file(log_path);
  std::string log_text((std::istreambuf_iterator<char>(log_file)), std::istreambuf_iterator<char>());
  ::unlink(log_path);
  std::size_t warnings = 0;
  for (auto at = log_text.find("accept failed"); at != std::string::npos; at = log_text.find("accept failed", at + 1))
    ++warnings;
  MESSAGE("EMFILE warnings: " << warnings << ", CPU ticks in 0.5 s: " << ticks);
  CHECK(warnings >= 1);
  CHECK(warnings <= 20);
  CHECK(ticks < 25);  // not a core spinning (50 ticks = all of it)
  ::close(out[0]);
}
