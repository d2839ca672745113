// Running an example server as a child process in a test: finding its
// binary, reading its output until a line appears, and stopping it with
// SIGINT within a bounded time. Shared by the example tests.
#pragma once

#include <doctest/doctest.h>

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
#include <vector>

extern char** environ;

namespace example_test {

// The example's binary: $`env_var` (set by meson), else `relative` under the
// build tree (next to tests/).
inline std::string example_binary(const char* env_var, const char* relative) {
  if (const char* path = std::getenv(env_var)) return path;
  auto self = std::filesystem::read_symlink("/proc/self/exe");
  return (self.parent_path().parent_path() / relative).string();
}

// Whether `binary` exists; a case without it says it is skipped.
inline bool example_built(const std::string& binary) {
  if (::access(binary.c_str(), X_OK) == 0) return true;
  MESSAGE(binary << " not built; skipped");
  return false;
}

// Reads from `fd` until `text` holds a line containing `needle` or the time is up.
inline bool read_until(int fd, std::string& text, const std::string& needle, int timeout_ms) {
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

// A server started with `args`, its stdout read through a pipe.
struct ServerProcess {
  pid_t pid = -1;
  int out = -1;  // the read end of its stdout
  std::string text;  // what it printed so far

  ServerProcess(const std::string& binary, std::vector<std::string> args) {
    int pipe_fds[2];
    REQUIRE(::pipe2(pipe_fds, O_CLOEXEC) == 0);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, pipe_fds[1], 1);
    std::vector<char*> argv{const_cast<char*>(binary.c_str())};
    for (std::string& arg : args) argv.push_back(arg.data());
    argv.push_back(nullptr);
    REQUIRE(::posix_spawn(&pid, binary.c_str(), &actions, nullptr, argv.data(), environ) == 0);
    posix_spawn_file_actions_destroy(&actions);
    ::close(pipe_fds[1]);
    out = pipe_fds[0];
  }
  ServerProcess(const ServerProcess&) = delete;
  ServerProcess& operator=(const ServerProcess&) = delete;
  ~ServerProcess() {
    if (pid > 0) {  // a failed check left it running
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
    }
    if (out >= 0) ::close(out);
  }

  // The port of its "listening on 127.0.0.1:PORT" line; fails the case if
  // none came in 10 s.
  int port() {
    REQUIRE(read_until(out, text, "listening on 127.0.0.1:", 10000));
    const int port = std::stoi(text.substr(text.find("listening on 127.0.0.1:") + 23));
    REQUIRE(port > 0);
    return port;
  }

  // Sends SIGINT and checks that it exits with status 0 within 10 s
  // (waiting through a pidfd); a server still running is killed by the destructor.
  void interrupt_and_expect_clean_exit() {
    REQUIRE(::kill(pid, SIGINT) == 0);
    int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
    REQUIRE(pidfd >= 0);
    pollfd p{pidfd, POLLIN, 0};
    const bool exited = ::poll(&p, 1, 10000) == 1;
    ::close(pidfd);
    REQUIRE(exited);
    int status = 0;
    REQUIRE(::waitpid(pid, &status, 0) == pid);
    pid = -1;
    CHECK(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
  }
};

}  // namespace example_test
