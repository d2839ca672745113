#include <veloq/buffers/home_route.hpp>
#include <veloq/buffers/provided_buffer_ring.hpp>
#include <veloq/io/driver.hpp>
#include <veloq/runtime/errors.hpp>
#include <veloq/runtime/local_executor.hpp>
#include <veloq/runtime/log.hpp>

#include <sys/mman.h>
#include <unistd.h>

#include <cassert>
#include <cerrno>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <string>
#include <system_error>

namespace veloq::buffers {

namespace internal {

ProvidedRingCore::ProvidedRingCore(io::Driver& driver, unsigned shard_id, const ProvidedBufferRingConfig& config)
    : driver_(&driver),
      shard_(shard_id),
      owner_tag_(&veloq::internal::this_thread_tag),
      entries_(config.entries),
      buffer_bytes_(config.buffer_bytes),
      group_id_(config.group_id),
      offer_limit_(config.hot_buffers == 0 || config.hot_buffers > config.entries ? config.entries
                                                                                  : config.hot_buffers) {
  if (entries_ == 0 || entries_ > 32768 || (entries_ & (entries_ - 1)) != 0)
    throw std::invalid_argument("veloq: ProvidedBufferRingConfig: entries (" + std::to_string(entries_) +
                                ") must be a power of two between 1 and 32768");
  if (buffer_bytes_ == 0) throw std::invalid_argument("veloq: ProvidedBufferRingConfig: buffer_bytes is 0");

  // One mapping: the ring's entries on their own page(s) (the kernel wants the
  // ring page-aligned), then the buffers.
  const auto page = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
  const std::size_t ring_bytes = (entries_ * sizeof(io_uring_buf) + page - 1) / page * page;
  mapping_bytes_ = ring_bytes + static_cast<std::size_t>(entries_) * buffer_bytes_;
  mapping_ = mmap(nullptr, mapping_bytes_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (mapping_ == MAP_FAILED)
    throw std::system_error(errno, std::generic_category(),
                            "veloq: mapping a provided-buffer ring of " + std::to_string(mapping_bytes_) + " bytes");
  ring_ = static_cast<io_uring_buf_ring*>(mapping_);
  buffers_ = static_cast<std::byte*>(mapping_) + ring_bytes;

  io_uring_buf_reg reg{};
  reg.ring_addr = reinterpret_cast<std::uintptr_t>(ring_);
  reg.ring_entries = entries_;
  reg.bgid = group_id_;
  if (int rc = io_uring_register_buf_ring(&driver_->ring(), &reg, 0); rc < 0) {
    munmap(mapping_, mapping_bytes_);
    throw std::system_error(-rc, std::generic_category(),
                            "veloq: registering provided-buffer ring group " + std::to_string(group_id_));
  }
  registered_ = true;

  io_uring_buf_ring_init(ring_);
  // The spares are stacked so that the lowest ids come off first: buffers
  // next to the offered ones, on the pages already touched.
  spares_ = std::make_unique<std::uint16_t[]>(entries_);
  for (unsigned id = entries_; id-- > 0;) spares_[spare_count_++] = static_cast<std::uint16_t>(id);
  offer_spares();
}

void ProvidedRingCore::offer(std::uint16_t id, int offset) noexcept {
  io_uring_buf_ring_add(ring_, buffer(id), buffer_bytes_, id, io_uring_buf_ring_mask(entries_), offset);
}

void ProvidedRingCore::offer_spares() noexcept {
  int added = 0;
  while (offered_ < offer_limit_ && spare_count_ > 0) {
    offer(spares_[--spare_count_], added++);
    ++offered_;
  }
  // Only the kernel moves the head and only we move the tail; the release
  // store in advance() publishes the entries before the new tail.
  if (added > 0) io_uring_buf_ring_advance(ring_, added);
}

void ProvidedRingCore::note_enobufs() noexcept {
  ++enobufs_;
  // The kernel may post a batch's ENOBUFS before the receives that took the
  // last buffers, so the count of buffers offered can still look healthy
  // here. One growth per run of ENOBUFS with no buffer taken in between:
  // the rest of the run is the same shortage.
  if (!registered_ || spare_count_ == 0 || offer_limit_ == entries_ || taken_ == taken_at_growth_) return;
  taken_at_growth_ = taken_;
  offer_limit_ = offer_limit_ * 2 < entries_ ? offer_limit_ * 2 : entries_;
  offer_spares();
}

void ProvidedRingCore::unregister() noexcept {
  if (!registered_) return;
  // Cancel SQEs reach the kernel now, not at the end of the turn: a receive
  // waiting on its socket is cancelled at submission, before the group goes.
  bool cancelling = false;
  for (ArmedReceive* recv = armed_.head; recv != nullptr; recv = recv->next) {
    try {
      io_uring_prep_cancel(driver_->prepare(), recv->target, 0);
      cancelling = true;
    } catch (...) {
      log().warn("provided-buffer ring group {}: no room to cancel an armed receive", group_id_);
    }
  }
  if (cancelling) driver_->enter(false);
  if (int rc = io_uring_unregister_buf_ring(&driver_->ring(), group_id_); rc < 0)
    log().warn("unregistering provided-buffer ring group {} failed: {}", group_id_, std::strerror(-rc));
  registered_ = false;
  offered_ = 0;
  spare_count_ = 0;
  // Receivers waiting for buffers learn that none will come.
  for (std::size_t n = hooks_.size; n > 0 && hooks_.head != nullptr; --n) {
    RefillHook* hook = hooks_.head;
    unlink(*hook);
    hook->on_refill(hook);
  }
  task_waiters_.wake_all();
}

void ProvidedRingCore::destroy() noexcept {
  assert(hooks_.size == 0 && task_waiters_.empty() && armed_.head == nullptr);
  munmap(mapping_, mapping_bytes_);
  delete this;
}

void ProvidedRingCore::mark_taken(std::uint16_t) noexcept {
  if (registered_) --offered_;  // a late CQE after unregister() zeroed it
  ++taken_;
  add_ref();  // held by the view (or the queue entry) until the buffer is given back
}

void ProvidedRingCore::provide(std::uint16_t id) noexcept {
  if (!registered_) return;
  if (offered_ < offer_limit_) {
    offer(id, 0);
    io_uring_buf_ring_advance(ring_, 1);  // see offer_spares
    ++offered_;
  } else {
    spares_[spare_count_++] = id;
  }
  // Hooks are called once each; one that re-links itself waits for the next
  // buffer, so the count bounds the loop.
  for (std::size_t n = hooks_.size; n > 0 && hooks_.head != nullptr && available() > 0; --n) {
    RefillHook* hook = hooks_.head;
    unlink(*hook);
    hook->on_refill(hook);
  }
  task_waiters_.wake_all();
}

void ProvidedRingCore::link(RefillHook& hook) noexcept { hooks_.add(hook, this); }
void ProvidedRingCore::unlink(RefillHook& hook) noexcept { hooks_.remove(hook, this); }
void ProvidedRingCore::track(ArmedReceive& recv) noexcept { armed_.add(recv, this); }
void ProvidedRingCore::untrack(ArmedReceive& recv) noexcept { armed_.remove(recv, this); }

namespace {

struct GiveBackNote {
  ProvidedRingCore* core;
  std::uint16_t id;
};

void arrive_home(mesh::MeshMessage& m, mesh::Delivery) {
  auto note = m.get<GiveBackNote>();
  // Discarded at shutdown on the sending shard: the ring is not ours to touch.
  if (!note.core->on_home_thread()) {
    log().debug("a provided buffer of shard {} was dropped at shutdown before it reached home", note.core->shard());
    return;
  }
  note.core->provide(note.id);
  note.core->release_ref();
}

}  // namespace

void give_back_provided(ProvidedRingCore* core, std::uint16_t id) noexcept {
  if (core->on_home_thread()) {
    core->provide(id);
    core->release_ref();
    return;
  }
  send_to_home_shard(core->shard(), mesh::MeshMessage::make(&arrive_home, GiveBackNote{core, id}),
                     "provided buffer");
}

}  // namespace internal

ProvidedBufferRing::ProvidedBufferRing(io::Driver& driver, unsigned shard_id, const ProvidedBufferRingConfig& config)
    : core_(new internal::ProvidedRingCore(driver, shard_id, config)) {}

ProvidedBufferRing::~ProvidedBufferRing() {
  assert(core_->on_home_thread() && "a ProvidedBufferRing is destroyed on its own shard");
  core_->unregister();
  core_->release_ref();
}

ProvidedBuffer ProvidedBufferRing::take(int result, std::uint32_t cqe_flags) noexcept {
  if (!(cqe_flags & IORING_CQE_F_BUFFER)) return {};
  auto id = static_cast<std::uint16_t>(cqe_flags >> IORING_CQE_BUFFER_SHIFT);
  core_->mark_taken(id);
  return ProvidedBuffer(core_, id, result > 0 ? static_cast<std::uint32_t>(result) : 0);
}

void ProvidedBufferRing::BuffersReturned::await_suspend(std::coroutine_handle<> h) noexcept {
  veloq::internal::TaskState* task = veloq::internal::running_task();
  task->resume_point = h;
  core_.task_waiters().push_back(waiter_, task, h);
}

}  // namespace veloq::buffers
