#include <doctest/doctest.h>

#include <veloq/runtime/channel.hpp>
#include <veloq/runtime/gate.hpp>
#include <veloq/runtime/local_executor.hpp>
#include <veloq/runtime/mutex.hpp>
#include <veloq/runtime/notify.hpp>
#include <veloq/runtime/oneshot.hpp>
#include <veloq/runtime/semaphore.hpp>
#include <veloq/runtime/sleep.hpp>
#include <veloq/runtime/when_all.hpp>
#include <veloq/runtime/yield.hpp>

#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

using namespace veloq;
using namespace std::chrono_literals;

TEST_CASE("a semaphore serves waiters in arrival order and returns units of cancelled waiters") {
  LocalExecutor ex;
  ex.block_on([]() -> Task<void> {
    Semaphore sem(2);
    CHECK(sem.try_acquire(2));
    std::vector<int> order;
    auto waiter = [](Semaphore& s, std::vector<int>& out, int id, std::size_t n) -> Task<void> {
      co_await s.acquire(n);
      out.push_back(id);
    };
    auto big = spawn(waiter(sem, order, 1, 2));
    auto small = spawn(waiter(sem, order, 2, 1));
    co_await yield();
    CHECK(sem.waiters() == 2);
    sem.release(1);  // not enough for the first waiter: the second must not jump the queue
    co_await yield();
    CHECK(order.empty());
    sem.release(1);
    co_await big;
    CHECK(order == std::vector<int>{1});
    sem.release(2);
    co_await small;
    CHECK(order == std::vector<int>{1, 2});
    CHECK(sem.available() == 1);

    // A waiter cancelled after being granted gives its units back.
    Semaphore one(0);
    auto granted = spawn(waiter(one, order, 3, 1));
    co_await yield();
    one.release(1);  // grants the unit and queues the task...
    granted.cancel();  // ...which is cancelled before it resumes
    CHECK_THROWS_AS(co_await granted, TaskCancelled);
    CHECK(one.available() == 1);
  }());
}

namespace {
// Lets every task that is ready now run (and those they wake in turn).
Task<void> settle() {
  for (int i = 0; i < 4; ++i) co_await yield();
}

// Waits on `n` once and counts the wake-up.
Task<void> count_wakeup(Notify& n, int& woken) {
  co_await n.wait();
  ++woken;
}
}  // namespace

TEST_CASE("cancelling a semaphore's first waiter serves the smaller requests queued behind it") {
  LocalExecutor ex;
  ex.block_on([]() -> Task<void> {
    Semaphore sem(0);
    bool small_got = false;
    auto big = spawn([](Semaphore& s) -> Task<void> { co_await s.acquire(5); }(sem));
    auto small = spawn([](Semaphore& s, bool& got) -> Task<void> {
      co_await s.acquire(1);
      got = true;
    }(sem, small_got));
    co_await yield();
    REQUIRE(sem.waiters() == 2);
    sem.release(1);  // the first waiter wants 5, so the second one waits behind it
    CHECK(sem.waiters() == 2);
    big.cancel();
    CHECK_THROWS_AS(co_await big, TaskCancelled);
    co_await settle();
    CHECK(small_got);
    CHECK(sem.waiters() == 0);
    CHECK(sem.available() == 0);
    small.cancel();  // a no-op once it finished; a stuck waiter must not hang the test
    CHECK_NOTHROW(co_await small);
  }());
}

TEST_CASE("closing a semaphore fails its waiters with ClosedError") {
  LocalExecutor ex;
  ex.block_on([]() -> Task<void> {
    Semaphore sem(0);
    auto h = spawn([](Semaphore& s) -> Task<void> { co_await s.acquire(); }(sem));
    co_await yield();
    sem.close();
    CHECK_THROWS_AS(co_await h, ClosedError);
    CHECK_FALSE(sem.try_acquire());
  }());
}

TEST_CASE("notify_one keeps a permit for a later waiter and notify_all wakes everyone") {
  LocalExecutor ex;
  ex.block_on([]() -> Task<void> {
    Notify n;
    n.notify_one();
    co_await n.wait();  // consumes the permit at once
    int woken = 0;
    auto a = spawn(count_wakeup(n, woken));
    auto b = spawn(count_wakeup(n, woken));
    auto c = spawn(count_wakeup(n, woken));
    co_await yield();
    n.notify_one();
    co_await a;
    CHECK(woken == 1);
    n.notify_all();
    co_await b;
    co_await c;
    CHECK(woken == 3);

    Event e;
    auto waiter = spawn([](Event& ev) -> Task<void> { co_await ev.wait(); }(e));
    co_await yield();
    CHECK_FALSE(waiter.done());
    e.set();
    co_await waiter;
    co_await e.wait();  // stays set
  }());
}

TEST_CASE("a notify_one whose waiter is cancelled before it resumes goes to the next waiter") {
  LocalExecutor ex;
  ex.block_on([]() -> Task<void> {
    Notify n;
    int woken = 0;
    auto a = spawn(count_wakeup(n, woken));
    auto b = spawn(count_wakeup(n, woken));
    co_await yield();
    REQUIRE(n.waiters() == 2);
    n.notify_one();  // chooses a ...
    a.cancel();      // ... which is cancelled before it runs
    CHECK_THROWS_AS(co_await a, TaskCancelled);
    co_await settle();
    CHECK(woken == 1);
    b.cancel();
    CHECK_NOTHROW(co_await b);
    // With nobody left waiting, the passed-on notification is a permit.
    auto c = spawn(count_wakeup(n, woken));
    n.notify_one();
    c.cancel();  // c has not run yet: it never waited, so the permit stays
    CHECK_THROWS_AS(co_await c, TaskCancelled);
    co_await n.wait();  // consumes the permit at once
  }());
}

// The ASan build checks this one: the chosen tasks must not call back into
// the destroyed primitives.
TEST_CASE("a Notify or Semaphore destroyed before the task it woke resumes is not touched by that task") {
  LocalExecutor ex;
  ex.block_on([]() -> Task<void> {
    auto notify = std::make_unique<Notify>();
    auto sem = std::make_unique<Semaphore>(0);
    auto a = spawn([](Notify& n) -> Task<void> { co_await n.wait(); }(*notify));
    auto b = spawn([](Semaphore& s) -> Task<void> { co_await s.acquire(); }(*sem));
    co_await yield();
    notify->notify_one();  // chooses a
    sem->release(1);       // grants b
    notify.reset();
    sem.reset();
    a.cancel();
    b.cancel();
    CHECK_THROWS_AS(co_await a, TaskCancelled);
    CHECK_THROWS_AS(co_await b, TaskCancelled);
  }());
}

// The ASan build checks this one: before, the granted task read the freed
// semaphore's closed flag as it resumed (a heap-use-after-free).
TEST_CASE("a task granted units by a Semaphore destroyed before it resumes does not read the semaphore") {
  LocalExecutor ex;
  ex.block_on([]() -> Task<void> {
    auto sem = std::make_unique<Semaphore>(0);
    bool granted = false;
    auto h = spawn([](Semaphore& s, bool& got) -> Task<void> {
      co_await s.acquire();
      got = true;
    }(*sem, granted));
    co_await yield();
    sem->release(1);  // grants h ...
    sem.reset();      // ... and goes before h resumes
    co_await h;
    CHECK(granted);
  }());
}

TEST_CASE("a channel item or free slot is not stranded when the task it woke is cancelled") {
  LocalExecutor ex;
  ex.block_on([]() -> Task<void> {
    Channel<int> ch(1);
    std::optional<int> got_a, got_b;
    auto receiver = [](Channel<int>& c, std::optional<int>& out) -> Task<void> { out = co_await c.recv(); };
    auto a = spawn(receiver(ch, got_a));
    auto b = spawn(receiver(ch, got_b));
    co_await yield();
    co_await ch.send(7);  // wakes receiver a ...
    a.cancel();           // ... which is cancelled before it takes the item
    CHECK_THROWS_AS(co_await a, TaskCancelled);
    co_await settle();
    CHECK(ch.size() == 0);
    CHECK(got_b == std::optional<int>(7));
    b.cancel();
    CHECK_NOTHROW(co_await b);

    while (ch.try_recv()) {
    }
    co_await ch.send(0);  // full again
    bool sent_c = false, sent_d = false;
    auto sender = [](Channel<int>& c, int v, bool& sent) -> Task<void> {
      co_await c.send(v);
      sent = true;
    };
    auto c = spawn(sender(ch, 1, sent_c));
    auto d = spawn(sender(ch, 2, sent_d));
    co_await yield();
    CHECK(ch.try_recv() == std::optional<int>(0));  // a free slot wakes sender c ...
    c.cancel();                                      // ... which is cancelled first
    CHECK_THROWS_AS(co_await c, TaskCancelled);
    co_await settle();
    CHECK(sent_d);
    d.cancel();
    CHECK_NOTHROW(co_await d);
    CHECK(ch.try_recv() == std::optional<int>(2));
  }());
}

// Before, a slot freed for a waiting sender went to whoever sent next: the
// try_send below took it, and the woken sender went back to waiting behind
// it (with a stream of new senders, for good).
TEST_CASE("a channel slot freed for a waiting sender is that sender's; closing fails senders still waiting") {
  LocalExecutor ex;
  ex.block_on([]() -> Task<void> {
    Channel<int> ch(1);
    int first = 1;
    REQUIRE(ch.try_send(first));
    auto waiting = spawn([](Channel<int>& c) -> Task<void> { co_await c.send(2); }(ch));
    co_await yield();  // `waiting` waits for room
    CHECK(ch.try_recv() == std::optional<int>(1));
    int barging = 3;
    CHECK_FALSE(ch.try_send(barging));  // the slot is the waiting sender's
    co_await waiting;
    CHECK(ch.try_recv() == std::optional<int>(2));
    CHECK(ch.size() == 0);

    REQUIRE(ch.try_send(first));
    auto refused = spawn([](Channel<int>& c) -> Task<void> { co_await c.send(4); }(ch));
    co_await yield();
    ch.close();
    CHECK_THROWS_WITH_AS(co_await refused, "veloq: channel closed", ClosedError);
    CHECK(ch.try_recv() == std::optional<int>(1));  // what was queued still drains
    CHECK(ch.try_recv() == std::nullopt);
  }());
}

TEST_CASE("a mutex keeps a suspending critical section exclusive") {
  LocalExecutor ex;
  ex.block_on([]() -> Task<void> {
    Mutex m;
    int inside = 0, max_inside = 0;
    auto worker = [](Mutex& mu, int& in, int& max_in) -> Task<void> {
      for (int i = 0; i < 10; ++i) {
        auto guard = co_await mu.lock();
        ++in;
        max_in = std::max(max_in, in);
        co_await yield();
        --in;
      }
    };
    co_await when_all(worker(m, inside, max_inside), worker(m, inside, max_inside), worker(m, inside, max_inside));
    CHECK(max_inside == 1);
    CHECK_FALSE(m.locked());
    auto g = m.try_lock();
    CHECK(g.has_value());
    CHECK_FALSE(m.try_lock().has_value());
  }());
}

TEST_CASE("a gate refuses new work once closed and waits for holders to leave") {
  LocalExecutor ex;
  ex.block_on([]() -> Task<void> {
    Gate gate;
    bool finished = false;
    auto work = spawn([](Gate& g, bool& done) -> Task<void> {
      auto holder = g.enter();
      co_await sleep_for(5ms);
      done = true;
    }(gate, finished));
    co_await yield();
    CHECK(gate.holders() == 1);
    auto drained = gate.close();  // closed from here on, before anything awaits
    CHECK(gate.closed());
    CHECK_THROWS_AS((void)gate.enter(), ClosedError);
    co_await drained;
    CHECK(finished);
    CHECK(gate.holders() == 0);
    co_await gate.close();  // closing again, with no holders, does not wait
    co_await work;
  }());
}

TEST_CASE("a bounded channel applies back-pressure, keeps order and drains after close") {
  LocalExecutor ex;
  ex.block_on([]() -> Task<void> {
    Channel<int> ch(4);
    int sent = 0;
    auto producer = spawn([](Channel<int>& c, int& s) -> Task<void> {
      for (int i = 0; i < 100; ++i) {
        co_await c.send(i);
        ++s;
      }
      c.close();
    }(ch, sent));
    co_await yield();
    CHECK(sent == 4);  // the fifth send waits for room
    CHECK(ch.size() == 4);
    std::vector<int> got;
    while (auto v = co_await ch.recv()) got.push_back(*v);
    co_await producer;
    REQUIRE(got.size() == 100);
    for (int i = 0; i < 100; ++i) CHECK(got[static_cast<std::size_t>(i)] == i);
    int x = 1;
    CHECK_THROWS_AS(ch.try_send(x), ClosedError);
  }());
}

TEST_CASE("a oneshot delivers one value once, or an error when the sender is dropped") {
  LocalExecutor ex;
  ex.block_on([]() -> Task<void> {
    auto [tx, rx] = make_oneshot<std::string>();
    spawn([](OneshotSender<std::string> s) -> Task<void> {
      co_await yield();
      s.send("hello");
    }(std::move(tx))).detach();
    CHECK(co_await rx.receive() == "hello");

    auto [tx2, rx2] = make_oneshot<int>();
    { auto dropped = std::move(tx2); }
    CHECK_THROWS_AS(co_await rx2.receive(), ClosedError);

    auto [tx3, rx3] = make_oneshot<int>();
    auto taken = std::move(rx3);
    tx3.send(3);
    CHECK_THROWS_AS(co_await rx3.receive(), RuntimeMisuse);  // NOLINT(bugprone-use-after-move): the misuse under test
    CHECK(co_await taken.receive() == 3);
    // The value is handed out once: a second receive is refused, not given what the first moved from.
    CHECK_THROWS_WITH_AS(co_await taken.receive(), "veloq: oneshot already received", ClosedError);
  }());
}

TEST_CASE("when_all returns results in order and rethrows the first failure after all finish") {
  LocalExecutor ex;
  ex.block_on([]() -> Task<void> {
    auto value = [](int v, std::chrono::milliseconds d) -> Task<int> {
      co_await sleep_for(d);
      co_return v;
    };
    auto nothing = []() -> Task<void> { co_return; };
    auto [a, b, c] = co_await when_all(value(1, 3ms), value(2, 1ms), nothing());
    CHECK(a == 1);
    CHECK(b == 2);
    (void)c;

    std::vector<Task<int>> many;
    for (int i = 0; i < 50; ++i) many.push_back(value(i, 0ms));
    auto results = co_await when_all(std::move(many));
    REQUIRE(results.size() == 50);
    CHECK(results[49] == 49);

    int finished = 0;
    auto slow = [](int& f) -> Task<int> {
      co_await sleep_for(2ms);
      ++f;
      co_return 0;
    };
    auto failing = []() -> Task<int> {
      throw std::runtime_error("first");
      co_return 0;
    };
    CHECK_THROWS_WITH(co_await when_all(failing(), slow(finished)), "first");
    CHECK(finished == 1);
  }());
}

TEST_CASE("when_all cancels the children it already started when starting another fails") {
  LocalExecutor ex;
  ex.block_on([]() -> Task<void> {
    int finished = 0;
    auto slow = [](int& f) -> Task<void> {
      co_await sleep_for(5ms);
      ++f;
    };
    std::vector<Task<void>> tasks;
    tasks.push_back(slow(finished));
    tasks.emplace_back();  // an empty Task: spawning it throws RuntimeMisuse
    CHECK_THROWS_AS(co_await when_all(std::move(tasks)), RuntimeMisuse);
    CHECK_THROWS_AS(co_await when_all(slow(finished), Task<void>{}), RuntimeMisuse);
    co_await sleep_for(20ms);
    CHECK(finished == 0);
  }());
}

TEST_CASE("yield lets the other ready tasks run first") {
  LocalExecutor ex;
  ex.block_on([]() -> Task<void> {
    std::vector<int> order;
    auto h = spawn([](std::vector<int>& o) -> Task<void> {
      o.push_back(1);
      co_return;
    }(order));
    co_await yield();
    order.push_back(2);
    co_await h;
    CHECK(order == std::vector<int>{1, 2});
  }());
}

namespace {
// Waits for `waiter`, bounded: the shard runs a few turns, then the waiter
// must have finished (a waiter left hanging fails here instead of hanging the
// test) with ClosedError saying `message`. Then the shard must still run a
// task spawned afresh.
Task<void> expect_closed(JoinHandle<void>& waiter, std::string message) {
  co_await settle();
  REQUIRE(waiter.done());
  CHECK_THROWS_WITH_AS(co_await waiter, message.c_str(), ClosedError);
  auto later = spawn([]() -> Task<int> {
    co_await yield();
    co_return 7;
  }());
  CHECK(co_await later == 7);
}

// Holds a mutex guard that is never destroyed: the test destroys the mutex
// while it is held, and unlocking a destroyed mutex is a misuse of its own,
// not the one under test.
template <typename T>
union Abandoned {
  explicit Abandoned(T&& held) : value(std::move(held)) {}
  ~Abandoned() {}
  T value;
};

Task<void> acquire_one(Semaphore& s, bool& got) {
  co_await s.acquire();
  got = true;
}
}  // namespace

TEST_CASE("a semaphore destroyed with its owning task fails its waiter with ClosedError; one it granted keeps its unit") {
  LocalExecutor ex;
  ex.block_on([]() -> Task<void> {
    JoinHandle<void> granted, refused;
    bool got_granted = false, got_refused = false;
    co_await spawn([](JoinHandle<void>& granted, JoinHandle<void>& refused, bool& got_granted,
                      bool& got_refused) -> Task<void> {
      Semaphore sem(0);
      granted = spawn(acquire_one(sem, got_granted));
      refused = spawn(acquire_one(sem, got_refused));
      co_await yield();
      REQUIRE(sem.waiters() == 2);
      sem.release(1);  // grants the first waiter, which has not resumed when `sem` goes
    }(granted, refused, got_granted, got_refused));
    co_await expect_closed(refused, "veloq: semaphore destroyed while a task waited on it");
    CHECK_FALSE(got_refused);
    co_await granted;
    CHECK(got_granted);
  }());
}

TEST_CASE("a mutex destroyed while a task waits to lock it fails that task with ClosedError") {
  LocalExecutor ex;
  ex.block_on([]() -> Task<void> {
    auto mutex = std::make_unique<Mutex>();
    Abandoned<Mutex::Guard> held(std::move(*mutex->try_lock()));
    auto waiter = spawn([](Mutex& m) -> Task<void> { auto guard = co_await m.lock(); }(*mutex));
    co_await yield();
    REQUIRE_FALSE(waiter.done());
    mutex.reset();
    co_await expect_closed(waiter, "veloq: mutex destroyed while a task waited on it");
  }());
}

TEST_CASE("a notify destroyed while tasks wait fails them with ClosedError; the one notify_one chose still wakes") {
  LocalExecutor ex;
  ex.block_on([]() -> Task<void> {
    auto notify = std::make_unique<Notify>();
    int woken = 0;
    auto chosen = spawn(count_wakeup(*notify, woken));
    auto refused = spawn(count_wakeup(*notify, woken));
    co_await yield();
    REQUIRE(notify->waiters() == 2);
    notify->notify_one();  // chooses the first, which has not resumed when the notify goes
    notify.reset();
    co_await expect_closed(refused, "veloq: notify destroyed while a task waited on it");
    co_await chosen;
    CHECK(woken == 1);
  }());
}

TEST_CASE("an event destroyed while a task waits for it fails that task with ClosedError") {
  LocalExecutor ex;
  ex.block_on([]() -> Task<void> {
    auto event = std::make_unique<Event>();
    auto waiter = spawn([](Event& e) -> Task<void> { co_await e.wait(); }(*event));
    co_await yield();
    REQUIRE_FALSE(waiter.done());
    event.reset();
    co_await expect_closed(waiter, "veloq: event destroyed while a task waited on it");
  }());
}

namespace {
// A full channel with a sender waiting for room, and an empty one with a
// receiver waiting for an item (once they have run: yield first).
struct ChannelWaiters {
  std::unique_ptr<Channel<int>> full = std::make_unique<Channel<int>>(1);
  std::unique_ptr<Channel<int>> empty = std::make_unique<Channel<int>>(1);
  JoinHandle<void> sender;
  JoinHandle<void> receiver;
  ChannelWaiters() {
    int first = 1;
    REQUIRE(full->try_send(first));
    sender = spawn([](Channel<int>& c) -> Task<void> { co_await c.send(2); }(*full));
    receiver = spawn([](Channel<int>& c) -> Task<void> { (void)co_await c.recv(); }(*empty));
  }
};
}  // namespace

TEST_CASE("a channel destroyed while a sender waits for room or a receiver for an item fails them with ClosedError") {
  LocalExecutor ex;
  ex.block_on([]() -> Task<void> {
    ChannelWaiters c;
    co_await yield();
    REQUIRE_FALSE(c.sender.done());
    REQUIRE_FALSE(c.receiver.done());
    c.full.reset();
    c.empty.reset();
    co_await expect_closed(c.sender, "veloq: channel destroyed while a task waited on it");
    co_await expect_closed(c.receiver, "veloq: channel destroyed while a task waited on it");
  }());
}

// Woken, then the primitive goes before the task runs: the lock's guard
// would unlock a freed mutex, and the channel's sender and receiver would
// go on to read the freed channel (before: they resumed without an error).
TEST_CASE("a mutex or channel destroyed after waking a task, before it runs, fails that task with ClosedError") {
  LocalExecutor ex;
  ex.block_on([]() -> Task<void> {
    auto mutex = std::make_unique<Mutex>();
    std::optional<Mutex::Guard> held(std::move(*mutex->try_lock()));
    auto locker = spawn([](Mutex& m) -> Task<void> { auto guard = co_await m.lock(); }(*mutex));
    ChannelWaiters c;
    co_await yield();
    REQUIRE_FALSE(locker.done());
    REQUIRE_FALSE(c.sender.done());
    REQUIRE_FALSE(c.receiver.done());
    held.reset();                     // grants the lock to `locker` ...
    REQUIRE(c.full->try_recv());      // ... the free slot to the sender ...
    int item = 3;
    REQUIRE(c.empty->try_send(item));  // ... and wakes the receiver
    mutex.reset();                    // then all three go before the tasks run
    c.full.reset();
    c.empty.reset();
    co_await expect_closed(locker, "veloq: mutex destroyed while a task waited on it");
    co_await expect_closed(c.sender, "veloq: channel destroyed while a task waited on it");
    co_await expect_closed(c.receiver, "veloq: channel destroyed while a task waited on it");
  }());
}

TEST_CASE("receivers woken by close(), their channel destroyed before they run, fail with ClosedError") {
  LocalExecutor ex;
  ex.block_on([]() -> Task<void> {
    auto channel = std::make_unique<Channel<int>>(1);
    auto receive = [](Channel<int>& c) -> Task<void> { (void)co_await c.recv(); };
    JoinHandle<void> first = spawn(receive(*channel));
    JoinHandle<void> second = spawn(receive(*channel));
    co_await yield();
    REQUIRE_FALSE(first.done());
    REQUIRE_FALSE(second.done());
    channel->close();  // wakes both receivers ...
    channel.reset();   // ... and the channel goes before they run
    co_await expect_closed(first, "veloq: channel destroyed while a task waited on it");
    co_await expect_closed(second, "veloq: channel destroyed while a task waited on it");
  }());
}

TEST_CASE("a gate destroyed while a task awaits close() fails that task with ClosedError; its holders may leave later") {
  LocalExecutor ex;
  ex.block_on([]() -> Task<void> {
    auto gate = std::make_unique<Gate>();
    std::optional<Gate::Holder> holder(gate->enter());
    auto closer = spawn([](Gate& g) -> Task<void> { co_await g.close(); }(*gate));
    co_await yield();
    REQUIRE_FALSE(closer.done());
    gate.reset();
    co_await expect_closed(closer, "veloq: gate destroyed while a task waited on it");
    // The holder leaves after its gate is gone (before, it wrote into the
    // freed gate: ASan heap-use-after-free).
    holder.reset();
  }());
}

// The ASan build checks this one for leaks and use-after-free. The executor
// destroys its newest task first, so the task that owns the primitives goes
// before the tasks waiting on them: their wake-ups arrive while the executor
// tears its tasks down, and must neither run them nor leave them behind.
TEST_CASE("primitives destroyed while the shard shuts down, with tasks waiting on them, leak nothing") {
  struct Primitives {
    Semaphore sem{0};
    Notify notify;
    Event event;
    Channel<int> channel{1};
  };
  auto alive = std::make_shared<int>(0);
  bool resumed = false;
  {
    LocalExecutor ex;
    ex.block_on([](std::shared_ptr<int> keep, bool& resumed) -> Task<void> {
      auto primitives = std::make_unique<Primitives>();
      Primitives& p = *primitives;
      auto waiter = [](std::shared_ptr<int> k, bool& r, Task<void> wait) -> Task<void> {
        co_await std::move(wait);
        r = true;
        (void)k;
      };
      spawn(waiter(keep, resumed, [](Semaphore& s) -> Task<void> { co_await s.acquire(); }(p.sem))).detach();
      spawn(waiter(keep, resumed, [](Notify& n) -> Task<void> { co_await n.wait(); }(p.notify))).detach();
      spawn(waiter(keep, resumed, [](Event& e) -> Task<void> { co_await e.wait(); }(p.event))).detach();
      spawn(waiter(keep, resumed, [](Channel<int>& c) -> Task<void> { (void)co_await c.recv(); }(p.channel))).detach();
      spawn([](std::unique_ptr<Primitives> owned, std::shared_ptr<int> k) -> Task<void> {
        co_await sleep_for(1h);
        (void)owned;
        (void)k;
      }(std::move(primitives), keep)).detach();
      co_await settle();
    }(alive, resumed));
    CHECK(ex.live_tasks() == 5);
    CHECK(alive.use_count() == 6);
  }
  CHECK(alive.use_count() == 1);
  CHECK_FALSE(resumed);
}
