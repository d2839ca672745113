#include <veloq/runtime/frame_pool.hpp>
#include <veloq/runtime/runtime_context.hpp>

#include <new>

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define VELOQ_POOL_DISABLED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define VELOQ_POOL_DISABLED 1
#endif
#endif

namespace veloq::internal {

namespace {
// Sanitizer builds bypass the pool so that use-after-free and races on task
// memory are reported against the real allocation.
#ifdef VELOQ_POOL_DISABLED
constexpr bool pooling = false;
#else
constexpr bool pooling = true;
#endif
}  // namespace

FramePool::~FramePool() {
  for (FreeBlock*& head : free_) {
    while (head != nullptr) {
      FreeBlock* next = head->next;
      ::operator delete(head);
      head = next;
    }
  }
}

void* FramePool::allocate(std::size_t bytes) {
  if (pooling && bytes <= max_pooled_bytes && bytes != 0) {
    std::size_t cls = (bytes - 1) / class_bytes;
    if (FreeBlock* b = free_[cls]) {
      free_[cls] = b->next;
      --free_count_[cls];
      return b;
    }
  }
  return ::operator new(rounded(bytes));
}

void FramePool::release(void* block, std::size_t bytes) noexcept {
  if (pooling && bytes <= max_pooled_bytes && bytes != 0) {
    std::size_t cls = (bytes - 1) / class_bytes;
    if (free_count_[cls] < max_blocks_per_class) {
      auto* b = static_cast<FreeBlock*>(block);
      b->next = free_[cls];
      free_[cls] = b;
      ++free_count_[cls];
      return;
    }
  }
  ::operator delete(block);
}

void* FramePool::allocate_current(std::size_t bytes) {
  if (RuntimeContext* ctx = RuntimeContext::current_or_null()) return ctx->frame_pool().allocate(bytes);
  return ::operator new(rounded(bytes));
}

void FramePool::release_current(void* block, std::size_t bytes) noexcept {
  if (RuntimeContext* ctx = RuntimeContext::current_or_null()) return ctx->frame_pool().release(block, bytes);
  ::operator delete(block);
}

}  // namespace veloq::internal
