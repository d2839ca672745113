#include <veloq/buffers/home_route.hpp>
#include <veloq/mesh/mesh_endpoint.hpp>
#include <veloq/runtime/log.hpp>
#include <veloq/runtime/runtime_context.hpp>

#include <exception>

namespace veloq::buffers::internal {

bool send_to_home_shard(unsigned home, const mesh::MeshMessage& message, const char* what) noexcept {
  RuntimeContext* ctx = RuntimeContext::current_or_null();
  // Same shard id on another thread means another runtime (or a standalone
  // executor): its mesh does not lead to the buffer's home.
  if (ctx == nullptr || home >= ctx->shard_count() || home == ctx->shard_id()) {
    log().error("a {} of shard {} was dropped on a thread that is not a shard of its runtime; it is leaked "
                "(drop buffers on a shard of the runtime that owns them)",
                what, home);
    return false;
  }
  try {
    ctx->mesh().send(home, message);
    return true;
  } catch (const std::exception& e) {
    log().error("could not send a {} home to shard {} ({}); it is leaked", what, home, e.what());
    return false;
  }
}

}  // namespace veloq::buffers::internal
