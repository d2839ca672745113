// veloq-bench-idle-conns: the user-space memory one idle TCP connection costs
// a Veloq shard (a task holding the stream, awaiting a read), next to a raw
// epoll loop holding the same connections (fd registered, no buffers).
#include "cpus.hpp"
#include "options.hpp"
#include "report.hpp"
#include "samples.hpp"

#include <veloq/io/socket_address.hpp>
#include <veloq/io/tcp_listener.hpp>
#include <veloq/io/tcp_stream.hpp>
#include <veloq/runtime/local_executor.hpp>
#include <veloq/runtime/sleep.hpp>

#include <arpa/inet.h>
#include <malloc.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <exception>
#include <fstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace {

using namespace veloq::bench;
using namespace std::chrono_literals;

constexpr const char* description =
    "User-space memory per idle TCP connection on one shard, in bytes/conn.\n"
    "\n"
    "A client process forked from this one (pinned to the second benchmark CPU,\n"
    "plain blocking sockets) opens --conns connections to 127.0.0.1; this process\n"
    "holds each one idle on the server side:\n"
    "  veloq     a standalone LocalExecutor (first benchmark CPU) accepts them; each\n"
    "            accepted TcpStream is held by a spawned task awaiting a 1-byte read\n"
    "  baseline  a raw epoll loop on the same thread: accept4, EPOLL_CTL_ADD, nothing else\n"
    "\n"
    "  idle_conn_heap  growth of mallinfo2().uordblks (heap bytes in use) / connections\n"
    "  idle_conn_rss   growth of VmRSS (/proc/self/status) / connections\n"
    "\n"
    "Snapshots are taken after the listener, the executor and the client process exist\n"
    "and before the first connect, and again once every connection is held. The client\n"
    "ends live in the other process, so each process needs only one descriptor per\n"
    "connection (each raises its soft RLIMIT_NOFILE to the hard limit) and this\n"
    "process's figures hold the server side alone. Kernel socket memory is not in RSS.\n"
    "Every run uses a fresh executor and a fresh client; figures are medians over\n"
    "runs (3). Each side gives up after 60 s; the client exits when told to, when\n"
    "this process goes away, or after 180 s.";

struct Memory {
  double rss_bytes = 0;
  double heap_bytes = 0;
};

Memory memory_now() {
  Memory m;
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line))
    if (line.rfind("VmRSS:", 0) == 0) m.rss_bytes = 1024.0 * std::stod(line.substr(6));
  m.heap_bytes = static_cast<double>(mallinfo2().uordblks);
  return m;
}

// The client: a forked process that connects `n` sockets when told to, holds
// them, and closes them and exits when told to (or when this process's end of
// its command pipe closes). It reports 0, or the errno of the first failed
// connect, once it has connected.
class ClientProcess {
 public:
  ClientProcess(int cpu, std::uint16_t port, unsigned n) {
    int command[2], status[2];
    if (::pipe2(command, O_CLOEXEC) != 0 || ::pipe2(status, O_CLOEXEC | O_NONBLOCK) != 0)
      throw std::runtime_error(std::string("pipe: ") + std::strerror(errno));
    pid_ = ::fork();
    if (pid_ < 0) throw std::runtime_error(std::string("fork: ") + std::strerror(errno));
    if (pid_ == 0) {
      ::close(command[1]);
      ::close(status[0]);
      ::_exit(run(cpu, port, n, command[0], status[1]));
    }
    ::close(command[0]);
    ::close(status[1]);
    command_fd_ = command[1];
    status_fd_ = status[0];
  }
  ClientProcess(const ClientProcess&) = delete;
  ClientProcess& operator=(const ClientProcess&) = delete;
  ~ClientProcess() {
    close_all();
    if (status_fd_ >= 0) ::close(status_fd_);
    // The client exits once it has closed its sockets; a stuck one is killed.
    auto give_up = Clock::now() + 10s;
    while (::waitpid(pid_, nullptr, WNOHANG) == 0) {
      if (Clock::now() > give_up) {
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, nullptr, 0);
        break;
      }
      std::this_thread::sleep_for(1ms);
    }
  }

  void go() { send('g'); }
  // Asks the client to close its sockets and exit.
  void close_all() {
    if (command_fd_ < 0) return;
    send('c');
    ::close(command_fd_);
    command_fd_ = -1;
  }
  // Without blocking: whether the client has connected every socket; throws its error.
  bool connected() {
    if (done_) return true;
    int result = 0;
    ssize_t got = ::read(status_fd_, &result, sizeof result);
    if (got == 0) throw std::runtime_error("client process ended early");
    if (got != sizeof result) return false;
    if (result != 0) throw std::runtime_error(std::string("client connect: ") + std::strerror(result));
    done_ = true;
    return true;
  }

 private:
  void send(char c) {
    if (command_fd_ >= 0 && ::write(command_fd_, &c, 1) != 1)
      throw std::runtime_error(std::string("client command: ") + std::strerror(errno));
  }

  // The child's whole life; returns its exit status.
  static int run(int cpu, std::uint16_t port, unsigned n, int command_fd, int status_fd) {
    ::alarm(180);  // never outlives a wedged benchmark by much
    // Drop the copies of this process's descriptors (listener, ring, ...) so
    // that only the server process holds them.
    const unsigned low = static_cast<unsigned>(std::min(command_fd, status_fd));
    const unsigned high = static_cast<unsigned>(std::max(command_fd, status_fd));
    ::close_range(3, low - 1, 0);
    ::close_range(low + 1, high - 1, 0);
    ::close_range(high + 1, ~0U, 0);
    pin_this_thread(cpu);
    std::vector<int> fds;
    fds.reserve(n);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    char c = 0;
    if (::read(command_fd, &c, 1) != 1 || c != 'g') return 0;
    int result = 0;
    for (unsigned i = 0; i < n; ++i) {
      int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      if (fd < 0 || ::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
        result = errno;
        if (fd >= 0) ::close(fd);
        break;
      }
      fds.push_back(fd);
    }
    if (::write(status_fd, &result, sizeof result) != sizeof result) return 1;
    while (::read(command_fd, &c, 1) == 1 && c != 'c') {
    }
    for (int fd : fds) ::close(fd);
    return result == 0 ? 0 : 1;
  }

  pid_t pid_ = -1;
  int command_fd_ = -1;
  int status_fd_ = -1;
  bool done_ = false;
};

struct Growth {
  std::vector<double> heap_per_conn, rss_per_conn;
  void add(const Memory& before, const Memory& after, unsigned n) {
    heap_per_conn.push_back((after.heap_bytes - before.heap_bytes) / n);
    rss_per_conn.push_back((after.rss_bytes - before.rss_bytes) / n);
  }
};

constexpr auto time_limit = 60s;

struct Held {
  unsigned holding = 0;
  unsigned finished = 0;
};

veloq::Task<void> hold(veloq::io::TcpStream stream, Held* held) {
  std::byte byte{};
  ++held->holding;
  try {
    (void)co_await stream.read(&byte, 1);
  } catch (const std::exception&) {
  }
  ++held->finished;
}

veloq::Task<void> accept_all(veloq::io::TcpListener* listener, unsigned n, Held* held) {
  for (unsigned i = 0; i < n; ++i) veloq::spawn(hold(co_await listener->accept(), held)).detach();
}

veloq::Task<void> veloq_side(unsigned n, int client_cpu, Growth& growth) {
  auto listener = veloq::io::TcpListener::bind(veloq::io::SocketAddress::parse("127.0.0.1:0"));
  Held held;
  ClientProcess client(client_cpu, listener.local_address().port(), n);
  ::malloc_trim(0);
  const Memory before = memory_now();
  client.go();
  auto deadline = Clock::now() + time_limit;
  auto acceptor = veloq::spawn(accept_all(&listener, n, &held));
  std::exception_ptr failure;
  try {
    while (held.holding < n) {
      (void)client.connected();  // throws if the client failed
      if (Clock::now() > deadline) throw std::runtime_error("veloq side: connections not held within the time limit");
      co_await veloq::sleep_for(1ms);
    }
  } catch (...) {
    failure = std::current_exception();
  }
  if (failure) {
    acceptor.cancel();
    std::rethrow_exception(failure);
  }
  co_await acceptor;
  co_await veloq::sleep_for(1ms);  // every read is submitted
  const Memory after = memory_now();
  growth.add(before, after, n);
  client.close_all();
  while (held.finished < n && Clock::now() < deadline) co_await veloq::sleep_for(1ms);
}

void epoll_side(unsigned n, int client_cpu, Growth& growth) {
  int lfd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  if (lfd < 0 || ::bind(lfd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(lfd, SOMAXCONN) != 0 ||
      ::getsockname(lfd, reinterpret_cast<sockaddr*>(&addr), &len) != 0)
    throw std::runtime_error(std::string("epoll side listen: ") + std::strerror(errno));
  int ep = ::epoll_create1(EPOLL_CLOEXEC);
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.fd = lfd;
  ::epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);

  ClientProcess client(client_cpu, ntohs(addr.sin_port), n);
  ::malloc_trim(0);
  const Memory before = memory_now();
  client.go();
  auto deadline = Clock::now() + time_limit;
  unsigned accepted = 0, closed = 0;
  bool measured = false;
  epoll_event events[64];
  while (closed < n && Clock::now() < deadline) {
    if (!measured && accepted == n) {
      growth.add(before, memory_now(), n);
      measured = true;
      client.close_all();
    }
    if (!measured) (void)client.connected();  // throws if the client failed
    int count = ::epoll_wait(ep, events, 64, 10);
    for (int i = 0; i < count; ++i) {
      int fd = events[i].data.fd;
      if (fd == lfd) {
        for (;;) {
          int c = ::accept4(lfd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
          if (c < 0) break;
          epoll_event cev{};
          cev.events = EPOLLIN;
          cev.data.fd = c;
          ::epoll_ctl(ep, EPOLL_CTL_ADD, c, &cev);
          ++accepted;
        }
      } else {
        char byte;
        ssize_t r = ::read(fd, &byte, 1);
        if (r <= 0 && !(r < 0 && errno == EAGAIN)) {
          ::close(fd);
          ++closed;
        }
      }
    }
  }
  ::close(ep);
  ::close(lfd);
  if (!measured) throw std::runtime_error("epoll side: connections not held within the time limit");
}

// Raises the soft RLIMIT_NOFILE to the hard limit (the forked client inherits
// it); returns how many connections fit, each process holding one end of each.
unsigned fit_fd_limit(unsigned n) {
  rlimit lim{};
  ::getrlimit(RLIMIT_NOFILE, &lim);
  lim.rlim_cur = lim.rlim_max;
  ::setrlimit(RLIMIT_NOFILE, &lim);
  ::getrlimit(RLIMIT_NOFILE, &lim);
  const rlim_t spare = 64;  // listener, ring, pipes, stdio, ...
  if (lim.rlim_cur >= rlim_t(n) + spare) return n;
  unsigned fit = lim.rlim_cur > 2 * spare ? static_cast<unsigned>(lim.rlim_cur - spare) : 64;
  std::fprintf(stderr, "veloq-bench-idle-conns: RLIMIT_NOFILE %llu fits %u connections, not %u\n",
               static_cast<unsigned long long>(lim.rlim_cur), fit, n);
  return fit;
}

}  // namespace

int main(int argc, char** argv) try {
  Options options("veloq-bench-idle-conns", description);
  unsigned conns = 0;
  options.add_value("--conns", "N", &conns, "idle connections (default 10000, --quick 2000)");
  if (!options.parse(argc, argv)) return 0;
  if (conns == 0) conns = options.pick(10000u, 2000u);
  const unsigned asked = conns;
  conns = fit_fd_limit(conns);

  const unsigned runs = options.runs(3, 3);
  const std::vector<int> cpus = benchmark_cpus(2);
  const int client_cpu = cpus[1 % cpus.size()];
  pin_this_thread(cpus[0]);

  Growth veloq_growth, epoll_growth;
  for (unsigned r = 0; r < runs; ++r) {
    if (options.run_veloq()) {
      veloq::LocalExecutor executor;
      executor.block_on(veloq_side(conns, client_cpu, veloq_growth));
    }
    if (options.run_baseline()) epoll_side(conns, client_cpu, epoll_growth);
  }

  Report report("veloq-bench-idle-conns");
  auto extra = [&](const std::vector<double>& v) {
    return std::vector<std::pair<std::string, ExtraValue>>{
        {"connections", double(conns)}, {"connections_asked", double(asked)},
        {"veloq_min", min_of(v)},       {"veloq_max", max_of(v)}};
  };
  report.add(Result{.name = "idle_conn_heap",
                    .metric = "bytes/conn",
                    .veloq = median(veloq_growth.heap_per_conn),
                    .baseline_name = "raw epoll loop",
                    .baseline = median(epoll_growth.heap_per_conn),
                    .higher_is_better = false,
                    .goal = Goal().veloq_at_most(1024, "B"),
                    .runs = runs,
                    .extra = extra(veloq_growth.heap_per_conn)});
  report.add(Result{.name = "idle_conn_rss",
                    .metric = "bytes/conn",
                    .veloq = median(veloq_growth.rss_per_conn),
                    .baseline_name = "raw epoll loop",
                    .baseline = median(epoll_growth.rss_per_conn),
                    .higher_is_better = false,
                    .goal = Goal(),
                    .runs = runs,
                    .extra = extra(veloq_growth.rss_per_conn)});
  return report.finish(options);
} catch (const std::exception& e) {
  std::fprintf(stderr, "veloq-bench-idle-conns: %s\n", e.what());
  return 1;
}
