// Task dumps: what every live task of a shard, or of the whole runtime, is.
//
// Each line names the task (SpawnOptions::name), where it was spawned
// (file:line), whether it is queued, suspended or running, and its age when
// ShardConfig::track_tasks is on (off by default: it costs a clock read per
// spawn).
//
//   veloq::log().info("{}", co_await veloq::dump_all_tasks());
//   std::string mine = veloq::RuntimeContext::current().executor().dump_tasks();
#pragma once

#include <veloq/runtime/task.hpp>

#include <string>

namespace veloq {

// Collects LocalExecutor::dump_tasks() from every shard, in shard order.
Task<std::string> dump_all_tasks();

}  // namespace veloq
