#include <doctest/doctest.h>

#include "io_test_support.hpp"

#include <veloq/io/tcp_stream.hpp>
#include <veloq/runtime/local_executor.hpp>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <string>

extern char** environ;

using namespace veloq;
using namespace veloq::io;

namespace {

// The veloq-echo binary: $VELOQ_ECHO (set by meson), else next to the test binary in the build tree.
std::string echo_binary() {
  if (const char* path = std::getenv("VELOQ_ECHO")) return path;
  auto self = std::filesystem::read_symlink("/proc/self/exe");
  return (self.parent_path().parent_path() / "examples" / "echo" / "veloq-echo").string();
}

// Reads from `fd` until `text` holds a line containing `needle` or the time is up.
bool read_until(int fd, std::string& text, const std::string& needle, int timeout_ms) {
  while (text.find(needle) == std::string::npos || text.find('\n', text.find(needle)) == std::string::npos) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, timeout_ms) <= 0) return false;
    char chunk[512];
    ssize_t n = ::read(fd, chunk, sizeof chunk);
    if (n <= 0) return text.find(needle) != std::string::npos;
    text.append(chunk, static_cast<std::size_t>(n));
  }
  return true;
}

}  // namespace

TEST_CASE("veloq-echo echoes, dumps its tasks on SIGUSR2, stops on SIGINT with status 0 and prints its counters") {
  std::string binary = echo_binary();
  if (::access(binary.c_str(), X_OK) != 0) {
    MESSAGE("veloq-echo not built (" << binary << "); skipped");
    return;
  }
  int out[2];
  REQUIRE(::pipe2(out, O_CLOEXEC) == 0);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, out[1], 1);
  char* argv[] = {binary.data(), const_cast<char*>("--shards"), const_cast<char*>("2"), const_cast<char*>("--port"),
                  const_cast<char*>("0"), nullptr};
  pid_t pid = -1;
  REQUIRE(::posix_spawn(&pid, binary.c_str(), &actions, nullptr, argv, environ) == 0);
  posix_spawn_file_actions_destroy(&actions);
  ::close(out[1]);

  std::string text;
  REQUIRE(read_until(out[0], text, "listening on 127.0.0.1:", 10000));
  auto at = text.find("listening on 127.0.0.1:");
  int port = std::stoi(text.substr(at + 23));
  CHECK(port > 0);

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
  REQUIRE(::kill(pid, SIGUSR2) == 0);
  CHECK(read_until(out[0], text, "echo acceptor", 10000));
  CHECK(text.find("task dump:") != std::string::npos);
  CHECK(text.find("task dumper") != std::string::npos);

  REQUIRE(::kill(pid, SIGINT) == 0);
  // Wait for the exit through a pidfd, bounded, without sleeping.
  int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  REQUIRE(pidfd >= 0);
  pollfd p{pidfd, POLLIN, 0};
  REQUIRE(::poll(&p, 1, 10000) == 1);
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  ::close(pidfd);
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
  CHECK(read_until(out[0], text, "total: connections 4, bytes 4000", 5000));
  CHECK(text.find("shard 0: connections") != std::string::npos);
  CHECK(text.find("shard 1: connections") != std::string::npos);
  ::close(out[0]);
}
