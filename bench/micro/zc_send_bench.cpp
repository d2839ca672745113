// veloq-bench-zc-send: zero-copy send (IORING_OP_SEND_ZC) against plain send
// (IORING_OP_SEND), both through Veloq, over one loopback TCP connection.
#include "cpus.hpp"
#include "options.hpp"
#include "report.hpp"
#include "samples.hpp"

#include <veloq/io/io_error.hpp>
#include <veloq/io/tcp_listener.hpp>
#include <veloq/io/tcp_stream.hpp>
#include <veloq/runtime/local_executor.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace {

using namespace veloq::bench;

constexpr const char* description =
    "Send throughput over one loopback TCP connection, in bytes/s, for payloads of\n"
    "4 KiB, 64 KiB and 1 MiB, each side through Veloq on one standalone LocalExecutor\n"
    "pinned to the first benchmark CPU:\n"
    "\n"
    "  veloq     StreamSocket::write_zero_copy_always (IORING_OP_SEND_ZC, always), looping\n"
    "            until the payload is sent; each call returns once the kernel has let\n"
    "            go of the buffer (the notification CQE)\n"
    "  baseline  StreamSocket::write_all (IORING_OP_SEND, the kernel copies the payload)\n"
    "\n"
    "A plain thread pinned to the second benchmark CPU receives with blocking recv(2)\n"
    "into a 1 MiB buffer and acknowledges each run's last byte, so a run's time covers\n"
    "delivery, not just queueing. One payload buffer is sent over and over, one send\n"
    "in flight. The two sides alternate run by run; figures are medians over runs (5,\n"
    "or 3 with --quick) after one warm-up run of each. If the kernel refuses SEND_ZC\n"
    "the rows say so (extra.send_zc) and carry no Veloq figure.\n"
    "\n"
    "On loopback the kernel cannot hand pages to the receiver: it copies them when\n"
    "the data reaches the local socket, so zero-copy adds the notification's cost to\n"
    "a copy that happens anyway. The figures decide StreamSocket::write_zero_copy's\n"
    "policy (see io/stream_socket.hpp).";

constexpr std::size_t sizes[] = {4 * 1024, 64 * 1024, 1024 * 1024};

// The receiving end: for each run a header with the byte count, then the
// bytes; answers with one byte once it has them all. A zero count ends it.
void receive_loop(std::uint16_t port, int cpu) {
  pin_this_thread(cpu);
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (fd < 0 || ::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
    std::fprintf(stderr, "veloq-bench-zc-send: receiver connect: %s\n", std::strerror(errno));
    if (fd >= 0) ::close(fd);
    return;
  }
  std::vector<char> buffer(1 << 20);
  auto read_fully = [&](void* data, std::size_t size) {
    auto* p = static_cast<char*>(data);
    while (size > 0) {
      ssize_t n = ::recv(fd, p, size, 0);
      if (n <= 0) return false;
      p += n;
      size -= static_cast<std::size_t>(n);
    }
    return true;
  };
  for (;;) {
    std::uint64_t total = 0;
    if (!read_fully(&total, sizeof total) || total == 0) break;
    while (total > 0) {
      ssize_t n = ::recv(fd, buffer.data(), std::min<std::uint64_t>(total, buffer.size()), 0);
      if (n <= 0) break;
      total -= static_cast<std::uint64_t>(n);
    }
    char ack = 1;
    if (::send(fd, &ack, 1, MSG_NOSIGNAL) != 1) break;
  }
  ::close(fd);
}

enum class Mode { zero_copy, plain };

// Seconds to send `count` payloads of `payload.size()` bytes and get the receiver's acknowledgement.
veloq::Task<double> send_run(veloq::io::TcpStream& stream, const std::vector<std::byte>& payload,
                             std::uint64_t count, Mode mode) {
  std::uint64_t total = count * payload.size();
  auto start = Clock::now();
  co_await stream.write_all(&total, sizeof total);
  for (std::uint64_t i = 0; i < count; ++i) {
    if (mode == Mode::plain) {
      co_await stream.write_all(payload.data(), payload.size());
    } else {
      std::size_t sent = 0;
      while (sent < payload.size())
        sent += co_await stream.write_zero_copy_always(payload.data() + sent, payload.size() - sent);
    }
  }
  char ack = 0;
  co_await stream.read_exact(&ack, 1);
  co_return seconds_since(start);
}

struct Series {
  std::vector<double> zero_copy, plain;
};

struct Outcome {
  std::vector<Series> per_size;
  std::string zc_status = "used";
};

veloq::Task<void> measure(const Options& options, unsigned runs, Outcome& outcome) {
  auto listener = veloq::io::TcpListener::bind(veloq::io::SocketAddress::parse("127.0.0.1:0"));
  const std::vector<int> cpus = benchmark_cpus(2);
  std::thread receiver(receive_loop, listener.local_address().port(), cpus[1 % cpus.size()]);
  veloq::io::TcpStream stream = co_await listener.accept();

  // Does the kernel take SEND_ZC on this socket? One small probe run tells.
  bool zc = true;
  std::vector<std::byte> probe(4096);
  try {
    (void)co_await send_run(stream, probe, 1, Mode::zero_copy);
  } catch (const veloq::io::IoError& e) {
    zc = false;
    outcome.zc_status = std::string("refused: ") + e.what();
  }
  if (!zc) (void)co_await send_run(stream, probe, 1, Mode::plain);  // the receiver still waits for that run

  const std::uint64_t bytes_per_run = options.pick<std::uint64_t>(512ull << 20, 64ull << 20);
  for (std::size_t size : sizes) {
    std::vector<std::byte> payload(size, std::byte{0x5a});
    const std::uint64_t count = bytes_per_run / size;
    Series series;
    for (unsigned r = 0; r <= runs; ++r) {  // run 0 warms up
      if (zc && options.run_veloq()) {
        double s = co_await send_run(stream, payload, count, Mode::zero_copy);
        if (r > 0) series.zero_copy.push_back(double(count * size) / s);
      }
      if (options.run_baseline()) {
        double s = co_await send_run(stream, payload, count, Mode::plain);
        if (r > 0) series.plain.push_back(double(count * size) / s);
      }
    }
    outcome.per_size.push_back(std::move(series));
  }
  std::uint64_t end = 0;
  co_await stream.write_all(&end, sizeof end);
  receiver.join();
}

std::string size_name(std::size_t size) {
  return size >= (1 << 20) ? std::to_string(size >> 20) + "MiB" : std::to_string(size >> 10) + "KiB";
}

}  // namespace

int main(int argc, char** argv) try {
  Options options("veloq-bench-zc-send", description);
  if (!options.parse(argc, argv)) return 0;
  const unsigned runs = options.runs(5, 3);
  pin_this_thread(benchmark_cpus(1)[0]);

  Outcome outcome;
  {
    veloq::LocalExecutor executor;
    executor.block_on(measure(options, runs, outcome));
  }

  Report report("veloq-bench-zc-send");
  for (std::size_t i = 0; i < std::size(sizes); ++i) {
    const Series& s = outcome.per_size[i];
    report.add(Result{.name = "send_" + size_name(sizes[i]),
                      .metric = "bytes/s",
                      .veloq = median(s.zero_copy),
                      .baseline_name = "plain send (write_all)",
                      .baseline = median(s.plain),
                      .higher_is_better = true,
                      .goal = Goal(),
                      .runs = runs,
                      .extra = {{"payload_bytes", double(sizes[i])},
                                {"send_zc", outcome.zc_status},
                                {"veloq_min", min_of(s.zero_copy)},
                                {"veloq_max", max_of(s.zero_copy)},
                                {"baseline_min", min_of(s.plain)},
                                {"baseline_max", max_of(s.plain)}}});
  }
  return report.finish(options);
} catch (const std::exception& e) {
  std::fprintf(stderr, "veloq-bench-zc-send: %s\n", e.what());
  return 1;
}
