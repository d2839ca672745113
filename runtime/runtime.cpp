#include <veloq/mesh/mesh.hpp>
#include <veloq/runtime/blocking_pool.hpp>
#include <veloq/runtime/local_executor.hpp>
#include <veloq/runtime/log.hpp>
#include <veloq/runtime/runtime.hpp>

#include <pthread.h>
#include <sched.h>

#include <barrier>
#include <cstring>
#include <optional>
#include <thread>

namespace veloq {

namespace {

std::vector<int> cpus_in_affinity_mask() {
  std::vector<int> cpus;
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) == 0)
    for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu)
      if (CPU_ISSET(cpu, &set)) cpus.push_back(cpu);
  if (cpus.empty()) cpus.push_back(0);
  return cpus;
}

void pin_current_thread(int cpu, unsigned shard) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  if (int rc = pthread_setaffinity_np(pthread_self(), sizeof set, &set); rc != 0)
    log().warn("could not pin shard {} to CPU {}: {}", shard, cpu, std::strerror(rc));
}

}  // namespace

Runtime::Runtime(RuntimeConfig config) : config_(std::move(config)) {
  cpus_ = config_.cpus.empty() ? cpus_in_affinity_mask() : config_.cpus;
  shard_count_ = config_.shards != 0 ? config_.shards : static_cast<unsigned>(cpus_.size());
}

namespace {

// Shutdown hand-over rounds after which what is still staged is discarded on
// its sender (something whose discarding keeps sending more).
constexpr unsigned max_hand_over_rounds = 1000;

void stop_every_shard(mesh::Mesh& mesh) noexcept {
  for (unsigned i = 0; i < mesh.shard_count(); ++i) mesh.signal(i).request_stop();
}

}  // namespace

void Runtime::stop() noexcept {
  std::lock_guard lock(running_mutex_);
  if (auto* mesh = static_cast<mesh::Mesh*>(running_mesh_))
    stop_every_shard(*mesh);
  else
    stop_pending_ = true;
}

void Runtime::run_shards(const std::function<void()>& entry_on_shard0) {
  if (RuntimeContext::current_or_null() != nullptr)
    throw RuntimeMisuse(
        "veloq: Runtime::run was called on a thread that is running a shard; "
        "a shard cannot start another runtime (use spawn or submit_to instead)");
  {
    std::lock_guard lock(running_mutex_);
    if (running_)
      throw RuntimeMisuse("veloq: Runtime::run was called while the same runtime is already running");
    running_ = true;
  }
  struct EndOfRun {
    Runtime& runtime;
    ~EndOfRun() {
      std::lock_guard lock(runtime.running_mutex_);
      runtime.running_ = false;
      runtime.stop_pending_ = false;
    }
  } end_of_run{*this};
  configure_logging(config_.log_level);

  const unsigned n = shard_count_;
  mesh::Mesh mesh(n, config_.shard.mesh.ring_capacity);
  // stop() reaches the shards through the mesh from here until it goes.
  struct PublishedMesh {
    Runtime& runtime;
    PublishedMesh(Runtime& r, mesh::Mesh& m) : runtime(r) {
      std::lock_guard lock(runtime.running_mutex_);
      runtime.running_mesh_ = &m;
      if (runtime.stop_pending_) stop_every_shard(m);
    }
    ~PublishedMesh() {
      std::lock_guard lock(runtime.running_mutex_);
      runtime.running_mesh_ = nullptr;
    }
  } published{*this, mesh};
  BlockingPool blocking_pool(config_.shard.blocking_pool, mesh);  // goes before the mesh: it wakes shards
  std::vector<internal::ShardHeartbeat*> heartbeats(n);
  std::optional<StallDetector> watchdog;  // shard 0 runs it while every shard thread is alive
  std::barrier started(n), stopped(n), drained(n);
  // The shutdown's hand-over rounds (below): their barrier's completion
  // decides, once for every shard, whether another round is needed.
  std::atomic<bool> staged_somewhere{false};
  bool another_round = false;
  unsigned rounds = 0;
  auto end_of_round = [&]() noexcept {
    another_round = staged_somewhere.exchange(false) && ++rounds < max_hand_over_rounds;
  };
  std::barrier<decltype(end_of_round)> handed_over(n, end_of_round);
  std::vector<std::exception_ptr> errors(n);
  std::atomic<bool> startup_failed{false};

  auto shard_main = [&](unsigned id) {
    if (config_.pin_threads) pin_current_thread(cpus_[id % cpus_.size()], id);
    std::optional<LocalExecutor> executor;
    try {
      executor.emplace(config_.shard, mesh, id);
      executor->attach_blocking_pool(blocking_pool);
      heartbeats[id] = &executor->heartbeat();
    } catch (...) {
      errors[id] = std::current_exception();
      startup_failed = true;
    }
    started.arrive_and_wait();
    if (id == 0 && !startup_failed) watchdog.emplace(config_.stall, heartbeats);
    if (!startup_failed) {
      log().debug("shard {} of {} started", id, n);
      try {
        if (id == 0) {
          RuntimeContext context(*executor);
          entry_on_shard0();
        } else {
          executor->run_until_stopped();
        }
      } catch (...) {
        errors[id] = std::current_exception();
      }
      // The entry returned, or this shard's loop failed: either way every
      // shard stops (a shard that stopped alone would leave its peers waiting
      // for replies and at the shutdown barrier).
      if (id == 0 || errors[id]) {
        if (id != 0) log().error("shard {} stopped the runtime: its loop failed", id);
        stop();
      }
    }
    // Shutdown: destroy tasks (they may stage final messages), then, once no
    // shard sends any more, hand every message left in a ring its discard
    // delivery so whatever it owns is released.
    if (executor) {
      RuntimeContext context(*executor);
      executor->destroy_all_tasks();
      executor->mesh().flush_outbound();  // what fits reaches its home shard's discard delivery
    }
    stopped.arrive_and_wait();
    if (id == 0) watchdog.reset();
    // Rounds: every shard discards what is in its inbound rings, then hands
    // what it still has staged (a ring may have been full, and discarding may
    // stage more) to the rings, so that each message is discarded on the
    // shard it was sent to, which owns what it carries home; until no shard
    // has anything staged. What a bounded number of rounds left (the rings'
    // last pushes, what stays staged) is discarded where it is.
    do {
      if (executor) {
        RuntimeContext context(*executor);
        executor->mesh().discard_inbound();
        if (executor->mesh().hand_over_staged()) staged_somewhere = true;
      }
      handed_over.arrive_and_wait();
    } while (another_round);
    if (executor) {
      RuntimeContext context(*executor);
      executor->mesh().discard_inbound();
      executor->mesh().discard_staged();  // last: discarding inbound messages may stage more
    }
    drained.arrive_and_wait();
    executor.reset();
  };

  std::vector<std::thread> threads;
  threads.reserve(n);
  for (unsigned id = 0; id < n; ++id) threads.emplace_back(shard_main, id);
  for (std::thread& t : threads) t.join();

  // A shard loop's failure first: it is what stopped the entry on shard 0.
  for (unsigned id = 1; id < n; ++id)
    if (errors[id]) std::rethrow_exception(errors[id]);
  if (errors[0]) std::rethrow_exception(errors[0]);
}

}  // namespace veloq
