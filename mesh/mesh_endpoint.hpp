// MeshEndpoint: one shard's side of the mesh. It stages outbound messages per
// destination and pushes them in batches (when a batch fills, or at the end of
// the loop turn), so a ring's indices and the receiver's pending word are
// touched once per batch rather than once per message. A full ring is
// back-pressure: messages wait in the staging buffer, in order, and are never
// dropped; senders that want to bound what they have in flight await
// `room_for(shard)` (which throws ClosedError if the endpoint is destroyed
// while they wait). Inbound, it finds the peers that have sent through the
// shard's pending bits (no scan over every ring) and runs their messages in
// batches within a budget, so mesh work and local tasks take turns; peers
// are served round robin, so none waits behind a busier one.
//
// Waking a parked receiver: with WakeMethod::msg_ring the endpoint prepares an
// IORING_OP_MSG_RING SQE on its own shard's ring (see ShardSignal for why no
// wake-up is lost). It does so only inside a loop turn (between TurnScope's
// start and end_turn(), which the executor calls right before the turn's
// io_uring_enter), because only there is an enter known to follow before the
// shard could block; elsewhere (shutdown, block_on's epilogue) it writes the
// receiver's eventfd. The receiver's ring must stay open until no peer runs
// turns any more: Runtime closes rings only after every shard has left its
// loop. The CQE posted into the receiver names io::Driver::ignored() and
// carries IORING_CQE_F_MORE (IORING_MSG_RING_FLAGS_PASS), so the receiver's
// Driver, which never submitted it, does not count it as the end of an
// operation.
#pragma once

#include <veloq/io/driver.hpp>
#include <veloq/mesh/mesh.hpp>
#include <veloq/mesh/mesh_message.hpp>
#include <veloq/runtime/wait_list.hpp>

#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

namespace veloq::mesh {

struct MeshConfig {
  std::size_t ring_capacity = 4096;  // messages per ordered pair of shards
  unsigned batch = 64;                // staged messages that trigger an early push
  std::size_t room_limit = 8192;      // staged messages per destination before room_for() waits
  // How this shard wakes parked peers. msg_ring needs kernel 6.3 or later
  // (IORING_MSG_RING_FLAGS_PASS); a kernel that refuses it gets the eventfd.
  WakeMethod wake = WakeMethod::eventfd;
};

struct MeshStats {
  std::uint64_t sent = 0;
  std::uint64_t received = 0;
  std::uint64_t batches_pushed = 0;
  std::uint64_t wakeups_sent = 0;        // parked peers woken, by either method
  std::uint64_t wakeups_msg_ring = 0;    // ... of which with IORING_OP_MSG_RING
  std::uint64_t ring_full = 0;
};

class MeshEndpoint {
 public:
  // `driver` is the shard's ring, used to wake peers with MSG_RING when
  // config.wake asks for it (nullptr: eventfd only).
  MeshEndpoint(Mesh& mesh, unsigned self, const MeshConfig& config, io::Driver* driver = nullptr);
  MeshEndpoint(const MeshEndpoint&) = delete;
  MeshEndpoint& operator=(const MeshEndpoint&) = delete;
  ~MeshEndpoint();

  unsigned self() const noexcept { return self_; }
  unsigned shard_count() const noexcept { return mesh_.shard_count(); }

  // Stages `m` for shard `to` (which must not be this shard). Only growing
  // the staging buffer can fail (std::bad_alloc), and then nothing is staged.
  void send(unsigned to, const MeshMessage& m);

  // Runs up to `budget` inbound messages; returns how many ran. Inline, the
  // idle turn's test (nothing sent to us, nothing left over from a previous
  // turn) that every loop turn makes.
  unsigned drain_inbound(unsigned budget) {
    if (!inbound_waiting() && !has_inbound_backlog()) return 0;
    return drain_pending(budget);
  }
  // While a handler runs: the shard that sent its message (a reply's address
  // need not travel in the message).
  unsigned delivering_from() const noexcept { return delivering_from_; }
  // Pushes every staged batch that fits and wakes receivers that are parked.
  // Inline, the test for nothing staged that every loop turn makes twice.
  void flush_outbound() {
    if (has_staged()) flush_dirty();
  }

  // Cheap checks a busy loop makes between batches of ready tasks: something
  // is staged to send, or a peer has (probably) sent something.
  bool has_staged() const noexcept { return !dirty_.empty(); }
  bool inbound_waiting() const noexcept { return own_signal_->maybe_pending(); }
  // True while inbound messages are known to be waiting (budget ran out).
  bool has_inbound_backlog() const noexcept {
    for (std::uint64_t w : backlog_)
      if (w != 0) return true;
    return false;
  }
  std::size_t staged_for(unsigned to) const noexcept { return outboxes_[to].staged(); }

  // Park protocol (see ShardSignal): false means "do not sleep, work arrived".
  bool try_park() noexcept;
  void unpark() noexcept { own_signal_->clear_parked(); }
  bool stop_requested() const noexcept { return own_signal_->stop_requested(); }
  int wake_fd() const noexcept { return own_signal_->wake_fd(); }

  // The method this endpoint wakes peers with now: msg_ring only if asked
  // for and the kernel has not refused it.
  WakeMethod wake_method() const noexcept { return msg_ring_ ? WakeMethod::msg_ring : WakeMethod::eventfd; }
  // A loop turn: from construction to end_turn() (or, if the turn throws,
  // the destructor) peers may be woken with MSG_RING SQEs.
  class TurnScope {
   public:
    explicit TurnScope(MeshEndpoint& endpoint) noexcept : endpoint_(endpoint) { endpoint.in_turn_ = endpoint.msg_ring_; }
    TurnScope(const TurnScope&) = delete;
    TurnScope& operator=(const TurnScope&) = delete;
    ~TurnScope() {
      if (endpoint_.in_turn_) endpoint_.leave_turn_early();
    }

   private:
    MeshEndpoint& endpoint_;
  };
  // Called before the turn's io_uring_enter, which must then submit every
  // MSG_RING wake-up prepared in the turn (true if there are any); later
  // wake-ups use the eventfd.
  bool end_turn() noexcept {
    in_turn_ = false;
    return std::exchange(msg_ring_unsubmitted_, false);
  }

  class [[nodiscard("co_await room_for(shard)")]] RoomAwaiter {
   public:
    RoomAwaiter(MeshEndpoint& endpoint, unsigned to) noexcept : endpoint_(endpoint), to_(to) {}
    bool await_ready() const noexcept;
    void await_suspend(std::coroutine_handle<> h) noexcept;
    void await_resume() const { waiter_.throw_if_interrupted(); }

   private:
    MeshEndpoint& endpoint_;
    unsigned to_;
    internal::Waiter waiter_;
  };
  // Resumes once fewer than `room_limit` messages are staged for `to`.
  // Throws std::out_of_range for a shard the mesh does not have.
  RoomAwaiter room_for(unsigned to);

  // Shutdown, once no shard runs tasks: hands every inbound and then every
  // staged message its discard delivery. From the first of these calls on,
  // send() and flush_outbound() push nothing more into the rings, and what
  // discarded messages send while they are destroyed stays staged.
  void discard_inbound() noexcept;
  void discard_staged() noexcept;
  // Shutdown, between rounds of discard_inbound() on every shard (the runtime
  // separates them with a barrier): pushes what fits of every outbox into
  // its ring, waking nobody, so that staged messages are discarded on the
  // shard they are addressed to (a buffer going home is put back there)
  // rather than on this one. True if anything was staged.
  bool hand_over_staged() noexcept;

  const MeshStats& stats() const noexcept { return stats_; }

 private:
  struct Outbox {
    std::vector<MeshMessage> messages;
    std::size_t head = 0;  // messages[head..] are still staged
    bool dirty = false;    // listed in dirty_
    internal::WaitList room_waiters{"mesh endpoint"};
    std::size_t staged() const noexcept { return messages.size() - head; }
    // The first `n` staged messages went into the ring. The buffer starts
    // over once empty, and drops its pushed prefix once that is most of it.
    void consume(std::size_t n) noexcept {
      head += n;
      if (staged() == 0) {
        messages.clear();
        head = 0;
      } else if (head >= 4096 && head * 2 >= messages.size()) {
        messages.erase(messages.begin(), messages.begin() + static_cast<std::ptrdiff_t>(head));
        head = 0;
      }
    }
  };

  // drain_inbound() and flush_outbound() once there is something to do.
  [[gnu::hot]] unsigned drain_pending(unsigned budget);
  [[gnu::hot]] void flush_dirty();

  // Pushes what fits of `to`'s staging into its ring; true if all of it went.
  bool push_staged(unsigned to) noexcept;
  void make_room_visible(unsigned from) noexcept;
  // Wakes parked shard `to` whose wake-up this shard claimed.
  void wake(unsigned to) noexcept;
  void leave_turn_early() noexcept;
  void msg_ring_failed(unsigned to, int error) noexcept;

  // The completion of a MSG_RING wake-up on this shard's own ring; one per peer.
  struct WakeSent : io::Completion {
    MeshEndpoint* owner = nullptr;
    unsigned to = 0;
  };

  Mesh& mesh_;
  unsigned self_;
  ShardSignal* own_signal_;
  MeshConfig config_;
  std::vector<Outbox> outboxes_;
  std::vector<unsigned> dirty_;
  std::vector<std::uint64_t> backlog_;  // peers whose inbound ring we left non-empty
  unsigned next_peer_ = 0;              // where the next drain starts serving peers
  MeshStats stats_;
  io::Driver* driver_;
  unsigned delivering_from_ = 0;
  bool msg_ring_ = false;              // wake peers with MSG_RING (asked for, not refused)
  bool in_turn_ = false;               // inside a TurnScope, before end_turn()
  bool msg_ring_unsubmitted_ = false;  // a MSG_RING wake-up was prepared in this turn
  bool discarding_ = false;            // shutdown: stage, never push
  std::vector<WakeSent> wake_sent_;    // [peer], only with msg_ring_
};

}  // namespace veloq::mesh
