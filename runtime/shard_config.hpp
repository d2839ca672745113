// ShardConfig: the settings every shard of a runtime (or a standalone
// LocalExecutor) is built with.
#pragma once

#include <veloq/buffers/buffer_pool.hpp>
#include <veloq/io/driver.hpp>
#include <veloq/mesh/mesh_endpoint.hpp>
#include <veloq/runtime/task_class.hpp>

#include <chrono>
#include <vector>

namespace veloq {

// The helper threads behind spawn_blocking (runtime/blocking_pool.hpp).
struct BlockingPoolConfig {
  unsigned max_threads = 16;
  // A helper thread with nothing to do for this long exits.
  std::chrono::milliseconds idle_timeout{10'000};
};

struct ShardConfig {
  // Tasks run per loop turn before the shard looks at its mesh and its ring.
  unsigned task_budget = 256;
  // Inbound mesh messages run per loop turn before local tasks get a turn again.
  unsigned mesh_budget = 1024;
  // How long a shard that runs out of work keeps looking for more before it
  // parks in the kernel. Waking a parked shard costs the sender a syscall and
  // the receiver a reschedule (tens of microseconds on a virtual machine); an
  // idle shard spins only right after it has worked, so this costs nothing
  // while the runtime stays idle. 0 parks at once.
  unsigned idle_spin_us = 50;
  // Most SQEs one loop turn hands to the kernel: once the tasks of a turn
  // have prepared this many, the turn stops running tasks and its one
  // io_uring_enter submits them; the rest run on the next turns. Small
  // submissions keep a disk that serves requests as they arrive busy (a
  // large batch reaches the device only after all of it has been issued,
  // while the device may sit idle); large ones cost fewer syscalls.
  // 0: no limit (task_budget alone ends the batch).
  unsigned submit_batch = 0;
  mesh::MeshConfig mesh;
  io::DriverConfig driver;
  BlockingPoolConfig blocking_pool;
  // Each shard gets a registered BufferPool bound to its context, unless off.
  bool buffer_pool = true;
  buffers::BufferPoolConfig buffers;
  // A loop turn that runs longer than this raises the shard's "quota
  // expired" flag: maybe_yield() then yields and the task batch ends early.
  // Zero turns the quota off.
  std::chrono::microseconds task_quota{500};
  // Task classes created on every shard, after the default class, with ids
  // 1, 2, ... in this order (runtime/task_class.hpp).
  std::vector<TaskClassConfig> task_classes;
  // Record each task's spawn time, shown as its age by dump_tasks().
  bool track_tasks = false;
};

}  // namespace veloq
