// Runtime: a set of shards, one thread each, pinned to its own CPU.
//
//   veloq::Runtime runtime({.shards = 2});
//   int answer = runtime.run([]() -> veloq::Task<int> {
//     co_return co_await veloq::submit_to(1, [] { return 42; });
//   });
//
// run(entry) starts every shard thread, runs `entry()` as a task on shard 0,
// and when it returns (or stop() is called) stops every shard: remaining
// tasks are destroyed, in-flight I/O is cancelled, mesh messages still in the
// rings release what they own, and the threads are joined. The result (or
// exception) of the entry task is returned from run(). An exception that
// escapes another shard's loop (a mesh handler that threw) stops the runtime
// the same way, and run() rethrows it.
#pragma once

#include <veloq/runtime/errors.hpp>
#include <veloq/runtime/local_executor.hpp>
#include <veloq/runtime/shard_config.hpp>
#include <veloq/runtime/stall_detector.hpp>
#include <veloq/runtime/task.hpp>

#include <atomic>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

namespace veloq {

struct RuntimeConfig {
  // Number of shards; 0 means one per CPU in the process's affinity mask.
  unsigned shards = 0;
  // Pin shard i to the i-th CPU of `cpus` (or of the affinity mask).
  bool pin_threads = true;
  std::vector<int> cpus;
  // Log level ("trace" ... "off"); empty keeps the default (warn). VELOQ_LOG wins.
  std::string log_level;
  ShardConfig shard;
  // The watchdog that reports shards stuck in one loop turn, and raises the
  // shards' time-quota flags (ShardConfig::task_quota).
  StallDetectorConfig stall;
};

class Runtime {
 public:
  explicit Runtime(RuntimeConfig config = {});
  Runtime(const Runtime&) = delete;
  Runtime& operator=(const Runtime&) = delete;

  unsigned shard_count() const noexcept { return shard_count_; }
  const RuntimeConfig& config() const noexcept { return config_; }

  // Runs `entry()` (which returns a Task<R>) on shard 0; see the file comment.
  // Refused with RuntimeMisuse when called on a thread that is inside a shard.
  template <typename Entry>
  auto run(Entry&& entry) -> typename std::invoke_result_t<Entry>::value_type;

  // Stops every shard; the entry task is cancelled if still running, and
  // run() then throws TaskCancelled. Callable from any thread. A stop that
  // comes before run() (or while it starts its shards) stops that run as soon
  // as its shards exist; a run's end forgets any stop it was asked.
  void stop() noexcept;

 private:
  // Runs the shards; `entry_on_shard0` runs the entry task to completion.
  void run_shards(const std::function<void()>& entry_on_shard0);

  RuntimeConfig config_;
  unsigned shard_count_;
  std::vector<int> cpus_;
  // The running mesh, for stop() from any thread. The mutex only orders
  // stop() against the start and the end of run(); no shard takes it while
  // it runs. `running_` covers all of run(); `stop_pending_` is a stop that
  // came while no mesh was published.
  std::mutex running_mutex_;
  void* running_mesh_ = nullptr;
  bool running_ = false;
  bool stop_pending_ = false;
};

template <typename Entry>
auto Runtime::run(Entry&& entry) -> typename std::invoke_result_t<Entry>::value_type {
  using R = typename std::invoke_result_t<Entry>::value_type;
  if constexpr (std::is_void_v<R>) {
    run_shards([&]() { RuntimeContext::current().executor().block_on(entry()); });
    return;
  } else {
    std::optional<R> result;
    run_shards([&]() { result.emplace(RuntimeContext::current().executor().block_on(entry())); });
    return std::move(*result);
  }
}

}  // namespace veloq
