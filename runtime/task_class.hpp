// TaskClass: a priority class of a shard's tasks.
//
// A shard can run several classes of tasks, for example "latency" for request
// handling and "background" for compaction. Each class has its own ready
// queue and a number of shares; while several classes have work, the shard's
// CPU time is divided between them in proportion to their shares. A class
// that was idle joins at the current point in time rather than with the
// credit it saved while idle, so a newly woken class cannot take over the
// shard. Every shard starts with one class, `default_class`; while it is the
// only class, scheduling costs exactly what it did before classes existed.
//
// Classes named in ShardConfig::task_classes exist on every shard with the
// same ids, so a TaskClass can be sent to another shard:
//
//   veloq::ShardConfig shard;
//   shard.task_classes = {{"latency", 800}, {"background", 200}};
//   ...
//   veloq::TaskClass bg = veloq::find_task_class("background");
//   veloq::spawn(compact(), {.name = "compaction", .task_class = bg}).detach();
//
// A task spawned without a class joins the class of the task that spawns it
// (the default class outside any task).
#pragma once

#include <cstdint>
#include <string>

namespace veloq {

class TaskClass {
 public:
  // "The spawning task's class": what SpawnOptions holds unless told otherwise.
  constexpr TaskClass() noexcept = default;
  static constexpr TaskClass default_class() noexcept { return TaskClass(0); }
  static constexpr TaskClass from_index(std::uint8_t index) noexcept { return TaskClass(index); }

  constexpr bool inherits() const noexcept { return index_ == inherit_index; }
  constexpr std::uint8_t index() const noexcept { return index_; }
  friend constexpr bool operator==(TaskClass, TaskClass) noexcept = default;

 private:
  static constexpr std::uint8_t inherit_index = 0xff;
  constexpr explicit TaskClass(std::uint8_t index) noexcept : index_(index) {}
  std::uint8_t index_ = inherit_index;
};

// A class to create on every shard at start-up.
struct TaskClassConfig {
  std::string name;
  unsigned shares = 100;
};

// What one class has done on one shard (part of ShardStats).
struct TaskClassStats {
  std::string name;
  unsigned shares = 0;
  std::uint64_t tasks_spawned = 0;
  std::uint64_t tasks_run = 0;  // resumptions
  std::uint64_t runtime_ns = 0;  // time its tasks ran; timed only while the shard has several classes
};

}  // namespace veloq
