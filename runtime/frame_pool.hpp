// FramePool: the per-shard free lists that coroutine frames and other small,
// short-lived task objects come from, so spawning a task does not touch malloc
// once a shard is warm. Blocks are grouped in 64-byte size classes up to 1 KiB;
// larger requests go to the heap. Every block is one heap allocation rounded up
// to its class, so a block may be returned to any pool (or to the heap) safely.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

namespace veloq::internal {

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

  void* allocate(std::size_t bytes);
  void release(void* block, std::size_t bytes) noexcept;

  // Allocation and release that use the current shard's pool, or the heap
  // when the calling thread has entered no runtime context.
  static void* allocate_current(std::size_t bytes);
  static void release_current(void* block, std::size_t bytes) noexcept;

  static constexpr std::size_t rounded(std::size_t bytes) noexcept {
    return bytes <= max_pooled_bytes ? (bytes + class_bytes - 1) / class_bytes * class_bytes : bytes;
  }

 private:
  struct FreeBlock {
    FreeBlock* next;
  };
  std::array<FreeBlock*, class_count> free_{};
  std::array<std::uint32_t, class_count> free_count_{};
};

}  // namespace veloq::internal
