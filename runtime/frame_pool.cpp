#include <veloq/runtime/frame_pool.hpp>
#include <veloq/runtime/runtime_context.hpp>

#include <new>

namespace veloq::internal {

FramePool::~FramePool() {
  for (FreeBlock*& head : free_) {
    while (head != nullptr) {
      FreeBlock* next = head->next;
      ::operator delete(head);
      head = next;
    }
  }
}

}  // namespace veloq::internal
