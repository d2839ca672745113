// veloq-bench-odirect: 4 KiB random O_DIRECT reads at queue depth 32 through
// veloq::io::File, next to a raw liburing loop at the same depth on the same file.
#include "cpus.hpp"
#include "options.hpp"
#include "report.hpp"
#include "samples.hpp"

#include <veloq/io/file.hpp>
#include <veloq/runtime/local_executor.hpp>

#include <fcntl.h>
#include <liburing.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

using namespace veloq::bench;

constexpr const char* description =
    "4 KiB random O_DIRECT reads at queue depth 32, in IOPS, on one standalone\n"
    "LocalExecutor pinned to the first benchmark CPU.\n"
    "\n"
    "  randread_4k_qd32   32 tasks, each reading a random 4 KiB block with\n"
    "                     File::read_at (O_DIRECT, page-aligned buffer) in a loop;\n"
    "                     the shard's loop turns submit at most 2 reads each\n"
    "                     (ShardConfig::submit_batch)\n"
    "\n"
    "Baseline: a raw liburing loop on the same thread and file keeping 32 O_DIRECT\n"
    "reads in flight the way fio's io_uring engine does by default\n"
    "(iodepth_batch_submit=1): each read is submitted by its own io_uring_enter\n"
    "(with GETEVENTS) as soon as it is prepared, and the loop sleeps only when no\n"
    "completion is waiting. Submitting in small groups matters on a disk that\n"
    "starts work as soon as a request arrives: a large batch reaches the device\n"
    "only once the whole batch has been issued, and the device idles meanwhile.\n"
    "The suite compares against fio separately. Both sides use aligned_alloc'd\n"
    "buffers and plain IORING_OP_READ. Each side runs --seconds per run; figures are\n"
    "medians over runs (3, or 2 with --quick).\n"
    "\n"
    "Without --file, a temporary file of --size MiB (default 64) filled with\n"
    "pseudo-random data is written in the current directory and removed at exit.";

constexpr unsigned depth = 32;
constexpr std::size_t block = 4096;
// The most reads one loop turn of the Veloq shard submits (see description).
constexpr unsigned reads_per_turn = 2;

std::uint64_t next_random(std::uint64_t& state) noexcept {
  state ^= state << 13;
  state ^= state >> 7;
  state ^= state << 17;
  return state;
}

// The temporary data file, removed when this goes out of scope.
struct TempFile {
  std::string path;
  ~TempFile() {
    if (!path.empty()) ::unlink(path.c_str());
  }
};

void write_data_file(const std::string& path, std::uint64_t bytes) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) throw std::runtime_error("create " + path + ": " + std::strerror(errno));
  std::vector<std::uint64_t> chunk(1 << 17);  // 1 MiB
  std::uint64_t state = 0x9E3779B97F4A7C15ull;
  for (std::uint64_t written = 0; written < bytes;) {
    for (auto& word : chunk) word = next_random(state);
    std::size_t n = std::min<std::uint64_t>(chunk.size() * sizeof(std::uint64_t), bytes - written);
    const char* p = reinterpret_cast<const char*>(chunk.data());
    for (std::size_t done = 0; done < n;) {
      ssize_t w = ::write(fd, p + done, n - done);
      if (w < 0 && errno == EINTR) continue;
      if (w < 0) throw std::runtime_error("write " + path + ": " + std::strerror(errno));
      done += static_cast<std::size_t>(w);
    }
    written += n;
  }
  if (::fsync(fd) != 0) throw std::runtime_error("fsync " + path + ": " + std::strerror(errno));
  ::close(fd);
}

struct AlignedFree {
  void operator()(void* p) const noexcept { std::free(p); }
};
using Buffers = std::unique_ptr<std::byte, AlignedFree>;

Buffers aligned_buffers() {
  void* p = std::aligned_alloc(4096, depth * block);
  if (p == nullptr) throw std::bad_alloc();
  std::memset(p, 0, depth * block);
  return Buffers(static_cast<std::byte*>(p));
}

veloq::Task<std::uint64_t> reader(veloq::io::File& file, std::byte* buffer, std::uint64_t blocks,
                                  std::uint64_t seed, Clock::time_point end) {
  std::uint64_t done = 0;
  std::uint64_t state = seed;
  while (Clock::now() < end) {
    std::uint64_t offset = (next_random(state) % blocks) * block;
    std::size_t n = co_await file.read_at(buffer, block, offset);
    if (n != block) throw std::runtime_error("short O_DIRECT read");
    ++done;
  }
  co_return done;
}

// IOPS of one run of `seconds`.
veloq::Task<double> veloq_run(veloq::io::File& file, std::byte* buffers, std::uint64_t blocks, double seconds,
                              unsigned run) {
  std::vector<veloq::JoinHandle<std::uint64_t>> handles;
  handles.reserve(depth);
  auto start = Clock::now();
  auto end = start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
  for (unsigned t = 0; t < depth; ++t)
    handles.push_back(veloq::spawn(reader(file, buffers + t * block, blocks, 0x1234567ull * (t + 1) + run, end)));
  std::uint64_t total = 0;
  for (auto& h : handles) total += co_await h;
  co_return double(total) / seconds_since(start);
}

double raw_run(const std::string& path, std::byte* buffers, std::uint64_t blocks, double seconds, unsigned run,
               std::string& ring_flags) {
  int fd = ::open(path.c_str(), O_RDONLY | O_DIRECT | O_CLOEXEC);
  if (fd < 0) throw std::runtime_error("open O_DIRECT " + path + ": " + std::strerror(errno));
  io_uring ring{};
  io_uring_params p{};
  p.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
  ring_flags = "SINGLE_ISSUER|DEFER_TASKRUN";
  if (io_uring_queue_init_params(2 * depth, &ring, &p) < 0) {
    io_uring_params plain{};
    int rc = io_uring_queue_init_params(2 * depth, &ring, &plain);
    if (rc < 0) throw std::runtime_error("io_uring_queue_init: " + std::to_string(-rc));
    ring_flags = "plain";
  }
  std::uint64_t state = 0xABCDEF12345ull + run;
  // Prepares one read into `slot` and submits it at once; GETEVENTS lets the
  // same call post reads that have finished (DEFER_TASKRUN posts them only when asked).
  auto issue = [&](std::uint64_t slot) {
    io_uring_sqe* sqe = io_uring_get_sqe(&ring);
    io_uring_prep_read(sqe, fd, buffers + slot * block, block, (next_random(state) % blocks) * block);
    io_uring_sqe_set_data64(sqe, slot);
    int rc = io_uring_submit_and_get_events(&ring);
    if (rc < 0 && rc != -EINTR) throw std::runtime_error("io_uring_submit: " + std::to_string(-rc));
  };
  auto start = Clock::now();
  auto end = start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
  for (unsigned s = 0; s < depth; ++s) issue(s);
  std::uint64_t done = 0;
  unsigned outstanding = depth;
  bool stopping = false;
  std::uint64_t slots[depth];
  while (outstanding > 0) {
    if (io_uring_cq_ready(&ring) == 0) {  // nothing finished yet: sleep until a read does
      io_uring_cqe* first = nullptr;
      int rc = io_uring_wait_cqe(&ring, &first);
      if (rc < 0 && rc != -EINTR) throw std::runtime_error("io_uring_wait_cqe: " + std::to_string(-rc));
    }
    if (!stopping && Clock::now() >= end) stopping = true;
    unsigned seen = 0, head;
    io_uring_cqe* cqe;
    io_uring_for_each_cqe(&ring, head, cqe) {
      if (cqe->res != static_cast<int>(block)) throw std::runtime_error("raw O_DIRECT read: " + std::to_string(cqe->res));
      slots[seen++] = io_uring_cqe_get_data64(cqe);
    }
    io_uring_cq_advance(&ring, seen);
    outstanding -= seen;
    done += seen;
    if (!stopping) {
      for (unsigned i = 0; i < seen; ++i) issue(slots[i]);
      outstanding += seen;
    }
  }
  double elapsed = seconds_since(start);
  io_uring_queue_exit(&ring);
  ::close(fd);
  return double(done) / elapsed;
}

}  // namespace

int main(int argc, char** argv) try {
  Options options("veloq-bench-odirect", description);
  std::string file_path;
  unsigned size_mib = 64;
  unsigned seconds_opt = 0;
  options.add_value("--file", "PATH", &file_path, "read this existing file instead of a temporary one");
  options.add_value("--size", "MiB", &size_mib, "size of the temporary file (default 64)");
  options.add_value("--seconds", "S", &seconds_opt, "seconds per side per run (default 10, --quick 2)");
  if (!options.parse(argc, argv)) return 0;
  if (size_mib == 0) options.fail("--size must be at least 1");

  const unsigned runs = options.runs(3, 2);
  const double seconds = seconds_opt != 0 ? seconds_opt : options.pick(10.0, 2.0);

  TempFile temp;
  if (file_path.empty()) {
    temp.path = "veloq-odirect-" + std::to_string(::getpid()) + ".tmp";
    write_data_file(temp.path, std::uint64_t(size_mib) << 20);
    file_path = temp.path;
  }
  struct stat st {};
  if (::stat(file_path.c_str(), &st) != 0) throw std::runtime_error("stat " + file_path + ": " + std::strerror(errno));
  const std::uint64_t blocks = static_cast<std::uint64_t>(st.st_size) / block;
  if (blocks == 0) throw std::runtime_error(file_path + " is smaller than one 4 KiB block");

  pin_this_thread(benchmark_cpus(1)[0]);
  Buffers buffers = aligned_buffers();

  std::vector<double> veloq_iops, raw_iops;
  std::string raw_flags = "-";
  for (unsigned r = 0; r < runs; ++r) {  // alternate the sides so drift hits both
    if (options.run_veloq()) {
      veloq::ShardConfig config;
      config.submit_batch = reads_per_turn;
      veloq::LocalExecutor executor(config);
      executor.block_on([&]() -> veloq::Task<void> {
        veloq::io::File file = co_await veloq::io::File::open(file_path, O_RDONLY | O_DIRECT);
        veloq_iops.push_back(co_await veloq_run(file, buffers.get(), blocks, seconds, r));
        co_await file.close();
      }());
    }
    if (options.run_baseline()) raw_iops.push_back(raw_run(file_path, buffers.get(), blocks, seconds, r, raw_flags));
  }

  Report report("veloq-bench-odirect");
  report.add(Result{.name = "randread_4k_qd32",
                    .metric = "IOPS",
                    .veloq = median(veloq_iops),
                    .baseline_name = "raw liburing qd32, one submit per read",
                    .baseline = median(raw_iops),
                    .higher_is_better = true,
                    .goal = Goal().ratio_at_least(0.95),
                    .runs = runs,
                    .extra = {{"file", file_path},
                              {"file_bytes", double(st.st_size)},
                              {"seconds_per_run", seconds},
                              {"queue_depth", double(depth)},
                              {"veloq_submit_batch", double(reads_per_turn)},
                              {"veloq_min", min_of(veloq_iops)},
                              {"veloq_max", max_of(veloq_iops)},
                              {"baseline_ring_flags", raw_flags}}});
  return report.finish(options);
} catch (const std::exception& e) {
  std::fprintf(stderr, "veloq-bench-odirect: %s\n", e.what());
  return 1;
}
