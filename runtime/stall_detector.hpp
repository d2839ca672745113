// Stall detector: a watchdog thread per runtime that notices a shard which has
// not come back to its loop for too long, and says where it is stuck.
//
// Each shard publishes a ShardHeartbeat: a number for its current loop turn,
// odd while it sleeps in the kernel. The watchdog reads those words every
// tick and times each turn on its own clock from the tick that first saw it,
// so no clock reading is ever compared across CPUs (whose TSCs need not
// agree); a turn is noticed at most one tick late, or four while the shards'
// turns are all short (the ticks then space out). It never locks anything
// the shard touches.
// When a turn has lasted longer than `threshold`, the watchdog sends the
// shard thread a real-time signal whose handler records a backtrace into the
// heartbeat's preallocated buffer, and logs a warning with the shard id, the
// stall length and the symbolized frames (names need the executable linked
// with -rdynamic). While the same stall continues, the next report waits for twice the
// previous threshold, and one shard is reported at most once per
// `min_report_interval`.
//
// The shards time their own task quota: the task batch reads the shard's
// clock every 16 tasks and maybe_yield() every 32nd call, and both raise the
// "quota expired" flag, which they and the batch read after every task (an
// ordinary load). The watchdog raises that flag too when it sees a turn run
// past the quota, but it need not tick at the quota's pace for that: while
// every turn is short, its ticks space out to the stall threshold, so with
// the defaults it preempts a busy shard about 40 times a second, not 500.
//
//   veloq::RuntimeConfig config;
//   config.stall.threshold = std::chrono::milliseconds(10);
//   config.stall.on_stall = [](const veloq::StallReport& r) { count(r); };
#pragma once

#include <veloq/runtime/cycle_clock.hpp>

#include <pthread.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace veloq {

struct StallReport {
  unsigned shard = 0;
  std::chrono::nanoseconds stalled_for{0};
  std::vector<std::string> frames;  // innermost first, symbolized where possible
};

struct StallDetectorConfig {
  // A loop turn longer than this is reported; zero turns reports off.
  std::chrono::milliseconds threshold{25};
  std::chrono::milliseconds min_report_interval{1000};
  // Called on the watchdog thread for every report, after it is logged.
  std::function<void(const StallReport&)> on_stall;
};

namespace internal {

// What a shard publishes to the watchdog. Written by the shard with relaxed
// stores, read by the watchdog; the backtrace buffer is written only by the
// signal handler running on the shard thread.
struct ShardHeartbeat {
  static constexpr int max_frames = 64;

  // Even during a loop turn, a new value each turn; odd while the shard
  // sleeps in the kernel or is out of its loop.
  alignas(64) std::atomic<std::uint64_t> turn{1};
  alignas(64) std::atomic<bool> quota_expired{false};  // written by the watchdog
  std::int64_t quota_ns = 0;                          // 0: no time quota
  // When the current turn started, in CycleClock ticks, for quota_used()'s
  // own check: read on the shard's thread only.
  std::uint64_t turn_started = 0;
  unsigned quota_checks = 0;  // spaces quota_used()'s clock readings
  CycleClock clock;

  unsigned shard = 0;
  pthread_t thread{};
  std::atomic<int> captured_frames{-1};  // -1 until the handler has run
  void* frames[max_frames] = {};

  static std::int64_t now_ns() noexcept {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
  }
  void begin_turn() noexcept {
    turn.store((turn.load(std::memory_order_relaxed) | 1) + 1, std::memory_order_relaxed);
    turn_started = clock.now();
    quota_expired.store(false, std::memory_order_relaxed);
  }
  void going_to_sleep() noexcept {
    turn.store(turn.load(std::memory_order_relaxed) | 1, std::memory_order_relaxed);
  }

  // True once the current turn has used its quota: the flag, or every 32nd
  // call the shard's own clock (the watchdog may be ticking slowly or absent).
  bool quota_used() noexcept {
    if (quota_expired.load(std::memory_order_relaxed)) return true;
    if ((++quota_checks & 31) != 0) return false;
    return quota_elapsed();
  }
  // Reads the shard's clock; true, with the flag raised, once the turn has
  // run for its quota.
  bool quota_elapsed() noexcept {
    if (quota_ns == 0) return false;
    std::uint64_t now = clock.now();  // clamped: a thread that moved may read less
    if (now <= turn_started || static_cast<std::int64_t>(clock.to_ns(now - turn_started)) < quota_ns) return false;
    quota_expired.store(true, std::memory_order_relaxed);
    return true;
  }
};

}  // namespace internal

class StallDetector {
 public:
  // Watches `shards` (which must outlive the detector). Starts its thread
  // only if there is something to watch: a threshold or a shard's quota.
  StallDetector(StallDetectorConfig config, std::vector<internal::ShardHeartbeat*> shards);
  StallDetector(const StallDetector&) = delete;
  StallDetector& operator=(const StallDetector&) = delete;
  ~StallDetector();  // stops and joins the watchdog

  std::uint64_t reports() const noexcept;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace veloq
