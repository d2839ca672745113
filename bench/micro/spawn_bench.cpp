// veloq-bench-spawn: how fast a shard spawns and joins tasks, next to the
// cheapest thing C++20 coroutines can do (create, resume, destroy a frame).
#include "options.hpp"
#include "report.hpp"
#include "runtime_setup.hpp"
#include "samples.hpp"

#include <veloq/mesh/submit_to.hpp>
#include <veloq/runtime/runtime.hpp>
#include <veloq/runtime/yield.hpp>

#include <array>
#include <atomic>
#include <coroutine>
#include <cstdint>
#include <exception>
#include <string>
#include <thread>
#include <vector>

namespace {

using namespace veloq::bench;

constexpr const char* description =
    "Spawn + join of an empty task on one shard, in tasks/s, next to a bare loop of\n"
    "minimal C++20 coroutines (no runtime: operator new, resume, destroy) in this binary.\n"
    "\n"
    "  spawn_join          spawn one empty task, co_await its JoinHandle, repeat\n"
    "  spawn_join_batch64  spawn 64 empty tasks, then co_await the 64 handles\n"
    "\n"
    "The baseline of spawn_join creates, resumes and destroys one coroutine at a time;\n"
    "that of the batch creates 64, resumes the 64, destroys the 64. Each figure is the\n"
    "median over runs (7, or 3 with --quick) after one warm-up run.\n"
    "\n"
    "--shards N (1 or 2) runs the same loop on N shards (pinned to CPUs 0 and 1) at once,\n"
    "and the bare loop on N pinned threads at once; the rows give the aggregate\n"
    "(all tasks / slowest shard's time) and, for N > 1, each shard's own rate.";

// The baseline: a coroutine type with nothing in it but what the language needs.
struct BareCoroutine {
  struct promise_type {
    BareCoroutine get_return_object() noexcept {
      return BareCoroutine{std::coroutine_handle<promise_type>::from_promise(*this)};
    }
    std::suspend_always initial_suspend() noexcept { return {}; }
    std::suspend_always final_suspend() noexcept { return {}; }
    void return_void() noexcept {}
    void unhandled_exception() noexcept { std::terminate(); }
  };
  std::coroutine_handle<promise_type> handle;
};

// Out of line so the compiler cannot elide the frame's allocation.
[[gnu::noinline]] BareCoroutine bare_coroutine() { co_return; }

constexpr std::size_t batch = 64;

double bare_loop_seconds(std::uint64_t iterations, bool batched) {
  auto start = Clock::now();
  if (!batched) {
    for (std::uint64_t i = 0; i < iterations; ++i) {
      BareCoroutine c = bare_coroutine();
      c.handle.resume();
      c.handle.destroy();
    }
  } else {
    std::array<std::coroutine_handle<>, batch> handles;
    for (std::uint64_t i = 0; i < iterations; i += batch) {
      for (auto& h : handles) h = bare_coroutine().handle;
      for (auto& h : handles) h.resume();
      for (auto& h : handles) h.destroy();
    }
  }
  return seconds_since(start);
}

veloq::Task<void> empty_task() { co_return; }

veloq::Task<double> spawn_join_seconds(std::uint64_t iterations, bool batched) {
  auto start = Clock::now();
  if (!batched) {
    for (std::uint64_t i = 0; i < iterations; ++i) co_await veloq::spawn(empty_task());
  } else {
    std::array<veloq::JoinHandle<void>, batch> handles;
    for (std::uint64_t i = 0; i < iterations; i += batch) {
      for (auto& h : handles) h = veloq::spawn(empty_task());
      for (auto& h : handles) co_await h;
    }
  }
  co_return seconds_since(start);
}

// Waits at a start line shared by every shard (yielding, so the shard's loop
// still flushes its mesh) and then times the loop.
veloq::Task<double> spawn_join_from_start_line(std::atomic<unsigned>* at_start, unsigned shards,
                                               std::uint64_t iterations, bool batched) {
  at_start->fetch_add(1);
  while (at_start->load() < shards) co_await veloq::yield();
  co_return co_await spawn_join_seconds(iterations, batched);
}

// One run on `shards` shards at once; returns each shard's time.
veloq::Task<std::vector<double>> spawn_join_on_all(unsigned shards, std::uint64_t iterations, bool batched) {
  std::vector<double> seconds;
  if (shards == 1) {
    seconds.push_back(co_await spawn_join_seconds(iterations, batched));
    co_return seconds;
  }
  std::atomic<unsigned> at_start{0};
  std::vector<veloq::RemoteCall<double>> calls;
  calls.reserve(shards);
  for (unsigned s = 0; s < shards; ++s)
    calls.push_back(veloq::submit_to(s, [at = &at_start, shards, iterations, batched] {
      return spawn_join_from_start_line(at, shards, iterations, batched);
    }));
  for (auto& call : calls) seconds.push_back(co_await std::move(call));
  co_return seconds;
}

std::vector<double> bare_on_all(const std::vector<int>& cpus, unsigned threads, std::uint64_t iterations,
                                bool batched) {
  if (threads == 1) {
    pin_this_thread(cpus[0]);
    return {bare_loop_seconds(iterations, batched)};
  }
  std::vector<double> seconds(threads);
  std::atomic<unsigned> at_start{0};
  std::vector<std::thread> pool;
  for (unsigned t = 0; t < threads; ++t)
    pool.push_back(pinned_thread(cpus[t % cpus.size()], [&, t] {
      at_start.fetch_add(1);
      while (at_start.load() < threads) cpu_relax();
      seconds[t] = bare_loop_seconds(iterations, batched);
    }));
  for (auto& th : pool) th.join();
  return seconds;
}

struct Figures {
  std::vector<double> aggregate;               // tasks/s per run
  std::vector<std::vector<double>> per_shard;  // [shard][run] tasks/s
};

void add_run(Figures& f, const std::vector<double>& seconds, std::uint64_t iterations) {
  f.per_shard.resize(seconds.size());
  double slowest = max_of(seconds);
  f.aggregate.push_back(static_cast<double>(iterations) * static_cast<double>(seconds.size()) / slowest);
  for (std::size_t s = 0; s < seconds.size(); ++s)
    f.per_shard[s].push_back(static_cast<double>(iterations) / seconds[s]);
}

}  // namespace

int main(int argc, char** argv) {
  Options options("veloq-bench-spawn", description);
  unsigned shards = 1;
  options.add_value("--shards", "N", &shards, "shards spawning at once, 1 or 2 (default 1)");
  if (!options.parse(argc, argv)) return 0;
  if (shards < 1 || shards > 2) options.fail("--shards must be 1 or 2");

  const unsigned runs = options.runs(7, 3);
  const std::uint64_t iterations = options.pick<std::uint64_t>(4'000'000, 2'000'000);
  const std::vector<int> cpus = benchmark_cpus(2);

  Figures veloq_single, veloq_batch, bare_single, bare_batch;
  if (options.run_veloq()) {
    veloq::Runtime runtime(pinned_runtime(shards));
    runtime.run([&]() -> veloq::Task<void> {
      (void)co_await spawn_join_on_all(shards, iterations / 4, false);  // warm-up: fills the frame pools
      (void)co_await spawn_join_on_all(shards, iterations / 4, true);
      for (unsigned r = 0; r < runs; ++r) {
        add_run(veloq_single, co_await spawn_join_on_all(shards, iterations, false), iterations);
        add_run(veloq_batch, co_await spawn_join_on_all(shards, iterations, true), iterations);
      }
    });
  }
  if (options.run_baseline()) std::thread([&] {
    (void)bare_on_all(cpus, shards, iterations / 4, false);
    for (unsigned r = 0; r < runs; ++r) {
      add_run(bare_single, bare_on_all(cpus, shards, iterations, false), iterations);
      add_run(bare_batch, bare_on_all(cpus, shards, iterations, true), iterations);
    }
  }).join();

  Report report("veloq-bench-spawn");
  auto add_rows = [&](const std::string& name, const Figures& veloq, const Figures& bare) {
    Result row{.name = name,
               .metric = "tasks/s",
               .veloq = median(veloq.aggregate),
               .baseline_name = "bare coroutine loop",
               .baseline = median(bare.aggregate),
               .higher_is_better = true,
               .goal = Goal().ratio_at_least(0.33).veloq_at_least(30e6 * shards, "/s"),
               .runs = runs,
               .extra = {{"shards", double(shards)},
                         {"iterations_per_shard", double(iterations)},
                         {"veloq_min", min_of(veloq.aggregate)},
                         {"veloq_max", max_of(veloq.aggregate)},
                         {"ns_per_task_per_shard", 1e9 * shards / median(veloq.aggregate)}}};
    report.add(row);
    if (shards == 1) return;
    for (unsigned s = 0; s < shards; ++s) {
      report.add(Result{.name = name + "/shard" + std::to_string(s),
                        .metric = "tasks/s",
                        .veloq = median_at(veloq.per_shard, s),
                        .baseline_name = "bare coroutine loop, thread " + std::to_string(s),
                        .baseline = median_at(bare.per_shard, s),
                        .higher_is_better = true,
                        .goal = Goal().ratio_at_least(0.33).veloq_at_least(30e6, "/s"),
                        .runs = runs,
                        .extra = {}});
    }
  };
  add_rows("spawn_join", veloq_single, bare_single);
  add_rows("spawn_join_batch64", veloq_batch, bare_batch);
  return report.finish(options);
}
