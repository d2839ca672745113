#include <veloq/mesh/submit_to.hpp>
#include <veloq/runtime/shard_stats.hpp>

namespace veloq {

ShardStats shard_stats() {
  LocalExecutor& ex = RuntimeContext::current("shard_stats").executor();
  const ExecutorStats e = ex.stats();
  const mesh::MeshStats& m = ex.mesh().stats();
  const io::DriverStats d = ex.driver().stats();
  ShardStats s;
  s.shard = ex.shard_id();
  s.tasks_spawned = e.tasks_spawned;
  s.tasks_run = e.tasks_run;
  s.live_tasks = ex.live_tasks();
  s.loop_turns = e.loop_turns;
  s.parks = e.parks;
  s.timers_fired = e.timers_fired;
  s.blocking_results = e.blocking_results;
  s.parked_ns = e.parked_ns;
  std::int64_t alive = internal::ShardHeartbeat::now_ns() - e.started_ns;
  s.busy_ns = alive > static_cast<std::int64_t>(e.parked_ns) ? static_cast<std::uint64_t>(alive) - e.parked_ns : 0;
  s.mesh_sent = m.sent;
  s.mesh_received = m.received;
  s.mesh_wakeups_sent = m.wakeups_sent;
  s.mesh_ring_full = m.ring_full;
  s.ring_submitted = d.submitted;
  s.ring_completed = d.completed;
  s.ring_enters = d.enters;
  s.classes = ex.task_class_stats();
  return s;
}

Task<std::vector<ShardStats>> collect_shard_stats() {
  auto snapshot = [] { return std::vector<ShardStats>{shard_stats()}; };
  auto append = [](std::vector<ShardStats> all, std::vector<ShardStats> one) {
    all.push_back(one.front());
    return all;
  };
  co_return co_await map_reduce(snapshot, std::vector<ShardStats>(), append);
}

}  // namespace veloq
