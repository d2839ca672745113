#include <veloq/runtime/log.hpp>
#include <veloq/runtime/stall_detector.hpp>

#include <cxxabi.h>
#include <execinfo.h>
#include <signal.h>

#include <algorithm>
#include <condition_variable>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <thread>

namespace veloq {

namespace {

// The signal that asks a stalled shard thread for its backtrace.
int backtrace_signal() noexcept { return SIGRTMIN + 3; }

// Runs on the stalled shard thread. The heartbeat travels in the signal's
// value, so the handler needs no thread-local lookup; backtrace() was called
// once before (install_handler), so it does not load libgcc here.
void capture_backtrace(int, siginfo_t* info, void*) {
  auto* beat = static_cast<internal::ShardHeartbeat*>(info->si_value.sival_ptr);
  if (beat == nullptr) return;
  const int saved_errno = errno;  // the interrupted code may be about to read it
  int n = backtrace(beat->frames, internal::ShardHeartbeat::max_frames);
  beat->captured_frames.store(n, std::memory_order_release);
  errno = saved_errno;
}

void install_handler() {
  static std::once_flag once;
  std::call_once(once, [] {
    void* warm_up[4];
    backtrace(warm_up, 4);
    struct sigaction action {};
    action.sa_sigaction = &capture_backtrace;
    action.sa_flags = SA_SIGINFO | SA_RESTART;
    sigemptyset(&action.sa_mask);
    sigaction(backtrace_signal(), &action, nullptr);
  });
}

// "binary(_Z3foov+0x12) [0x...]" -> "foo() [binary+0x12]"; other text as is.
std::string demangle_frame(const char* symbol) {
  std::string text(symbol);
  auto open = text.find('(');
  auto plus = text.find('+', open == std::string::npos ? 0 : open);
  if (open == std::string::npos || plus == std::string::npos || plus == open + 1) return text;
  std::string mangled = text.substr(open + 1, plus - open - 1);
  int status = 0;
  char* plain = abi::__cxa_demangle(mangled.c_str(), nullptr, nullptr, &status);
  if (status != 0 || plain == nullptr) return text;
  std::string out = plain;
  std::free(plain);
  return out + " " + text;
}

}  // namespace

struct StallDetector::State {
  StallDetectorConfig config;
  std::vector<internal::ShardHeartbeat*> shards;
  std::chrono::nanoseconds tick{0};
  std::mutex mutex;  // the watchdog's own; shards never take it
  std::condition_variable wake;
  bool stopping = false;
  std::atomic<std::uint64_t> reports{0};
  std::thread thread;

  struct Watch {
    std::uint64_t turn = 1;           // the shard's turn at the last tick (odd: asleep)
    std::int64_t seen_since_ns = 0;   // the tick that first saw that turn
    std::int64_t next_report_after_ns = 0;
    std::int64_t last_report_ns = 0;
  };
  std::vector<Watch> watches;

  // What a tick saw of one shard.
  enum class Seen { asleep, new_turn, same_turn };

  void run();
  // Raises the quota flag, reports a stall.
  Seen check(internal::ShardHeartbeat& beat, Watch& watch, std::int64_t now_ns);
  void report(internal::ShardHeartbeat& beat, std::chrono::nanoseconds stalled_for);
};

StallDetector::StallDetector(StallDetectorConfig config, std::vector<internal::ShardHeartbeat*> shards)
    : state_(std::make_unique<State>()) {
  State& s = *state_;
  s.config = std::move(config);
  s.shards = std::move(shards);
  s.watches.resize(s.shards.size());
  std::int64_t tick = 0;
  if (s.config.threshold.count() > 0)
    tick = std::chrono::duration_cast<std::chrono::nanoseconds>(s.config.threshold).count() / 4;
  for (auto* beat : s.shards)
    if (beat->quota_ns > 0) tick = tick == 0 ? beat->quota_ns : std::min(tick, beat->quota_ns);
  if (tick == 0) return;
  s.tick = std::chrono::nanoseconds(std::max<std::int64_t>(tick, 100'000));
  if (s.config.threshold.count() > 0) install_handler();
  s.thread = std::thread([&s] { s.run(); });
}

StallDetector::~StallDetector() {
  State& s = *state_;
  if (!s.thread.joinable()) return;
  {
    std::lock_guard lock(s.mutex);
    s.stopping = true;
  }
  s.wake.notify_all();
  s.thread.join();
}

std::uint64_t StallDetector::reports() const noexcept { return state_->reports.load(); }

void StallDetector::State::run() {
  // While every shard sleeps the watchdog ticks up to 64 times slower (at
  // most once per stall threshold), so an idle runtime costs few wake-ups; a
  // turn that starts meanwhile is noticed late by at most one slow tick, and a
  // stall is still reported within twice the threshold.
  std::chrono::nanoseconds slow_tick = 64 * tick;
  if (config.threshold.count() > 0) slow_tick = std::min<std::chrono::nanoseconds>(slow_tick, config.threshold);
  slow_tick = std::max(slow_tick, tick);
  // While the busy shards are in a new turn at every tick, their turns are
  // short and each tick preempts a shard that shares the watchdog's CPU for
  // nothing: the ticks space out, doubling up to the slow tick. A turn still
  // running at the next tick brings them back to one tick. A long turn that
  // starts meanwhile is first seen at most one slow tick late, as while every
  // shard sleeps, and is timed from there: a stall is reported within about
  // twice the threshold, and its length may read short by up to a slow tick.
  // The quota does not wait for the watchdog (the shards read their own
  // clock for it).
  const std::chrono::nanoseconds busy_tick_max = slow_tick;
  std::chrono::nanoseconds next = tick;
  std::unique_lock lock(mutex);
  while (!wake.wait_for(lock, next, [this] { return stopping; })) {
    lock.unlock();
    std::int64_t now = internal::ShardHeartbeat::now_ns();
    bool any_busy = false, any_long = false;
    for (std::size_t i = 0; i < shards.size(); ++i) {
      Seen seen = check(*shards[i], watches[i], now);
      any_busy = any_busy || seen != Seen::asleep;
      any_long = any_long || seen == Seen::same_turn;
    }
    if (!any_busy)
      next = slow_tick;
    else if (any_long)
      next = tick;
    else
      next = std::min(2 * next, busy_tick_max);  // from slow_tick too: it is at least busy_tick_max
    lock.lock();
  }
}

StallDetector::State::Seen StallDetector::State::check(internal::ShardHeartbeat& beat, Watch& watch,
                                                        std::int64_t now_ns) {
  std::int64_t threshold = std::chrono::duration_cast<std::chrono::nanoseconds>(config.threshold).count();
  std::uint64_t turn = beat.turn.load(std::memory_order_relaxed);
  Seen seen = Seen::same_turn;
  if (turn != watch.turn) {  // a new turn, or sleep: start following it afresh
    watch.turn = turn;
    watch.seen_since_ns = now_ns;
    watch.next_report_after_ns = threshold;
    seen = Seen::new_turn;
  }
  if (turn & 1) return Seen::asleep;
  // At least this long: the turn began before the tick that first saw it.
  std::int64_t length = now_ns - watch.seen_since_ns;
  if (beat.quota_ns > 0 && length >= beat.quota_ns) beat.quota_expired.store(true, std::memory_order_relaxed);
  if (threshold == 0) return seen;
  if (length < watch.next_report_after_ns) return seen;
  // The same stall is reported again only once it has lasted twice as long.
  watch.next_report_after_ns *= 2;
  std::int64_t interval = std::chrono::duration_cast<std::chrono::nanoseconds>(config.min_report_interval).count();
  if (watch.last_report_ns != 0 && now_ns - watch.last_report_ns < interval) return seen;
  watch.last_report_ns = now_ns;
  report(beat, std::chrono::nanoseconds(length));
  return seen;
}

void StallDetector::State::report(internal::ShardHeartbeat& beat, std::chrono::nanoseconds stalled_for) {
  StallReport r;
  r.shard = beat.shard;
  r.stalled_for = stalled_for;
  beat.captured_frames.store(-1, std::memory_order_relaxed);
  sigval value{};
  value.sival_ptr = &beat;
  if (pthread_sigqueue(beat.thread, backtrace_signal(), value) == 0) {
    // The handler runs when the thread is next scheduled; wait a bounded time.
    for (int i = 0; i < 200 && beat.captured_frames.load(std::memory_order_acquire) < 0; ++i)
      std::this_thread::sleep_for(std::chrono::microseconds(500));
  }
  int n = beat.captured_frames.load(std::memory_order_acquire);
  if (n > 0) {
    if (char** symbols = backtrace_symbols(beat.frames, n)) {
      for (int i = 0; i < n; ++i) r.frames.push_back(demangle_frame(symbols[i]));
      std::free(symbols);
    }
  }
  std::string trace;
  for (const std::string& f : r.frames) trace += "\n    " + f;
  log().warn("shard {} stalled: {:.1f} ms without returning to its loop; backtrace:{}", r.shard,
             static_cast<double>(stalled_for.count()) / 1e6, n > 0 ? trace : std::string(" (not captured)"));
  reports.fetch_add(1);
  if (config.on_stall) config.on_stall(r);
}

}  // namespace veloq
