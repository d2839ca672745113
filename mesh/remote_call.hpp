// RemoteCall<R>: the caller's end of work shipped to another shard with
// submit_to(). The job is sent when the RemoteCall is created, so several can
// be in flight at once; `co_await` resumes the caller on its own shard with
// the result or the exception. The job's memory belongs to the caller's shard
// and always comes home with the reply to be freed there. Dropping a
// RemoteCall (or cancelling the task awaiting it) abandons the job: it still
// runs, and its reply frees it.
#pragma once

#include <veloq/mesh/mesh_message.hpp>
#include <veloq/runtime/errors.hpp>
#include <veloq/runtime/local_executor.hpp>
#include <veloq/runtime/outcome.hpp>

#include <coroutine>
#include <utility>

namespace veloq {

namespace internal {

template <typename R>
class RemoteJob {
 public:
  using Base = RemoteJob;
  Outcome<R> outcome;
  TaskState* waiter = nullptr;
  unsigned home = 0;
  unsigned target = 0;
  bool completed = false;
  bool abandoned = false;
  void (*run_on_target)(RemoteJob* job) = nullptr;
  void (*destroy)(RemoteJob* job) noexcept = nullptr;

  // On the home shard: the reply has arrived (or the job ran locally).
  void complete_at_home() noexcept {
    completed = true;
    if (abandoned)
      destroy(this);
    else if (TaskState* w = std::exchange(waiter, nullptr))
      w->wake();
  }

  // On the target shard: the outcome is set; send the job home.
  void reply() {
    if (target == home) return complete_at_home();
    RuntimeContext::current().mesh().send(home, mesh::MeshMessage::make(&on_reply, this));
  }

  // The message that carries the job to its target.
  static void on_arrival(mesh::MeshMessage& m, mesh::Delivery how) {
    auto* job = m.get<RemoteJob*>();
    if (how == mesh::Delivery::run) return job->run_on_target(job);
    job->discard_on_target();
  }

  // Shutdown, on the target: the request was discarded before it ran. The
  // job goes home as its reply would have, cancelled there and freed there
  // (its closure may hold the home shard's objects). The runtime's shutdown
  // rounds carry it; only if that fails is it cancelled where it is.
  void discard_on_target() noexcept {
    if (target != home) {
      try {
        RuntimeContext::current().mesh().send(home, mesh::MeshMessage::make(&on_discarded, this));
        return;
      } catch (...) {
      }
    }
    cancel_at_shutdown();
  }

  // Shutdown: every loop has stopped and every task is gone. The job's
  // request was discarded before it ran (cancel), or its reply was discarded
  // (finish); either way it is freed if nobody holds it.
  void cancel_at_shutdown() noexcept {
    outcome.set_exception(std::make_exception_ptr(TaskCancelled()));
    finish_at_shutdown();
  }
  void finish_at_shutdown() noexcept {
    completed = true;
    if (abandoned) destroy(this);
  }

 private:
  static void on_reply(mesh::MeshMessage& m, mesh::Delivery how) {
    auto* job = m.get<RemoteJob*>();
    if (how == mesh::Delivery::run) return job->complete_at_home();
    job->finish_at_shutdown();
  }
  // A request discarded on its target, back home (or, if the shutdown could
  // not carry it there, discarded on the target after all).
  static void on_discarded(mesh::MeshMessage& m, mesh::Delivery) { m.get<RemoteJob*>()->cancel_at_shutdown(); }
};

}  // namespace internal

template <typename R>
class [[nodiscard("co_await the RemoteCall to get the result")]] RemoteCall {
 public:
  explicit RemoteCall(internal::RemoteJob<R>* job) noexcept : job_(job) {}
  RemoteCall(RemoteCall&& other) noexcept : job_(std::exchange(other.job_, nullptr)) {}
  RemoteCall& operator=(RemoteCall&&) = delete;
  RemoteCall(const RemoteCall&) = delete;
  RemoteCall& operator=(const RemoteCall&) = delete;
  ~RemoteCall() {
    if (!job_) return;
    if (job_->completed)
      job_->destroy(job_);
    else
      job_->abandoned = true;
  }

  bool ready() const noexcept { return job_ && job_->completed; }

  bool await_ready() {
    if (job_ == nullptr) [[unlikely]]
      throw RuntimeMisuse("veloq: co_await of an empty RemoteCall (moved from or already awaited)");
    return job_->completed || stop_.stopped_before_start();
  }
  void await_suspend(std::coroutine_handle<> h) noexcept {
    waiting_ = internal::running_task();
    waiting_->resume_point = h;
    job_->waiter = waiting_;
    stop_.join(waiting_, this);
  }
  R await_resume() {
    waiting_ = nullptr;
    stop_.end("submit_to");  // the call is kept: it may be awaited again
    internal::RemoteJob<R>* job = std::exchange(job_, nullptr);
    struct Free {
      internal::RemoteJob<R>* job;
      ~Free() { job->destroy(job); }
    } free{job};
    return job->outcome.take();
  }

  // A region the awaiting task runs in stopped (io::with_timeout, a
  // cancellation token): the wait is given up; the call still runs, and the
  // RemoteCall may be awaited again (or dropped: the reply frees the job).
  // To await it again, await it as an lvalue (`co_await call`): g++ 12 moves
  // the operand of `co_await std::move(call)` into a temporary, which the
  // stopped wait then drops.
  void stop_waiting(const internal::StopScope& by) noexcept {
    if (waiting_ == nullptr || job_->waiter != waiting_) return;  // the reply came first: it stands
    job_->waiter = nullptr;
    stop_.note_stopped(by);
    waiting_->wake();
  }

 private:
  internal::RemoteJob<R>* job_;
  internal::TaskState* waiting_ = nullptr;
  internal::StoppableWait stop_;
};

}  // namespace veloq
