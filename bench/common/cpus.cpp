#include "cpus.hpp"

#include <pthread.h>
#include <sched.h>
#include <sys/resource.h>

#include <cstdio>
#include <cstring>

namespace veloq::bench {

namespace {

std::chrono::nanoseconds rusage_time(int who) {
  rusage usage{};
  getrusage(who, &usage);
  auto to_ns = [](const timeval& tv) {
    return std::chrono::seconds(tv.tv_sec) + std::chrono::microseconds(tv.tv_usec);
  };
  return std::chrono::duration_cast<std::chrono::nanoseconds>(to_ns(usage.ru_utime) + to_ns(usage.ru_stime));
}

}  // namespace

std::vector<int> benchmark_cpus(unsigned count) {
  cpu_set_t set;
  CPU_ZERO(&set);
  std::vector<int> allowed;
  if (sched_getaffinity(0, sizeof set, &set) == 0)
    for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu)
      if (CPU_ISSET(cpu, &set)) allowed.push_back(cpu);
  if (allowed.empty()) allowed.push_back(0);
  // The allowed CPUs in ascending order already start with 0, 1 when both are allowed.
  if (allowed.size() > count) allowed.resize(count);
  return allowed;
}

bool pin_this_thread(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  if (int rc = pthread_setaffinity_np(pthread_self(), sizeof set, &set); rc != 0) {
    std::fprintf(stderr, "could not pin a thread to CPU %d: %s\n", cpu, std::strerror(rc));
    return false;
  }
  return true;
}

std::chrono::nanoseconds process_cpu_time() { return rusage_time(RUSAGE_SELF); }
std::chrono::nanoseconds thread_cpu_time() { return rusage_time(RUSAGE_THREAD); }

}  // namespace veloq::bench
