// CycleClock: the cheapest monotonic time source, for timing short stretches
// of one thread's own work (the slices a shard's task classes run, the time
// quota of its turn).
//
// On x86-64, when the time-stamp counter is invariant (constant rate in every
// P-state and C-state), it reads the TSC: about 10 ns, against 24 to 55 ns for
// steady_clock on the VMs measured (55 ns where the kernel keeps kvm-clock),
// and the multi-class loop reads a clock after every task. Otherwise it is
// steady_clock in nanoseconds. ns_per_tick() converts ticks to time.
//
// Compare ticks read on the same thread only: TSCs of different CPUs need not
// agree unless the kernel keeps the TSC as its own clocksource, and a thread
// that moved to another CPU may read a smaller value (callers clamp).
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
