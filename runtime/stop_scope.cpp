#include <veloq/runtime/local_executor.hpp>
#include <veloq/runtime/stop_scope.hpp>

#include <cerrno>
#include <exception>
#include <unordered_map>
#include <utility>

namespace veloq::internal {

namespace {
// Each task's innermost open scope, for the tasks of the shard running on this thread.
std::unordered_map<TaskState*, StopScope*>& innermost_scopes() {
  static thread_local std::unordered_map<TaskState*, StopScope*> map;
  return map;
}
}  // namespace

void StopScope::Member::join(StopScope& scope, StopFn on_stop, void* owner) noexcept {
  on_stop_ = on_stop;
  owner_ = owner;
  scope_ = &scope;
  prev_ = nullptr;
  next_ = scope.members_;
  if (next_ != nullptr) next_->prev_ = this;
  scope.members_ = this;
}

void StopScope::Member::leave_joined() noexcept {
  (prev_ ? prev_->next_ : scope_->members_) = next_;
  if (next_ != nullptr) next_->prev_ = prev_;
  scope_ = nullptr;
}

StopScope::Binding::~Binding() {
  while (head_ != nullptr) head_->unbind();
}

void StopScope::Binding::stop_all(int reason) noexcept {
  for (StopScope* s = head_; s != nullptr; s = s->bound_next_) s->stop(reason);
}

StopScope::StopScope(TaskState* task, ThrowStopped throw_stopped) : task_(task), throw_stopped_(throw_stopped) {
  StopScope*& slot = innermost_scopes()[task];
  outer_ = slot;
  slot = this;
  ++open_scopes;
}

StopScope::~StopScope() {
  // Waits leave when they end, and the region's work ends before its scope
  // closes; an awaitable that outlived the work it was awaited in (held by the
  // caller) is let go here, so that it never touches the closed scope.
  for (Member* m = members_; m != nullptr; m = m->next_) m->scope_ = nullptr;
  unbind();
  auto& map = innermost_scopes();
  auto it = map.find(task_);
  if (it != map.end() && it->second == this) {
    if (outer_ != nullptr)
      it->second = outer_;
    else
      map.erase(it);
  }
  --open_scopes;
}

StopScope* StopScope::lookup(TaskState* task) noexcept {
  auto& map = innermost_scopes();
  auto it = map.find(task);
  return it == map.end() ? nullptr : it->second;
}


void StopScope::arm_deadline(Clock::time_point deadline) {
  if (deadline <= Clock::now()) {
    reason_ = ETIMEDOUT;
    return;
  }
  deadline_.owner = this;
  task_->executor->timers().arm(deadline_.timer, deadline, &StopScope::on_deadline);
}

void StopScope::on_deadline(Timer* t) noexcept { reinterpret_cast<DeadlineTimer*>(t)->owner->stop(ETIMEDOUT); }

void StopScope::bind(Binding& binding, int stopped_reason) noexcept {
  binding_ = &binding;
  bound_prev_ = nullptr;
  bound_next_ = binding.head_;
  if (binding.head_ != nullptr) binding.head_->bound_prev_ = this;
  binding.head_ = this;
  if (stopped_reason != 0 && reason_ == 0) reason_ = stopped_reason;
}

void StopScope::unbind() noexcept {
  if (binding_ == nullptr) return;
  (bound_prev_ ? bound_prev_->bound_next_ : binding_->head_) = bound_next_;
  if (bound_next_ != nullptr) bound_next_->bound_prev_ = bound_prev_;
  binding_ = nullptr;
  bound_prev_ = bound_next_ = nullptr;
}

void StopScope::stop(int reason) noexcept {
  if (reason_ == 0) reason_ = reason;
  // Scopes nested in this one (same task, opened later) lie between the task's innermost and this one.
  for (StopScope* s = lookup(task_); s != nullptr; s = s->outer_) {
    s->stop_members(*this);
    if (s == this) break;
  }
}

void StopScope::stop_members(const StopScope& by) noexcept {
  // A member may leave while it is stopped (a wait ends at once); an
  // operation only queues its cancellation and leaves when its CQE arrives.
  // No stop function makes another member of this scope leave: the members
  // are the waits of the scope's one task, which waits on one thing at a
  // time, and what a stop wakes (a semaphore serving the next waiter) is
  // other tasks, members of their own scopes.
  for (Member* m = members_; m != nullptr;) {
    Member* next = m->next_;
    m->on_stop_(m->owner_, by);
    m = next;
  }
}

bool StoppableWait::stopped_before_start_slow() noexcept {
  const StopScope* stopped = StopScope::stopped_from(StopScope::innermost(running_task()));
  if (stopped == nullptr) return false;
  record(*stopped);
  return true;
}

void StoppableWait::throw_stopped(const char* what) {
  thrower_(std::exchange(reason_, 0), what);
  std::terminate();  // a ThrowStopped always throws
}

}  // namespace veloq::internal
