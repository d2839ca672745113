// How a buffer dropped on a foreign shard gets home: the owner of a buffer's
// memory is its home shard's thread, and only that thread ever puts it back.
// A drop elsewhere becomes a mesh message to the home shard.
#pragma once

#include <veloq/mesh/mesh_message.hpp>

namespace veloq::buffers::internal {

// Sends `message` to shard `home` from the calling shard. Returns false, after
// logging an error naming `what`, when the calling thread is not another
// shard of the same runtime (no context, a standalone executor, or a send
// that failed): the buffer is then leaked rather than freed on a foreign thread.
bool send_to_home_shard(unsigned home, const mesh::MeshMessage& message, const char* what) noexcept;

}  // namespace veloq::buffers::internal
