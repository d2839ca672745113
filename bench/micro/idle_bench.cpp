// veloq-bench-idle: what an idle runtime costs. By default, the CPU time of a
// 2-shard runtime with nothing to do, next to a thread blocked in epoll_wait;
// with --poll-cost, whether that cost (and the cost of the loop turns around
// real work) stays flat as the number of idle shards grows.
#include "options.hpp"
#include "report.hpp"
#include "runtime_setup.hpp"
#include "samples.hpp"

#include <veloq/mesh/submit_to.hpp>
#include <veloq/runtime/runtime.hpp>
#include <veloq/runtime/sleep.hpp>

#include <sys/epoll.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace {

using namespace veloq::bench;
using namespace std::chrono_literals;

constexpr const char* description =
    "CPU cost of idle shards.\n"
    "\n"
    "Default: a 2-shard runtime (pinned to CPUs 0 and 1) with no work for 10 s (2 s with\n"
    "--quick), measured in windows of 2 s (1 s) with getrusage(RUSAGE_SELF): the process's\n"
    "CPU time during a window over the window's length, in % of one core. Startup is\n"
    "left out (the first window opens 200 ms after the runtime is up), and so is shutdown.\n"
    "The entry task on shard 0 sleeps through each window, so shard 0 waits in the kernel\n"
    "with a timer and shard 1 with no deadline at all. Baseline: one thread blocked in\n"
    "epoll_wait on an empty epoll set for the same windows, measured the same way.\n"
    "Goal: at most 0.5% of one core. Median over the windows.\n"
    "\n"
    "--poll-cost --shards N (2..64): the runtime does not pin its shards, so N > 2\n"
    "oversubscribes the CPUs. Shard 0 talks only to shard 1 while the other N - 2 shards\n"
    "stay idle; only the working pair then pins itself (shard 0 to CPU 0, shard 1 to\n"
    "CPU 1) so that the N-shard and 2-shard figures do not differ by where the kernel put\n"
    "them; the idle shards stay free to run anywhere. The process's CPU time (all\n"
    "threads) is charged to the pair's work:\n"
    "  poll_cost_serial_rt     CPU ns per one-at-a-time submit_to round trip 0 -> 1; each\n"
    "                          side is idle while the other works, so the round trip is\n"
    "                          made of idle loop turns (and parks; see the extras).\n"
    "  poll_cost_pipelined_rt  CPU ns per round trip with 256 in flight (per-message\n"
    "                          delivery cost; shards rarely park).\n"
    "  poll_cost_idle          % of one core while all N shards are idle (the window opens\n"
    "                          50 ms after the last work).\n"
    "The serial and pipelined phases last 300 ms each (100 ms with --quick): the kernel\n"
    "adds a thread running on another CPU to the process's CPU time only at its tick.\n"
    "The baseline of each row is the same measurement in a 2-shard runtime made by the\n"
    "same invocation, so ratio = cost(2 shards) / cost(N shards): if idle shards polled,\n"
    "or if a loop turn scanned every peer, the cost would grow with N and the ratio would\n"
    "fall below 1. Goal: ratio >= 0.8 (cost at N within 1.25x of 2 shards), judged from 4\n"
    "shards up: at 2 the ratio only shows how far two identical runs differ. The extras\n"
    "give shard 0's own CPU ns per loop turn and loop turns per round trip.\n"
    "Each run builds a fresh runtime; N-shard and 2-shard runs alternate. Medians over\n"
    "5 runs (2 with --quick).";

double cpu_percent(std::chrono::nanoseconds cpu, std::chrono::nanoseconds wall) {
  return 100.0 * static_cast<double>(cpu.count()) / static_cast<double>(wall.count());
}

// --- the default: a 2-shard runtime idle --------------------------------------------

struct IdleWindows {
  std::vector<double> percent;
  std::uint64_t turns[2] = {0, 0};
  std::uint64_t parks[2] = {0, 0};
};

struct ShardCounters {
  std::uint64_t turns = 0;
  std::uint64_t parks = 0;
};

ShardCounters counters_here() {
  const veloq::ExecutorStats& s = veloq::RuntimeContext::current().executor().stats();
  return {s.loop_turns, s.parks};
}

veloq::Task<IdleWindows> veloq_idle_windows(unsigned windows, std::chrono::milliseconds window) {
  IdleWindows result;
  co_await veloq::sleep_for(200ms);
  ShardCounters before0 = counters_here();
  ShardCounters before1 = co_await veloq::submit_to(1, counters_here);
  for (unsigned w = 0; w < windows; ++w) {
    auto cpu0 = process_cpu_time();
    auto wall0 = Clock::now();
    co_await veloq::sleep_for(window);
    auto cpu1 = process_cpu_time();
    result.percent.push_back(cpu_percent(cpu1 - cpu0, Clock::now() - wall0));
  }
  ShardCounters after0 = counters_here();
  ShardCounters after1 = co_await veloq::submit_to(1, counters_here);
  result.turns[0] = after0.turns - before0.turns;
  result.turns[1] = after1.turns - before1.turns;
  result.parks[0] = after0.parks - before0.parks;
  result.parks[1] = after1.parks - before1.parks;
  co_return result;
}

std::vector<double> epoll_idle_windows(int cpu, unsigned windows, std::chrono::milliseconds window) {
  std::vector<double> percent;
  std::thread idle = pinned_thread(cpu, [&] {
    int epfd = ::epoll_create1(EPOLL_CLOEXEC);
    epoll_event event;
    for (unsigned w = 0; w < windows; ++w) {
      auto cpu0 = process_cpu_time();
      auto wall0 = Clock::now();
      auto deadline = wall0 + window;
      // epoll_wait may return early (a signal); wait out the window regardless.
      for (auto left = window; left > 0ms;
           left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()))
        (void)::epoll_wait(epfd, &event, 1, static_cast<int>(left.count()));
      auto cpu1 = process_cpu_time();
      percent.push_back(cpu_percent(cpu1 - cpu0, Clock::now() - wall0));
    }
    ::close(epfd);
  });
  idle.join();
  return percent;
}

int run_idle(const Options& options) {
  const unsigned windows = options.runs(5, 2);
  const auto window = options.pick(2000ms, 1000ms);
  const std::vector<int> cpus = benchmark_cpus(2);

  IdleWindows veloq_windows;
  std::vector<double> epoll_windows;
  if (options.run_veloq()) {
    veloq::Runtime runtime(pinned_runtime(2));
    veloq_windows = runtime.run([&] { return veloq_idle_windows(windows, window); });
  }
  if (options.run_baseline()) epoll_windows = epoll_idle_windows(cpus[0], windows, window);

  const double seconds = double(windows) * std::chrono::duration<double>(window).count();
  Report report("veloq-bench-idle");
  report.add(Result{.name = "idle_2_shards",
                    .metric = "% of one core",
                    .veloq = median(veloq_windows.percent),
                    .baseline_name = "thread blocked in epoll_wait",
                    .baseline = median(epoll_windows),
                    .higher_is_better = false,
                    .goal = Goal().veloq_at_most(0.5, "%"),
                    .runs = windows,
                    .extra = {{"window_s", std::chrono::duration<double>(window).count()},
                              {"veloq_max_window", max_of(veloq_windows.percent)},
                              {"shard0_loop_turns_per_s", double(veloq_windows.turns[0]) / seconds},
                              {"shard1_loop_turns_per_s", double(veloq_windows.turns[1]) / seconds},
                              {"shard0_parks", double(veloq_windows.parks[0])},
                              {"shard1_parks", double(veloq_windows.parks[1])}}});
  return report.finish(options);
}

// --- --poll-cost: does the cost of idle shards grow with their number? --------------

struct PollCostRun {
  double serial_ns_per_rt = 0;      // process CPU per one-at-a-time round trip
  double pipelined_ns_per_rt = 0;   // process CPU per pipelined round trip
  double idle_percent = 0;          // process CPU while every shard idles
  double shard0_ns_per_turn = 0;    // shard 0's own CPU per loop turn, serial round trips
  double shard0_parks_per_rt = 0;
  double turns_per_serial_rt = 0;   // shard 0 loop turns per serial round trip
  double serial_wall_us_per_rt = 0;
  double serial_calls = 0;          // made within the window
  double pipelined_calls = 0;
};

veloq::Task<PollCostRun> poll_cost_run(std::chrono::milliseconds work_window, std::chrono::milliseconds idle_window) {
  PollCostRun run;

  // Idle: every shard parked. The window opens after a short settle, so it
  // measures staying idle rather than the last moments of the previous phase.
  co_await veloq::sleep_for(50ms);
  auto cpu0 = process_cpu_time();
  auto wall0 = Clock::now();
  co_await veloq::sleep_for(idle_window);
  run.idle_percent = cpu_percent(process_cpu_time() - cpu0, Clock::now() - wall0);

  // The two working phases last a window, not a count of calls: the kernel
  // adds another CPU's running thread to the process's CPU time only at its
  // scheduler tick, so a phase of a few milliseconds would be off by a tick.
  auto window_open = [&wall0, work_window](std::uint64_t calls) {
    return calls % 256 != 0 || Clock::now() - wall0 < work_window;
  };

  // One at a time: each shard is idle while the other works.
  const ShardCounters before = counters_here();
  auto thread0 = thread_cpu_time();
  cpu0 = process_cpu_time();
  wall0 = Clock::now();
  std::uint64_t calls = 0;
  for (; window_open(calls); ++calls) co_await veloq::submit_to(1, [] {});
  auto process_cpu = process_cpu_time() - cpu0;
  auto wall = Clock::now() - wall0;
  const ShardCounters after = counters_here();
  auto turns = after.turns - before.turns;
  run.serial_calls = calls;
  run.serial_ns_per_rt = double(process_cpu.count()) / double(calls);
  run.shard0_ns_per_turn = double((thread_cpu_time() - thread0).count()) / double(turns);
  run.turns_per_serial_rt = double(turns) / double(calls);
  run.shard0_parks_per_rt = double(after.parks - before.parks) / double(calls);
  run.serial_wall_us_per_rt = std::chrono::duration<double, std::micro>(wall).count() / double(calls);

  // Pipelined: 256 in flight.
  constexpr unsigned window = 256;
  std::vector<std::optional<veloq::RemoteCall<void>>> in_flight(window);
  cpu0 = process_cpu_time();
  wall0 = Clock::now();
  for (calls = 0; window_open(calls); ++calls) {
    auto& slot = in_flight[calls % window];
    if (slot) {
      co_await std::move(*slot);
      slot.reset();
    }
    slot.emplace(veloq::submit_to(1, [] {}));
  }
  for (auto& slot : in_flight)
    if (slot) {
      co_await std::move(*slot);
      slot.reset();
    }
  run.pipelined_calls = calls;
  run.pipelined_ns_per_rt = double((process_cpu_time() - cpu0).count()) / double(calls);
  co_return run;
}

// One measurement in a fresh runtime of `shards` unpinned shards.
PollCostRun poll_cost_in_new_runtime(unsigned shards, std::chrono::milliseconds work_window,
                                     std::chrono::milliseconds idle_window) {
  veloq::Runtime runtime(unpinned_runtime(shards));
  return runtime.run([&]() -> veloq::Task<PollCostRun> {
    // The working pair goes on CPUs 0 and 1 in every runtime, so the N-shard and
    // 2-shard figures do not differ by where the kernel happened to put them.
    const std::vector<int> cpus = benchmark_cpus(2);
    pin_this_thread(cpus[0]);
    co_await veloq::submit_to(1, [cpu = cpus[1 % cpus.size()]] { pin_this_thread(cpu); });
    // Give every shard time to reach its first park, and warm the path up.
    co_await veloq::sleep_for(100ms);
    (void)co_await poll_cost_run(10ms, 10ms);
    co_return co_await poll_cost_run(work_window, idle_window);
  });
}

int run_poll_cost(const Options& options, unsigned shards) {
  const unsigned runs = options.runs(5, 2);
  const auto work_window = options.pick(300ms, 100ms);
  const auto idle_window = options.pick(500ms, 200ms);

  // N-shard and 2-shard runtimes alternate, so drift in the machine's load hits both alike.
  std::vector<PollCostRun> at_n, at_2;
  for (unsigned r = 0; r < runs; ++r) {
    if (options.run_veloq()) at_n.push_back(poll_cost_in_new_runtime(shards, work_window, idle_window));
    if (options.run_baseline()) at_2.push_back(poll_cost_in_new_runtime(2, work_window, idle_window));
  }

  auto med = [](const std::vector<PollCostRun>& v, double PollCostRun::*field) {
    std::vector<double> values;
    for (const PollCostRun& r : v) values.push_back(r.*field);
    return median(values);
  };
  const std::string two = "same, 2-shard runtime";
  // At 2 shards the row compares the 2-shard runtime with itself: its ratio
  // shows the noise between identical runs and judges nothing.
  const Goal flat = shards == 2 ? Goal() : Goal().ratio_at_least(0.8);
  Report report("veloq-bench-idle");
  report.add(Result{.name = "poll_cost_serial_rt",
                    .metric = "CPU ns/round trip",
                    .veloq = med(at_n, &PollCostRun::serial_ns_per_rt),
                    .baseline_name = two,
                    .baseline = med(at_2, &PollCostRun::serial_ns_per_rt),
                    .higher_is_better = false,
                    .goal = flat,
                    .runs = runs,
                    .extra = {{"shards", double(shards)},
                              {"calls", med(at_n, &PollCostRun::serial_calls)},
                              {"shard0_cpu_ns_per_turn", med(at_n, &PollCostRun::shard0_ns_per_turn)},
                              {"shard0_cpu_ns_per_turn_2_shards", med(at_2, &PollCostRun::shard0_ns_per_turn)},
                              {"shard0_turns_per_rt", med(at_n, &PollCostRun::turns_per_serial_rt)},
                              {"shard0_parks_per_rt", med(at_n, &PollCostRun::shard0_parks_per_rt)},
                              {"wall_us_per_rt", med(at_n, &PollCostRun::serial_wall_us_per_rt)},
                              {"wall_us_per_rt_2_shards", med(at_2, &PollCostRun::serial_wall_us_per_rt)}}});
  report.add(Result{.name = "poll_cost_pipelined_rt",
                    .metric = "CPU ns/round trip",
                    .veloq = med(at_n, &PollCostRun::pipelined_ns_per_rt),
                    .baseline_name = two,
                    .baseline = med(at_2, &PollCostRun::pipelined_ns_per_rt),
                    .higher_is_better = false,
                    .goal = flat,
                    .runs = runs,
                    .extra = {{"shards", double(shards)},
                              {"calls", med(at_n, &PollCostRun::pipelined_calls)},
                              {"window", 256.0}}});
  report.add(Result{.name = "poll_cost_idle",
                    .metric = "% of one core",
                    .veloq = med(at_n, &PollCostRun::idle_percent),
                    .baseline_name = two,
                    .baseline = med(at_2, &PollCostRun::idle_percent),
                    .higher_is_better = false,
                    .goal = Goal().veloq_at_most(0.5, "%"),
                    .runs = runs,
                    .extra = {{"shards", double(shards)},
                              {"window_s", std::chrono::duration<double>(idle_window).count()}}});
  return report.finish(options);
}

}  // namespace

int main(int argc, char** argv) {
  Options options("veloq-bench-idle", description);
  bool poll_cost = false;
  unsigned shards = 2;
  options.add_flag("--poll-cost", &poll_cost, "measure idle-shard cost as the shard count grows (see above)");
  options.add_value("--shards", "N", &shards, "with --poll-cost: shards in the runtime, 2..64 (default 2)");
  if (!options.parse(argc, argv)) return 0;
  if (!poll_cost) {
    if (shards != 2) options.fail("--shards applies to --poll-cost; the default mode runs 2 shards");
    return run_idle(options);
  }
  if (shards < 2 || shards > 64) options.fail("--shards must be between 2 and 64");
  return run_poll_cost(options, shards);
}
