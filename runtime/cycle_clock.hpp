// CycleClock: the cheapest monotonic time source, for timing short stretches
// of one shard's own work (the slices its task classes run).
//
// On x86-64 with an invariant time-stamp counter it reads the TSC: about
// 10 ns on the benchmark VM, against about 24 ns for steady_clock through the
// vDSO, and the multi-class loop reads a clock after every task. Elsewhere it
// is steady_clock in nanoseconds. Ticks are only compared with ticks read on
// the same shard; ns_per_tick() converts them for reports.
#pragma once

#include <chrono>
#include <cstdint>

#if defined(__x86_64__)
#include <x86intrin.h>
#endif

namespace veloq::internal {

class CycleClock {
 public:
  // Picks the source once per process (and, for the TSC, measures its rate
  // against steady_clock over about a millisecond the first time).
  CycleClock() noexcept;

  std::uint64_t now() const noexcept {
#if defined(__x86_64__)
    if (use_tsc_) [[likely]] return __rdtsc();
#endif
    return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                          std::chrono::steady_clock::now().time_since_epoch())
                                          .count());
  }
  double ns_per_tick() const noexcept { return ns_per_tick_; }
  std::uint64_t ticks(std::chrono::nanoseconds d) const noexcept {
    return static_cast<std::uint64_t>(static_cast<double>(d.count()) / ns_per_tick_);
  }
  std::uint64_t to_ns(std::uint64_t ticks) const noexcept {
    return static_cast<std::uint64_t>(static_cast<double>(ticks) * ns_per_tick_);
  }

 private:
  bool use_tsc_ = false;
  double ns_per_tick_ = 1.0;
};

}  // namespace veloq::internal
