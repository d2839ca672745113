// veloq-bench-submit: cross-shard calls with veloq::submit_to, pipelined and
// one at a time, next to raw two-thread equivalents in this binary.
#include "options.hpp"
#include "report.hpp"
#include "runtime_setup.hpp"
#include "samples.hpp"

#include <veloq/mesh/shard_signal.hpp>
#include <veloq/mesh/spsc_ring.hpp>
#include <veloq/mesh/submit_to.hpp>
#include <veloq/runtime/notify.hpp>
#include <veloq/runtime/runtime.hpp>
#include <veloq/runtime/sleep.hpp>
#include <veloq/runtime/yield.hpp>

#include <boost/lockfree/spsc_queue.hpp>

#include <sys/eventfd.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace {

using namespace veloq::bench;
using namespace std::chrono_literals;

constexpr const char* description =
    "Cross-shard calls: veloq::submit_to(1, [] {}) from shard 0 (shards pinned to CPUs 0\n"
    "and 1), each next to a raw two-thread equivalent on the same CPUs.\n"
    "\n"
    "  pipelined_window256  round trips/s with 256 calls in flight: await the oldest,\n"
    "                       submit a new one. Raw: two boost spsc_queue<void*> (requests,\n"
    "                       replies) between two spinning threads, same window.\n"
    "  pingpong_busy        one call at a time while both shards are busy (each runs a\n"
    "                       task that keeps yielding, so neither shard ever parks):\n"
    "                       median round-trip time (the mean is in the extras). Raw: two\n"
    "                       threads spinning on a pair of atomics (store ping, wait for\n"
    "                       pong), timed the same way. The extras add the p50 of the\n"
    "                       mesh's own hand-over without an executor (mesh_protocol_p50_ns:\n"
    "                       SpscRing + ShardSignal between two spinning threads, one\n"
    "                       message each way, as a flush and a drain pass it): the floor\n"
    "                       the loop turn and submit_to add to. veloq_messages_p50_ns is\n"
    "                       the same round trip in the same runtime made of two bare mesh\n"
    "                       messages and a Notify: the price of submit_to over its messages.\n"
    "  pingpong_busy_job_path  the same with a 24-byte closure, too big to travel inside\n"
    "                       the messages, so the call ships a job that the target reads\n"
    "                       and writes; next to pingpong_busy's own figure, whose empty\n"
    "                       closure and void result travel inline.\n"
    "  pingpong_parked_p50  one call at a time to a parked shard: shard 0 sleeps 500 us\n"
    "  pingpong_parked_p99  between calls so both shards are asleep in io_uring_enter when\n"
    "                       the call is sent; the round trip therefore includes waking the\n"
    "                       target. The caller watches its rings for idle_spin_us (50 us)\n"
    "                       after sending, so a reply that comes sooner finds it awake.\n"
    "                       Raw: two threads blocked in\n"
    "                       read() on two eventfds, same 500 us gap. The extras add the\n"
    "                       raw p50 with only the server asleep (the caller polls its\n"
    "                       eventfd), i.e. the price of a single wake-up.\n"
    "\n"
    "Each run makes a fixed number of calls or stops after 0.5 s (0.25 s with --quick),\n"
    "whichever comes first. Throughputs are medians over runs (7, or 3 with --quick); p50 and p99 are medians\n"
    "over runs of each run's percentile of its individual round trips. The extras of the\n"
    "parked rows give the target's parks per call (1 means it really was asleep).\n"
    "\n"
    "--wake eventfd|msg_ring picks how a shard wakes a parked peer (MeshConfig::wake;\n"
    "default: the runtime's default). Run the binary once with each to compare; the\n"
    "extras give the method used and the share of wake-ups sent with MSG_RING.";

// --- pipelined ----------------------------------------------------------------------

// A run does `calls` calls or stops early at `limit`; rates use the calls made.
struct Budget {
  std::uint64_t calls;
  Clock::duration limit;
};

veloq::Task<double> veloq_pipelined_rate(Budget budget, unsigned window) {
  std::vector<std::optional<veloq::RemoteCall<void>>> in_flight(window);
  auto start = Clock::now();
  std::uint64_t calls = budget.calls;
  for (std::uint64_t i = 0; i < calls; ++i) {
    if (i % 1024 == 0 && Clock::now() - start > budget.limit) calls = i;
    auto& slot = in_flight[i % window];
    if (slot) {
      co_await std::move(*slot);
      slot.reset();
    }
    if (i < calls) slot.emplace(veloq::submit_to(1, [] {}));
  }
  for (auto& slot : in_flight)
    if (slot) {
      co_await std::move(*slot);
      slot.reset();
    }
  co_return static_cast<double>(calls) / seconds_since(start);
}

using RawQueue = boost::lockfree::spsc_queue<void*>;

double raw_pipelined_rate(const std::vector<int>& cpus, Budget budget, unsigned window) {
  RawQueue requests(4096), replies(4096);
  std::atomic<bool> done{false};
  std::thread server = pinned_thread(cpus[1 % cpus.size()], [&] {
    void* batch[64];
    while (!done.load(std::memory_order_relaxed)) {
      std::size_t n = requests.pop(batch, 64);
      for (std::size_t i = 0; i < n; ++i)
        while (!replies.push(batch[i])) cpu_relax();
    }
  });
  double rate = 0;
  std::thread client = pinned_thread(cpus[0], [&] {
    std::uint64_t token = 0;
    std::uint64_t sent = 0, received = 0, calls = budget.calls;
    void* batch[64];
    auto start = Clock::now();
    for (std::uint64_t turn = 0; received < calls; ++turn) {
      if (turn % 1024 == 0 && Clock::now() - start > budget.limit) calls = sent;
      while (sent < calls && sent - received < window && requests.push(&token)) ++sent;
      received += replies.pop(batch, 64);
    }
    rate = static_cast<double>(calls) / seconds_since(start);
    done = true;
  });
  client.join();
  server.join();
  return rate;
}

// --- ping-pong with both sides busy -------------------------------------------------

// Keeps its shard busy: always one ready task, so the loop never parks.
veloq::Task<void> keep_busy(const bool* stop) {
  while (!*stop) co_await veloq::yield();
}

// Per-call round-trip times, in ns.
struct RoundTrips {
  std::vector<double> ns;
  double mean_ns = 0;
};

RoundTrips summarize(std::vector<double> ns, double seconds) {
  RoundTrips r;
  r.mean_ns = 1e9 * seconds / static_cast<double>(ns.size());
  r.ns = std::move(ns);
  return r;
}

// Times one-at-a-time round trips on the calling thread: 1000 warm-up calls,
// then calls within `budget`. `round_trip(n)` makes the n-th call (n from 1).
template <typename RoundTrip>
RoundTrips time_round_trips(Budget budget, RoundTrip round_trip) {
  std::uint64_t n = 1;
  for (; n <= 1000; ++n) round_trip(n);
  std::vector<double> ns;
  ns.reserve(budget.calls);
  auto start = Clock::now();
  for (std::uint64_t i = 0; i < budget.calls && (i % 256 != 0 || Clock::now() - start < budget.limit); ++i) {
    auto t0 = Clock::now();
    round_trip(n++);
    ns.push_back(std::chrono::duration<double, std::nano>(Clock::now() - t0).count());
  }
  return summarize(std::move(ns), seconds_since(start));
}

// A closure of 24 bytes: too big to travel inside the mesh messages, so the
// call ships a job the target reads and writes (see InlineCall in submit_to.hpp).
struct JobPathCall {
  std::array<std::uint64_t, 3> pad{};
  void operator()() const noexcept { keep(pad[0]); }
};
struct EmptyCall {
  void operator()() const noexcept {}
};
static_assert(veloq::internal::InlineCall<EmptyCall>::applies);
static_assert(!veloq::internal::InlineCall<JobPathCall>::applies);

// The same round trip made of two bare mesh messages: shard 1 answers with
// a message back to the sender, whose handler notifies the waiting task.
// It prices submit_to against the mesh it rides on.
void reply_arrived(veloq::mesh::MeshMessage& m, veloq::mesh::Delivery how) {
  if (how == veloq::mesh::Delivery::run) m.get<veloq::Notify*>()->notify_one();
}
void bounce(veloq::mesh::MeshMessage& m, veloq::mesh::Delivery how) {
  if (how != veloq::mesh::Delivery::run) return;
  veloq::mesh::MeshEndpoint& mesh = veloq::RuntimeContext::current().mesh();
  mesh.send(mesh.delivering_from(), veloq::mesh::MeshMessage::make(&reply_arrived, m.get<veloq::Notify*>()));
}

// `round_trip()` makes one call to shard 1 and returns what to co_await.
template <typename RoundTrip>
veloq::Task<RoundTrips> veloq_busy_pingpong(Budget budget, RoundTrip round_trip) {
  bool stop_here = false;
  bool* stop_there = co_await veloq::submit_to(1, [] { return new bool(false); });
  auto busy_here = veloq::spawn(keep_busy(&stop_here));
  auto busy_there = veloq::submit_to(1, [stop_there] { return keep_busy(stop_there); });
  for (int i = 0; i < 1000; ++i) co_await veloq::submit_to(1, [] {});  // both loops are spinning now
  std::vector<double> ns;
  ns.reserve(budget.calls);
  auto start = Clock::now();
  for (std::uint64_t i = 0; i < budget.calls && (i % 256 != 0 || Clock::now() - start < budget.limit); ++i) {
    auto t0 = Clock::now();
    co_await round_trip();
    ns.push_back(std::chrono::duration<double, std::nano>(Clock::now() - t0).count());
  }
  double seconds = seconds_since(start);
  co_await veloq::submit_to(1, [stop_there] { *stop_there = true; });
  co_await std::move(busy_there);
  co_await veloq::submit_to(1, [stop_there] { delete stop_there; });
  stop_here = true;
  co_await busy_here;
  co_return summarize(std::move(ns), seconds);
}

RoundTrips raw_atomic_pingpong(const std::vector<int>& cpus, Budget budget) {
  struct alignas(128) Word {
    std::atomic<std::uint64_t> value{0};
  };
  Word ping, pong;
  constexpr std::uint64_t stop = ~std::uint64_t{0};
  std::thread server = pinned_thread(cpus[1 % cpus.size()], [&] {
    for (std::uint64_t i = 1;; ++i) {
      std::uint64_t seen;
      while ((seen = ping.value.load(std::memory_order_acquire)) != i && seen != stop) cpu_relax();
      if (seen == stop) break;
      pong.value.store(i, std::memory_order_release);
    }
  });
  RoundTrips result;
  std::thread client = pinned_thread(cpus[0], [&] {
    result = time_round_trips(budget, [&](std::uint64_t i) {
      ping.value.store(i, std::memory_order_release);
      while (pong.value.load(std::memory_order_acquire) != i) cpu_relax();
    });
    ping.value.store(stop, std::memory_order_release);
  });
  client.join();
  server.join();
  return result;
}

// The mesh's own hand-over without an executor: two spinning threads, each
// with an inbound SpscRing and ShardSignal, pass one MeshMessage each way the
// way a flush and a drain do (push, mark_pending, claim_wake; take_pending,
// pop, run the handler). It is the floor under the busy ping-pong: what Veloq
// adds to it is the loop turn (and, for a closure too big to travel inside the
// messages, submit_to's job).
RoundTrips mesh_protocol_pingpong(const std::vector<int>& cpus, Budget budget) {
  using veloq::mesh::MeshMessage;
  auto to_server = std::make_unique<veloq::mesh::SpscRing>(1024);
  auto to_client = std::make_unique<veloq::mesh::SpscRing>(1024);
  auto server_signal = std::make_unique<veloq::mesh::ShardSignal>(2);
  auto client_signal = std::make_unique<veloq::mesh::ShardSignal>(2);
  std::atomic<bool> done{false};
  const MeshMessage message = MeshMessage::make([](MeshMessage&, veloq::mesh::Delivery) {}, std::uint64_t{0});
  auto send = [&message](veloq::mesh::SpscRing& ring, veloq::mesh::ShardSignal& peer, unsigned self) {
    while (ring.push(&message, 1) == 0) cpu_relax();
    peer.mark_pending(self);
    if (peer.claim_wake()) peer.wake();
  };
  // False once `done` is set while nothing is pending.
  auto receive = [&done](veloq::mesh::SpscRing& ring, veloq::mesh::ShardSignal& own) {
    while (own.take_pending(0) == 0) {
      if (done.load(std::memory_order_relaxed)) return false;
      cpu_relax();
    }
    MeshMessage m;
    while (ring.pop(&m, 1) == 0) cpu_relax();  // the bit is set after the push: not reached
    m.handler(m, veloq::mesh::Delivery::run);
    return true;
  };
  std::thread server = pinned_thread(cpus[1 % cpus.size()], [&] {
    while (receive(*to_server, *server_signal)) send(*to_client, *client_signal, 1);
  });
  RoundTrips result;
  std::thread client = pinned_thread(cpus[0], [&] {
    result = time_round_trips(budget, [&](std::uint64_t) {
      send(*to_server, *server_signal, 0);
      receive(*to_client, *client_signal);
    });
    done.store(true, std::memory_order_relaxed);
  });
  client.join();
  server.join();
  return result;
}

// --- ping-pong with the target parked -----------------------------------------------

// Long enough that a shard which spins for a while before parking has parked
// before the next call; the target's park count per call is reported to show it.
constexpr auto parked_gap = 500us;
constexpr unsigned warmup_calls = 100;

veloq::Task<std::vector<double>> veloq_parked_round_trips_ns(unsigned calls) {
  std::vector<double> ns;
  ns.reserve(calls);
  for (unsigned i = 0; i < calls + warmup_calls; ++i) {
    co_await veloq::sleep_for(parked_gap);
    auto start = Clock::now();
    co_await veloq::submit_to(1, [] {});
    auto took = std::chrono::duration<double, std::nano>(Clock::now() - start).count();
    if (i >= warmup_calls) ns.push_back(took);
  }
  co_return ns;
}

// Both threads block in read() unless `spinning_caller`, in which case the
// caller polls its reply eventfd without blocking (only the server sleeps).
std::vector<double> raw_eventfd_round_trips_ns(const std::vector<int>& cpus, unsigned calls, bool spinning_caller) {
  int request = ::eventfd(0, EFD_CLOEXEC);
  int reply = ::eventfd(0, EFD_CLOEXEC | (spinning_caller ? EFD_NONBLOCK : 0));
  std::uint64_t one = 1;
  std::thread server = pinned_thread(cpus[1 % cpus.size()], [&] {
    std::uint64_t value;
    for (unsigned i = 0; i < calls + warmup_calls; ++i) {
      if (::read(request, &value, sizeof value) != sizeof value) break;
      if (::write(reply, &one, sizeof one) != sizeof one) break;
    }
  });
  std::vector<double> ns;
  ns.reserve(calls);
  std::thread client = pinned_thread(cpus[0], [&] {
    std::uint64_t value;
    for (unsigned i = 0; i < calls + warmup_calls; ++i) {
      std::this_thread::sleep_for(parked_gap);
      auto start = Clock::now();
      if (::write(request, &one, sizeof one) != sizeof one) break;
      while (::read(reply, &value, sizeof value) != sizeof value)
        if (!spinning_caller) return;
      auto took = std::chrono::duration<double, std::nano>(Clock::now() - start).count();
      if (i >= warmup_calls) ns.push_back(took);
    }
  });
  client.join();
  server.join();
  ::close(request);
  ::close(reply);
  return ns;
}

}  // namespace

int main(int argc, char** argv) {
  Options options("veloq-bench-submit", description);
  std::string wake;
  options.add_value("--wake", "eventfd|msg_ring", &wake, "how shards wake parked peers (default: the runtime's)");
  if (!options.parse(argc, argv)) return 0;
  veloq::RuntimeConfig config = pinned_runtime(2);
  if (wake == "eventfd")
    config.shard.mesh.wake = veloq::mesh::WakeMethod::eventfd;
  else if (wake == "msg_ring")
    config.shard.mesh.wake = veloq::mesh::WakeMethod::msg_ring;
  else if (!wake.empty())
    options.fail("--wake takes eventfd or msg_ring");

  const unsigned runs = options.runs(7, 3);
  const unsigned window = 256;
  const Budget pipelined{options.pick<std::uint64_t>(2'000'000, 300'000), options.pick(500ms, 250ms)};
  const Budget busy{options.pick<std::uint64_t>(100'000, 10'000), options.pick(500ms, 250ms)};
  const unsigned parked_calls = options.pick(1000u, 300u);
  const std::vector<int> cpus = benchmark_cpus(2);

  std::vector<double> veloq_pipelined, raw_pipelined, veloq_busy, raw_busy, veloq_busy_mean, raw_busy_mean;
  std::vector<double> protocol_busy, veloq_busy_job, veloq_busy_messages;
  std::vector<double> veloq_p50, veloq_p99, raw_p50, raw_p99, raw_spinning_p50;
  std::uint64_t shard1_parks = 0;
  double msg_ring_share = 0;  // of the wake-ups both shards sent
  bool used_msg_ring = false;
  if (options.run_veloq()) {
    veloq::Runtime runtime(config);
    runtime.run([&]() -> veloq::Task<void> {
      (void)co_await veloq_pipelined_rate(Budget{pipelined.calls / 4, pipelined.limit / 4}, window);
      for (unsigned r = 0; r < runs; ++r) veloq_pipelined.push_back(co_await veloq_pipelined_rate(pipelined, window));
      for (unsigned r = 0; r < runs; ++r) {
        RoundTrips rt = co_await veloq_busy_pingpong(busy, [] { return veloq::submit_to(1, EmptyCall{}); });
        veloq_busy.push_back(percentile(rt.ns, 50));
        veloq_busy_mean.push_back(rt.mean_ns);
        rt = co_await veloq_busy_pingpong(busy, [] { return veloq::submit_to(1, JobPathCall{}); });
        veloq_busy_job.push_back(percentile(rt.ns, 50));
        veloq::Notify reply;
        rt = co_await veloq_busy_pingpong(busy, [&reply] {
          veloq::RuntimeContext::current().mesh().send(1, veloq::mesh::MeshMessage::make(&bounce, &reply));
          return reply.wait();
        });
        veloq_busy_messages.push_back(percentile(rt.ns, 50));
      }
      auto parks_now = [] { return veloq::RuntimeContext::current().executor().stats().parks; };
      std::uint64_t parks_before = co_await veloq::submit_to(1, parks_now);
      for (unsigned r = 0; r < runs; ++r) {
        std::vector<double> ns = co_await veloq_parked_round_trips_ns(parked_calls);
        veloq_p50.push_back(percentile(ns, 50));
        veloq_p99.push_back(percentile(ns, 99));
      }
      shard1_parks = co_await veloq::submit_to(1, parks_now) - parks_before;
      auto wakes_now = [] {
        const auto& stats = veloq::RuntimeContext::current().mesh().stats();
        return std::pair{stats.wakeups_sent, stats.wakeups_msg_ring};
      };
      auto [sent0, msg_ring0] = wakes_now();
      auto [sent1, msg_ring1] = co_await veloq::submit_to(1, wakes_now);
      if (sent0 + sent1 > 0) msg_ring_share = double(msg_ring0 + msg_ring1) / double(sent0 + sent1);
      used_msg_ring = veloq::RuntimeContext::current().mesh().wake_method() == veloq::mesh::WakeMethod::msg_ring;
    });
  }
  if (options.run_baseline()) {
    (void)raw_pipelined_rate(cpus, Budget{pipelined.calls / 4, pipelined.limit / 4}, window);
    for (unsigned r = 0; r < runs; ++r) raw_pipelined.push_back(raw_pipelined_rate(cpus, pipelined, window));
    for (unsigned r = 0; r < runs; ++r) {
      RoundTrips rt = raw_atomic_pingpong(cpus, busy);
      raw_busy.push_back(percentile(rt.ns, 50));
      raw_busy_mean.push_back(rt.mean_ns);
      protocol_busy.push_back(percentile(mesh_protocol_pingpong(cpus, busy).ns, 50));
    }
    for (unsigned r = 0; r < runs; ++r) {
      std::vector<double> ns = raw_eventfd_round_trips_ns(cpus, parked_calls, false);
      raw_p50.push_back(percentile(ns, 50));
      raw_p99.push_back(percentile(ns, 99));
      raw_spinning_p50.push_back(percentile(raw_eventfd_round_trips_ns(cpus, parked_calls, true), 50));
    }
  }

  Report report("veloq-bench-submit");
  report.add(Result{.name = "pipelined_window256",
                    .metric = "round trips/s",
                    .veloq = median(veloq_pipelined),
                    .baseline_name = "raw spsc_queue request/reply",
                    .baseline = median(raw_pipelined),
                    .higher_is_better = true,
                    .goal = Goal().veloq_at_least(10e6, "/s"),
                    .runs = runs,
                    .extra = {{"window", double(window)},
                              {"max_calls", double(pipelined.calls)},
                              {"max_seconds", std::chrono::duration<double>(pipelined.limit).count()}}});
  report.add(Result{.name = "pingpong_busy",
                    .metric = "ns/round trip (p50)",
                    .veloq = median(veloq_busy),
                    .baseline_name = "raw atomic ping-pong",
                    .baseline = median(raw_busy),
                    .higher_is_better = false,
                    .goal = Goal().ratio_at_least(0.5),
                    .runs = runs,
                    .extra = {{"max_calls", double(busy.calls)},
                              {"wake_msg_ring", used_msg_ring ? 1.0 : 0.0},
                              {"veloq_mean_ns", median(veloq_busy_mean)},
                              {"baseline_mean_ns", median(raw_busy_mean)},
                              {"mesh_protocol_p50_ns", median(protocol_busy)},
                              {"veloq_messages_p50_ns", median(veloq_busy_messages)}}});
  report.add(Result{.name = "pingpong_busy_job_path",
                    .metric = "ns/round trip (p50)",
                    .veloq = median(veloq_busy_job),
                    .baseline_name = "same, inline closure",
                    .baseline = median(veloq_busy),
                    .higher_is_better = false,
                    .goal = Goal(),
                    .runs = runs,
                    .extra = {{"closure_bytes", double(sizeof(JobPathCall))}}});
  const double parked_runs = double(runs) * (parked_calls + warmup_calls);
  report.add(Result{.name = "pingpong_parked_p50",
                    .metric = "us/round trip",
                    .veloq = median(veloq_p50) / 1000,
                    .baseline_name = "raw eventfd ping-pong, p50",
                    .baseline = median(raw_p50) / 1000,
                    .higher_is_better = false,
                    .goal = Goal().veloq_below(15, "us"),
                    .runs = runs,
                    .extra = {{"calls_per_run", double(parked_calls)},
                              {"gap_us", 500.0},
                              {"wake_msg_ring", used_msg_ring ? 1.0 : 0.0},
                              {"msg_ring_share_of_wakeups", msg_ring_share},
                              {"target_parks_per_call", double(shard1_parks) / parked_runs},
                              {"raw_spinning_caller_p50_us", median(raw_spinning_p50) / 1000}}});
  report.add(Result{.name = "pingpong_parked_p99",
                    .metric = "us/round trip",
                    .veloq = median(veloq_p99) / 1000,
                    .baseline_name = "raw eventfd ping-pong, p99",
                    .baseline = median(raw_p99) / 1000,
                    .higher_is_better = false,
                    .goal = Goal(),
                    .runs = runs,
                    .extra = {{"calls_per_run", double(parked_calls)}}});
  return report.finish(options);
}
