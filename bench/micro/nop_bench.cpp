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
    "IORING_OP_NOP round trips, in ops/s, with 32 in flight (--in-flight), on one\n"
    "standalone LocalExecutor pinned to the first benchmark CPU.\n"
    "\n"
    "  nop_qd32   32 tasks, each awaiting a NOP Operation in a loop. Per loop turn\n"
    "             the executor resumes the 32 tasks (each prepares one SQE and\n"
    "             suspends), makes its one io_uring_enter (submit the 32, wait for\n"
    "             one completion; NOPs complete inline), then reaps the 32 CQEs,\n"
    "             each waking its task.\n"
    "\n"
    "Baseline: a raw liburing loop on its own ring on the same thread: prepare 32\n"
    "NOPs, submit_and_wait(32), walk the 32 CQEs, advance the CQ once, repeat. The\n"
    "two rings are alike: the same number of entries (--entries, default the\n"
    "driver's 256), the same setup flags the Veloq driver obtained from the kernel\n"
    "(SINGLE_ISSUER|DEFER_TASKRUN|TASKRUN_FLAG|SUBMIT_ALL here; the JSON's extra\n"
    "field names them), and a registered ring fd when the driver has one. So the ratio is\n"
    "the price of tasks, awaitables and the executor's turn, not of ring setup.\n"
    "Each figure is the median over runs (7, or 3 with --quick) after one\n"
    "warm-up run; the two sides alternate run by run, so a noisy neighbour\n"
    "slows both.\n"
    "\n"
    "Other --in-flight values (the case is then nop_qdN, with no goal) split\n"
    "Veloq's extra cost into what each operation costs and what each loop turn\n"
    "costs: the per-turn part weighs less the more operations share a turn.";

// The issue's goal is set for this many NOPs in flight.
constexpr unsigned goal_in_flight = 32;

auto nop() {
  return veloq::io::Operation("nop", -1, [](io_uring_sqe* sqe) { io_uring_prep_nop(sqe); });
}

veloq::Task<void> nop_loop(std::uint64_t count) {
  for (std::uint64_t i = 0; i < count; ++i) (void)co_await nop();
}

// Seconds to run `ops` NOPs as `in_flight` concurrent tasks.
veloq::Task<double> veloq_run(std::uint64_t ops, unsigned in_flight) {
  std::vector<veloq::JoinHandle<void>> handles;
  handles.reserve(in_flight);
  auto start = Clock::now();
  for (unsigned t = 0; t < in_flight; ++t) handles.push_back(veloq::spawn(nop_loop(ops / in_flight)));
  for (auto& h : handles) co_await h;
  co_return seconds_since(start);
}

std::string flag_names(unsigned flags) {
  std::string names;
  auto add = [&](unsigned bit, const char* name) {
    if (!(flags & bit)) return;
    if (!names.empty()) names += '|';
    names += name;
  };
  add(IORING_SETUP_SINGLE_ISSUER, "SINGLE_ISSUER");
  add(IORING_SETUP_DEFER_TASKRUN, "DEFER_TASKRUN");
  add(IORING_SETUP_COOP_TASKRUN, "COOP_TASKRUN");
  add(IORING_SETUP_TASKRUN_FLAG, "TASKRUN_FLAG");
  add(IORING_SETUP_SUBMIT_ALL, "SUBMIT_ALL");
  return names.empty() ? "none" : names;
}

class RawRing {
 public:
  RawRing(unsigned entries, unsigned flags, bool register_fd) {
    io_uring_params p{};
    p.flags = flags;
    int rc = io_uring_queue_init_params(entries, &ring_, &p);
    if (rc < 0) throw std::runtime_error("io_uring_queue_init: " + std::to_string(-rc));
    registered_ = register_fd && io_uring_register_ring_fd(&ring_) >= 0;
  }
  ~RawRing() { io_uring_queue_exit(&ring_); }
  RawRing(const RawRing&) = delete;
  RawRing& operator=(const RawRing&) = delete;

  double run(std::uint64_t ops, unsigned in_flight) {
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
  bool registered_fd() const noexcept { return registered_; }

 private:
  io_uring ring_{};
  bool registered_ = false;
};

}  // namespace

int main(int argc, char** argv) try {
  Options options("veloq-bench-nop", description);
  unsigned entries = veloq::io::DriverConfig{}.entries;
  unsigned in_flight = goal_in_flight;
  options.add_value("--entries", "N", &entries, "submission queue entries of both rings (default: the driver's)");
  options.add_value("--in-flight", "N", &in_flight, "NOPs in flight: tasks on the Veloq side, batch size raw (default 32)");
  if (!options.parse(argc, argv)) return 0;
  if (in_flight == 0) options.fail("--in-flight must be at least 1");
  if (entries < 2 * in_flight) options.fail("--entries must be at least " + std::to_string(2 * in_flight));

  const unsigned runs = options.runs(7, 3);
  const std::uint64_t ops = options.pick<std::uint64_t>(4'000'000, 1'000'000) / in_flight * in_flight;
  pin_this_thread(benchmark_cpus(1)[0]);

  veloq::ShardConfig config;
  config.driver.entries = entries;
  veloq::LocalExecutor executor(config);
  const io_uring& veloq_ring = executor.driver().ring();
  const unsigned flags = executor.driver().setup_flags();
  RawRing raw(entries, flags, veloq_ring.enter_ring_fd != veloq_ring.ring_fd);

  // Alternate the two sides run by run (after one warm-up of each).
  std::vector<double> veloq_rates, raw_rates;
  for (unsigned r = 0; r <= runs; ++r) {
    std::uint64_t n = r == 0 ? ops / 4 : ops;
    if (options.run_veloq()) {
      double s = executor.block_on(veloq_run(n, in_flight));
      if (r > 0) veloq_rates.push_back(double(n) / s);
    }
    if (options.run_baseline()) {
      double s = raw.run(n, in_flight);
      if (r > 0) raw_rates.push_back(double(n) / s);
    }
  }

  Report report("veloq-bench-nop");
  Goal goal;
  if (in_flight == goal_in_flight) goal.ratio_at_least(0.85);
  report.add(Result{.name = "nop_qd" + std::to_string(in_flight),
                    .metric = "ops/s",
                    .veloq = median(veloq_rates),
                    .baseline_name = "raw liburing batch " + std::to_string(in_flight),
                    .baseline = median(raw_rates),
                    .higher_is_better = true,
                    .goal = goal,
                    .runs = runs,
                    .extra = {{"in_flight", double(in_flight)},
                              {"ops_per_run", double(ops)},
                              {"ring_entries", double(entries)},
                              {"veloq_min", min_of(veloq_rates)},
                              {"veloq_max", max_of(veloq_rates)},
                              {"baseline_min", min_of(raw_rates)},
                              {"baseline_max", max_of(raw_rates)},
                              {"ring_flags", flag_names(flags)},
                              {"registered_ring_fd", raw.registered_fd() ? "yes" : "no"}}});
  return report.finish(options);
} catch (const std::exception& e) {
  std::fprintf(stderr, "veloq-bench-nop: %s\n", e.what());
  return 1;
}
