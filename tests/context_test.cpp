#include <doctest/doctest.h>

#include <veloq/runtime/local_executor.hpp>
#include <veloq/runtime/runtime.hpp>
#include <veloq/runtime/sleep.hpp>
#include <veloq/runtime/yield.hpp>

#include <atomic>
#include <string>
#include <thread>

using namespace veloq;

namespace {
Task<int> answer() { co_return 42; }
RuntimeConfig unpinned(unsigned shards) {
  RuntimeConfig config;
  config.shards = shards;
  config.pin_threads = false;
  return config;
}
}  // namespace

TEST_CASE("runtime calls without a context fail with a clear error") {
  REQUIRE(RuntimeContext::current_or_null() == nullptr);
  CHECK_THROWS_AS((void)spawn(answer()), NoRuntimeContext);
  CHECK_THROWS_AS(shard_id(), NoRuntimeContext);
  try {
    (void)shard_count();
    FAIL("shard_count() without a context must throw");
  } catch (const NoRuntimeContext& e) {
    std::string what = e.what();
    CHECK(what.find("shard_count") != std::string::npos);
    CHECK(what.find("none is entered") != std::string::npos);
  }
}

TEST_CASE("a context guard enters a shard and restores the previous context when it ends") {
  LocalExecutor outer_ex;
  LocalExecutor inner_ex;
  {
    RuntimeContext outer(outer_ex);
    CHECK(&RuntimeContext::current().executor() == &outer_ex);
    {
      RuntimeContext inner(inner_ex);
      CHECK(&RuntimeContext::current().executor() == &inner_ex);
      {
        RuntimeContext again(inner_ex);  // re-entering the same shard nests too
        CHECK(&RuntimeContext::current().executor() == &inner_ex);
      }
      CHECK(&RuntimeContext::current().executor() == &inner_ex);
    }
    CHECK(&RuntimeContext::current().executor() == &outer_ex);
    CHECK(shard_id() == 0);
    CHECK(shard_count() == 1);
  }
  CHECK(RuntimeContext::current_or_null() == nullptr);
}

TEST_CASE("entering a shard from a thread that does not own it is refused") {
  LocalExecutor ex;
  bool refused = false;
  std::thread other([&] {
    try {
      RuntimeContext ctx(ex);
    } catch (const RuntimeMisuse&) {
      refused = true;
    }
  });
  other.join();
  CHECK(refused);
}

TEST_CASE("spawning on an executor from a thread that does not own it is refused, and nothing is queued") {
  LocalExecutor ex;
  std::string error;
  std::thread other([&] {
    try {
      ex.spawn([]() -> Task<int> { co_return 1; }()).detach();
    } catch (const RuntimeMisuse& e) {
      error = e.what();
    }
  });
  other.join();
  CHECK(error == "veloq: spawn on shard 0 from another thread (reach a shard with submit_to or run_on)");
  CHECK(ex.block_on([]() -> Task<int> { co_return 2; }()) == 2);
  CHECK(ex.stats().tasks_spawned == 1);  // block_on's own task only
}

TEST_CASE("starting a runtime inside a running shard is refused") {
  Runtime rt(unpinned(1));
  bool refused = rt.run([]() -> Task<bool> {
    Runtime nested(unpinned(1));
    try {
      nested.run([]() -> Task<void> { co_return; });
    } catch (const RuntimeMisuse& e) {
      co_return std::string(e.what()).find("cannot start another runtime") != std::string::npos;
    }
    co_return false;
  });
  CHECK(refused);
}

TEST_CASE("block_on from inside a task is refused") {
  LocalExecutor ex;
  bool refused = ex.block_on([](LocalExecutor& e) -> Task<bool> {
    try {
      e.block_on(answer());
    } catch (const RuntimeMisuse&) {
      co_return true;
    }
    co_return false;
  }(ex));
  CHECK(refused);
}

TEST_CASE("runtime run returns the entry's value and rethrows its exception") {
  Runtime rt(unpinned(2));
  CHECK(rt.shard_count() == 2);
  CHECK(rt.run([]() -> Task<int> { co_return shard_count() * 10 + static_cast<int>(shard_id()); }) == 20);
  CHECK_THROWS_WITH_AS(rt.run([]() -> Task<void> {
    throw std::runtime_error("entry failed");
    co_return;
  }),
                       "entry failed", std::runtime_error);
}

namespace {
// A thread that calls rt.stop() once the entry has set `started`.
std::thread stop_once_started(Runtime& rt, const std::atomic<bool>& started) {
  return std::thread([&rt, &started] {
    while (!started.load()) std::this_thread::yield();
    rt.stop();
  });
}
}  // namespace

TEST_CASE("Runtime::stop from another thread ends run with TaskCancelled") {
  Runtime rt(unpinned(2));
  std::atomic<bool> started{false};
  std::thread stopper = stop_once_started(rt, started);
  CHECK_THROWS_AS(rt.run([&]() -> Task<void> {
    started = true;
    co_await sleep_for(std::chrono::hours(1));
  }),
                  TaskCancelled);
  stopper.join();
}

namespace {
Task<void> spin_forever() {
  for (;;) co_await yield();
}
}  // namespace

// The cancelled entry is destroyed only when the ready queue reaches it; with
// more ready tasks than one task budget ahead of it, one pass is not enough.
TEST_CASE("a stopped block_on or run throws TaskCancelled even with many tasks ready") {
  LocalExecutor value_ex;
  CHECK_THROWS_AS(value_ex.block_on([](LocalExecutor& ex) -> Task<int> {
    for (int i = 0; i < 600; ++i) spawn(spin_forever()).detach();
    co_await yield();
    ex.request_stop();
    co_await sleep_for(std::chrono::hours(1));
    co_return 1;
  }(value_ex)),
                  TaskCancelled);
  LocalExecutor void_ex;
  CHECK_THROWS_AS(void_ex.block_on([](LocalExecutor& ex) -> Task<void> {
    for (int i = 0; i < 600; ++i) spawn(spin_forever()).detach();
    co_await yield();
    ex.request_stop();
    co_await sleep_for(std::chrono::hours(1));
  }(void_ex)),
                  TaskCancelled);

  Runtime rt(unpinned(1));
  std::atomic<bool> started{false};
  std::thread stopper = stop_once_started(rt, started);
  CHECK_THROWS_AS(rt.run([&]() -> Task<int> {
    for (int i = 0; i < 600; ++i) spawn(spin_forever()).detach();
    started = true;
    co_await sleep_for(std::chrono::hours(1));
    co_return 1;
  }),
                  TaskCancelled);
  stopper.join();
}

TEST_CASE("a standalone executor's stop request ends one loop, and the next runs") {
  LocalExecutor ex;
  CHECK_THROWS_AS(ex.block_on([](LocalExecutor& e) -> Task<void> {
    e.request_stop();
    co_await sleep_for(std::chrono::hours(1));
  }(ex)),
                  TaskCancelled);
  CHECK(ex.block_on(answer()) == 42);

  ex.spawn([](LocalExecutor& e) -> Task<void> {
    e.request_stop();
    co_return;
  }(ex))
      .detach();
  ex.run_until_stopped();
  CHECK(ex.block_on(answer()) == 42);
}

namespace {
// Sleeps long enough that a lost stop shows as a normal return.
Task<void> sleep_half_a_minute() { co_await sleep_for(std::chrono::seconds(30)); }
}  // namespace

TEST_CASE("a stop asked before run, or while it starts, stops that run and only that one") {
  Runtime rt(unpinned(2));
  rt.stop();
  CHECK_THROWS_AS(rt.run(sleep_half_a_minute), TaskCancelled);
  CHECK(rt.run(answer) == 42);

  // stop() racing with run()'s start: it lands before run, before the shards
  // exist, or after; never lost.
  for (int round = 0; round < 100; ++round) {
    std::thread stopper([&] { rt.stop(); });
    bool cancelled = false;
    try {
      rt.run(sleep_half_a_minute);
    } catch (const TaskCancelled&) {
      cancelled = true;
    }
    stopper.join();
    CHECK(cancelled);
    if (!cancelled) break;
  }
}

TEST_CASE("a second run of a runtime that is running is refused") {
  Runtime rt(unpinned(1));
  std::atomic<bool> started{false};
  std::atomic<int> second_run{0};  // 1: refused with RuntimeMisuse, 2: anything else
  std::thread other([&] {
    while (!started.load()) std::this_thread::yield();
    try {
      rt.run(answer);
      second_run = 2;
    } catch (const RuntimeMisuse&) {
      second_run = 1;
    } catch (...) {
      second_run = 2;
    }
    rt.stop();
  });
  CHECK_THROWS_AS(rt.run([&]() -> Task<void> {
    started = true;
    co_await sleep_for(std::chrono::hours(1));
  }),
                  TaskCancelled);
  other.join();
  CHECK(second_run.load() == 1);
}
