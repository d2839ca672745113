#include <veloq/runtime/cycle_clock.hpp>

#if defined(__x86_64__)
#include <cpuid.h>
#endif

#include <cmath>

namespace veloq::internal {

namespace {

struct Source {
  bool use_tsc = false;
  double ns_per_tick = 1.0;
};

#if defined(__x86_64__)
// CPUID 0x80000007 EDX bit 8: the TSC runs at a constant rate in every
// P-state and C-state, so ticks measure time.
bool tsc_is_invariant() noexcept {
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  // __get_cpuid returns 0 when the CPU lacks the leaf.
  if (__get_cpuid(0x80000007u, &eax, &ebx, &ecx, &edx) == 0) return false;
  return (edx & (1u << 8)) != 0;
}

// The TSC's rate against steady_clock over about a millisecond of spinning
// (this runs at start-up, before any shard loop).
double measure_ns_per_tick() noexcept {
  using std::chrono::steady_clock;
  auto start = steady_clock::now();
  std::uint64_t start_ticks = __rdtsc();
  steady_clock::time_point end;
  do {
    end = steady_clock::now();
  } while (end - start < std::chrono::milliseconds(1));
  std::uint64_t ticks = __rdtsc() - start_ticks;
  auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(end - start).count();
  return ticks == 0 ? 0.0 : static_cast<double>(ns) / static_cast<double>(ticks);
}
#endif

Source pick_source() noexcept {
  Source s;
#if defined(__x86_64__)
  if (tsc_is_invariant()) {
    // Two measurements that disagree by more than 1% mean the thread moved
    // between CPUs whose counters differ: keep steady_clock then.
    double rate = measure_ns_per_tick();
    double again = measure_ns_per_tick();
    if (rate > 0.0 && again > 0.0 && std::fabs(rate - again) <= 0.01 * rate) {
      s.use_tsc = true;
      s.ns_per_tick = (rate + again) / 2;
    }
  }
#endif
  return s;
}

}  // namespace

CycleClock::CycleClock() noexcept {
  static const Source source = pick_source();
  use_tsc_ = source.use_tsc;
  ns_per_tick_ = source.ns_per_tick;
}

}  // namespace veloq::internal
