#include <veloq/mesh/mesh.hpp>

#include <stdexcept>
#include <string>

namespace veloq::mesh {

void throw_no_such_shard(const char* what, unsigned shard, unsigned shard_count) {
  throw std::out_of_range(std::string("veloq: ") + what + " shard " + std::to_string(shard) +
                          " but the runtime has " + std::to_string(shard_count) + " shards");
}

Mesh::Mesh(unsigned shard_count, std::size_t ring_capacity)
    : shard_count_(shard_count), ring_capacity_(ring_capacity), rings_(std::size_t{shard_count} * shard_count) {
  // A ring with no slot is always full: nothing sent would ever arrive.
  if (ring_capacity == 0) throw std::invalid_argument("veloq: MeshConfig::ring_capacity must be at least 1");
  signals_.reserve(shard_count);
  for (unsigned i = 0; i < shard_count; ++i) signals_.push_back(std::make_unique<ShardSignal>(shard_count));
}

Mesh::~Mesh() = default;

void Mesh::create_inbound_rings(unsigned to) {
  for (unsigned from = 0; from < shard_count_; ++from)
    if (from != to) rings_[to * shard_count_ + from] = std::make_unique<SpscRing>(ring_capacity_);
}

}  // namespace veloq::mesh
