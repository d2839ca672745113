// ShardConfig: the settings every shard of a runtime (or a standalone
// LocalExecutor) is built with.
#pragma once

#include <veloq/io/driver.hpp>
#include <veloq/mesh/mesh_endpoint.hpp>

namespace veloq {

struct ShardConfig {
  // Tasks run per loop turn before the shard looks at its mesh and its ring.
  unsigned task_budget = 256;
  // Inbound mesh messages run per loop turn before local tasks get a turn again.
  unsigned mesh_budget = 1024;
  mesh::MeshConfig mesh;
  io::DriverConfig driver;
};

}  // namespace veloq
