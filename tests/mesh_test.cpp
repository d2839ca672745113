#include <doctest/doctest.h>

#include "log_capture.hpp"

#include <veloq/buffers/buffer_pool.hpp>
#include <veloq/mesh/mesh_endpoint.hpp>
#include <veloq/mesh/sharded.hpp>
#include <veloq/mesh/submit_to.hpp>
#include <veloq/runtime/notify.hpp>
#include <veloq/runtime/runtime.hpp>
#include <veloq/runtime/sleep.hpp>
#include <veloq/runtime/yield.hpp>

#include <array>
#include <atomic>
#include <chrono>
#include <memory>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

using namespace veloq;
using namespace std::chrono_literals;

namespace {

RuntimeConfig unpinned(unsigned shards, std::size_t ring_capacity = 4096) {
  RuntimeConfig c;
  c.shards = shards;
  c.pin_threads = false;
  c.shard.mesh.ring_capacity = ring_capacity;
  return c;
}

// What one receiving shard saw from each sender: next expected sequence
// number and how many arrived out of order. Touched only by its own shard.
struct Inbox {
  std::vector<std::uint32_t> next;
  std::uint64_t out_of_order = 0;
};

}  // namespace

TEST_CASE("every mesh message arrives exactly once and in order per pair, also while rings are full") {
  constexpr unsigned shards = 4;
  constexpr std::uint32_t per_pair = 20000;
  // A tiny ring forces senders to stage messages while the ring is full.
  Runtime rt(unpinned(shards, 16));
  std::vector<Inbox> inboxes(shards);
  for (auto& in : inboxes) in.next.assign(shards, 0);

  rt.run([&]() -> Task<void> {
    co_await invoke_on_all([&]() -> Task<void> {
      unsigned me = shard_id();
      std::mt19937 rng(me * 7919u + 1);
      std::vector<std::uint32_t> seq(shards, 0);
      while (true) {
        bool any = false;
        for (unsigned to = 0; to < shards; ++to) {
          if (to == me || seq[to] == per_pair) continue;
          any = true;
          std::uint32_t burst = std::min<std::uint32_t>(per_pair - seq[to], rng() % 300 + 1);
          for (std::uint32_t i = 0; i < burst; ++i) {
            Inbox* inbox = &inboxes[to];
            std::uint32_t s = seq[to]++;
            unsigned from = me;
            run_on(to, [inbox, from, s] {
              if (inbox->next[from] != s) ++inbox->out_of_order;
              inbox->next[from] = s + 1;
            });
          }
        }
        if (!any) break;
        co_await yield();
      }
      // A round trip to each peer on the same ring pair: everything sent before it has arrived.
      for (unsigned to = 0; to < shards; ++to)
        if (to != me) co_await submit_to(to, [] {});
    });
  });
  for (unsigned to = 0; to < shards; ++to) {
    CHECK(inboxes[to].out_of_order == 0);
    for (unsigned from = 0; from < shards; ++from)
      if (from != to) CHECK(inboxes[to].next[from] == per_pair);
  }
}

namespace {

// 100000 round trips from shard 0 to shard 1; returns how many completed and
// how often shard 1 parked. A lost wake-up would hang the runtime, so the loop
// gives up after two minutes and the count comes out short instead.
std::pair<int, std::uint64_t> parked_round_trips(RuntimeConfig config) {
  Runtime rt(std::move(config));
  return rt.run([]() -> Task<std::pair<int, std::uint64_t>> {
    auto started = Clock::now();
    int done = 0;
    for (int i = 0; i < 100000; ++i) {
      done += co_await submit_to(1, [] { return 1; });
      if (Clock::now() - started > 120s) break;
    }
    std::uint64_t parks = co_await submit_to(1, [] { return RuntimeContext::current().executor().stats().parks; });
    co_return std::pair{done, parks};
  });
}

}  // namespace

TEST_CASE("a shard with the default idle spin answers 100000 one-at-a-time messages without a lost wake-up") {
  // With the idle spin the target catches most messages before it parks (it
  // may never park at all); the next test makes it park before every one.
  auto [round_trips, parks] = parked_round_trips(unpinned(2));
  MESSAGE("shard 1 parked " << parks << " times");
  CHECK(round_trips == 100000);
}

TEST_CASE("both wake methods wake a shard that parks before every message, 100000 times") {
  // The default method above; here each one with no idle spin, so both shards
  // park after every message and every round trip is two wake-ups.
  for (mesh::WakeMethod method : {mesh::WakeMethod::eventfd, mesh::WakeMethod::msg_ring}) {
    std::string name = method == mesh::WakeMethod::msg_ring ? "msg_ring" : "eventfd";
    CAPTURE(name);
    RuntimeConfig config = unpinned(2);
    config.shard.idle_spin_us = 0;
    config.shard.mesh.wake = method;
    auto [round_trips, parks] = parked_round_trips(config);
    MESSAGE(name << ": shard 1 parked " << parks << " times");
    CHECK(round_trips == 100000);
    CHECK(parks > 1000);  // most round trips find it asleep (fewer on a loaded machine)
  }
}

TEST_CASE("with msg_ring, peers are woken by IORING_OP_MSG_RING unless the kernel refuses it") {
  RuntimeConfig config = unpinned(2);
  config.shard.idle_spin_us = 0;
  config.shard.mesh.wake = mesh::WakeMethod::msg_ring;
  Runtime rt(config);
  rt.run([]() -> Task<void> {
    for (int i = 0; i < 1000; ++i) co_await submit_to(1, [] {});
    auto& endpoint = RuntimeContext::current().mesh();
    if (endpoint.wake_method() == mesh::WakeMethod::msg_ring) {
      CHECK(endpoint.stats().wakeups_msg_ring > 0);
      CHECK(endpoint.stats().wakeups_msg_ring == endpoint.stats().wakeups_sent);
      // Shard 1 replies the same way; the CQEs that woke either ring were never
      // counted as operations of it.
      auto [sent, in_flight] = co_await submit_to(1, [] {
        auto& ex = RuntimeContext::current().executor();
        return std::pair{ex.mesh().stats().wakeups_msg_ring, ex.driver().in_flight()};
      });
      CHECK(sent > 0);
      CHECK(in_flight < 16);
    } else {
      MESSAGE("this kernel refused IORING_OP_MSG_RING; wake-ups used the eventfd");
      CHECK(endpoint.stats().wakeups_sent > 0);
    }
  });
}

TEST_CASE("submit_to carries values, void, move-only results and exceptions back") {
  Runtime rt(unpinned(2));
  rt.run([]() -> Task<void> {
    CHECK(co_await submit_to(1, [] { return shard_id(); }) == 1u);
    CHECK(co_await submit_to(0, [] { return shard_id(); }) == 0u);  // to itself
    bool ran = false;
    co_await submit_to(1, [&ran] { ran = true; });
    CHECK(ran);
    auto owned = co_await submit_to(1, [] { return std::make_unique<int>(7); });
    REQUIRE(owned);
    CHECK(*owned == 7);
    // Named, not a temporary inside co_await: see the g++ 12 note in submit_to.hpp.
    auto doubler = [p = std::make_unique<int>(5)] { return *p * 2; };
    int doubled = co_await submit_to(1, std::move(doubler));
    CHECK(doubled == 10);
    CHECK_THROWS_WITH_AS(co_await submit_to(1, []() -> int { throw std::invalid_argument("remote"); }), "remote",
                         std::invalid_argument);
    // A coroutine becomes a task of the target shard.
    int slept = co_await submit_to(1, []() -> Task<int> {
      co_await sleep_for(1ms);
      co_return static_cast<int>(shard_id()) + 100;
    });
    CHECK(slept == 101);
    CHECK_THROWS_AS(co_await submit_to(1, []() -> Task<void> {
      co_await yield();
      throw std::runtime_error("remote task");
    }),
                    std::runtime_error);
    CHECK_THROWS_AS((void)submit_to(2, [] {}), std::out_of_range);
  });
}

TEST_CASE("awaiting a RemoteCall twice, or a moved-from one, throws RuntimeMisuse") {
  Runtime rt(unpinned(2));
  rt.run([]() -> Task<void> {
    auto seven = [] { return 7; };
    RemoteCall<int> call = submit_to(1, seven);
    CHECK(co_await std::move(call) == 7);
    CHECK_THROWS_WITH_AS(co_await std::move(call), "veloq: co_await of an empty RemoteCall (moved from or already awaited)",
                         RuntimeMisuse);
    RemoteCall<int> first = submit_to(1, seven);
    RemoteCall<int> second = std::move(first);
    CHECK_THROWS_AS(co_await std::move(first), RuntimeMisuse);  // NOLINT(bugprone-use-after-move): the misuse under test
    CHECK(co_await std::move(second) == 7);
  });
}

namespace {
Task<int> answer_later() {
  co_await sleep_for(20ms);
  co_return 42;
}
}  // namespace

// A JoinHandle belongs to the shard that spawned its task. Awaited elsewhere
// (here handed back by a submit_to), it used to register the other shard's
// running task as the joiner, read across threads: a crash when that shard
// was idle. It is refused now, and the task's own shard can still join it.
TEST_CASE("a JoinHandle awaited on a shard other than its task's throws RuntimeMisuse; its own shard can still join it") {
  Runtime rt(unpinned(2));
  int joined = rt.run([]() -> Task<int> {
    auto spawn_there = [] { return spawn(answer_later()); };
    JoinHandle<int> handle = co_await submit_to(1, spawn_there);
    try {
      (void)co_await handle;
      FAIL("awaited on the wrong shard");
    } catch (const RuntimeMisuse& e) {
      CHECK(std::string(e.what()).find("co_await of a JoinHandle on a thread other than its task's shard") !=
            std::string::npos);
    }
    CHECK_THROWS_AS((void)handle.take_result(), RuntimeMisuse);
    // Shard 0 is suspended in this submit_to while shard 1 takes the handle over.
    auto join_there = [&handle]() -> Task<int> {
      JoinHandle<int> here = std::move(handle);
      co_return co_await here;
    };
    co_return co_await submit_to(1, std::move(join_there));
  });
  CHECK(joined == 42);
}

// A shard id past the runtime's last shard is refused with out_of_range by
// every call that addresses a shard, whichever way its closure travels; a
// thread with no runtime context gets NoRuntimeContext. Neither may index
// past the endpoint's outboxes.
TEST_CASE("run_on and room_for refuse a shard that does not exist, and need a runtime context") {
  Runtime rt(unpinned(2));
  int ran = 0;
  rt.run([&]() -> Task<void> {
    CHECK_THROWS_AS(run_on(2, [&ran] { ++ran; }), std::out_of_range);  // travels inline
    CHECK_THROWS_AS(run_on(100, [&ran, s = std::string(64, 'x')] { ++ran; }), std::out_of_range);  // as a job
    CHECK_THROWS_AS(run_on(2, []() -> Task<void> { co_return; }), std::out_of_range);  // as a task
    CHECK_THROWS_AS((void)RuntimeContext::current().mesh().room_for(2), std::out_of_range);
    co_await submit_to(1, [] {});  // both shards still serve
  });
  CHECK(ran == 0);
  CHECK_THROWS_AS(run_on(1, [] {}), NoRuntimeContext);
  CHECK_THROWS_AS((void)submit_to(1, [] {}), NoRuntimeContext);
}

TEST_CASE("small calls travel inside their messages and come back to the shard that made them") {
  // Which calls take the inline path: small trivially copyable closures and results.
  auto small = [] { return 1; };
  auto owning = [p = std::make_unique<int>(1)] { return *p; };
  auto moving = [] { return std::make_unique<int>(1); };
  auto remote_task = []() -> Task<int> { co_return 1; };
  static_assert(internal::InlineCall<decltype(small)>::applies);
  static_assert(!internal::InlineCall<decltype(owning)>::applies);
  static_assert(!internal::InlineCall<decltype(moving)>::applies);
  static_assert(!internal::InlineCall<decltype(remote_task)>::applies);
  static_assert(internal::InlineCall<unsigned (*)()>::applies);

  // Every shard calls every shard; each answer names the shard it ran on and
  // each caller resumes on its own shard (the reply is addressed to whoever sent the request).
  Runtime rt(unpinned(3));
  std::atomic<unsigned> wrong_answer{0}, wrong_home{0}, errors_carried{0}, voids_ran{0};
  rt.run([&]() -> Task<void> {
    auto call_everyone = [&]() -> Task<void> {
      unsigned me = shard_id();
      for (unsigned round = 0; round < 200; ++round) {
        for (unsigned target = 0; target < 3; ++target) {
          unsigned answer = co_await submit_to(target, [round] { return shard_id() * 1000 + round; });
          if (answer != target * 1000 + round) ++wrong_answer;
          if (co_await submit_to(target, &shard_id) != target) ++wrong_answer;  // a function pointer travels inline too
          std::atomic<unsigned>* counter = &voids_ran;
          co_await submit_to(target, [counter] { counter->fetch_add(1); });
          try {
            (void)co_await submit_to(target, []() -> long { throw std::length_error("inline"); });
          } catch (const std::length_error&) {
            ++errors_carried;
          }
          if (shard_id() != me) ++wrong_home;
        }
      }
    };
    co_await invoke_on_all(std::move(call_everyone));  // named: see the g++ 12 note in submit_to.hpp
  });
  CHECK(wrong_answer == 0);
  CHECK(wrong_home == 0);
  CHECK(voids_ran == 3u * 200 * 3);
  CHECK(errors_carried == 3u * 200 * 3);
}

TEST_CASE("pipelined submit_to calls complete and map_reduce folds every shard") {
  Runtime rt(unpinned(3));
  rt.run([]() -> Task<void> {
    std::vector<RemoteCall<unsigned>> calls;
    for (unsigned i = 0; i < 3000; ++i) calls.push_back(submit_to(i % 3, [i] { return i; }));
    std::uint64_t sum = 0;
    for (auto& c : calls) sum += co_await std::move(c);
    CHECK(sum == 2999ull * 3000 / 2);
    unsigned total = co_await map_reduce([] { return shard_id() + 1; }, 0u, [](unsigned a, unsigned b) { return a + b; });
    CHECK(total == 6u);
  });
}

namespace {
// A message that appends its sender to a log on the receiving side.
struct Arrival {
  std::vector<unsigned>* log;
  unsigned from;
};
void log_arrival(mesh::MeshMessage& m, mesh::Delivery how) {
  if (how == mesh::Delivery::run) m.get<Arrival>().log->push_back(m.get<Arrival>().from);
}
}  // namespace

// A receiver whose drain budget runs out every turn must still serve every
// sender. Before, each drain started again from the lowest shard id, so while
// shard 1's ring held messages, shard 2's waited: the first 40 messages
// drained were all shard 1's. (Endpoints driven by hand on one thread, so the
// order is exact.)
TEST_CASE("a receiver that cannot keep up serves its senders in turn, not lowest shard first") {
  mesh::Mesh topology(4, 4096);
  for (unsigned s = 0; s < 4; ++s) topology.create_inbound_rings(s);
  mesh::MeshConfig config;
  std::vector<std::unique_ptr<mesh::MeshEndpoint>> endpoints;
  for (unsigned s = 0; s < 4; ++s) endpoints.push_back(std::make_unique<mesh::MeshEndpoint>(topology, s, config));
  std::vector<unsigned> log;
  for (unsigned from = 1; from < 4; ++from) {
    for (int i = 0; i < 200; ++i)
      endpoints[from]->send(0, mesh::MeshMessage::make(&log_arrival, Arrival{&log, from}));
    endpoints[from]->flush_outbound();
  }
  // Drains of 10, as a shard with mesh_budget 10 makes one per loop turn.
  while (endpoints[0]->drain_inbound(10) > 0) {
  }
  REQUIRE(log.size() == 600);
  std::array<unsigned, 4> in_first_60{};
  for (std::size_t i = 0; i < 60; ++i) ++in_first_60[log[i]];
  MESSAGE("of the first 60 messages drained: ", in_first_60[1], " from shard 1, ", in_first_60[2],
          " from shard 2, ", in_first_60[3], " from shard 3");
  CHECK(in_first_60[1] == 20);
  CHECK(in_first_60[2] == 20);
  CHECK(in_first_60[3] == 20);
}

TEST_CASE("a sender can wait for room toward a shard instead of staging without bound") {
  RuntimeConfig cfg = unpinned(2, 16);
  cfg.shard.mesh.room_limit = 64;
  Runtime rt(cfg);
  std::uint64_t received = 0;
  rt.run([&]() -> Task<void> {
    auto& endpoint = RuntimeContext::current().mesh();
    std::size_t max_staged = 0;
    for (int i = 0; i < 20000; ++i) {
      co_await endpoint.room_for(1);
      run_on(1, [r = &received] { ++*r; });
      max_staged = std::max(max_staged, endpoint.staged_for(1));
    }
    co_await submit_to(1, [] {});
    CHECK(max_staged <= 64);
  });
  CHECK(received == 20000);
}

// An endpoint of its own, on a mesh of its own: the executor's endpoint
// lives as long as the executor, so none of its waiters can outlive it.
TEST_CASE("a task waiting for room toward a shard resumes with ClosedError when the endpoint is destroyed") {
  LocalExecutor ex;
  ex.block_on([]() -> Task<void> {
    mesh::Mesh own_mesh(2, 16);
    mesh::MeshConfig config;
    config.room_limit = 1;
    auto endpoint = std::make_unique<mesh::MeshEndpoint>(own_mesh, 0, config);
    // Staged, not pushed (the batch is not full): the room limit of 1 is reached.
    endpoint->send(1, mesh::MeshMessage::make(+[](mesh::MeshMessage&, mesh::Delivery) {}, 0));
    auto waiter = spawn([](mesh::MeshEndpoint& e) -> Task<void> { co_await e.room_for(1); }(*endpoint));
    for (int i = 0; i < 4; ++i) co_await yield();
    REQUIRE_FALSE(waiter.done());
    endpoint.reset();
    for (int i = 0; i < 4; ++i) co_await yield();
    REQUIRE(waiter.done());  // a waiter left hanging fails here instead of hanging the test
    CHECK_THROWS_WITH_AS(co_await waiter, "veloq: mesh endpoint destroyed while a task waited on it", ClosedError);
    CHECK(co_await spawn([]() -> Task<int> { co_return 7; }()) == 7);  // the shard runs on
  }());
}

namespace {
// Runs `rt.run(entry)` with a watchdog that stops the runtime after 10 s, so
// a shard that stops serving fails the test instead of hanging it.
template <typename Entry>
bool run_with_watchdog(Runtime& rt, Entry entry) {
  std::atomic<bool> finished{false}, fired{false};
  std::thread watchdog([&] {
    for (int i = 0; i < 1000 && !finished.load(); ++i) std::this_thread::sleep_for(10ms);
    if (!finished.load()) {
      fired = true;
      rt.stop();
    }
  });
  try {
    rt.run(std::move(entry));
  } catch (...) {
    finished = true;
    watchdog.join();
    throw;
  }
  finished = true;
  watchdog.join();
  return !fired.load();
}

void count_message(mesh::MeshMessage& m, mesh::Delivery how) {
  if (how == mesh::Delivery::run) ++*m.get<int*>();
}
void throw_message(mesh::MeshMessage&, mesh::Delivery how) {
  if (how == mesh::Delivery::run) throw std::runtime_error("handler failed");
}
}  // namespace

// A mesh configuration under which no message could be carried (a zero batch
// divided by, a ring with no slot, a drain budget of nothing, a room limit no
// sender is ever under) is refused by run() with invalid_argument, rather than
// crash or hang once shards start sending.
TEST_CASE("a mesh configuration that cannot carry messages is refused when the runtime starts") {
  for (int bad = 0; bad < 4; ++bad) {
    CAPTURE(bad);
    RuntimeConfig cfg = unpinned(2);
    if (bad == 0) cfg.shard.mesh.batch = 0;
    if (bad == 1) cfg.shard.mesh.ring_capacity = 0;
    if (bad == 2) cfg.shard.mesh_budget = 0;
    if (bad == 3) cfg.shard.mesh.room_limit = 0;
    Runtime rt(cfg);
    bool refused = false;
    try {
      run_with_watchdog(rt, []() -> Task<void> {
        auto& endpoint = RuntimeContext::current().mesh();
        for (int i = 0; i < 100; ++i) {
          co_await endpoint.room_for(1);
          co_await submit_to(1, [] {});
        }
      });
    } catch (const std::invalid_argument&) {
      refused = true;
    } catch (...) {
    }
    CHECK(refused);
  }
}

TEST_CASE("a run_on closure that throws anything is logged and its shard keeps serving") {
  Runtime rt(unpinned(2));
  int answer = 0;
  CHECK(run_with_watchdog(rt, [&]() -> Task<void> {
    run_on(1, [] { throw 42; });  // not a std::exception
    run_on(1, [big = std::string(64, 'x')] { throw std::runtime_error(big); });
    answer = co_await submit_to(1, [] { return 7; });
  }));
  CHECK(answer == 7);
}

TEST_CASE("a mesh handler that throws loses only its own message, not the rest of its batch") {
  Runtime rt(unpinned(2));
  int ran = 0;  // touched by shard 1 only, read after run
  CHECK(run_with_watchdog(rt, [&]() -> Task<void> {
    auto& mesh = RuntimeContext::current().mesh();
    mesh.send(1, mesh::MeshMessage::make(&count_message, &ran));
    mesh.send(1, mesh::MeshMessage::make(&throw_message, 0));
    mesh.send(1, mesh::MeshMessage::make(&count_message, &ran));
    co_await submit_to(1, [] {});  // queued behind the three: they have run when it returns
  }));
  CHECK(ran == 2);
}

TEST_CASE("run_on with a closure that returns a Task runs that task on the target shard") {
  Runtime rt(unpinned(2));
  std::atomic<int> ran{0};
  CHECK(run_with_watchdog(rt, [&]() -> Task<void> {
    run_on(1, [&ran]() -> Task<void> {
      co_await yield();
      ran += static_cast<int>(shard_id());
    });
    run_on(0, [&ran]() -> Task<void> {
      ran += 10;
      co_return;
    });
    run_on(1, []() -> Task<void> {  // its failure is logged on shard 1
      throw std::runtime_error("task failed");
      co_return;
    });
    while (ran.load() != 11) co_await sleep_for(1ms);
  }));
  CHECK(ran.load() == 11);
}

namespace {
// Sends a message from its destructor, as a buffer dropped away from its home
// shard does.
struct SendsWhenDestroyed {
  bool armed = true;
  SendsWhenDestroyed() = default;
  SendsWhenDestroyed(SendsWhenDestroyed&& other) noexcept : armed(std::exchange(other.armed, false)) {}
  ~SendsWhenDestroyed() {
    if (armed && RuntimeContext::current_or_null() != nullptr && shard_id() == 0) run_on(1, [] {});
  }
};
}  // namespace

// At shutdown, closures still staged are destroyed by their discard delivery;
// what their destructors send is staged into the outbox being discarded, which
// must survive that (ASan checks) and discard the newcomers too (LSan checks).
TEST_CASE("messages staged while the staged ones are discarded at shutdown are discarded too") {
  Runtime rt(unpinned(2, 16));
  rt.run([]() -> Task<void> {
    for (int i = 0; i < 2000; ++i) run_on(1, [s = SendsWhenDestroyed{}] { (void)s; });
    co_return;  // the ring holds 16: the rest is still staged when the runtime stops
  });
  CHECK(rt.run([]() -> Task<int> { co_return 1; }) == 1);
}

namespace {
// Counts where the closure it rides in is finally destroyed (moved-from
// copies do not count).
struct FreedWhere {
  std::atomic<int>* at_home;
  std::atomic<int>* elsewhere;
  std::thread::id home = std::this_thread::get_id();
  bool armed = true;
  FreedWhere(std::atomic<int>* h, std::atomic<int>* e) noexcept : at_home(h), elsewhere(e) {}
  FreedWhere(FreedWhere&& other) noexcept
      : at_home(other.at_home), elsewhere(other.elsewhere), home(other.home), armed(std::exchange(other.armed, false)) {}
  ~FreedWhere() {
    if (armed) (std::this_thread::get_id() == home ? at_home : elsewhere)->fetch_add(1);
  }
};
}  // namespace

// A call's job belongs to the shard that made it, and so does its closure,
// which may hold that shard's objects: a request discarded at shutdown on
// its target goes home to be freed there, as its reply would have (before,
// the target freed it: most of these closures were destroyed on shard 1).
TEST_CASE("calls discarded at shutdown before they ran are freed on the shard that made them") {
  std::atomic<int> at_home{0}, elsewhere{0};
  constexpr int calls = 2000;
  {
    Runtime rt(unpinned(2, 16));
    rt.run([&]() -> Task<void> {
      for (int i = 0; i < calls; ++i) {
        auto abandoned = submit_to(1, [w = FreedWhere(&at_home, &elsewhere)] { return w.armed; });
      }
      co_return;  // the ring holds 16: most requests are still staged when the runtime stops
    });
  }
  CHECK(at_home.load() + elsewhere.load() == calls);
  CHECK(elsewhere.load() == 0);
}

// At shutdown, what a shard still has staged for a peer is handed to that
// peer before it is discarded, round after round while the rings are full,
// so that what a message owns is released on the shard it belongs to: here
// buffers of shard 0, dropped on shard 1 when its task is destroyed, far more
// than the ring holds, all go back to their pool on shard 0's thread, where
// before most were discarded on shard 1's and the pool was leaked with them.
TEST_CASE("buffers dropped on another shard while the runtime stops still go home, beyond a full ring") {
  test_support::LogCapture logs;
  std::size_t held_count = 0;
  {
    Runtime rt(unpinned(2, 16));
    rt.run([&]() -> Task<void> {
      auto& pool = buffers::BufferPool::current();
      std::vector<buffers::Buffer> held;
      while (held.size() < 100)
        if (buffers::Buffer b = pool.try_acquire(4096))
          held.push_back(std::move(b));
        else
          break;
      held_count = held.size();
      std::atomic<bool> taken{false};
      // A task of shard 1 takes the buffers into its own frame and sleeps until shutdown destroys it.
      auto keep_until_shutdown = [bufs = std::move(held), taken = &taken]() mutable -> Task<void> {
        std::vector<buffers::Buffer> mine = std::move(bufs);
        taken->store(true);
        co_await sleep_for(1h);
      };
      run_on(1, std::move(keep_until_shutdown));
      for (int i = 0; i < 10000 && !taken.load(); ++i) co_await sleep_for(1ms);
      REQUIRE(taken.load());
    });
  }
  CHECK(held_count > 32);  // more than the 16-slot ring holds
  CHECK(logs.count("buffers still out") == 0);
}

namespace {
struct Counter {
  explicit Counter(int start) : hits(start), home(std::this_thread::get_id()) {}
  int add(int n) {
    CHECK(std::this_thread::get_id() == home);
    hits += n;
    return hits;
  }
  int total() const { return hits; }
  Task<void> stop() {
    co_await yield();
    CHECK(std::this_thread::get_id() == home);
    stopped->fetch_add(1);
  }
  int hits;
  std::thread::id home;
  std::atomic<int>* stopped = nullptr;
};
}  // namespace

TEST_CASE("Sharded<T> builds, calls and stops one instance per shard on its own shard") {
  Runtime rt(unpinned(3));
  std::atomic<int> stopped{0};
  rt.run([&]() -> Task<void> {
    Sharded<Counter> counters;
    co_await counters.start(10);
    co_await counters.invoke_on_all([&](Counter& c) { c.stopped = &stopped; });
    CHECK(counters.local().hits == 10);
    CHECK(co_await counters.invoke_on(2, &Counter::add, 5) == 15);
    CHECK(co_await counters.invoke_on(2, &Counter::total) == 15);  // a const member function
    CHECK(co_await counters.invoke_on(1, [](Counter& c) { return c.add(1); }) == 11);
    auto total = co_await map_reduce([&] { return counters.local().hits; }, 0, [](int a, int b) { return a + b; });
    CHECK(total == 10 + 11 + 15);
    co_await counters.stop();
  });
  CHECK(stopped == 3);
}

// Calls that reach an instance that does not exist (before start(), after
// stop()) throw RuntimeMisuse back to the caller, as local() does, rather than
// use a null instance on the target shard.
TEST_CASE("Sharded<T>::invoke_on before start() or after stop() throws instead of using a missing instance") {
  Runtime rt(unpinned(2));
  std::atomic<int> stopped{0};
  rt.run([&]() -> Task<void> {
    Sharded<Counter> counters;
    CHECK_THROWS_AS(co_await counters.invoke_on(1, [](Counter& c) { return c.hits; }), RuntimeMisuse);
    co_await counters.start(3);
    co_await counters.invoke_on_all([&](Counter& c) { c.stopped = &stopped; });
    CHECK(co_await counters.invoke_on(1, &Counter::add, 1) == 4);
    co_await counters.stop();
    co_await counters.stop();  // a second stop finds nothing left to stop
    CHECK_THROWS_AS(co_await counters.invoke_on(1, [](Counter& c) { return c.hits; }), RuntimeMisuse);
    CHECK_THROWS_AS(co_await counters.invoke_on(0, &Counter::add, 1), RuntimeMisuse);
    CHECK_THROWS_AS(co_await counters.invoke_on_all([](Counter& c) { c.hits = 0; }), RuntimeMisuse);
    CHECK_THROWS_AS(counters.local(), RuntimeMisuse);
  });
  CHECK(stopped == 2);
}

namespace {
// A service whose constructor fails on shard 1; counts the instances alive
// and those stopped away from the shard that built them.
struct FailsOnShard1 {
  static inline std::atomic<int> live{0};
  static inline std::atomic<int> stopped{0};
  static inline std::atomic<int> wrong_thread{0};
  FailsOnShard1() : home(std::this_thread::get_id()) {
    if (shard_id() == 1) throw std::runtime_error("shard 1 cannot start");
    ++live;
  }
  ~FailsOnShard1() {
    if (std::this_thread::get_id() != home) ++wrong_thread;
    --live;
  }
  Task<void> stop() {
    ++stopped;
    co_return;
  }
  std::thread::id home;
};
}  // namespace

// A start() that fails on one shard stops and destroys, each on its own shard,
// the instances the other shards built, then rethrows: the caller, who never
// got a started service, has nothing to stop, and nothing is leaked.
TEST_CASE("Sharded<T>::start that fails on one shard stops the instances the others built") {
  Runtime rt(unpinned(3));
  rt.run([]() -> Task<void> {
    {
      Sharded<FailsOnShard1> service;
      CHECK_THROWS_WITH_AS(co_await service.start(), "shard 1 cannot start", std::runtime_error);
      CHECK(FailsOnShard1::live.load() == 0);
      CHECK(FailsOnShard1::stopped.load() == 2);
    }
    co_return;
  });
  CHECK(FailsOnShard1::live.load() == 0);
  CHECK(FailsOnShard1::wrong_thread.load() == 0);
}

namespace {
// A service with a call that runs until the test lets it finish.
struct LongCalls {
  static inline std::atomic<bool> entered{false};
  static inline std::atomic<bool> release{false};
  static inline std::atomic<int> calls_done{0};
  static inline std::atomic<int> destroyed_under_a_call{0};
  int value = 5;
  Task<int> long_read() {
    entered = true;
    while (!release.load()) co_await sleep_for(1ms);
    ++calls_done;
    co_return value;
  }
  ~LongCalls() {
    if (shard_id() == 1 && entered.load() && calls_done.load() == 0) ++destroyed_under_a_call;
  }
};
}  // namespace

// Before, stop() destroyed shard 1's instance while the call's task was still
// running on it (the task then read the freed instance).
TEST_CASE("Sharded<T>::stop refuses new calls and waits for running ones before it destroys an instance") {
  Runtime rt(unpinned(2));
  rt.run([]() -> Task<void> {
    Sharded<LongCalls> service;
    co_await service.start();
    auto call = service.invoke_on(1, &LongCalls::long_read);
    while (!LongCalls::entered.load()) co_await sleep_for(1ms);
    auto stopping = spawn(service.stop());
    // Once shard 1 has begun to stop, its calls are refused.
    bool refused = false;
    for (int i = 0; i < 5000 && !refused; ++i) {
      try {
        (void)co_await service.invoke_on(1, [](LongCalls& s) { return s.value; });
        co_await sleep_for(1ms);
      } catch (const RuntimeMisuse&) {
        refused = true;
      }
    }
    CHECK(refused);
    co_await sleep_for(5ms);
    CHECK_FALSE(stopping.done());  // waits for the running call
    LongCalls::release = true;
    CHECK(co_await std::move(call) == 5);
    co_await stopping;
  });
  CHECK(LongCalls::calls_done.load() == 1);
  CHECK(LongCalls::destroyed_under_a_call.load() == 0);
}

namespace {
// A service whose stop() takes a few turns, as closing connections does.
struct SlowStop {
  static inline std::atomic<int> live{0};
  static inline std::atomic<int> stops{0};
  SlowStop() { ++live; }
  ~SlowStop() { --live; }
  Task<void> stop() {
    ++stops;
    for (int i = 0; i < 10; ++i) co_await yield();
  }
};
}  // namespace

// Two stop() calls at once (a signal handler's and the main path's, say):
// each instance is stopped once, the later call waits for the earlier one on
// every shard, and nobody uses an instance the other already destroyed. A
// stop() before start() has nothing to stop.
namespace {
struct SlowReader {
  int value = 5;
  Task<int> read_later() {
    co_await sleep_for(50ms);
    co_return value;
  }
};
}  // namespace

// A second start() used to build new instances over the live ones, destroying
// them without stop() under the calls still running in them.
TEST_CASE("Sharded<T>::start while started throws RuntimeMisuse and leaves the instances in use alone; after stop() it starts again") {
  Runtime rt(unpinned(2));
  rt.run([]() -> Task<void> {
    Sharded<SlowReader> readers;
    co_await readers.start();
    RemoteCall<int> call = readers.invoke_on(1, &SlowReader::read_later);
    co_await sleep_for(10ms);  // the call now runs inside the instance on shard 1
    CHECK_THROWS_WITH_AS(co_await readers.start(),
                         "veloq: Sharded<T>::start on shard 0 while it is started (stop() it first)", RuntimeMisuse);
    CHECK(co_await std::move(call) == 5);
    co_await readers.stop();
    co_await readers.start();
    CHECK(co_await readers.invoke_on(1, [](SlowReader& r) { return r.value; }) == 5);
    co_await readers.stop();
  });
}

TEST_CASE("Sharded<T>::stop called twice at once stops each instance once and both wait for it") {
  Runtime rt(unpinned(2));
  int live_after_second = -1;
  rt.run([&]() -> Task<void> {
    Sharded<SlowStop> service;
    co_await service.stop();
    co_await service.start();
    auto first = spawn(service.stop());
    auto second = spawn(service.stop());
    co_await second;
    live_after_second = SlowStop::live.load();
    co_await first;
  });
  CHECK(SlowStop::stops.load() == 2);
  CHECK(live_after_second == 0);
  CHECK(SlowStop::live.load() == 0);
}

TEST_CASE("stopping a runtime with work in flight destroys everything and leaks nothing") {
  auto tracker = std::make_shared<int>(0);
  std::weak_ptr<int> watch = tracker;
  {
    Runtime rt(unpinned(3, 16));
    rt.run([tracker]() -> Task<void> {
      // Sleeping tasks on every shard, each holding a reference.
      auto spawn_sleepers = [tracker]() {
        for (int i = 0; i < 10; ++i)
          spawn([](std::shared_ptr<int> t) -> Task<void> {
            co_await sleep_for(1h);
            (void)t;
          }(tracker)).detach();
      };
      co_await invoke_on_all(std::move(spawn_sleepers));  // named: see the g++ 12 note in submit_to.hpp
      // Remote tasks still running when the entry returns, abandoned calls, and staged messages.
      for (int i = 0; i < 50; ++i) {
        auto abandoned = submit_to(1 + i % 2, [t = tracker]() -> Task<int> {
          co_await sleep_for(1h);
          co_return *t;
        });
      }
      for (int i = 0; i < 1000; ++i) run_on(2, [t = tracker] { (void)t; });
      // Small calls (inline in their messages) abandoned, staged behind full rings.
      for (int i = 0; i < 200; ++i) {
        auto abandoned = submit_to(1 + i % 2, [i] { return i; });
      }
      co_return;
    });
  }
  tracker.reset();
  CHECK(watch.expired());
}

