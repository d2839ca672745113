// Cross-shard calls.
//
// submit_to(shard, fn) runs `fn` on `shard` and returns a RemoteCall the
// caller awaits for the result. `fn` may be a plain function (it runs inside
// the target's mesh drain, so keep it short) or return a Task<U> (it becomes a
// task of the target shard, which is how work is spawned across shards).
// Exceptions travel back to the caller. `fn` and its captures are moved to
// the target; the result is moved back. Small trivially copyable closures and
// results travel inside the messages themselves (see InlineCall).
//
//   int n = co_await veloq::submit_to(1, [] { return count_items(); });
//   co_await veloq::invoke_on_all([]() -> veloq::Task<void> { co_await flush(); });
//   auto total = co_await veloq::map_reduce([] { return local_count(); }, 0, std::plus<>());
//
// run_on(shard, fn) sends `fn` without waiting for anything back.
//
// g++ 12 destroys a lambda temporary twice when it is created inside a
// co_await expression and captures something with a destructor; with that
// compiler, name such a lambda before the co_await (clang is not affected).
#pragma once

#include <veloq/mesh/mesh.hpp>
#include <veloq/mesh/mesh_message.hpp>
#include <veloq/mesh/remote_call.hpp>
#include <veloq/runtime/local_executor.hpp>
#include <veloq/runtime/log.hpp>
#include <veloq/runtime/task.hpp>

#include <exception>
#include <new>
#include <optional>
#include <type_traits>
#include <utility>
#include <vector>

namespace veloq {

namespace internal {

template <typename T>
struct TaskValue {
  using type = T;
  static constexpr bool is_task = false;
};
template <typename T>
struct TaskValue<Task<T>> {
  using type = T;
  static constexpr bool is_task = true;
};

// The value a call of F produces once awaited: U for a Task<U>, else the plain result.
template <typename F>
using CallResult = typename TaskValue<std::invoke_result_t<F&>>::type;

// The calling shard's context, once `shard` is known to be one of its
// runtime's shards: every call that addresses a shard checks this first, so a
// bad id is an exception, never an index past the mesh.
inline RuntimeContext& context_to_reach(unsigned shard, const char* what) {
  RuntimeContext& ctx = RuntimeContext::current(what);
  mesh::check_shard(what, shard, ctx.shard_count());
  return ctx;
}

// Runs a plain function and stores its value, or the exception it threw, in `outcome`.
template <typename R, typename F>
void run_into(Outcome<R>& outcome, F& fn) {
  try {
    if constexpr (std::is_void_v<R>) {
      fn();
      outcome.set_value();
    } else {
      outcome.set_value(fn());
    }
  } catch (...) {
    outcome.set_exception(std::current_exception());
  }
}

// Builds a job of type J (a RemoteJob or one derived from it) in the calling
// shard's frame pool; its `destroy` gives the memory back there.
template <typename J, typename... Args>
J* new_job(unsigned home, unsigned target, Args&&... args) {
  void* mem = RuntimeContext::current().frame_pool().allocate(sizeof(J), alignof(J));
  auto* job = new (mem) J(std::forward<Args>(args)...);
  job->home = home;
  job->target = target;
  job->destroy = [](typename J::Base* base) noexcept {
    auto* typed = static_cast<J*>(base);
    typed->~J();
    FramePool::release_current(typed, sizeof(J), alignof(J));
  };
  return job;
}

template <typename F>
class RemoteJobFor : public RemoteJob<CallResult<F>> {
 public:
  using R = CallResult<F>;
  explicit RemoteJobFor(F&& f) : fn(std::move(f)) {}
  F fn;

  static RemoteJobFor* create(F&& f, unsigned home, unsigned target) {
    auto* job = new_job<RemoteJobFor>(home, target, std::move(f));
    job->run_on_target = &RemoteJobFor::run;
    return job;
  }

 private:
  static void run(RemoteJob<R>* base) {
    auto* job = static_cast<RemoteJobFor*>(base);
    if constexpr (TaskValue<std::invoke_result_t<F&>>::is_task) {
      spawn(as_task(ReplyOnExit(job)), SpawnOptions{"submit_to"}).detach();
    } else {
      run_into(job->outcome, job->fn);
      job->reply();
    }
  }

  // Sends the job home when destroyed: after the task finishes, or when the
  // task is destroyed before or while running (runtime shutdown), in which
  // case the outcome says it was cancelled. It is a parameter of as_task, not
  // a local, so it is destroyed even if the task never started.
  class ReplyOnExit {
   public:
    explicit ReplyOnExit(RemoteJobFor* job) noexcept : job_(job) {}
    ReplyOnExit(ReplyOnExit&& other) noexcept : job_(std::exchange(other.job_, nullptr)) {}
    ReplyOnExit& operator=(ReplyOnExit&&) = delete;
    ~ReplyOnExit() {
      if (!job_) return;
      if (!job_->outcome.has_value_or_error()) job_->outcome.set_exception(std::make_exception_ptr(TaskCancelled()));
      job_->reply();
    }
    RemoteJobFor* job() const noexcept { return job_; }

   private:
    RemoteJobFor* job_;
  };

  static Task<void> as_task(ReplyOnExit reply_on_exit) {
    RemoteJobFor* job = reply_on_exit.job();
    try {
      if constexpr (std::is_void_v<R>) {
        co_await job->fn();
        job->outcome.set_value();
      } else {
        job->outcome.set_value(co_await job->fn());
      }
    } catch (...) {
      job->outcome.set_exception(std::current_exception());
    }
  }
};

// A call whose closure and result are small and trivially copyable travels
// inside its two messages: the closure (beside a pointer to the job) in the
// request, the result in the reply. The target never reads or writes the
// caller's memory, so the only cache lines that cross between the cores are
// the mesh's own (ring slots and indexes, pending words). The job stays at
// home, holding the waiter and the outcome; only a thrown exception is
// written into it from the target, as the other calls do.
template <typename F>
class InlineCall {
 public:
  using R = CallResult<F>;
  using Job = RemoteJob<R>;

  struct Request {
    Job* job;
    F fn;
  };
  template <typename V>
  struct ValueReply {
    Job* job;
    V value;
  };
  using Reply = std::conditional_t<std::is_void_v<R>, Job*, ValueReply<R>>;

  static constexpr bool applies = !TaskValue<std::invoke_result_t<F&>>::is_task && !std::is_reference_v<R> &&
                                  mesh::MeshMessage::fits_inline<Request> && mesh::MeshMessage::fits_inline<Reply>;

  static Job* create(unsigned home, unsigned target) { return new_job<Job>(home, target); }

  // On the caller's own shard: no messages at all.
  static void run_here(Job* job, F& fn) {
    run_into(job->outcome, fn);
    job->complete_at_home();
  }

  static void on_request(mesh::MeshMessage& m, mesh::Delivery how) {
    Request& request = m.get<Request>();
    Job* job = request.job;
    if (how != mesh::Delivery::run) return job->discard_on_target();
    mesh::MeshEndpoint& mesh = RuntimeContext::current().mesh();
    unsigned home = mesh.delivering_from();
    std::optional<Reply> reply;
    try {
      if constexpr (std::is_void_v<R>) {
        request.fn();
        reply.emplace(job);
      } else {
        reply.emplace(Reply{job, request.fn()});
      }
    } catch (...) {
      job->outcome.set_exception(std::current_exception());
      job->reply();
      return;
    }
    mesh.send(home, mesh::MeshMessage::make(&on_reply, *reply));
  }

 private:
  static void on_reply(mesh::MeshMessage& m, mesh::Delivery how) {
    Reply& reply = m.get<Reply>();
    if constexpr (std::is_void_v<R>) {
      if (how != mesh::Delivery::run) return reply->finish_at_shutdown();
      reply->outcome.set_value();
      reply->complete_at_home();
    } else {
      if (how != mesh::Delivery::run) return reply.job->finish_at_shutdown();
      reply.job->outcome.set_value(std::move(reply.value));
      reply.job->complete_at_home();
    }
  }
};

}  // namespace internal

namespace internal {
// Stages a call's request; if staging fails (out of memory: nothing was
// staged), the job is freed before the error reaches the caller.
template <typename R>
void send_request(RuntimeContext& ctx, unsigned shard, RemoteJob<R>* job, const mesh::MeshMessage& request) {
  try {
    ctx.mesh().send(shard, request);
  } catch (...) {
    job->destroy(job);
    throw;
  }
}
}  // namespace internal

template <typename F>
RemoteCall<internal::CallResult<std::decay_t<F>>> submit_to(unsigned shard, F&& fn) {
  using Fn = std::decay_t<F>;
  RuntimeContext& ctx = internal::context_to_reach(shard, "submit_to");
  if constexpr (internal::InlineCall<Fn>::applies) {
    using Call = internal::InlineCall<Fn>;
    typename Call::Job* job = Call::create(ctx.shard_id(), shard);
    Fn f(std::forward<F>(fn));
    if (shard == ctx.shard_id())
      Call::run_here(job, f);
    else
      internal::send_request(ctx, shard, job, mesh::MeshMessage::make(&Call::on_request, typename Call::Request{job, f}));
    return RemoteCall<internal::CallResult<Fn>>(job);
  }
  using Job = internal::RemoteJob<internal::CallResult<Fn>>;
  Job* job = internal::RemoteJobFor<Fn>::create(Fn(std::forward<F>(fn)), ctx.shard_id(), shard);
  if (shard == ctx.shard_id())
    job->run_on_target(job);
  else
    internal::send_request(ctx, shard, job, mesh::MeshMessage::make(&Job::on_arrival, job));
  return RemoteCall<internal::CallResult<Fn>>(job);
}

// Runs fn() on every shard (the caller's included) and waits for all; the
// first exception, if any, is rethrown after every shard has finished.
template <typename F>
Task<void> invoke_on_all(F fn) {
  std::vector<RemoteCall<internal::CallResult<F>>> calls;
  unsigned n = shard_count();
  calls.reserve(n);
  for (unsigned s = 0; s < n; ++s) calls.push_back(submit_to(s, fn));
  std::exception_ptr first_error;
  for (auto& call : calls) {
    try {
      co_await std::move(call);
    } catch (...) {
      if (!first_error) first_error = std::current_exception();
    }
  }
  if (first_error) std::rethrow_exception(first_error);
}

// Runs mapper() on every shard and folds the results in shard order:
// reduce(reduce(initial, r0), r1) ...
template <typename Mapper, typename T, typename Reduce>
Task<T> map_reduce(Mapper mapper, T initial, Reduce reduce) {
  std::vector<RemoteCall<internal::CallResult<Mapper>>> calls;
  unsigned n = shard_count();
  calls.reserve(n);
  for (unsigned s = 0; s < n; ++s) calls.push_back(submit_to(s, mapper));
  T acc = std::move(initial);
  for (auto& call : calls) acc = reduce(std::move(acc), co_await std::move(call));
  co_return acc;
}

namespace internal {
// Logs why a run_on closure failed; called inside its catch block.
inline void log_run_on_failure() noexcept {
  try {
    throw;
  } catch (const std::exception& e) {
    log().warn("run_on closure threw: {}", e.what());
  } catch (...) {
    log().warn("run_on closure threw an exception that is not a std::exception");
  }
}
}  // namespace internal

// Sends fn to `shard` and does not wait. Small trivially copyable closures
// travel inside the message itself; larger ones travel as a job whose memory
// comes back home to be freed. A closure that returns a Task becomes a task
// of the target shard, as with submit_to. Nothing comes back: what fn throws
// is logged on the target.
template <typename F>
void run_on(unsigned shard, F&& fn) {
  using Fn = std::decay_t<F>;
  [[maybe_unused]] RuntimeContext& ctx = internal::context_to_reach(shard, "run_on");
  if constexpr (internal::TaskValue<std::invoke_result_t<Fn&>>::is_task) {
    // The closure lives in the job until the task it starts has finished.
    auto call = submit_to(shard, [f = Fn(std::forward<F>(fn))]() mutable -> Task<void> {
      try {
        (void)co_await f();
      } catch (...) {
        internal::log_run_on_failure();
      }
    });
    (void)call;  // dropping the call abandons it: the reply frees the job at home
    return;
  } else {
    if constexpr (mesh::MeshMessage::fits_inline<Fn>) {
      if (shard != ctx.shard_id()) {
        auto handler = [](mesh::MeshMessage& m, mesh::Delivery how) {
          if (how != mesh::Delivery::run) return;
          try {
            (void)m.get<Fn>()();
          } catch (...) {
            internal::log_run_on_failure();
          }
        };
        ctx.mesh().send(shard, mesh::MeshMessage::make(+handler, Fn(std::forward<F>(fn))));
        return;
      }
    }
    auto call = submit_to(shard, [f = Fn(std::forward<F>(fn))]() mutable {
      try {
        (void)f();
      } catch (...) {
        internal::log_run_on_failure();
      }
    });
    (void)call;  // dropping the call abandons it: the reply frees the job at home
  }
}

}  // namespace veloq
