// ProvidedBufferRing: a ring of equal-sized buffers handed to the kernel
// (io_uring_register_buf_ring) under a buffer group id, so a receive armed
// with IOSQE_BUFFER_SELECT picks its own buffer when data arrives instead of
// pinning one per idle connection. It is what multishot receive draws from
// (see buffers/multishot_recv.hpp).
//
// The kernel names the buffer it filled in the CQE (IORING_CQE_F_BUFFER and
// the id in the upper 16 bits of the flags); `take(result, flags)` turns that
// into a ProvidedBuffer, a RAII view of the received bytes that gives the
// buffer back to the kernel when dropped. Until then the kernel cannot reuse
// it, so a consumer that holds many views starves the ring: receives then
// fail with ENOBUFS (multishot ones stop). Receivers record that with
// `note_enobufs()` (counted in `enobufs_events()`) and re-arm once buffers
// come back, either by awaiting `buffers_returned()` (a task) or by
// registering a RefillHook (an operation record, no task needed).
//
//   veloq::buffers::ProvidedBufferRing ring(ctx.driver(), {.group_id = 7, .entries = 64, .buffer_bytes = 4096});
//   veloq::buffers::MultishotRecv stream(ring, fd);
//   while (auto chunk = co_await stream.next()) consume(chunk->bytes());
//
// Free buffers are not all offered to the kernel at once: it takes them in
// ring order, so a large ring would have every receive land in the buffer
// used longest ago, cold in the cache. The ring offers `hot_buffers` and
// doubles the offer whenever the load runs it dry while others lie unused;
// the rest wait in a stack, the last given back on top. A 1,024-buffer ring
// under a 500-connection echo load settles at 128 offered.
//
// A ring belongs to the shard whose driver it is registered with; create and
// destroy it on that shard's thread, before the shard's executor ends. Views
// and receivers that outlive the ring object keep its memory alive (it is
// unmapped when the last of them is gone), so the kernel never writes into
// freed memory.
#pragma once

#include <veloq/runtime/errors.hpp>
#include <veloq/runtime/task_state.hpp>
#include <veloq/runtime/wait_list.hpp>

#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string_view>
#include <utility>

struct io_uring_buf_ring;

namespace veloq::io {
class Driver;
struct Completion;
}

namespace veloq::buffers {

struct ProvidedBufferRingConfig {
  std::uint16_t group_id = 0;       // the buffer group id (bgid) receives select from; unique per ring
  unsigned entries = 64;            // buffers in the ring; a power of two, at most 32768
  std::uint32_t buffer_bytes = 4096;
  // How many buffers the kernel is offered at first (0: all of them). The
  // kernel takes buffers in ring order, so a ring that offered all its
  // buffers would cycle through every one of them, each cold in the cache by
  // its turn; offered few, it keeps reusing the ones just given back. The
  // offer doubles, up to `entries`, each time a receive finds none offered
  // while others lie unused (counted in enobufs_events()); it never shrinks.
  unsigned hot_buffers = 64;
};

namespace internal {

class ProvidedRingCore;

// Gives buffer `id` back to the kernel, on the ring's home thread (over the
// mesh when called from another shard).
[[gnu::hot]] void give_back_provided(ProvidedRingCore* core, std::uint16_t id) noexcept;

// A receiver waiting for buffers to come back, without a task: when a buffer
// is given back to a ring with hooks registered, each is unlinked and called once.
struct RefillHook {
  void (*on_refill)(RefillHook* self) noexcept = nullptr;
  RefillHook* prev = nullptr;
  RefillHook* next = nullptr;
  ProvidedRingCore* ring = nullptr;  // set while linked
  bool linked() const noexcept { return ring != nullptr; }
};

// A multishot receive armed in the kernel on the ring's group. The ring
// cancels each one before it unregisters: an armed receive names only the
// group id, so it would otherwise go on selecting buffers from a later ring
// registered under the same id and report them as this ring's.
struct ArmedReceive {
  io::Completion* target = nullptr;  // the receive's completion (its SQE user_data)
  ArmedReceive* prev = nullptr;
  ArmedReceive* next = nullptr;
  ProvidedRingCore* ring = nullptr;  // set while tracked
};

// The ring's list of its RefillHooks or ArmedReceives, linked through the
// nodes' own prev, next and ring fields (ring is set while listed).
template <typename Node>
struct RingMembers {
  Node* head = nullptr;
  Node* tail = nullptr;
  std::size_t size = 0;
  void add(Node& n, ProvidedRingCore* ring) noexcept {
    if (n.ring != nullptr) return;
    n.ring = ring;
    n.prev = tail;
    n.next = nullptr;
    (tail ? tail->next : head) = &n;
    tail = &n;
    ++size;
  }
  void remove(Node& n, const ProvidedRingCore* ring) noexcept {
    if (n.ring != ring) return;
    (n.prev ? n.prev->next : head) = n.next;
    (n.next ? n.next->prev : tail) = n.prev;
    n.prev = n.next = nullptr;
    n.ring = nullptr;
    --size;
  }
};

// The ring itself, shared by the ring object, its views and its receivers'
// operation records (which may outlive the object while the kernel finishes
// with them). Single-threaded: only its home shard's thread touches it.
class ProvidedRingCore {
 public:
  ProvidedRingCore(io::Driver& driver, unsigned shard_id, const ProvidedBufferRingConfig& config);
  ProvidedRingCore(const ProvidedRingCore&) = delete;
  ProvidedRingCore& operator=(const ProvidedRingCore&) = delete;

  void add_ref() noexcept { ++refs_; }
  void release_ref() noexcept {
    if (--refs_ == 0) destroy();
  }
  // The ring object is gone: cancels the armed receives, then tells the
  // kernel to stop selecting from it.
  void unregister() noexcept;

  bool on_home_thread() const noexcept { return &veloq::internal::this_thread_tag == owner_tag_; }
  bool registered() const noexcept { return registered_; }
  io::Driver& driver() const noexcept { return *driver_; }
  unsigned shard() const noexcept { return shard_; }
  std::uint16_t group_id() const noexcept { return group_id_; }
  unsigned entries() const noexcept { return entries_; }
  std::uint32_t buffer_bytes() const noexcept { return buffer_bytes_; }
  // Buffers nobody holds: offered to the kernel or kept back in the spare stack.
  unsigned available() const noexcept { return offered_ + static_cast<unsigned>(spare_count_); }
  unsigned offer_limit() const noexcept { return offer_limit_; }
  std::uint64_t enobufs_events() const noexcept { return enobufs_; }
  // A receive found no buffer: when buffers lay unused, the offer doubles.
  void note_enobufs() noexcept;
  std::byte* buffer(std::uint16_t id) const noexcept {
    return buffers_ + static_cast<std::size_t>(id) * buffer_bytes_;
  }

  // The kernel filled buffer `id`: it is ours until given back.
  [[gnu::hot]] void mark_taken(std::uint16_t id) noexcept;
  // Buffer `id` is free again: offered to the kernel at once while fewer than
  // the limit are, else kept on top of the spare stack. Wakes whoever waits
  // for buffers.
  [[gnu::hot]] void provide(std::uint16_t id) noexcept;

  void link(RefillHook& hook) noexcept;
  void unlink(RefillHook& hook) noexcept;
  veloq::internal::WaitList& task_waiters() noexcept { return task_waiters_; }

  // A receive was armed on the group / posted its final CQE.
  void track(ArmedReceive& recv) noexcept;
  void untrack(ArmedReceive& recv) noexcept;

 private:
  ~ProvidedRingCore() = default;
  void destroy() noexcept;
  // Puts buffer `id` in the kernel's ring at `offset` past the tail (advance separately).
  void offer(std::uint16_t id, int offset) noexcept;
  // Offers spares, most recently given back first, until the limit is reached.
  void offer_spares() noexcept;

  io::Driver* driver_;
  unsigned shard_;
  const char* owner_tag_;  // the home thread's this_thread_tag
  io_uring_buf_ring* ring_ = nullptr;
  std::byte* buffers_ = nullptr;
  void* mapping_ = nullptr;
  std::size_t mapping_bytes_ = 0;
  unsigned entries_;
  std::uint32_t buffer_bytes_;
  std::uint16_t group_id_;
  unsigned offered_ = 0;      // in the kernel's ring, not yet taken
  unsigned offer_limit_;      // at most this many offered
  // Free buffers not offered, the last given back on top; room for every
  // buffer, allocated once.
  std::unique_ptr<std::uint16_t[]> spares_;
  std::size_t spare_count_ = 0;
  std::uint64_t taken_ = 0;                      // buffers the kernel filled, ever
  std::uint64_t taken_at_growth_ = UINT64_MAX;   // taken_ when the offer last grew
  std::uint64_t enobufs_ = 0;
  unsigned refs_ = 1;
  bool registered_ = false;
  RingMembers<RefillHook> hooks_;
  RingMembers<ArmedReceive> armed_;
  veloq::internal::WaitList task_waiters_{"provided-buffer ring"};
};

}  // namespace internal

// The bytes one receive put into a provided buffer. Move-only; dropping it
// gives the buffer back to the kernel (from another shard: over the mesh).
class ProvidedBuffer {
 public:
  ProvidedBuffer() noexcept = default;
  ProvidedBuffer(ProvidedBuffer&& other) noexcept
      : core_(std::exchange(other.core_, nullptr)), data_(other.data_), size_(other.size_), id_(other.id_) {}
  ProvidedBuffer& operator=(ProvidedBuffer&& other) noexcept {
    if (this != &other) {
      reset();
      core_ = std::exchange(other.core_, nullptr);
      data_ = other.data_;
      size_ = other.size_;
      id_ = other.id_;
    }
    return *this;
  }
  ProvidedBuffer(const ProvidedBuffer&) = delete;
  ProvidedBuffer& operator=(const ProvidedBuffer&) = delete;
  ~ProvidedBuffer() { reset(); }

  explicit operator bool() const noexcept { return core_ != nullptr; }
  std::byte* data() const noexcept { return data_; }
  // Bytes received (not the buffer's capacity).
  std::size_t size() const noexcept { return size_; }
  std::span<std::byte> bytes() const noexcept { return {data_, size_}; }
  std::string_view chars() const noexcept { return {reinterpret_cast<const char*>(data_), size_}; }
  // The buffer id within its ring.
  std::uint16_t id() const noexcept { return id_; }

  void reset() noexcept {
    if (core_ != nullptr) internal::give_back_provided(std::exchange(core_, nullptr), id_);
  }

 private:
  friend class ProvidedBufferRing;
  friend class MultishotRecv;
  // Adopts buffer `id`, already marked taken, and a reference to `core`.
  ProvidedBuffer(internal::ProvidedRingCore* core, std::uint16_t id, std::uint32_t size) noexcept
      : core_(core), data_(core->buffer(id)), size_(size), id_(id) {}

  internal::ProvidedRingCore* core_ = nullptr;
  std::byte* data_ = nullptr;
  std::uint32_t size_ = 0;
  std::uint16_t id_ = 0;
};

class ProvidedBufferRing {
 public:
  // Maps the ring and its buffers, registers them with `driver`'s ring under
  // `config.group_id` and provides every buffer. Call on the thread of shard
  // `shard_id`, which owns `driver`. Throws std::invalid_argument for a bad
  // configuration and std::system_error when the kernel refuses (EEXIST: the
  // group id is taken; EINVAL: a kernel older than 5.19).
  ProvidedBufferRing(io::Driver& driver, unsigned shard_id, const ProvidedBufferRingConfig& config = {});
  ProvidedBufferRing(const ProvidedBufferRing&) = delete;
  ProvidedBufferRing& operator=(const ProvidedBufferRing&) = delete;
  ~ProvidedBufferRing();

  std::uint16_t group_id() const noexcept { return core_->group_id(); }
  unsigned entries() const noexcept { return core_->entries(); }
  std::uint32_t buffer_bytes() const noexcept { return core_->buffer_bytes(); }
  // Buffers not held by a view or a queue.
  unsigned available() const noexcept { return core_->available(); }
  // How many of them the kernel may be offered at once now (see
  // ProvidedBufferRingConfig::hot_buffers).
  unsigned offer_limit() const noexcept { return core_->offer_limit(); }

  // The buffer a completion names. `result` is the CQE's res (the byte
  // count); returns an empty view when `cqe_flags` carries no buffer
  // (IORING_CQE_F_BUFFER unset, e.g. an error completion).
  ProvidedBuffer take(int result, std::uint32_t cqe_flags) noexcept;

  // Receivers call this for each -ENOBUFS completion.
  void note_enobufs() noexcept { core_->note_enobufs(); }
  std::uint64_t enobufs_events() const noexcept { return core_->enobufs_events(); }

  // Holds a reference on the core: the ring object may go, and the last
  // buffer with it, between the wake-up and the resume.
  class [[nodiscard("co_await ring.buffers_returned()")]] BuffersReturned {
   public:
    explicit BuffersReturned(internal::ProvidedRingCore& core) noexcept : core_(core) { core_.add_ref(); }
    BuffersReturned(const BuffersReturned&) = delete;
    BuffersReturned& operator=(const BuffersReturned&) = delete;
    ~BuffersReturned() {
      waiter_.unlink();  // before the core may go
      core_.release_ref();
    }
    bool await_ready() const noexcept { return core_.available() > 0 || !core_.registered(); }
    void await_suspend(std::coroutine_handle<> h) noexcept;
    // Throws ClosedError when the ring was destroyed instead.
    void await_resume() const {
      waiter_.throw_if_interrupted();
      if (!core_.registered())
        throw ClosedError("veloq: the provided-buffer ring was destroyed while a receiver waited for buffers");
    }

   private:
    internal::ProvidedRingCore& core_;
    veloq::internal::Waiter waiter_;
  };
  // Resumes once at least one buffer is available to the kernel (at once if
  // one already is): a receiver that hit ENOBUFS awaits this, then re-arms.
  // A receiver may await it only on the ring's own shard.
  BuffersReturned buffers_returned() noexcept { return BuffersReturned(*core_); }

  internal::ProvidedRingCore& core() noexcept { return *core_; }

 private:
  internal::ProvidedRingCore* core_;
};

}  // namespace veloq::buffers
