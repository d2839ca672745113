// veloq-bench-sched: what task classes and time-quota preemption cost and
// deliver: the price of running tasks in a class when a shard has several, how
// closely two busy classes split a shard by their shares, and how long a ping
// waits behind a busy loop that calls maybe_yield().
#include "options.hpp"
#include "report.hpp"
#include "runtime_setup.hpp"
#include "samples.hpp"

#include <veloq/mesh/submit_to.hpp>
#include <veloq/runtime/maybe_yield.hpp>
#include <veloq/runtime/runtime.hpp>
#include <veloq/runtime/sleep.hpp>
#include <veloq/runtime/yield.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

namespace {

using namespace veloq::bench;
using namespace std::chrono_literals;
using veloq::Clock;
using veloq::Task;
using veloq::TaskClass;

constexpr const char* description =
    "Task classes and time-quota preemption, one shard pinned to CPU 0 (two for the ping).\n"
    "\n"
    "  class_spawn_join   spawn + join of an empty task, in tasks/s, run in the third of\n"
    "                     three classes (the shard then picks a class by virtual runtime\n"
    "                     and times each slice). Baseline: the same loop on a shard with\n"
    "                     the default class only, in the same invocation (runs alternate).\n"
    "                     The ratio is the price of having several classes, at its worst:\n"
    "                     the loop switches class twice per task (the entry task is in\n"
    "                     the default class), and every switch picks a class and reads\n"
    "                     the clock. The default class alone pays none of it.\n"
    "  fairness_100_300   two classes with 100 and 300 shares, each with 3 tasks that work\n"
    "                     in 20 us units and yield, for 1 s (0.3 s with --quick); the share\n"
    "                     of the work time (as the tasks measure it) the 100-share class got,\n"
    "                     in %. Baseline: the 25% its shares entitle it to; the extra gives\n"
    "                     the error in percentage points. Goal: within 3 points.\n"
    "  ping_maybe_yield   shard 1 runs a loop of ~1 us steps with `co_await maybe_yield()`\n"
    "                     between them; shard 0 sends it a submit_to ping after random\n"
    "                     gaps of 1.5-2.5 ms and times the round trip (p50 and p99 over\n"
    "                     200 pings, 50 with --quick). Baseline: the shard's task quota\n"
    "                     (500 us by default); ratio = quota / delay. Goal: p50 within\n"
    "                     one quota, p99 within about one (1.25 quotas).\n"
    "Medians over 5 runs (3 with --quick) unless said otherwise.";

// --- class_spawn_join ------------------------------------------------------------

Task<void> empty_task() { co_return; }

Task<double> spawn_join_seconds(std::uint64_t iterations, TaskClass cls) {
  auto start = Clock::now();
  for (std::uint64_t i = 0; i < iterations; ++i) co_await veloq::spawn(empty_task(), {.task_class = cls});
  co_return seconds_since(start);
}

double spawn_join_rate(bool with_classes, std::uint64_t iterations) {
  veloq::RuntimeConfig config = pinned_runtime(1);
  if (with_classes) config.shard.task_classes = {{"latency", 300}, {"background", 100}};
  veloq::Runtime rt(config);
  return rt.run([&]() -> Task<double> {
    TaskClass cls = with_classes ? veloq::find_task_class("background") : TaskClass::default_class();
    (void)co_await spawn_join_seconds(iterations / 4, cls);  // warm-up: fills the frame pool
    co_return static_cast<double>(iterations) / co_await spawn_join_seconds(iterations, cls);
  });
}

// --- fairness_100_300 ------------------------------------------------------------

Task<void> busy_worker(std::chrono::nanoseconds& worked, const bool& stop) {
  while (!stop) {
    auto start = Clock::now();
    while (Clock::now() - start < 20us) {
    }
    worked += Clock::now() - start;
    co_await veloq::yield();
  }
}

double light_class_percent(std::chrono::milliseconds length) {
  veloq::RuntimeConfig config = pinned_runtime(1);
  config.shard.task_classes = {{"light", 100}, {"heavy", 300}};
  veloq::Runtime rt(config);
  std::chrono::nanoseconds light{0}, heavy{0};
  rt.run([&]() -> Task<void> {
    bool stop = false;
    std::vector<veloq::JoinHandle<void>> workers;
    for (int i = 0; i < 3; ++i) {
      workers.push_back(veloq::spawn(busy_worker(light, stop), {.task_class = veloq::find_task_class("light")}));
      workers.push_back(veloq::spawn(busy_worker(heavy, stop), {.task_class = veloq::find_task_class("heavy")}));
    }
    co_await veloq::sleep_for(length);
    stop = true;
    for (auto& w : workers) co_await std::move(w);
  });
  return 100.0 * static_cast<double>(light.count()) / static_cast<double>((light + heavy).count());
}

// --- ping_maybe_yield ------------------------------------------------------------

struct PingDelays {
  double p50_us = 0;
  double p99_us = 0;
};

PingDelays ping_under_maybe_yield(unsigned pings) {
  veloq::Runtime rt(pinned_runtime(2));
  return rt.run([&]() -> Task<PingDelays> {
    std::atomic<bool> stop{false}, running{false};
    auto busy_loop = [&]() -> Task<void> {
      running = true;
      while (!stop.load(std::memory_order_relaxed)) {
        auto step_end = Clock::now() + 1us;
        while (Clock::now() < step_end) {
        }
        co_await veloq::maybe_yield();
      }
    };
    auto loop = veloq::submit_to(1, busy_loop);
    while (!running) co_await veloq::sleep_for(1ms);
    std::vector<double> delays;
    // Random gaps between pings, so that they arrive at random points of
    // shard 1's quota-long turns rather than in step with the watchdog's tick.
    std::minstd_rand gap(12345);
    std::uniform_int_distribution<int> gap_us(1500, 2500);
    for (unsigned i = 0; i < pings; ++i) {
      co_await veloq::sleep_for(std::chrono::microseconds(gap_us(gap)));
      auto sent = Clock::now();
      (void)co_await veloq::submit_to(1, [] { return 1; });
      delays.push_back(std::chrono::duration<double, std::micro>(Clock::now() - sent).count());
    }
    stop = true;
    co_await std::move(loop);
    co_return PingDelays{percentile(delays, 50), percentile(delays, 99)};
  });
}

}  // namespace

int main(int argc, char** argv) {
  Options options("veloq-bench-sched", description);
  if (!options.parse(argc, argv)) return 0;
  const unsigned runs = options.runs(5, 3);
  Report report("veloq-bench-sched");

  const std::uint64_t iterations = options.pick<std::uint64_t>(2'000'000, 500'000);
  std::vector<double> with_classes, default_only;
  for (unsigned r = 0; r < runs; ++r) {
    if (options.run_baseline()) default_only.push_back(spawn_join_rate(false, iterations));
    if (options.run_veloq()) with_classes.push_back(spawn_join_rate(true, iterations));
  }
  Result spawn_row{.name = "class_spawn_join", .metric = "tasks/s",
                   .veloq = options.run_veloq() ? median(with_classes) : 0,
                   .baseline_name = "same loop, default class only",
                   .goal = Goal().ratio_at_least(0.4), .runs = runs};
  if (options.run_baseline()) spawn_row.baseline = median(default_only);
  report.add(spawn_row);

  if (options.run_veloq()) {
    std::vector<double> shares;
    for (unsigned r = 0; r < runs; ++r) shares.push_back(light_class_percent(options.pick(1000ms, 300ms)));
    double share = median(shares);
    report.add(Result{.name = "fairness_100_300", .metric = "% to 100 of 400 shares", .veloq = share,
                      .baseline_name = "entitlement (shares)", .baseline = 25.0,
                      .goal = Goal().veloq_at_least(22, "%").veloq_at_most(28, "%"), .runs = runs,
                      .extra = {{"error_points", share - 25.0},
                                {"worst_error_points", std::max(max_of(shares) - 25.0, 25.0 - min_of(shares))}}});

    std::vector<double> p50, p99;
    for (unsigned r = 0; r < runs; ++r) {
      PingDelays d = ping_under_maybe_yield(options.pick(200u, 50u));
      p50.push_back(d.p50_us);
      p99.push_back(d.p99_us);
    }
    const double quota_us = 500;
    report.add(Result{.name = "ping_maybe_yield_p50", .metric = "us", .veloq = median(p50),
                      .baseline_name = "task quota", .baseline = quota_us, .higher_is_better = false,
                      .goal = Goal().ratio_at_least(1.0), .runs = runs});
    report.add(Result{.name = "ping_maybe_yield_p99", .metric = "us", .veloq = median(p99),
                      .baseline_name = "task quota", .baseline = quota_us, .higher_is_better = false,
                      .goal = Goal().ratio_at_least(0.8), .runs = runs});
  }
  return report.finish(options);
}
