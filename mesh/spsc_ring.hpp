// SpscRing: the single-producer single-consumer ring from one shard to
// another, a boost::lockfree::spsc_queue of MeshMessage. Boost keeps the
// producer's and consumer's indices 64 bytes apart; we pad the whole ring to
// 128 bytes on both sides so that neither index shares a cache line pair
// (adjacent-line prefetch pulls lines in 128-byte pairs) with a neighbouring
// ring or with anything else the allocator places next to it.
#pragma once

#include <veloq/mesh/mesh_message.hpp>

#include <boost/lockfree/spsc_queue.hpp>

#include <atomic>
#include <cstddef>

namespace veloq::mesh {

class alignas(128) SpscRing {
 public:
  explicit SpscRing(std::size_t capacity) : queue_(capacity) {}

  // Producer side: pushes as many of `count` messages as fit, returns how many.
  std::size_t push(const MeshMessage* messages, std::size_t count) noexcept { return queue_.push(messages, count); }
  // Consumer side: pops up to `count` messages, returns how many.
  std::size_t pop(MeshMessage* out, std::size_t count) noexcept { return queue_.pop(out, count); }
  bool empty_for_consumer() noexcept { return queue_.read_available() == 0; }

  static void* operator new(std::size_t bytes) { return ::operator new(bytes, std::align_val_t{128}); }
  static void operator delete(void* p) noexcept { ::operator delete(p, std::align_val_t{128}); }

 private:
  [[maybe_unused]] char pad_before_[128];
  boost::lockfree::spsc_queue<MeshMessage> queue_;
  [[maybe_unused]] char pad_after_[128];

 public:
  // Set by a producer that found the ring full with messages still staged;
  // the consumer, after making room, wakes it so it pushes again.
  alignas(128) std::atomic<bool> producer_waiting_for_room{false};
  [[maybe_unused]] char pad_end_[128];
};

}  // namespace veloq::mesh
