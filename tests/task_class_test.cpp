#include <doctest/doctest.h>

#include <veloq/mesh/submit_to.hpp>
#include <veloq/runtime/cycle_clock.hpp>
#include <veloq/runtime/runtime.hpp>
#include <veloq/runtime/shard_stats.hpp>
#include <veloq/runtime/sleep.hpp>
#include <veloq/runtime/yield.hpp>

#include <chrono>
#include <cstdint>
#include <thread>
#include <vector>

using namespace veloq;
using namespace std::chrono_literals;

namespace {

RuntimeConfig one_shard_with(std::vector<TaskClassConfig> classes) {
  RuntimeConfig c;
  c.shards = 1;
  c.pin_threads = false;
  c.shard.task_classes = std::move(classes);
  return c;
}

// Time the tasks of one class spent working, as the tasks themselves measure it.
struct WorkTally {
  std::chrono::nanoseconds worked{0};
  std::uint64_t units = 0;
};

// Works in units of about 20 us of wall time and yields after each, until `stop`.
Task<void> busy_worker(WorkTally& tally, const bool& stop) {
  while (!stop) {
    auto start = Clock::now();
    while (Clock::now() - start < 20us) {
    }
    tally.worked += Clock::now() - start;
    ++tally.units;
    co_await yield();
  }
}

double share_of(const WorkTally& a, const WorkTally& b) {
  return static_cast<double>(a.worked.count()) / static_cast<double>((a.worked + b.worked).count());
}

}  // namespace

TEST_CASE("two busy classes with 100 and 300 shares get 25% and 75% of the shard over one second") {
  Runtime rt(one_shard_with({{"light", 100}, {"heavy", 300}}));
  WorkTally light, heavy;
  std::vector<TaskClassStats> classes = rt.run([&]() -> Task<std::vector<TaskClassStats>> {
    bool stop = false;
    TaskClass light_class = find_task_class("light");
    TaskClass heavy_class = find_task_class("heavy");
    std::vector<JoinHandle<void>> workers;
    for (int i = 0; i < 3; ++i) {
      workers.push_back(spawn(busy_worker(light, stop), {.name = "light", .task_class = light_class}));
      workers.push_back(spawn(busy_worker(heavy, stop), {.name = "heavy", .task_class = heavy_class}));
    }
    co_await sleep_for(1s);
    stop = true;
    for (auto& w : workers) co_await std::move(w);
    co_return RuntimeContext::current().executor().task_class_stats();
  });
  double light_share = share_of(light, heavy);
  REQUIRE(classes.size() == 3);
  double charged = static_cast<double>(classes[1].runtime_ns) /
                   static_cast<double>(classes[1].runtime_ns + classes[2].runtime_ns);
  MESSAGE("light class: " << 100 * light_share << "% of the work time (" << light.units << " units vs "
                          << heavy.units << "); the scheduler charged it " << 100 * charged << "%");
  CHECK(light_share == doctest::Approx(0.25).epsilon(0.12));  // 25% +- 3 points
  CHECK(charged == doctest::Approx(0.25).epsilon(0.12));
  // The scheduler's clock counts in its own ticks; what it reports must be
  // the time the tasks measured (plus the loop's share around them).
  auto charged_ns = static_cast<double>(classes[1].runtime_ns + classes[2].runtime_ns);
  auto worked_ns = static_cast<double>((light.worked + heavy.worked).count());
  CHECK(charged_ns > 0.9 * worked_ns);
  CHECK(charged_ns < 1.25 * worked_ns);
  CHECK(classes[1].name == "light");
  CHECK(classes[1].shares == 100);
  CHECK(classes[2].tasks_spawned == 3);
  CHECK(classes[2].tasks_run > 3);
}

TEST_CASE("a class that wakes after being idle shares the shard instead of taking it over") {
  Runtime rt(one_shard_with({{"early", 100}, {"late", 100}}));
  WorkTally early_before, early_after, late;
  rt.run([&]() -> Task<void> {
    bool stop_early = false, stop_late = false, second_phase = false;
    WorkTally* early_tally = &early_before;
    auto early_worker = [&]() -> Task<void> {
      while (!stop_early) {
        auto start = Clock::now();
        while (Clock::now() - start < 20us) {
        }
        early_tally->worked += Clock::now() - start;
        co_await yield();
      }
    };
    JoinHandle<void> early = spawn(early_worker(), {.name = "early", .task_class = find_task_class("early")});
    // "late" stays idle while "early" runs alone: with credit for that idle
    // time it would then run alone for about as long.
    co_await sleep_for(300ms);
    early_tally = &early_after;
    second_phase = true;
    JoinHandle<void> late_task =
        spawn(busy_worker(late, stop_late), {.name = "late", .task_class = find_task_class("late")});
    co_await sleep_for(200ms);
    stop_early = stop_late = true;
    co_await std::move(early);
    co_await std::move(late_task);
    CHECK(second_phase);
  });
  double early_share = share_of(early_after, late);
  MESSAGE("after the late class woke, the early class still got " << 100 * early_share << "% of the work time");
  CHECK(early_before.worked > 100ms);
  CHECK(early_share > 0.35);
  CHECK(early_share < 0.65);
}

TEST_CASE("a spawned task joins its spawner's class unless given one, and unknown classes are refused") {
  Runtime rt(one_shard_with({{"background", 50}}));
  rt.run([]() -> Task<void> {
    TaskClass bg = find_task_class("background");
    CHECK(bg.index() == 1);
    CHECK(find_task_class("default") == TaskClass::default_class());
    CHECK_THROWS_AS(find_task_class("no-such-class"), RuntimeMisuse);
    CHECK_THROWS_AS((void)spawn([]() -> Task<void> { co_return; }(), {.task_class = TaskClass::from_index(9)}),
                    RuntimeMisuse);
    auto parent = []() -> Task<void> {
      co_await spawn([]() -> Task<void> { co_return; }());                                    // inherits
      co_await spawn([]() -> Task<void> { co_return; }(), {.task_class = TaskClass::default_class()});
    };
    co_await spawn(parent(), {.task_class = bg});
    std::vector<TaskClassStats> stats = RuntimeContext::current().executor().task_class_stats();
    CHECK(stats[1].tasks_spawned == 2);  // the parent and its inheriting child
    CHECK(stats[0].tasks_spawned >= 2);  // the entry task and the explicit default child
    TaskClass extra = create_task_class("extra", 10);
    CHECK(extra.index() == 2);
    CHECK_THROWS_AS(create_task_class("extra", 10), RuntimeMisuse);
    CHECK_THROWS_AS(create_task_class("none", 0), RuntimeMisuse);
    // Before, 2^26 + 1 shares gave the class a weight of 0: never charged,
    // it would have taken the shard over.
    CHECK_THROWS_AS(create_task_class("too-many", (1u << 26) + 1), RuntimeMisuse);
    CHECK_THROWS_AS(RuntimeContext::current().executor().set_task_class_shares(extra, (1u << 26) + 1), RuntimeMisuse);
    CHECK_NOTHROW(RuntimeContext::current().executor().set_task_class_shares(extra, 1'000'000));
  });
}

TEST_CASE("classes from the shard configuration have the same ids on every shard and show in shard stats") {
  RuntimeConfig config = one_shard_with({{"latency", 800}, {"background", 200}});
  config.shards = 2;
  Runtime rt(config);
  rt.run([]() -> Task<void> {
    TaskClass bg = find_task_class("background");
    std::uint8_t remote = co_await submit_to(1, [] { return find_task_class("background").index(); });
    CHECK(remote == bg.index());
    co_await spawn([]() -> Task<void> { co_return; }(), {.task_class = bg});
    std::vector<ShardStats> stats = co_await collect_shard_stats();
    REQUIRE(stats[0].classes.size() == 3);
    CHECK(stats[0].classes[2].name == "background");
    CHECK(stats[0].classes[2].shares == 200);
    CHECK(stats[0].classes[2].tasks_spawned == 1);
    CHECK(stats[1].classes[1].name == "latency");
  });
}

TEST_CASE("the class clock's ticks convert to the time steady_clock measures") {
  // Measured on a pinned shard, where the class clock is read: ticks are
  // compared on one CPU, since the TSCs of two CPUs need not agree.
  RuntimeConfig config = one_shard_with({});
  config.pin_threads = true;
  Runtime rt(config);
  rt.run([]() -> Task<void> {
    internal::CycleClock clock;
    CHECK(clock.ns_per_tick() > 0.0);
    // Each tick reading is bracketed by steady_clock readings, so a preemption
    // anywhere widens the bounds instead of failing the check.
    auto before_start = std::chrono::steady_clock::now();
    std::uint64_t start = clock.now();
    auto after_start = std::chrono::steady_clock::now();
    co_await sleep_for(20ms);
    auto before_end = std::chrono::steady_clock::now();
    std::uint64_t end = clock.now();
    auto after_end = std::chrono::steady_clock::now();
    REQUIRE(end > start);
    auto measured = static_cast<double>(clock.to_ns(end - start));
    auto shortest = static_cast<double>(std::chrono::nanoseconds(before_end - after_start).count());
    auto longest = static_cast<double>(std::chrono::nanoseconds(after_end - before_start).count());
    CHECK(measured > 0.98 * shortest);
    CHECK(measured < 1.02 * longest);
    CHECK(clock.ticks(std::chrono::nanoseconds(clock.to_ns(1'000'000))) == doctest::Approx(1'000'000).epsilon(0.001));
  });
}
