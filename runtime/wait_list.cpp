#include <veloq/runtime/errors.hpp>
#include <veloq/runtime/wait_list.hpp>

#include <string>

namespace veloq::internal {

void Waiter::throw_orphaned(const char* owner) {
  throw ClosedError(std::string("veloq: ") + owner + " destroyed while a task waited on it");
}

}  // namespace veloq::internal
