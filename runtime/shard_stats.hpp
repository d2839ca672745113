// ShardStats: a snapshot of what one shard has done since it started, drawn
// from its executor, its mesh endpoint and its io_uring driver; and
// collect_shard_stats(), which gathers one snapshot from every shard.
//
//   for (const veloq::ShardStats& s : co_await veloq::collect_shard_stats())
//     veloq::log().info("shard {} busy {:.0f}%", s.shard, 100.0 * s.busy_fraction());
#pragma once

#include <veloq/runtime/task.hpp>
#include <veloq/runtime/task_class.hpp>

#include <cstdint>
#include <vector>

namespace veloq {

struct ShardStats {
  unsigned shard = 0;
  // Executor
  std::uint64_t tasks_spawned = 0;
  std::uint64_t tasks_run = 0;  // resumptions
  std::uint64_t live_tasks = 0;
  std::uint64_t loop_turns = 0;
  std::uint64_t parks = 0;  // each park ends in one wake-up
  std::uint64_t timers_fired = 0;
  std::uint64_t blocking_results = 0;
  std::uint64_t busy_ns = 0;    // time not asleep in the kernel
  std::uint64_t parked_ns = 0;  // time asleep in the kernel
  // Mesh
  std::uint64_t mesh_sent = 0;
  std::uint64_t mesh_received = 0;
  std::uint64_t mesh_wakeups_sent = 0;
  std::uint64_t mesh_ring_full = 0;
  // io_uring
  std::uint64_t ring_submitted = 0;
  std::uint64_t ring_completed = 0;
  std::uint64_t ring_enters = 0;
  // Per task class, indexed by TaskClass::index(); the default class first.
  std::vector<TaskClassStats> classes;

  double busy_fraction() const noexcept {
    std::uint64_t total = busy_ns + parked_ns;
    return total == 0 ? 0.0 : static_cast<double>(busy_ns) / static_cast<double>(total);
  }
};

// The current shard's statistics.
ShardStats shard_stats();

// Every shard's statistics, indexed by shard id.
Task<std::vector<ShardStats>> collect_shard_stats();

}  // namespace veloq
