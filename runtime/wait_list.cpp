#include <veloq/runtime/errors.hpp>
#include <veloq/runtime/wait_list.hpp>

#include <string>

namespace veloq::internal {

void Waiter::throw_interrupted() const {
  if (orphaned_by_ != nullptr)
    throw ClosedError(std::string("veloq: ") + orphaned_by_ + " destroyed while a task waited on it");
  stopped_by_->throw_stopped((std::string("wait on ") + stopped_owner_).c_str());
}

void Waiter::join_scope() noexcept {
  if (scope_member_.joined()) return;  // listed again (WaitList::keep): it joined when it began to wait
  StopScope* scope = StopScope::innermost(task_);
  if (scope == nullptr) return;
  if (const StopScope* stopped = StopScope::stopped_from(scope)) {
    // Inside a stopped region: the wait ends at once (the task runs again next).
    stopped_by_ = stopped;
    stopped_owner_ = list_->owner();
    task_->wake_at(resume_at_);
    return;
  }
  scope_member_.join(*scope, &Waiter::on_scope_stop, this);
}

void Waiter::on_scope_stop(void* self, const StopScope& by) noexcept {
  auto* w = static_cast<Waiter*>(self);
  // Still waiting: listed with its task, and not woken by the primitive.
  if (w->list_ == nullptr || w->task_ == nullptr || w->woken || w->stopped_by_ != nullptr) return;
  w->stopped_by_ = &by;
  w->stopped_owner_ = w->list_->owner();
  w->scope_member_.leave();
  w->task_->wake_at(w->resume_at_);
}

}  // namespace veloq::internal
