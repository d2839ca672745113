// veloq-bench-mesh: tiny closures sent from shard to shard with veloq::run_on,
// next to a raw boost::lockfree::spsc_queue<void*> between two pinned threads.
#include "options.hpp"
#include "report.hpp"
#include "runtime_setup.hpp"
#include "samples.hpp"

#include <veloq/mesh/submit_to.hpp>
#include <veloq/runtime/runtime.hpp>
#include <veloq/runtime/yield.hpp>

#include <boost/lockfree/spsc_queue.hpp>

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace {

using namespace veloq::bench;

constexpr const char* description =
    "Throughput of tiny closures sent from one shard to another with veloq::run_on, in\n"
    "messages/s, next to a raw boost::lockfree::spsc_queue<void*> between two threads\n"
    "pinned to the same two CPUs.\n"
    "\n"
    "Veloq: the sender task calls run_on(peer, closure) for every message (the closure\n"
    "holds one pointer and travels inside the 32-byte mesh message) and awaits\n"
    "endpoint.room_for(peer) every 64 messages, so staging stays bounded; the\n"
    "receiving shard runs each closure, which counts it. At the end the sender asks the\n"
    "receiver for its count with submit_to (FIFO behind the closures) and the run fails\n"
    "if a single message is missing. Time runs from the first send to that reply.\n"
    "Raw: the producer pushes one void* at a time (spinning while the queue is full),\n"
    "the consumer pops up to 64 at a time and counts them; same message count.\n"
    "\n"
    "--shards N (1 or 2) is the number of senders: with 1, shard 0 sends to shard 1;\n"
    "with 2, shards 0 and 1 send to each other at once (both also receive), and the raw\n"
    "baseline has two queues, each thread producing into one and consuming the other.\n"
    "Rows give the aggregate (all messages / slowest direction's time) and, for 2, each\n"
    "direction. Medians over 7 runs (3 with --quick) after a warm-up run.";

// The closure shipped by run_on: trivially copyable, so it travels inline.
struct CountOne {
  std::uint64_t* received;
  void operator()() const noexcept { ++*received; }
};

// One direction's result: how long it took and how many messages arrived.
struct Direction {
  double seconds = 0;
  std::uint64_t received = 0;
};

// Sends `messages` closures to shard `to`; the counter lives on `to` and is
// read there, behind the closures, once they are all sent.
veloq::Task<Direction> send_closures(std::atomic<unsigned>* at_start, unsigned senders, unsigned to,
                                     std::uint64_t messages) {
  // The receiver's counter is created on the receiver and only touched there.
  std::uint64_t* counter = co_await veloq::submit_to(to, [] { return new std::uint64_t(0); });
  at_start->fetch_add(1);
  while (at_start->load() < senders) co_await veloq::yield();
  veloq::mesh::MeshEndpoint& endpoint = veloq::RuntimeContext::current().mesh();
  auto start = Clock::now();
  for (std::uint64_t i = 0; i < messages; ++i) {
    veloq::run_on(to, CountOne{counter});
    if ((i & 63) == 63) co_await endpoint.room_for(to);
  }
  Direction d;
  d.received = co_await veloq::submit_to(to, [counter] {
    std::uint64_t n = *counter;
    delete counter;
    return n;
  });
  d.seconds = seconds_since(start);
  co_return d;
}

veloq::Task<std::vector<Direction>> veloq_run(unsigned senders, std::uint64_t messages) {
  std::atomic<unsigned> at_start{0};
  std::vector<veloq::RemoteCall<Direction>> calls;
  calls.reserve(senders);
  for (unsigned s = 0; s < senders; ++s)
    calls.push_back(veloq::submit_to(s, [at = &at_start, senders, s, messages] {
      return send_closures(at, senders, (s + 1) % 2, messages);
    }));
  std::vector<Direction> result;
  for (auto& call : calls) result.push_back(co_await std::move(call));
  co_return result;
}

using RawQueue = boost::lockfree::spsc_queue<void*>;

// One raw run: thread t produces `messages` into queues[t] when it is a sender
// and consumes queues[1 - t] when the other thread is one.
std::vector<Direction> raw_run(const std::vector<int>& cpus, unsigned senders, std::uint64_t messages) {
  std::unique_ptr<RawQueue> queues[2] = {std::make_unique<RawQueue>(4096), std::make_unique<RawQueue>(4096)};
  std::vector<Direction> result(senders);
  std::atomic<unsigned> at_start{0};
  std::vector<std::thread> threads;
  for (unsigned t = 0; t < 2; ++t)
    threads.push_back(pinned_thread(cpus[t % cpus.size()], [&, t] {
      const bool sends = t < senders;
      const bool receives = (1 - t) < senders;
      RawQueue& out = *queues[t];
      RawQueue& in = *queues[1 - t];
      std::uint64_t sent = 0, received = 0;
      std::uint64_t token = 1;
      void* batch[64];
      at_start.fetch_add(1);
      while (at_start.load() < 2) cpu_relax();
      auto start = Clock::now();
      while ((sends && sent < messages) || (receives && received < messages)) {
        if (sends)
          for (unsigned k = 0; k < 64 && sent < messages && out.push(&token); ++k) ++sent;
        if (receives) received += in.pop(batch, 64);
      }
      // The receiving thread stops its sender's clock, as the Veloq reply does.
      if (receives) result[1 - t] = Direction{seconds_since(start), received};
    }));
  for (auto& th : threads) th.join();
  return result;
}

struct Figures {
  std::vector<double> aggregate;
  std::vector<std::vector<double>> per_direction;
};

void add_run(Figures& f, const std::vector<Direction>& dirs, std::uint64_t messages, const char* who) {
  f.per_direction.resize(dirs.size());
  double slowest = 0;
  for (std::size_t i = 0; i < dirs.size(); ++i) {
    if (dirs[i].received != messages) {
      std::fprintf(stderr, "veloq-bench-mesh: %s direction %zu received %llu of %llu messages\n", who, i,
                   static_cast<unsigned long long>(dirs[i].received), static_cast<unsigned long long>(messages));
      std::exit(1);
    }
    slowest = std::max(slowest, dirs[i].seconds);
    f.per_direction[i].push_back(static_cast<double>(messages) / dirs[i].seconds);
  }
  f.aggregate.push_back(static_cast<double>(messages) * static_cast<double>(dirs.size()) / slowest);
}

}  // namespace

int main(int argc, char** argv) {
  Options options("veloq-bench-mesh", description);
  unsigned shards = 1;
  options.add_value("--shards", "N", &shards, "sending shards, 1 or 2 (default 1)");
  if (!options.parse(argc, argv)) return 0;
  if (shards < 1 || shards > 2) options.fail("--shards must be 1 or 2");

  const unsigned runs = options.runs(7, 3);
  const std::uint64_t messages = options.pick<std::uint64_t>(5'000'000, 1'000'000);
  const std::vector<int> cpus = benchmark_cpus(2);

  Figures veloq_figures, raw_figures;
  std::uint64_t wakeups = 0, ring_full = 0, sent = 0;
  if (options.run_veloq()) {
    veloq::Runtime runtime(pinned_runtime(2));
    runtime.run([&]() -> veloq::Task<void> {
      (void)co_await veloq_run(shards, messages / 4);
      for (unsigned r = 0; r < runs; ++r) add_run(veloq_figures, co_await veloq_run(shards, messages), messages, "veloq");
      const auto& stats = veloq::RuntimeContext::current().mesh().stats();
      wakeups = stats.wakeups_sent;
      ring_full = stats.ring_full;
      sent = stats.sent;
    });
  }
  if (options.run_baseline()) std::thread([&] {
    (void)raw_run(cpus, shards, messages / 4);
    for (unsigned r = 0; r < runs; ++r) add_run(raw_figures, raw_run(cpus, shards, messages), messages, "raw");
  }).join();

  Report report("veloq-bench-mesh");
  report.add(Result{.name = "run_on_closures",
                    .metric = "messages/s",
                    .veloq = median(veloq_figures.aggregate),
                    .baseline_name = "raw boost spsc_queue<void*>",
                    .baseline = median(raw_figures.aggregate),
                    .higher_is_better = true,
                    .goal = Goal().ratio_at_least(0.5).veloq_at_least(30e6 * shards, "/s"),
                    .runs = runs,
                    .extra = {{"senders", double(shards)},
                              {"messages_per_sender", double(messages)},
                              {"veloq_min", min_of(veloq_figures.aggregate)},
                              {"veloq_max", max_of(veloq_figures.aggregate)},
                              {"shard0_wakeups_per_1k_messages", 1000.0 * double(wakeups) / double(sent)},
                              {"shard0_ring_full_events", double(ring_full)}}});
  if (shards > 1)
    for (unsigned s = 0; s < shards; ++s)
      report.add(Result{.name = "run_on_closures/" + std::to_string(s) + "to" + std::to_string((s + 1) % 2),
                        .metric = "messages/s",
                        .veloq = median_at(veloq_figures.per_direction, s),
                        .baseline_name = "raw spsc_queue, thread " + std::to_string(s),
                        .baseline = median_at(raw_figures.per_direction, s),
                        .higher_is_better = true,
                        .goal = Goal().ratio_at_least(0.5).veloq_at_least(30e6, "/s"),
                        .runs = runs,
                        .extra = {}});
  return report.finish(options);
}
