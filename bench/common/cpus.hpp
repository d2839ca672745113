// CPU placement and timing helpers shared by the benchmark binaries.
//
// Shards and baseline threads go on the same CPUs so a Veloq figure and its
// baseline compete for the same hardware: benchmark_cpus(2) is {0, 1} when the
// process may run there (the suite runs us under `taskset -c 0,1`), otherwise
// the first CPUs of the affinity mask.
#pragma once

#include <chrono>
#include <thread>
#include <utility>
#include <vector>

namespace veloq::bench {

using Clock = std::chrono::steady_clock;

// The CPUs to place `count` shards (or baseline threads) on; fewer when the
// affinity mask holds fewer, so callers index it modulo its size.
std::vector<int> benchmark_cpus(unsigned count);

// Pins the calling thread to `cpu`; false (and a note on stderr) if refused.
bool pin_this_thread(int cpu);

// A thread that pins itself to `cpu` and then runs `fn` (the baselines' threads).
template <typename F>
std::thread pinned_thread(int cpu, F fn) {
  return std::thread([cpu, fn = std::move(fn)]() mutable {
    pin_this_thread(cpu);
    fn();
  });
}

// CPU time (user + system) used so far by the whole process, and by the calling thread.
std::chrono::nanoseconds process_cpu_time();
std::chrono::nanoseconds thread_cpu_time();

inline double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// Keeps the compiler from discarding a value whose computation is being measured.
template <typename T>
inline void keep(const T& value) {
  asm volatile("" : : "r,m"(value) : "memory");
}

// A busy-wait pause that tells the CPU we are spinning.
inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

}  // namespace veloq::bench
