// FramePool: the per-shard free lists that coroutine frames and other small,
// short-lived task objects come from, so spawning a task does not touch malloc
// once a shard is warm. Blocks are grouped in 64-byte size classes up to 1 KiB;
// larger requests go to the heap. Every block is one heap allocation rounded up
// to its class, so a block may be returned to any pool (or to the heap) safely.
// Blocks start on a cache line: an object (or a coroutine frame's local)
// declared alignas(64) sits where it asks to, and no block shares its first
// line with another.
#pragma once

#include <veloq/runtime/runtime_context.hpp>

#include <array>
#include <cstddef>
#include <cstdint>
#include <new>

namespace veloq::internal {

// Sanitizer builds bypass the pool so that use-after-free and races on task
// memory are reported against the real allocation.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define VELOQ_POOL_DISABLED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define VELOQ_POOL_DISABLED 1
#endif
#endif
#ifdef VELOQ_POOL_DISABLED
inline constexpr bool pooling = false;
#else
inline constexpr bool pooling = true;
#endif

class FramePool {
 public:
  static constexpr std::size_t class_bytes = 64;
  static constexpr std::size_t class_count = 16;
  static constexpr std::size_t max_pooled_bytes = class_bytes * class_count;
  static constexpr std::size_t max_blocks_per_class = 8192;

  FramePool() = default;
  FramePool(const FramePool&) = delete;
  FramePool& operator=(const FramePool&) = delete;
  ~FramePool();

  // The alignment of every block; a more aligned object names its alignment
  // and gets its own heap block.
  static constexpr std::size_t block_alignment = 64;

  void* allocate(std::size_t bytes, std::size_t alignment) {
    if (alignment > block_alignment) [[unlikely]] return ::operator new(bytes, std::align_val_t{alignment});
    return allocate(bytes);
  }
  void release(void* block, std::size_t bytes, std::size_t alignment) noexcept {
    if (alignment > block_alignment) [[unlikely]] return ::operator delete(block, std::align_val_t{alignment});
    release(block, bytes);
  }

  void* allocate(std::size_t bytes) {
    if (pooling && bytes <= max_pooled_bytes && bytes != 0) {
      std::size_t cls = (bytes - 1) / class_bytes;
      FreeList& list = free_[cls];
      if (FreeBlock* b = list.head) {
        list.head = b->next;
        --list.count;
        return b;
      }
    }
    return heap_allocate(bytes);
  }
  void release(void* block, std::size_t bytes) noexcept {
    if (pooling && bytes <= max_pooled_bytes && bytes != 0) {
      std::size_t cls = (bytes - 1) / class_bytes;
      FreeList& list = free_[cls];
      if (list.count < max_blocks_per_class) {
        auto* b = static_cast<FreeBlock*>(block);
        b->next = list.head;
        list.head = b;
        ++list.count;
        return;
      }
    }
    heap_release(block);
  }

  // Allocation and release that use the current shard's pool, or the heap
  // when the calling thread has entered no runtime context.
  static void* allocate_current(std::size_t bytes);
  static void* allocate_current(std::size_t bytes, std::size_t alignment) {
    if (alignment > block_alignment) [[unlikely]] return ::operator new(bytes, std::align_val_t{alignment});
    return allocate_current(bytes);
  }
  static void release_current(void* block, std::size_t bytes) noexcept;
  static void release_current(void* block, std::size_t bytes, std::size_t alignment) noexcept {
    if (alignment > block_alignment) [[unlikely]] return ::operator delete(block, std::align_val_t{alignment});
    release_current(block, bytes);
  }

  static constexpr std::size_t rounded(std::size_t bytes) noexcept {
    return bytes <= max_pooled_bytes ? (bytes + class_bytes - 1) / class_bytes * class_bytes : bytes;
  }
  // A block from the heap, and its return there.
  static void* heap_allocate(std::size_t bytes) {
    return ::operator new(rounded(bytes), std::align_val_t{block_alignment});
  }
  static void heap_release(void* block) noexcept { ::operator delete(block, std::align_val_t{block_alignment}); }

 private:
  struct FreeBlock {
    FreeBlock* next;
  };
  // A class's list head and length side by side: one cache line per use.
  struct FreeList {
    FreeBlock* head = nullptr;
    std::size_t count = 0;
  };
  std::array<FreeList, class_count> free_{};
};

// Defined here rather than in the class: they need RuntimeContext, whose
// header only forward-declares FramePool.
inline void* FramePool::allocate_current(std::size_t bytes) {
  if (RuntimeContext* ctx = RuntimeContext::current_or_null()) return ctx->frame_pool().allocate(bytes);
  return heap_allocate(bytes);
}

inline void FramePool::release_current(void* block, std::size_t bytes) noexcept {
  if (RuntimeContext* ctx = RuntimeContext::current_or_null()) return ctx->frame_pool().release(block, bytes);
  heap_release(block);
}

}  // namespace veloq::internal
