// ClassScheduler: the ready queues of one shard's task classes and the choice
// of which class runs next.
//
// Each class keeps a virtual runtime: the time its tasks have run, scaled by
// 1/shares. Among the classes with ready tasks, the one with the smallest
// virtual runtime runs next, so over time busy classes receive CPU time in
// proportion to their shares. A class that had no ready task is inactive; when
// it becomes ready again its virtual runtime is raised to the smallest one of
// the active classes (never lowered), so time it spent idle is not credit it
// can spend monopolising the shard afterwards.
//
// The executor asks pick() and charge() only while more than one class exists;
// with the default class alone it runs queue(0) directly. Slices are timed
// with the scheduler's CycleClock, in its ticks.
#pragma once

#include <veloq/runtime/cycle_clock.hpp>
#include <veloq/runtime/ready_queue.hpp>
#include <veloq/runtime/task_class.hpp>

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace veloq::internal {

class ClassScheduler {
 public:
  static constexpr unsigned max_classes = 32;
  static constexpr unsigned default_shares = 100;
  // More shares would make a class's weight round to 0 (or lose all
  // precision), and a class charged nothing would take the shard over.
  static constexpr unsigned max_shares = 1'000'000;
  static constexpr std::uint64_t weight_for(unsigned shares) noexcept { return (std::uint64_t{1024} << 16) / shares; }

  struct Entry {
    ReadyQueue queue;
    std::uint64_t vruntime = 0;  // runtime_ticks * 1024 / shares, plus catch-ups
    std::uint64_t runtime_ticks = 0;
    // 1024 / shares in 16.16 fixed point: charging multiplies instead of
    // dividing (a 64-bit division is dozens of cycles, twice per class switch).
    std::uint64_t weight_q16 = weight_for(default_shares);
    bool active = false;         // had ready tasks at the last pick()
    TaskClassStats stats;
  };

  ClassScheduler();

  // Adds a class; throws RuntimeMisuse for a duplicate name, shares outside
  // 1..max_shares or more than max_classes classes.
  TaskClass add(std::string name, unsigned shares);
  void set_shares(TaskClass c, unsigned shares);
  std::optional<TaskClass> find(std::string_view name) const noexcept;
  unsigned count() const noexcept { return count_; }

  Entry& entry(unsigned index) noexcept { return classes_[index]; }
  const Entry& entry(unsigned index) const noexcept { return classes_[index]; }
  [[gnu::hot]] bool empty() const noexcept;

  // The class with ready tasks that should run next, or null if none has any.
  Entry* pick() noexcept;
  // Accounts `ticks` of running time to `e`.
  static void charge(Entry& e, std::uint64_t ticks) noexcept {
    e.runtime_ticks += ticks;
    e.vruntime += static_cast<std::uint64_t>((static_cast<unsigned __int128>(ticks) * e.weight_q16) >> 16);
  }

  const CycleClock& clock() const noexcept { return clock_; }
  // The longest one class runs before the next pick, in clock ticks.
  std::uint64_t slice_ticks() const noexcept { return slice_ticks_; }
  // The class's statistics, its running time converted to nanoseconds.
  TaskClassStats stats(unsigned index) const;

 private:
  static constexpr std::chrono::nanoseconds slice{100'000};

  // The entries last, so that the fields a turn reads share a page with the first.
  CycleClock clock_;
  std::uint64_t slice_ticks_ = clock_.ticks(slice);
  unsigned count_ = 0;
  std::uint64_t min_vruntime_ = 0;  // never decreases
  std::array<Entry, max_classes> classes_;
};

}  // namespace veloq::internal
