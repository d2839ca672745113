// ShardSignal: the words through which shards tell one another "I sent you
// something" and "I am asleep". These, the rings and the blocking-pool
// hand-off are the only memory two shard threads ever touch.
//
// Why no wake-up is lost. The consumer parks with
//     parked = true (seq_cst);  if (any pending bit) { parked = false; do not sleep }
// and a producer, after pushing into the ring, does
//     pending |= my_bit (seq_cst);  if (parked.exchange(false)) wake();
// All four are sequentially consistent, so they appear in one total order.
// If the consumer's `parked = true` comes first, the producer's later read of
// `parked` sees it and wakes the consumer. If the producer's `pending |= bit`
// comes first, the consumer's later read of `pending` sees the bit and it
// does not sleep. Either way the message is noticed.
//
// The exchange (claim_wake) decides who wakes: of every producer, blocking
// pool helper and stopper that finds the flag set, exactly one gets `true`
// and owes the consumer one wake-up; the others rely on it. A shard that is
// not parked is never woken with a syscall. How the winner wakes the shard
// does not matter to the argument, as long as the consumer's wait cannot
// miss it:
//  - eventfd (wake(), any thread): the write completes the eventfd read that
//    is always armed on the consumer's ring.
//  - IORING_OP_MSG_RING (WakeMethod::msg_ring, a peer shard inside its loop
//    turn; see MeshEndpoint::wake): the winner prepares an SQE on its own
//    ring that posts a CQE into the consumer's ring, and submits it in the
//    io_uring_enter that ends its turn, so it costs no syscall of its own.
//    The winner claimed after the consumer published `parked`, so the CQE
//    is posted after that too, and the consumer reaps nothing between
//    publishing `parked` and its wait: the CQE is either already in the
//    completion queue when the wait starts (it returns at once) or arrives
//    during the wait (and ends it). A CQE stays until it is reaped, so it
//    cannot be missed the way an unread flag could. The wake-up may leave
//    as late as the end of the winner's turn; nobody else wakes the
//    consumer meanwhile (the flag is claimed), which costs latency, never a
//    lost wake-up. If the kernel refuses the MSG_RING, the winner's own CQE
//    says so and its handler writes the eventfd instead: the wake-up it owed.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>

namespace veloq::mesh {

// How a shard wakes a parked peer shard (MeshConfig::wake). Wakers that are
// not shards (blocking pool helpers, Runtime::stop) always use the eventfd.
enum class WakeMethod : std::uint8_t {
  eventfd,   // write the peer's eventfd: one syscall by the sender, at once
  msg_ring,  // an IORING_OP_MSG_RING SQE in the sender's turn-ending io_uring_enter
};

class ShardSignal {
 public:
  static constexpr unsigned bits_per_word = 64;

  explicit ShardSignal(unsigned shard_count);
  ShardSignal(const ShardSignal&) = delete;
  ShardSignal& operator=(const ShardSignal&) = delete;
  ~ShardSignal();

  // Producer side.
  void mark_pending(unsigned from) noexcept {
    pending_[from / bits_per_word].word.fetch_or(std::uint64_t{1} << (from % bits_per_word), std::memory_order_seq_cst);
  }
  // True if the caller must wake the shard (it was parked and nobody woke it yet).
  bool claim_wake() noexcept {
    return parked_.load(std::memory_order_seq_cst) && parked_.exchange(false, std::memory_order_seq_cst);
  }
  // Writes the shard's eventfd so its sleeping io_uring wait ends.
  void wake() noexcept;

  // Consumer side.
  std::uint64_t take_pending(unsigned word) noexcept {
    if (pending_[word].word.load(std::memory_order_relaxed) == 0) return 0;
    return pending_[word].word.exchange(0, std::memory_order_seq_cst);
  }
  bool any_pending() const noexcept {
    for (unsigned w = 0; w < words_; ++w)
      if (pending_[w].word.load(std::memory_order_seq_cst) != 0) return true;
    return false;
  }
  // A relaxed look at the pending words, for a busy loop deciding whether to
  // stop running tasks early; the park protocol uses any_pending().
  // The first word (peers 0-63, every peer of a runtime of up to 64 shards)
  // is read before the loop: the test every loop turn makes.
  bool maybe_pending() const noexcept {
    if (pending_[0].word.load(std::memory_order_relaxed) != 0) return true;
    for (unsigned w = 1; w < words_; ++w)
      if (pending_[w].word.load(std::memory_order_relaxed) != 0) return true;
    return false;
  }
  // Asks the shard's loop to stop, waking it if it sleeps (any thread).
  void request_stop() noexcept {
    stop_.store(true, std::memory_order_seq_cst);
    if (claim_wake()) wake();
  }
  bool stop_requested() const noexcept { return stop_.load(std::memory_order_seq_cst); }
  // Consumes a stop request (a standalone executor's loop, once it returned).
  void clear_stop() noexcept { stop_.store(false, std::memory_order_seq_cst); }

  // The shard's io_uring fd while peers may wake it with IORING_OP_MSG_RING;
  // -1 (the default, and again before the ring closes) means eventfd only.
  void publish_ring_fd(int fd) noexcept { ring_fd_.store(fd, std::memory_order_release); }
  int ring_fd() const noexcept { return ring_fd_.load(std::memory_order_acquire); }

  void publish_parked() noexcept { parked_.store(true, std::memory_order_seq_cst); }
  void clear_parked() noexcept { parked_.store(false, std::memory_order_relaxed); }
  unsigned words() const noexcept { return words_; }
  int wake_fd() const noexcept { return wake_fd_; }

 private:
  struct alignas(128) PaddedWord {
    std::atomic<std::uint64_t> word{0};
  };
  alignas(128) std::atomic<bool> parked_{false};
  std::atomic<bool> stop_{false};
  std::atomic<int> ring_fd_{-1};
  unsigned words_;
  int wake_fd_;
  std::unique_ptr<PaddedWord[]> pending_;
};

}  // namespace veloq::mesh
