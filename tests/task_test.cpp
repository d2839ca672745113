#include <doctest/doctest.h>

#include "log_capture.hpp"

#include <veloq/mesh/submit_to.hpp>
#include <veloq/runtime/local_executor.hpp>
#include <veloq/runtime/notify.hpp>
#include <veloq/runtime/sleep.hpp>
#include <veloq/runtime/yield.hpp>

#include <array>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

using namespace veloq;
using namespace std::chrono_literals;

namespace {
Task<int> add(int a, int b) { co_return a + b; }

// A result with a cache line of its own; counts every copy of itself that was
// built at an address not aligned to 64 bytes (the test's own coroutine frame
// holds some too).
struct alignas(64) Line {
  static inline int misplaced = 0;
  std::array<unsigned char, 64> bytes{};
  Line() { check(); }
  Line(const Line& other) : bytes(other.bytes) { check(); }
  Line& operator=(const Line&) = default;
  void check() const {
    if (reinterpret_cast<std::uintptr_t>(this) % 64 != 0) ++misplaced;
  }
};
Task<Line> make_line(unsigned char fill) {
  co_await yield();
  Line line;
  line.bytes.fill(fill);
  co_return line;
}
Task<int> fail(std::string why) {
  co_await yield();
  throw std::runtime_error(why);
}
Task<void> count_to(int& counter, int n) {
  for (int i = 0; i < n; ++i) {
    ++counter;
    co_await yield();
  }
}
}  // namespace

TEST_CASE("a task returns its value to the awaiting task") {
  LocalExecutor ex;
  int v = ex.block_on([]() -> Task<int> { co_return co_await add(2, 3); }());
  CHECK(v == 5);
}

TEST_CASE("a task does nothing until it is awaited or spawned") {
  LocalExecutor ex;
  int counter = 0;
  ex.block_on([&]() -> Task<void> {
    Task<void> lazy = count_to(counter, 1);
    co_await yield();
    CHECK(counter == 0);
    co_await std::move(lazy);
    CHECK(counter == 1);
  }());
}

TEST_CASE("an exception in a child task propagates to the awaiter") {
  LocalExecutor ex;
  bool caught = ex.block_on([]() -> Task<bool> {
    try {
      co_await fail("boom");
    } catch (const std::runtime_error& e) {
      co_return std::string(e.what()) == "boom";
    }
    co_return false;
  }());
  CHECK(caught);
}

TEST_CASE("an exception escaping block_on reaches the caller") {
  LocalExecutor ex;
  CHECK_THROWS_WITH_AS(ex.block_on(fail("outer")), "outer", std::runtime_error);
}

TEST_CASE("spawned tasks run concurrently and join returns their results") {
  LocalExecutor ex;
  ex.block_on([]() -> Task<void> {
    int a = 0, b = 0;
    auto h1 = spawn(count_to(a, 100));
    auto h2 = spawn(count_to(b, 100));
    co_await yield();
    co_await yield();
    CHECK(a > 0);
    CHECK(b > 0);
    CHECK(a < 100);
    co_await h1;
    co_await h2;
    CHECK(a == 100);
    CHECK(b == 100);
    auto h3 = spawn(add(20, 22));
    CHECK(co_await h3 == 42);
  }());
}

TEST_CASE("a joiner resumes after the tasks queued before it, and at once when none are") {
  LocalExecutor ex;
  ex.block_on([]() -> Task<void> {
    std::vector<std::string> order;
    auto note = [](std::vector<std::string>& out, std::string what) -> Task<void> {
      out.push_back(std::move(what));
      co_return;
    };
    auto first = spawn(note(order, "first"));
    auto second = spawn(note(order, "second"));
    co_await first;  // `first` ends while `second` is still queued: we wait our turn
    order.emplace_back("joined first");
    co_await second;
    auto alone = spawn(note(order, "alone"));
    co_await alone;  // nothing else is ready: the hand-off path
    order.emplace_back("joined alone");
    CHECK(order == std::vector<std::string>{"first", "second", "joined first", "alone", "joined alone"});
    // A joiner cancelled while it waits is not handed the thread: it is destroyed.
    int reached = 0;
    auto waiter = [](int& after, JoinHandle<void> h) -> Task<void> {
      co_await h;
      ++after;
    };
    auto slow = spawn(count_to(reached, 3));
    auto joiner = spawn(waiter(reached, std::move(slow)));
    co_await yield();
    joiner.cancel();
    CHECK_THROWS_AS(co_await joiner, TaskCancelled);
    for (int i = 0; i < 5; ++i) co_await yield();
    CHECK(reached == 3);  // the awaited task ran to its end; the joiner never resumed
  }());
}

TEST_CASE("joining a failed task rethrows its exception") {
  LocalExecutor ex;
  ex.block_on([]() -> Task<void> {
    auto h = spawn(fail("spawned failure"));
    CHECK_THROWS_WITH_AS(co_await h, "spawned failure", std::runtime_error);
  }());
}

// Before, awaiting a handle whose result was taken dereferenced its null
// state (SIGSEGV), and take_result of a running void task returned nothing
// and gave up the handle.
TEST_CASE("awaiting an empty JoinHandle, or taking an unfinished task's result, is refused") {
  LocalExecutor ex;
  ex.block_on([]() -> Task<void> {
    auto h = spawn(add(1, 2));
    CHECK(co_await h == 3);
    CHECK_THROWS_AS(co_await h, RuntimeMisuse);  // already joined
    JoinHandle<void> empty;
    CHECK_THROWS_AS(co_await empty, RuntimeMisuse);
    CHECK_THROWS_AS(empty.take_result(), RuntimeMisuse);
    int counter = 0;
    auto running = spawn(count_to(counter, 3));
    CHECK_THROWS_AS(running.take_result(), RuntimeMisuse);  // no result yet
    CHECK(running.valid());                                 // and still joinable
    co_await running;
    CHECK(counter == 3);
  }());
}

// Before, the second joiner replaced the first as the task's joiner: the
// first never resumed; and a task awaiting its own handle waited forever.
TEST_CASE("a JoinHandle awaited by a second task at once, or by its own task, is refused") {
  LocalExecutor ex;
  ex.block_on([]() -> Task<void> {
    Notify go;
    auto target = spawn([](Notify& n) -> Task<int> {
      co_await n.wait();
      co_return 5;
    }(go));
    auto joiner = [](JoinHandle<int>& h, int& out) -> Task<void> { out = co_await h; };
    int first = 0, second = 0;
    auto a = spawn(joiner(target, first));
    auto b = spawn(joiner(target, second));
    co_await yield();  // a waits for target; b tries to as well
    CHECK(b.done());
    go.notify_one();
    for (int i = 0; i < 4; ++i) co_await yield();
    CHECK(a.done());
    CHECK(first == 5);
    CHECK_THROWS_AS(co_await b, RuntimeMisuse);
    CHECK(second == 0);

    JoinHandle<void> self;
    self = spawn([](JoinHandle<void>& me) -> Task<void> { co_await me; }(self));
    for (int i = 0; i < 4; ++i) co_await yield();
    CHECK(self.done());
    self.cancel();  // ends it if it still waits for itself
    CHECK_THROWS_AS(co_await self, RuntimeMisuse);
  }());
}

// Before, the awaiter kept a reference to the handle object it awaited: a
// handle moved (a vector growing) or destroyed while a task awaited it was
// read after it was gone (ASan heap-use-after-free; without ASan a SIGSEGV),
// and a handle joined or taken by someone else while the awaiter was queued
// to resume left it a null state.
TEST_CASE("a JoinHandle moved or destroyed while a task awaits it still delivers the result to that task") {
  LocalExecutor ex;
  ex.block_on([]() -> Task<void> {
    auto five_after = [](Notify& n) -> Task<int> {
      co_await n.wait();
      co_return 5;
    };
    auto joiner = [](JoinHandle<int>& h, int& out) -> Task<void> { out = co_await h; };

    // Moved: the vector reallocates under the awaiting task.
    Notify go;
    std::vector<JoinHandle<int>> handles;
    handles.push_back(spawn(five_after(go)));
    int got = 0;
    auto a = spawn(joiner(handles[0], got));
    co_await yield();  // a waits on handles[0]
    for (int i = 0; i < 100; ++i) handles.push_back(spawn(add(i, 1)));
    go.notify_one();
    co_await a;
    CHECK(got == 5);
    CHECK(!handles[0].valid());  // the join took the result out of the handle where it now lives
    for (std::size_t i = 1; i < handles.size(); ++i) CHECK(co_await handles[i] == static_cast<int>(i));

    // Destroyed: the awaiting task inherits the join.
    Notify go2;
    auto owned = std::make_unique<JoinHandle<int>>(spawn(five_after(go2)));
    got = 0;
    auto b = spawn(joiner(*owned, got));
    co_await yield();
    owned.reset();
    go2.notify_one();
    co_await b;
    CHECK(got == 5);
    CHECK(RuntimeContext::current().executor().live_tasks() == 1);  // only us
  }());
}

TEST_CASE("a JoinHandle another task awaits cannot be joined or taken in the meantime, even once its task is done") {
  LocalExecutor ex;
  ex.block_on([]() -> Task<void> {
    Notify go;
    auto h = spawn([](Notify& n) -> Task<int> {
      co_await n.wait();
      co_return 7;
    }(go));
    int got = 0;
    auto a = spawn([](JoinHandle<int>& h, int& out) -> Task<void> { out = co_await h; }(h, got));
    co_await yield();  // a waits on h
    go.notify_one();
    co_await yield();  // h's task ends, a is queued to resume
    CHECK(h.done());
    CHECK_THROWS_AS(h.take_result(), RuntimeMisuse);
    CHECK_THROWS_AS(co_await h, RuntimeMisuse);
    co_await a;
    CHECK(got == 7);
  }());
}

// The awaiting task inherits a dropped handle's join; cancelled in turn, it
// lets the task go as detach() would: it runs to its end, its failure is
// logged, and nothing leaks (the ASan build checks).
TEST_CASE("a task that inherited a dropped JoinHandle and is then cancelled lets the awaited task run on, detached") {
  test_support::LogCapture log;
  LocalExecutor ex;
  ex.block_on([]() -> Task<void> {
    Notify go;
    auto owned = std::make_unique<JoinHandle<int>>(spawn([](Notify& n) -> Task<int> {
      co_await n.wait();
      throw std::runtime_error("failed after its joiner was cancelled");
    }(go)));
    auto a = spawn([](JoinHandle<int>& h) -> Task<void> { (void)co_await h; }(*owned));
    co_await yield();
    owned.reset();
    a.cancel();
    CHECK_THROWS_AS(co_await a, TaskCancelled);
    go.notify_one();
    for (int i = 0; i < 4; ++i) co_await yield();
    CHECK(RuntimeContext::current().executor().live_tasks() == 1);
  }());
  CHECK(log.count("failed after its joiner was cancelled") == 1);
}

// A handle may outlive its executor (a result carried out of block_on, a
// handle declared before the executor). Before, releasing it returned the
// task's state to the destroyed executor's frame pool, and cancel() called
// into the destroyed executor: invalid reads and writes that valgrind
// reports (the sanitizer builds bypass the pool, so ASan does not see them).
TEST_CASE("JoinHandles that outlive their executor can be taken, cancelled and dropped") {
  JoinHandle<int> finished, dropped;
  JoinHandle<void> stopped;
  {
    auto ex = std::make_unique<LocalExecutor>();
    ex->block_on([](JoinHandle<int>& f, JoinHandle<int>& d, JoinHandle<void>& s) -> Task<void> {
      f = spawn(add(1, 2));
      d = spawn(add(3, 4));
      s = spawn([]() -> Task<void> { co_await sleep_for(10s); }());
      co_await yield();
    }(finished, dropped, stopped));
  }
  CHECK(finished.take_result() == 3);
  REQUIRE(stopped.done());  // the executor's end cancelled it
  stopped.cancel();
  CHECK_THROWS_AS(stopped.take_result(), TaskCancelled);
  dropped = JoinHandle<int>();
}

TEST_CASE("a detached task runs to its end after its handle is gone") {
  LocalExecutor ex;
  ex.block_on([]() -> Task<void> {
    int counter = 0;
    spawn(count_to(counter, 10)).detach();
    for (int i = 0; i < 20; ++i) co_await yield();
    CHECK(counter == 10);
  }());
}

TEST_CASE("a task's failure is logged once whether it fails after or before its handle is dropped; a cancel is not") {
  test_support::LogCapture logs;
  LocalExecutor ex;
  ex.block_on([]() -> Task<void> {
    auto fail = [](const char* why) -> Task<void> {
      co_await yield();
      throw std::runtime_error(why);
    };
    spawn(fail("failed after its detach")).detach();
    auto early = spawn(fail("failed before its drop"));
    Notify never;
    auto cancelled = spawn([](Notify& n) -> Task<void> { co_await n.wait(); }(never));
    for (int i = 0; i < 4; ++i) co_await yield();
    cancelled.cancel();
    for (int i = 0; i < 4; ++i) co_await yield();
    CHECK(early.done());
    CHECK(cancelled.done());
  }());
  CHECK(logs.count("failed after its detach") == 1);
  CHECK(logs.count("failed before its drop") == 1);
  CHECK(logs.count("failed: ") == 2);  // and nothing for the cancelled task
}

TEST_CASE("awaiting an empty Task throws RuntimeMisuse; a zero task budget is refused") {
  LocalExecutor ex;
  ex.block_on([]() -> Task<void> {
    auto child = []() -> Task<int> { co_return 1; };
    Task<int> t = child();
    Task<int> moved = std::move(t);
    CHECK(co_await std::move(moved) == 1);
    CHECK_THROWS_AS(co_await std::move(t), RuntimeMisuse);
  }());
  ShardConfig config;
  config.task_budget = 0;
  CHECK_THROWS_AS(LocalExecutor{config}, std::invalid_argument);
}

TEST_CASE("cancelling a suspended task destroys its frame and joining throws TaskCancelled") {
  LocalExecutor ex;
  ex.block_on([]() -> Task<void> {
    auto alive = std::make_shared<int>(1);
    Notify never;
    auto h = spawn([](std::shared_ptr<int> keep, Notify& n) -> Task<void> {
      co_await n.wait();
      (void)keep;
    }(alive, never));
    co_await yield();
    CHECK(alive.use_count() == 2);
    CHECK(never.waiters() == 1);
    h.cancel();
    CHECK_THROWS_AS(co_await h, TaskCancelled);
    CHECK(alive.use_count() == 1);  // the frame, and what it held, is gone
    CHECK(never.waiters() == 0);    // and its waiter unlinked itself
  }());
}

TEST_CASE("cancelling a task that never started and one that already finished") {
  LocalExecutor ex;
  ex.block_on([]() -> Task<void> {
    int counter = 0;
    auto not_started = spawn(count_to(counter, 5));
    not_started.cancel();
    CHECK_THROWS_AS(co_await not_started, TaskCancelled);
    CHECK(counter == 0);
    auto finished = spawn(add(1, 1));
    co_await yield();
    co_await yield();
    finished.cancel();
    CHECK(co_await finished == 2);
  }());
}

TEST_CASE("a task that cancels itself stops at its next suspension") {
  LocalExecutor ex;
  ex.block_on([]() -> Task<void> {
    int steps = 0;
    JoinHandle<void> self;
    self = spawn([](int& s, JoinHandle<void>& me) -> Task<void> {
      ++s;
      co_await yield();
      me.cancel();
      ++s;
      co_await yield();
      ++s;  // never reached
    }(steps, self));
    CHECK_THROWS_AS(co_await self, TaskCancelled);
    CHECK(steps == 2);
  }());
}

TEST_CASE("sleeping tasks wake in deadline order and a cancelled sleep never fires") {
  LocalExecutor ex;
  ex.block_on([]() -> Task<void> {
    std::vector<int> order;
    auto sleeper = [](std::vector<int>& out, int id, std::chrono::milliseconds d) -> Task<void> {
      co_await sleep_for(d);
      out.push_back(id);
    };
    auto a = spawn(sleeper(order, 3, 30ms));
    auto b = spawn(sleeper(order, 1, 10ms));
    auto c = spawn(sleeper(order, 2, 20ms));
    auto d = spawn(sleeper(order, 99, 15ms));
    co_await yield();
    d.cancel();
    co_await a;
    co_await b;
    co_await c;
    CHECK_THROWS_AS(co_await d, TaskCancelled);
    CHECK(order == std::vector<int>{1, 2, 3});
  }());
}

TEST_CASE("an executor destroyed with tasks still waiting destroys them") {
  auto alive = std::make_shared<int>(0);
  {
    LocalExecutor ex;
    ex.block_on([](std::shared_ptr<int> keep) -> Task<void> {
      spawn([](std::shared_ptr<int> k) -> Task<void> {
        co_await sleep_for(1h);
        (void)k;
      }(keep)).detach();
      co_await yield();
    }(alive));
    CHECK(alive.use_count() == 2);
    CHECK(ex.live_tasks() == 1);
  }
  CHECK(alive.use_count() == 1);
}

TEST_CASE("over-aligned results are built at aligned addresses: spawned, awaited, from submit_to, or in a frame") {
  LocalExecutor ex;
  Line::misplaced = 0;
  ex.block_on([]() -> Task<void> {
    std::vector<JoinHandle<Line>> handles;
    for (int i = 0; i < 64; ++i) handles.push_back(spawn(make_line(static_cast<unsigned char>(i))));
    for (int i = 0; i < 64; ++i) {
      CHECK(reinterpret_cast<std::uintptr_t>(LocalExecutor::handle_state(handles[i])) % 64 == 0);
      Line line = co_await handles[i];
      CHECK(line.bytes[63] == i);
    }
    for (int i = 0; i < 64; ++i) CHECK((co_await make_line(7)).bytes[0] == 7);
    // A cross-shard call's job holds its result too (here the call stays on shard 0).
    auto nine = [] {
      Line l;
      l.bytes.fill(9);
      return l;
    };
    std::vector<RemoteCall<Line>> calls;
    for (int i = 0; i < 64; ++i) calls.push_back(submit_to(0, nine));
    for (auto& call : calls) CHECK((co_await std::move(call)).bytes[31] == 9);
  }());
  CHECK(Line::misplaced == 0);
}
