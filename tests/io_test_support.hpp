// Helpers shared by the io_*_test.cpp files: payload patterns, a connected
// loopback TCP pair, a file-descriptor limit high enough for the
// many-connection tests, a count of the process's open descriptors, and
// cancelling a group of tasks.
#pragma once

#include <veloq/io/tcp_listener.hpp>
#include <veloq/io/tcp_stream.hpp>
#include <veloq/runtime/errors.hpp>
#include <veloq/runtime/join_handle.hpp>
#include <veloq/runtime/task.hpp>

#include <dirent.h>
#include <sys/resource.h>

#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

namespace io_test {

inline std::vector<std::byte> pattern(std::size_t size, std::uint32_t seed = 1) {
  std::vector<std::byte> data(size);
  std::uint32_t x = seed * 2654435761u + 1;
  for (auto& b : data) {
    x = x * 1664525u + 1013904223u;
    b = static_cast<std::byte>(x >> 24);
  }
  return data;
}

inline void raise_fd_limit(rlim_t wanted) {
  rlimit limit{};
  getrlimit(RLIMIT_NOFILE, &limit);
  if (limit.rlim_cur < wanted) {
    limit.rlim_cur = wanted < limit.rlim_max ? wanted : limit.rlim_max;
    setrlimit(RLIMIT_NOFILE, &limit);
  }
}

// Open descriptors of this process (entries of /proc/self/fd, not counting
// the one the listing itself uses).
inline int open_fd_count() {
  DIR* dir = ::opendir("/proc/self/fd");
  if (dir == nullptr) return -1;
  int n = 0;
  while (const dirent* entry = ::readdir(dir))
    if (entry->d_name[0] != '.') ++n;
  ::closedir(dir);
  return n - 1;
}

struct TcpPair {
  veloq::io::TcpStream client;
  veloq::io::TcpStream server;
};

// A connected loopback pair on the current shard.
inline veloq::Task<TcpPair> connected_pair() {
  auto listener = veloq::io::TcpListener::bind(veloq::io::SocketAddress::parse("127.0.0.1:0"));
  auto client = co_await veloq::io::TcpStream::connect(listener.local_address());
  auto server = co_await listener.accept();
  co_return TcpPair{std::move(client), std::move(server)};
}

// Cancels every task, then waits for each: a task that finished before its
// cancel landed is joined normally, the others end in TaskCancelled.
inline veloq::Task<void> cancel_and_join(std::vector<veloq::JoinHandle<void>>& tasks) {
  for (auto& task : tasks) task.cancel();
  for (auto& task : tasks) {
    try {
      co_await task;
    } catch (const veloq::TaskCancelled&) {
    }
  }
}

}  // namespace io_test
