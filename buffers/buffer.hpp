// Buffer: a RAII handle to one page-aligned buffer of a shard's BufferPool.
//
// A Buffer is move-only. Dropping it (or calling reset()) gives the memory
// back to the pool it came from. It may travel to another shard (moved into
// a submit_to closure, say) and be dropped there: it then goes home over the
// mesh and is put back on its own shard's thread, never freed across threads.
//
// When the pool registered its memory with the shard's io_uring, the buffer
// can be the target of IORING_OP_READ_FIXED / WRITE_FIXED on that ring:
// `fixed_index_for(driver)` gives the buf_index to use, or -1 when the buffer
// must go through plain READ / WRITE (see buffers/buffer_io.hpp, which picks).
//
//   veloq::buffers::Buffer buf = co_await pool.acquire(16 * 1024);
//   std::memcpy(buf.data(), header, header_len);
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <utility>

namespace veloq::io {
class Driver;
}

namespace veloq::buffers {

namespace internal {
class PoolCore;
// Puts buffer `index` of size class `size_class` back into `core`, on its home
// shard's thread (directly, or over the mesh when called from another shard).
void release_buffer(PoolCore* core, std::uint16_t size_class, std::uint32_t index) noexcept;
// Whether `core`'s memory is still in its ring's table (a pool whose handle is
// gone unregisters it while buffers may still be out). Home shard only.
bool still_registered(const PoolCore* core) noexcept;
}  // namespace internal

class Buffer {
 public:
  Buffer() noexcept = default;
  Buffer(Buffer&& other) noexcept
      : core_(std::exchange(other.core_, nullptr)),
        data_(other.data_),
        fixed_ring_(other.fixed_ring_),
        size_(other.size_),
        index_(other.index_),
        size_class_(other.size_class_) {}
  Buffer& operator=(Buffer&& other) noexcept {
    if (this != &other) {
      reset();
      core_ = std::exchange(other.core_, nullptr);
      data_ = other.data_;
      fixed_ring_ = other.fixed_ring_;
      size_ = other.size_;
      index_ = other.index_;
      size_class_ = other.size_class_;
    }
    return *this;
  }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  ~Buffer() { reset(); }

  // False for an empty handle (default-constructed, moved from, or a failed try_acquire).
  explicit operator bool() const noexcept { return core_ != nullptr; }

  std::byte* data() const noexcept { return data_; }
  char* chars() const noexcept { return reinterpret_cast<char*>(data_); }
  // The buffer's full capacity: its size class, at least what was asked for.
  std::size_t size() const noexcept { return size_; }
  std::span<std::byte> bytes() const noexcept { return {data_, size_}; }

  // True when the memory was registered with its home shard's io_uring when
  // the buffer was handed out.
  bool registered() const noexcept { return fixed_ring_ != nullptr; }
  // The buf_index for READ_FIXED / WRITE_FIXED on `ring`, or -1 when this
  // buffer is not registered with that ring (unregistered pool, another
  // shard's ring, or a pool dropped since, which unregistered its memory).
  int fixed_index_for(const io::Driver& ring) const noexcept {
    if (fixed_ring_ != &ring) return -1;  // decided without touching the pool off its shard
    return internal::still_registered(core_) ? static_cast<int>(size_class_) : -1;
  }
  // The pool's size class this buffer belongs to (also its buf_index when registered).
  std::uint16_t size_class() const noexcept { return size_class_; }

  // Gives the buffer back now; the handle becomes empty.
  void reset() noexcept {
    if (core_ != nullptr) internal::release_buffer(std::exchange(core_, nullptr), size_class_, index_);
  }

 private:
  friend class internal::PoolCore;
  Buffer(internal::PoolCore* core, std::byte* data, const io::Driver* fixed_ring, std::uint32_t size,
         std::uint32_t index, std::uint16_t size_class) noexcept
      : core_(core), data_(data), fixed_ring_(fixed_ring), size_(size), index_(index), size_class_(size_class) {}

  internal::PoolCore* core_ = nullptr;
  std::byte* data_ = nullptr;
  const io::Driver* fixed_ring_ = nullptr;  // the ring the memory is registered with, if any
  std::uint32_t size_ = 0;
  std::uint32_t index_ = 0;  // within the size class
  std::uint16_t size_class_ = 0;
};

}  // namespace veloq::buffers
