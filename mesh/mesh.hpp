// Mesh: the all-to-all topology of a runtime, one SpscRing for every ordered
// pair of shards plus one ShardSignal per shard. It is the only object the
// shards share; each shard reaches it through its own MeshEndpoint.
// The rings into a shard are allocated on that shard's thread (first touch
// puts their memory near the consumer).
#pragma once

#include <veloq/mesh/shard_signal.hpp>
#include <veloq/mesh/spsc_ring.hpp>

#include <cstddef>
#include <memory>
#include <vector>

namespace veloq::mesh {

// Throws std::out_of_range, naming the call `what`, unless `shard` is one of
// the runtime's `shard_count` shards: the one check of every call that
// addresses a shard.
// Inline: submit_to makes this check on every call; only the throw is out of line.
[[noreturn]] void throw_no_such_shard(const char* what, unsigned shard, unsigned shard_count);
inline void check_shard(const char* what, unsigned shard, unsigned shard_count) {
  if (shard >= shard_count) [[unlikely]] throw_no_such_shard(what, shard, shard_count);
}

class Mesh {
 public:
  Mesh(unsigned shard_count, std::size_t ring_capacity);
  Mesh(const Mesh&) = delete;
  Mesh& operator=(const Mesh&) = delete;
  ~Mesh();

  // Called once on shard `to`'s thread before any shard sends.
  void create_inbound_rings(unsigned to);

  unsigned shard_count() const noexcept { return shard_count_; }
  SpscRing& ring(unsigned from, unsigned to) noexcept { return *rings_[to * shard_count_ + from]; }
  ShardSignal& signal(unsigned shard) noexcept { return *signals_[shard]; }

 private:
  unsigned shard_count_;
  std::size_t ring_capacity_;
  std::vector<std::unique_ptr<SpscRing>> rings_;  // [to][from]; the diagonal stays empty
  std::vector<std::unique_ptr<ShardSignal>> signals_;
};

}  // namespace veloq::mesh
