// Sharded<T>: one instance of a service per shard, each built and used only
// on its own shard, so the service needs no locks.
//
//   struct Counter {
//     std::uint64_t hits = 0;
//     veloq::Task<void> stop() { co_return; }   // optional: runs on the instance's shard
//   };
//   veloq::Sharded<Counter> counters;
//   co_await counters.start();
//   ++counters.local().hits;
//   auto n = co_await counters.invoke_on(1, [](Counter& c) { return c.hits; });
//   co_await counters.stop();
#pragma once

#include <veloq/mesh/submit_to.hpp>
#include <veloq/runtime/errors.hpp>
#include <veloq/runtime/gate.hpp>
#include <veloq/runtime/notify.hpp>

#include <exception>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace veloq {

template <typename T>
class Sharded {
 public:
  Sharded() = default;
  Sharded(const Sharded&) = delete;
  Sharded& operator=(const Sharded&) = delete;
  ~Sharded() {
    for (auto& instance : instances_)
      if (instance) log().error("Sharded<T> destroyed without stop(); instances leak to avoid cross-shard frees");
    for (auto& instance : instances_) (void)instance.release();
  }

  // Constructs T(args...) on every shard, each on its own thread. If a
  // constructor throws, the instances the other shards built are stopped and
  // destroyed (see stop()) before the first exception is rethrown: a caller
  // whose start() failed has nothing to stop, and nothing leaks. A start()
  // before the previous stop() has ended throws RuntimeMisuse.
  template <typename... Args>
  Task<void> start(Args... args) {
    if (started_)
      throw RuntimeMisuse("veloq: Sharded<T>::start on shard " + std::to_string(shard_id()) +
                          " while it is started (stop() it first)");
    started_ = true;
    instances_.resize(shard_count());
    stopping_.resize(shard_count());
    // Named, not a temporary inside co_await: see the g++ 12 note in submit_to.hpp.
    auto build = [this, args...]() { instances_[shard_id()] = std::make_unique<Local>(args...); };
    std::exception_ptr failed;
    try {
      co_await veloq::invoke_on_all(std::move(build));
    } catch (...) {
      failed = std::current_exception();
    }
    if (!failed) co_return;
    co_await stop();
    std::rethrow_exception(failed);
  }

  // This shard's instance; throws RuntimeMisuse before start() or after
  // stop(), as calls from other shards do back to their caller.
  T& local() { return here("used").instance; }

  // Calls fn(instance, args...) on `shard`: fn takes a T&, or is a member
  // function of T, and may return a Task. The call, and the Task it returns,
  // run inside the instance's gate: stop() waits for them before it destroys
  // the instance, and calls that arrive once stop() has begun throw
  // RuntimeMisuse. A lambda with at most 8 bytes of captures, no args and a
  // small trivially copyable result travels inside the mesh messages (see
  // submit_to.hpp): the fastest call there is. A member function pointer
  // alone is 16 bytes, so that form always ships a job.
  template <typename F, typename... Args>
  auto invoke_on(unsigned shard, F fn, Args... args) {
    return submit_to(shard, [this, fn = std::move(fn), args...]() mutable {
      return call_here([&](T& instance) { return std::invoke(fn, instance, args...); });
    });
  }

  // Calls fn(instance) on every shard, as above, and waits for all.
  template <typename F>
  Task<void> invoke_on_all(F fn) {
    return veloq::invoke_on_all([this, fn = std::move(fn)]() mutable { return call_here(fn); });
  }

  // On each shard: refuses new calls, runs the instance's `Task<void> stop()`
  // (if T has one), waits for the calls still running to end, and destroys
  // the instance there. A stop() while another runs waits for that one on
  // each shard rather than stop (and later use) an instance the other destroys.
  // Once it has ended, start() may build new instances.
  Task<void> stop() {
    // Named, not a temporary inside co_await: see the g++ 12 note in submit_to.hpp.
    auto stop_here = [this]() -> Task<void> {
      Local* local = local_here();
      if (local == nullptr) co_return;  // never started, or stopped
      unsigned id = shard_id();
      if (Event* running = stopping_[id]) {
        co_await running->wait();
        co_return;
      }
      // Published while this call stops the instance; set when it is done,
      // even if the call's task is cancelled, so that waiters always resume.
      struct Stopping {
        Event done;
        Event*& published;
        explicit Stopping(Event*& slot) : published(slot) { published = &done; }
        ~Stopping() {
          published = nullptr;
          done.set();
        }
      } stopping{stopping_[id]};
      Gate::Drained calls_ended = local->calls.close();
      if constexpr (requires(T& t) { t.stop(); }) co_await local->instance.stop();
      co_await calls_ended;
      instances_[id].reset();
    };
    co_await veloq::invoke_on_all(std::move(stop_here));
    started_ = false;
  }

 private:
  // One shard's instance, and the gate its calls from other shards hold.
  struct Local {
    template <typename... Args>
    explicit Local(const Args&... args) : instance(args...) {}
    T instance;
    Gate calls;
  };

  // This shard's instance, or null before start() and after stop().
  Local* local_here() const noexcept {
    unsigned id = shard_id();
    return id < instances_.size() ? instances_[id].get() : nullptr;
  }
  Local& here(const char* what) {
    Local* local = local_here();
    if (local == nullptr)
      throw RuntimeMisuse("veloq: Sharded<T> " + std::string(what) + " on shard " + std::to_string(shard_id()) +
                          ", which has no instance (before start() or after stop())");
    return *local;
  }

  // Runs fn(instance) on this shard inside the instance's gate; a Task it
  // returns holds the gate until it ends.
  template <typename F>
  auto call_here(F&& fn) {
    Local& local = here("called");
    if (local.calls.closed())
      throw RuntimeMisuse("veloq: Sharded<T> called on shard " + std::to_string(shard_id()) + " while it stops");
    Gate::Holder inside = local.calls.enter();
    if constexpr (internal::TaskValue<std::invoke_result_t<F&, T&>>::is_task)
      return held_until_done(std::move(inside), fn(local.instance));
    else
      return fn(local.instance);
  }
  template <typename U>
  static Task<U> held_until_done(Gate::Holder inside, Task<U> call) {
    (void)inside;
    co_return co_await std::move(call);
  }

  std::vector<std::unique_ptr<Local>> instances_;
  bool started_ = false;  // from start() until a stop() has ended; read where start() and stop() are called
  std::vector<Event*> stopping_;  // [shard]: the stop() under way there; each touched on its own shard only
};

}  // namespace veloq
