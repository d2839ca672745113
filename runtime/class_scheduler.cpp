#include <veloq/runtime/class_scheduler.hpp>
#include <veloq/runtime/errors.hpp>

#include <algorithm>
#include <string>
#include <utility>

namespace veloq::internal {

ClassScheduler::ClassScheduler() { add("default", default_shares); }

TaskClass ClassScheduler::add(std::string name, unsigned shares) {
  if (shares == 0 || shares > max_shares)
    throw RuntimeMisuse("veloq: task class '" + name + "' needs from 1 to " + std::to_string(max_shares) + " shares");
  if (find(name)) throw RuntimeMisuse("veloq: task class '" + name + "' already exists on this shard");
  if (count_ == max_classes) throw RuntimeMisuse("veloq: a shard has at most 32 task classes");
  Entry& e = classes_[count_];
  e.weight_q16 = weight_for(shares);
  e.vruntime = min_vruntime_;
  e.stats.name = std::move(name);
  e.stats.shares = shares;
  return TaskClass::from_index(static_cast<std::uint8_t>(count_++));
}

void ClassScheduler::set_shares(TaskClass c, unsigned shares) {
  if (shares == 0 || shares > max_shares || c.inherits() || c.index() >= count_)
    throw RuntimeMisuse("veloq: set_shares needs a class of this shard and from 1 to " + std::to_string(max_shares) +
                        " shares");
  classes_[c.index()].weight_q16 = weight_for(shares);
  classes_[c.index()].stats.shares = shares;
}

std::optional<TaskClass> ClassScheduler::find(std::string_view name) const noexcept {
  for (unsigned i = 0; i < count_; ++i)
    if (classes_[i].stats.name == name) return TaskClass::from_index(static_cast<std::uint8_t>(i));
  return std::nullopt;
}

TaskClassStats ClassScheduler::stats(unsigned index) const {
  TaskClassStats s = classes_[index].stats;
  s.runtime_ns = clock_.to_ns(classes_[index].runtime_ticks);
  return s;
}

bool ClassScheduler::empty() const noexcept {
  for (unsigned i = 0; i < count_; ++i)
    if (!classes_[i].queue.empty()) return false;
  return true;
}

ClassScheduler::Entry* ClassScheduler::pick() noexcept {
  Entry* best = nullptr;
  for (unsigned i = 0; i < count_; ++i) {
    Entry& e = classes_[i];
    if (e.queue.empty()) {
      e.active = false;
      continue;
    }
    if (!e.active) {
      e.active = true;
      e.vruntime = std::max(e.vruntime, min_vruntime_);
    }
    if (best == nullptr || e.vruntime < best->vruntime) best = &e;
  }
  if (best != nullptr) min_vruntime_ = std::max(min_vruntime_, best->vruntime);
  return best;
}

}  // namespace veloq::internal
