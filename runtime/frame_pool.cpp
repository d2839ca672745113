#include <veloq/runtime/frame_pool.hpp>
#include <veloq/runtime/runtime_context.hpp>

#include <new>

namespace veloq::internal {

FramePool::~FramePool() {
  for (FreeList& list : free_) {
    while (list.head != nullptr) {
      FreeBlock* next = list.head->next;
      heap_release(list.head);
      list.head = next;
    }
    list.count = 0;
  }
}

}  // namespace veloq::internal
