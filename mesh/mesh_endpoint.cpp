#include <veloq/mesh/mesh_endpoint.hpp>
#include <veloq/runtime/local_executor.hpp>
#include <veloq/runtime/log.hpp>

#include <atomic>
#include <bit>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <exception>
#include <stdexcept>
#include <utility>

namespace veloq::mesh {

namespace {

// Says once per process why shards wake one another with the eventfd although
// MSG_RING was asked for.
void log_msg_ring_refused(const char* why) noexcept {
  static std::atomic<bool> logged{false};
  if (!logged.exchange(true, std::memory_order_relaxed)) {
    try {
      log().debug("IORING_OP_MSG_RING wake-ups unavailable ({}); waking parked shards with their eventfd", why);
    } catch (...) {
    }
  }
}

bool kernel_has_msg_ring(io::Driver& driver) {
  io_uring_probe* probe = io_uring_get_probe_ring(&driver.ring());
  if (probe == nullptr) return false;
  bool supported = io_uring_opcode_supported(probe, IORING_OP_MSG_RING) != 0;
  io_uring_free_probe(probe);
  return supported;
}

// Runs one inbound message. A handler that throws (it should not: the
// runtime's own catch what the code they run throws) loses only its own work;
// the rest of the batch still runs and the shard keeps going.
void run_message(MeshMessage& m, unsigned from) noexcept {
  try {
    m.handler(m, Delivery::run);
  } catch (const std::exception& e) {
    log().error("a mesh message from shard {} failed: {}", from, e.what());
  } catch (...) {
    log().error("a mesh message from shard {} failed with an exception that is not a std::exception", from);
  }
}

}  // namespace

MeshEndpoint::MeshEndpoint(Mesh& mesh, unsigned self, const MeshConfig& config, io::Driver* driver)
    : mesh_(mesh),
      self_(self),
      own_signal_(&mesh.signal(self)),
      config_(config),
      outboxes_(mesh.shard_count()),
      backlog_(own_signal_->words(), 0),
      driver_(driver) {
  // send() pushes every `batch` messages (a zero would be divided by), and
  // room_for() waits until fewer than `room_limit` are staged.
  if (config.batch == 0) throw std::invalid_argument("veloq: MeshConfig::batch must be at least 1");
  if (config.room_limit == 0) throw std::invalid_argument("veloq: MeshConfig::room_limit must be at least 1");
  dirty_.reserve(mesh.shard_count());
  if (driver_ != nullptr && config.wake == WakeMethod::msg_ring) {
    if (kernel_has_msg_ring(*driver_)) {
      msg_ring_ = true;
      wake_sent_.resize(mesh.shard_count());
      for (unsigned to = 0; to < mesh.shard_count(); ++to) {
        wake_sent_[to].owner = this;
        wake_sent_[to].to = to;
        wake_sent_[to].on_complete = [](io::Completion* c, int result, std::uint32_t) noexcept {
          if (result < 0) {
            auto* sent = static_cast<WakeSent*>(c);
            sent->owner->msg_ring_failed(sent->to, result);
          }
        };
      }
      own_signal_->publish_ring_fd(driver_->ring_fd());
    } else {
      log_msg_ring_refused("the kernel does not know the opcode");
    }
  }
}

MeshEndpoint::~MeshEndpoint() {
  if (driver_ != nullptr && config_.wake == WakeMethod::msg_ring) own_signal_->publish_ring_fd(-1);
}

void MeshEndpoint::wake(unsigned to) noexcept {
  ++stats_.wakeups_sent;
  ShardSignal& peer = mesh_.signal(to);
  if (in_turn_) {
    int fd = peer.ring_fd();
    io_uring_sqe* sqe = nullptr;
    if (fd >= 0) {
      try {
        sqe = driver_->prepare(&wake_sent_[to]);
      } catch (...) {  // the submission queue stayed full: fall through to the eventfd
      }
    }
    if (sqe != nullptr) {
      // Posts {Driver::ignored(), res 0, flags F_MORE} into the peer's ring:
      // a CQE that only ends its wait. Its completion does nothing, and F_MORE
      // keeps the peer's Driver, which never submitted the operation, from
      // counting it as one that ended.
      io_uring_prep_msg_ring(sqe, fd, 0, reinterpret_cast<std::uintptr_t>(io::Driver::ignored()),
                             IORING_MSG_RING_FLAGS_PASS);
      sqe->file_index = IORING_CQE_F_MORE;
      msg_ring_unsubmitted_ = true;
      ++stats_.wakeups_msg_ring;
      return;
    }
  }
  peer.wake();
}

void MeshEndpoint::msg_ring_failed(unsigned to, int error) noexcept {
  // This shard claimed the peer's wake-up and the MSG_RING did not deliver
  // it: the eventfd does.
  mesh_.signal(to).wake();
  if (error == -EOVERFLOW || error == -EAGAIN) return;  // a full or busy target: try again next time
  if (msg_ring_) {
    msg_ring_ = false;
    in_turn_ = false;
    log_msg_ring_refused(std::strerror(-error));
  }
}

void MeshEndpoint::leave_turn_early() noexcept {
  // The turn ended without reaching its io_uring_enter (an exception): send
  // the MSG_RING wake-ups it prepared now, before this shard might block.
  in_turn_ = false;
  if (std::exchange(msg_ring_unsubmitted_, false)) {
    try {
      driver_->enter(false);
    } catch (...) {
    }
  }
}

void MeshEndpoint::send(unsigned to, const MeshMessage& m) {
  Outbox& box = outboxes_[to];
  box.messages.push_back(m);
  ++stats_.sent;
  if (!box.dirty) {
    box.dirty = true;
    dirty_.push_back(to);
  }
  // One push attempt per batch: while the ring is full, retrying on every
  // message would hammer the consumer's cache lines for nothing. Once the
  // shutdown's discarding has begun, nothing is pushed (see discard_staged).
  if (box.staged() % config_.batch == 0 && !discarding_) push_staged(to);
}

bool MeshEndpoint::push_staged(unsigned to) noexcept {
  Outbox& box = outboxes_[to];
  SpscRing& ring = mesh_.ring(self_, to);
  std::size_t pushed = ring.push(box.messages.data() + box.head, box.staged());
  if (pushed < box.staged()) {
    // Full ring. Ask the consumer to wake us when it makes room, then look
    // once more: it may have drained between our push and our flag. Both
    // sides use a read-modify-write on the flag (see make_room_visible()):
    // if the consumer's exchange comes after ours it sees `true` and wakes
    // us; if it comes before, ours reads the value it released, so the room
    // it made (its release of the read index before that exchange) is
    // visible to the push below. The acquire half of our exchange keeps that
    // push from moving above it.
    ++stats_.ring_full;
    ring.producer_waiting_for_room.exchange(true, std::memory_order_acq_rel);
    pushed += ring.push(box.messages.data() + box.head + pushed, box.staged() - pushed);
  }
  box.consume(pushed);
  if (pushed > 0) {
    ++stats_.batches_pushed;
    ShardSignal& peer = mesh_.signal(to);
    peer.mark_pending(self_);
    if (peer.claim_wake()) wake(to);
  }
  if (!box.room_waiters.empty() && box.staged() < config_.room_limit) box.room_waiters.wake_all();
  return box.staged() == 0;
}

void MeshEndpoint::flush_dirty() {
  if (discarding_) return;
  std::size_t keep = 0;
  for (std::size_t i = 0; i < dirty_.size(); ++i) {
    unsigned to = dirty_[i];
    if (push_staged(to))
      outboxes_[to].dirty = false;
    else
      dirty_[keep++] = to;
  }
  dirty_.resize(keep);
}

void MeshEndpoint::make_room_visible(unsigned from) noexcept {
  SpscRing& ring = mesh_.ring(from, self_);
  // A read-modify-write, not a load: its release half orders the pop that
  // made room before it (see push_staged()).
  if (ring.producer_waiting_for_room.exchange(false, std::memory_order_acq_rel)) {
    // Tell the producer as if we had sent it something: it wakes, finds no
    // message from us, and pushes its staged batch again.
    ShardSignal& producer = mesh_.signal(from);
    producer.mark_pending(self_);
    if (producer.claim_wake()) wake(from);
  }
}

unsigned MeshEndpoint::drain_pending(unsigned budget) {
  ShardSignal& sig = *own_signal_;
  const unsigned words = sig.words();
  for (unsigned w = 0; w < words; ++w)
    if (std::uint64_t sent = sig.take_pending(w)) backlog_[w] |= sent;
  // Peers are served in shard order from the one after the last served, so a
  // budget that runs out every turn still reaches each of them in turn: one
  // pass over the words from next_peer_'s, then the start of its own word.
  unsigned ran = 0;
  unsigned w = next_peer_ / ShardSignal::bits_per_word;
  const unsigned first_bit = next_peer_ % ShardSignal::bits_per_word;
  const std::uint64_t from_next = ~std::uint64_t{0} << first_bit;
  const unsigned passes = words + (first_bit != 0 ? 1 : 0);
  for (unsigned step = 0; step < passes && ran < budget; ++step) {
    std::uint64_t peers = backlog_[w] & (step == 0 ? from_next : step == words ? ~from_next : ~std::uint64_t{0});
    while (peers != 0 && ran < budget) {
      unsigned bit = static_cast<unsigned>(std::countr_zero(peers));
      unsigned from = w * ShardSignal::bits_per_word + bit;
      peers &= peers - 1;
      backlog_[w] &= ~(std::uint64_t{1} << bit);
      SpscRing& ring = mesh_.ring(from, self_);
      delivering_from_ = from;
      MeshMessage batch[64];  // here, not above: an idle turn should not initialize 64 messages
      std::size_t got = 0;
      do {
        std::size_t want = budget - ran < 64 ? budget - ran : 64;
        got = ring.pop(batch, want);
        for (std::size_t i = 0; i < got; ++i) run_message(batch[i], from);
        ran += static_cast<unsigned>(got);
        stats_.received += got;
        if (got > 0) make_room_visible(from);
      } while (got == 64 && ran < budget);
      if (ran >= budget && !ring.empty_for_consumer()) backlog_[w] |= std::uint64_t{1} << bit;
      next_peer_ = from + 1 == shard_count() ? 0 : from + 1;
    }
    w = w + 1 == words ? 0 : w + 1;
  }
  return ran;
}

bool MeshEndpoint::try_park() noexcept {
  ShardSignal& sig = *own_signal_;
  sig.publish_parked();
  if (has_inbound_backlog() || sig.any_pending() || sig.stop_requested()) {
    sig.clear_parked();
    return false;
  }
  return true;
}

void MeshEndpoint::discard_staged() noexcept {
  discarding_ = true;
  // A discarded message may stage more as its contents are destroyed (a
  // buffer going home): each pass takes what is staged out of the outboxes
  // first, and passes repeat until nothing new was staged.
  for (bool again = true; again;) {
    again = false;
    for (Outbox& box : outboxes_) {
      if (box.staged() == 0) continue;
      std::vector<MeshMessage> batch;
      batch.swap(box.messages);
      std::size_t head = std::exchange(box.head, 0);
      for (std::size_t i = head; i < batch.size(); ++i) batch[i].handler(batch[i], Delivery::discard);
      again = true;
    }
  }
  for (Outbox& box : outboxes_) {
    box.messages.clear();
    box.head = 0;
    box.dirty = false;
  }
  dirty_.clear();
}

bool MeshEndpoint::hand_over_staged() noexcept {
  bool any = false;
  for (unsigned to = 0; to < outboxes_.size(); ++to) {
    Outbox& box = outboxes_[to];
    if (box.staged() == 0) continue;
    any = true;
    box.consume(mesh_.ring(self_, to).push(box.messages.data() + box.head, box.staged()));
  }
  return any;
}

void MeshEndpoint::discard_inbound() noexcept {
  discarding_ = true;
  MeshMessage batch[64];
  for (unsigned from = 0; from < mesh_.shard_count(); ++from) {
    if (from == self_) continue;
    SpscRing& ring = mesh_.ring(from, self_);
    delivering_from_ = from;
    while (std::size_t got = ring.pop(batch, 64))
      for (std::size_t i = 0; i < got; ++i) batch[i].handler(batch[i], Delivery::discard);
  }
}

MeshEndpoint::RoomAwaiter MeshEndpoint::room_for(unsigned to) {
  check_shard("room_for", to, shard_count());
  return {*this, to};
}

bool MeshEndpoint::RoomAwaiter::await_ready() const noexcept {
  return endpoint_.staged_for(to_) < endpoint_.config_.room_limit;
}

void MeshEndpoint::RoomAwaiter::await_suspend(std::coroutine_handle<> h) noexcept {
  endpoint_.outboxes_[to_].room_waiters.push_back(waiter_, RuntimeContext::current().executor().current_task(), h);
}

}  // namespace veloq::mesh
