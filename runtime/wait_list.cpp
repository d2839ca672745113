#include <veloq/runtime/errors.hpp>
#include <veloq/runtime/wait_list.hpp>

#include <exception>
#include <string>

namespace veloq::internal {

void Waiter::throw_interrupted() const {
  if (orphaned_by_ != nullptr)
    throw ClosedError(std::string("veloq: ") + orphaned_by_ + " destroyed while a task waited on it");
  stop_thrower_(stop_reason_, (std::string("wait on ") + stopped_owner_).c_str());
  std::terminate();  // a ThrowStopped always throws
}

void Waiter::join_scope() noexcept {
  if (scope_member_.joined()) return;  // listed again by WaitList::keep: it joined when it began to wait
  StopScope* scope = StopScope::innermost(task_);
  if (scope == nullptr) return;
  if (const StopScope* stopped = StopScope::stopped_from(scope)) {
    stop(*stopped);  // inside a stopped region: the wait ends at once (the task runs again next)
    return;
  }
  scope_member_.join(*scope, &Waiter::on_scope_stop, this);
}

void Waiter::on_scope_stop(void* self, const StopScope& by) noexcept {
  auto* w = static_cast<Waiter*>(self);
  // Still waiting: listed with its task (a woken waiter left the list, or was kept without one).
  if (w->list_ != nullptr && w->task_ != nullptr && !w->woken) w->stop(by);
}

void Waiter::stop(const StopScope& by) noexcept {
  WaitList* list = list_;
  stop_reason_ = by.reason();
  stop_thrower_ = by.thrower();
  stopped_owner_ = list->owner();
  TaskState* task = task_;
  std::coroutine_handle<> resume_at = resume_at_;
  unlink();  // and leaves the scope: the primitive never sees this waiter again
  if (list->waiter_stopped_ != nullptr) list->waiter_stopped_(list->waiter_stopped_context_);
  task->wake_at(resume_at);
}

}  // namespace veloq::internal
