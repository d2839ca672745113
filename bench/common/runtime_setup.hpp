// The runtime configuration the micro benchmarks measure: `shards` shards, each
// pinned to its own CPU from benchmark_cpus(), so Veloq runs on the CPUs its
// baseline threads are pinned to.
#pragma once

#include "cpus.hpp"

#include <veloq/runtime/runtime.hpp>

namespace veloq::bench {

inline RuntimeConfig pinned_runtime(unsigned shards) {
  RuntimeConfig config;
  config.shards = shards;
  config.pin_threads = true;
  config.cpus = benchmark_cpus(shards);
  return config;
}

// For oversubscription studies: `shards` threads left to the kernel's scheduler.
inline RuntimeConfig unpinned_runtime(unsigned shards) {
  RuntimeConfig config;
  config.shards = shards;
  config.pin_threads = false;
  return config;
}

}  // namespace veloq::bench
