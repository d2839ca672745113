#include <veloq/mesh/submit_to.hpp>
#include <veloq/runtime/task_dump.hpp>

#include <spdlog/fmt/fmt.h>

namespace veloq {

namespace {

const char* phase_name(internal::TaskState::Phase phase) noexcept {
  using Phase = internal::TaskState::Phase;
  switch (phase) {
    case Phase::created: return "created";
    case Phase::running: return "running";
    case Phase::suspended: return "suspended";
    case Phase::queued: return "queued";
    case Phase::done: return "done";
  }
  return "?";
}

}  // namespace

std::string LocalExecutor::dump_tasks() const {
  std::string out = fmt::format("shard {}: {} live task(s)\n", shard_id_, live_count_);
  std::int64_t now = internal::ShardHeartbeat::now_ns();
  for (const internal::TaskState* t = live_head_; t != nullptr; t = t->live_next) {
    out += fmt::format("  {} at {}:{} {}", t->name ? t->name : "(unnamed)", t->spawn_site.file, t->spawn_site.line,
                       phase_name(t->phase));
    if (t->spawned_at_ns != 0)
      out += fmt::format(" age {:.3f} ms", static_cast<double>(now - static_cast<std::int64_t>(t->spawned_at_ns)) / 1e6);
    out += '\n';
  }
  return out;
}

Task<std::string> dump_all_tasks() {
  auto dump_this_shard = [] { return RuntimeContext::current("dump_all_tasks").executor().dump_tasks(); };
  auto append = [](std::string all, std::string one) { return all + one; };
  co_return co_await map_reduce(dump_this_shard, std::string(), append);
}

}  // namespace veloq
