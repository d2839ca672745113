#include <veloq/io/cancellation.hpp>
#include <veloq/io/op_scope.hpp>
#include <veloq/io/operation.hpp>
#include <veloq/runtime/local_executor.hpp>

#include <cerrno>
#include <unordered_map>

namespace veloq::io::internal {

namespace {
// Each task's innermost open scope, for the tasks of the shard running on this thread.
std::unordered_map<veloq::internal::TaskState*, OpScope*>& innermost_scopes() {
  static thread_local std::unordered_map<veloq::internal::TaskState*, OpScope*> map;
  return map;
}
}  // namespace

OpScope::OpScope(veloq::internal::TaskState* task) : task_(task) {
  OpScope*& slot = innermost_scopes()[task];
  outer_ = slot;
  slot = this;
  ++open_scopes;
}

OpScope::~OpScope() {
  // Operations detach themselves before the scope closes (ScopedTask destroys its child first).
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

OpScope* OpScope::lookup(veloq::internal::TaskState* task) noexcept {
  auto& map = innermost_scopes();
  auto it = map.find(task);
  return it == map.end() ? nullptr : it->second;
}

void OpScope::arm_deadline(Clock::time_point deadline) {
  if (deadline <= Clock::now()) {
    reason_ = ETIMEDOUT;
    return;
  }
  deadline_.owner = this;
  task_->executor->timers().arm(deadline_.timer, deadline, &OpScope::on_deadline);
}

void OpScope::on_deadline(veloq::internal::Timer* t) noexcept { reinterpret_cast<DeadlineTimer*>(t)->owner->stop(ETIMEDOUT); }

void OpScope::bind(CancellationToken& token) noexcept {
  token_ = &token;
  token_prev_ = nullptr;
  token_next_ = token.scopes_;
  if (token.scopes_ != nullptr) token.scopes_->token_prev_ = this;
  token.scopes_ = this;
  if (token.cancelled()) reason_ = ECANCELED;
}

void OpScope::unbind() noexcept {
  if (token_ == nullptr) return;
  (token_prev_ ? token_prev_->token_next_ : token_->scopes_) = token_next_;
  if (token_next_ != nullptr) token_next_->token_prev_ = token_prev_;
  token_ = nullptr;
  token_prev_ = token_next_ = nullptr;
}

void OpScope::stop(int reason) noexcept {
  if (reason_ == 0) reason_ = reason;
  // Scopes nested in this one (same task, opened later) lie between the task's innermost and this one.
  for (OpScope* s = lookup(task_); s != nullptr; s = s->outer_) {
    s->stop_own_ops(reason);
    if (s == this) break;
  }
}

void OpScope::stop_own_ops(int reason) noexcept {
  // cancel() only queues an ASYNC_CANCEL; operations leave the list when their CQE arrives.
  for (OpBase* op = ops_; op != nullptr; op = op->scope_next_) op->cancel(reason);
}

void OpScope::attach(OpBase& op) noexcept {
  op.scope_prev_ = nullptr;
  op.scope_next_ = ops_;
  if (ops_ != nullptr) ops_->scope_prev_ = &op;
  ops_ = &op;
}

void OpScope::detach(OpBase& op) noexcept {
  (op.scope_prev_ ? op.scope_prev_->scope_next_ : ops_) = op.scope_next_;
  if (op.scope_next_ != nullptr) op.scope_next_->scope_prev_ = op.scope_prev_;
  op.scope_prev_ = op.scope_next_ = nullptr;
}

}  // namespace veloq::io::internal

namespace veloq::io {

CancellationToken::~CancellationToken() {
  while (scopes_ != nullptr) scopes_->unbind();
}

void CancellationToken::cancel() noexcept {
  cancelled_ = true;
  for (internal::OpScope* s = scopes_; s != nullptr; s = s->token_next_) s->stop(ECANCELED);
}

}  // namespace veloq::io
