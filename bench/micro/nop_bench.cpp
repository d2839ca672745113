// veloq-bench-nop: the cost of one io_uring round trip through Veloq's driver
// and executor, next to a raw liburing loop doing the same NOPs in batches.
#include "cpus.hpp"
#include "options.hpp"
#include "report.hpp"
#include "samples.hpp"

#include <veloq/io/operation.hpp>
#include <veloq/runtime/local_executor.hpp>

#include <liburing.h>

#include <cstdint>
#include <cstdio>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

using namespace veloq::bench;

constexpr const char* description =
    "IORING_OP_NOP round trips, in ops/s, with 32 in flight, on one standalone\n"
    "LocalExecutor pinned to the first benchmark CPU.\n"
    "\n"
    "  nop_qd32   32 tasks, each awaiting a NOP Operation in a loop (the executor\n"
    "             submits and reaps them in its one io_uring_enter per loop turn)\n"
    "\n"
    "Baseline: a raw liburing loop on its own ring (SINGLE_ISSUER|DEFER_TASKRUN, with\n"
    "fallback to plain setup) on the same thread: prepare 32 NOPs, submit_and_wait(32),\n"
    "reap the 32 CQEs, repeat. Each figure is the median over runs (7, or 3 with\n"
    "--quick) after one warm-up run.";

constexpr unsigned in_flight = 32;

auto nop() {
  return veloq::io::Operation("nop", -1, [](io_uring_sqe* sqe) { io_uring_prep_nop(sqe); });
}

veloq::Task<void> nop_loop(std::uint64_t count) {
  for (std::uint64_t i = 0; i < count; ++i) (void)co_await nop();
}

// Seconds to run `ops` NOPs as 32 concurrent tasks.
veloq::Task<double> veloq_run(std::uint64_t ops) {
  std::vector<veloq::JoinHandle<void>> handles;
  handles.reserve(in_flight);
  auto start = Clock::now();
  for (unsigned t = 0; t < in_flight; ++t) handles.push_back(veloq::spawn(nop_loop(ops / in_flight)));
  for (auto& h : handles) co_await h;
  co_return seconds_since(start);
}

class RawRing {
 public:
  RawRing() {
    io_uring_params p{};
    p.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
    if (io_uring_queue_init_params(2 * in_flight, &ring_, &p) < 0) {
      io_uring_params plain{};
      int rc = io_uring_queue_init_params(2 * in_flight, &ring_, &plain);
      if (rc < 0) throw std::runtime_error("io_uring_queue_init: " + std::to_string(-rc));
      flags_ = "plain";
    }
  }
  ~RawRing() { io_uring_queue_exit(&ring_); }
  RawRing(const RawRing&) = delete;
  RawRing& operator=(const RawRing&) = delete;

  double run(std::uint64_t ops) {
    std::uint64_t batches = ops / in_flight;
    auto start = Clock::now();
    for (std::uint64_t b = 0; b < batches; ++b) {
      for (unsigned i = 0; i < in_flight; ++i) io_uring_prep_nop(io_uring_get_sqe(&ring_));
      int rc = io_uring_submit_and_wait(&ring_, in_flight);
      if (rc < 0) throw std::runtime_error("io_uring_submit_and_wait: " + std::to_string(-rc));
      unsigned seen = 0, head;
      io_uring_cqe* cqe;
      io_uring_for_each_cqe(&ring_, head, cqe) {
        keep(cqe->res);
        ++seen;
      }
      io_uring_cq_advance(&ring_, seen);
    }
    return seconds_since(start);
  }
  const char* flags() const noexcept { return flags_; }

 private:
  io_uring ring_{};
  const char* flags_ = "SINGLE_ISSUER|DEFER_TASKRUN";
};

}  // namespace

int main(int argc, char** argv) try {
  Options options("veloq-bench-nop", description);
  if (!options.parse(argc, argv)) return 0;

  const unsigned runs = options.runs(7, 3);
  const std::uint64_t ops = options.pick<std::uint64_t>(4'000'000, 1'000'000) / in_flight * in_flight;
  pin_this_thread(benchmark_cpus(1)[0]);

  std::vector<double> veloq_rates, raw_rates;
  std::string raw_flags = "-";
  if (options.run_veloq()) {
    veloq::LocalExecutor executor;
    executor.block_on([&]() -> veloq::Task<void> {
      (void)co_await veloq_run(ops / 4);  // warm-up
      for (unsigned r = 0; r < runs; ++r) veloq_rates.push_back(double(ops) / co_await veloq_run(ops));
    }());
  }
  if (options.run_baseline()) {
    RawRing ring;
    raw_flags = ring.flags();
    (void)ring.run(ops / 4);
    for (unsigned r = 0; r < runs; ++r) raw_rates.push_back(double(ops) / ring.run(ops));
  }

  Report report("veloq-bench-nop");
  report.add(Result{.name = "nop_qd32",
                    .metric = "ops/s",
                    .veloq = median(veloq_rates),
                    .baseline_name = "raw liburing batch 32",
                    .baseline = median(raw_rates),
                    .higher_is_better = true,
                    .goal = Goal().ratio_at_least(0.85),
                    .runs = runs,
                    .extra = {{"in_flight", double(in_flight)},
                              {"ops_per_run", double(ops)},
                              {"veloq_min", min_of(veloq_rates)},
                              {"veloq_max", max_of(veloq_rates)},
                              {"baseline_ring_flags", raw_flags}}});
  return report.finish(options);
} catch (const std::exception& e) {
  std::fprintf(stderr, "veloq-bench-nop: %s\n", e.what());
  return 1;
}
