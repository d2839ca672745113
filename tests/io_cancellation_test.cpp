#include <doctest/doctest.h>

#include "io_test_support.hpp"

#include <veloq/io/cancellation.hpp>
#include <veloq/io/io_error.hpp>
#include <veloq/io/with_timeout.hpp>
#include <veloq/mesh/submit_to.hpp>
#include <veloq/runtime/channel.hpp>
#include <veloq/runtime/gate.hpp>
#include <veloq/runtime/local_executor.hpp>
#include <veloq/runtime/mutex.hpp>
#include <veloq/runtime/runtime.hpp>
#include <veloq/runtime/semaphore.hpp>
#include <veloq/runtime/sleep.hpp>
#include <veloq/runtime/task_scope.hpp>
#include <veloq/runtime/yield.hpp>

#include <fcntl.h>
#include <sys/socket.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <optional>
#include <string>
#include <thread>
#include <vector>

using namespace veloq;
using namespace veloq::io;
using namespace std::chrono_literals;

namespace {

// Reads into a buffer that lives in this coroutine's frame.
Task<std::size_t> read_into_frame(TcpStream& stream) {
  std::array<char, 256> buffer{};
  std::size_t n = co_await stream.read(buffer.data(), buffer.size());
  co_return n;
}

Task<void> let_others_run() {
  for (int i = 0; i < 4; ++i) co_await veloq::yield();
}

// Longer than any test waits: a region that is not stopped ends late, and fails its check.
Task<void> sleep_3s() { co_await veloq::sleep_for(3s); }

Task<TcpStream> accept_one(TcpListener& listener) { co_return co_await listener.accept(); }

Task<void> lock_once(Mutex& mutex) { auto guard = co_await mutex.lock(); }
Task<void> acquire_one(Semaphore& units) { co_await units.acquire(); }
Task<std::optional<int>> receive_one(Channel<int>& channel) { co_return co_await channel.recv(); }
Task<int> join_one(JoinHandle<int>& handle) { co_return co_await handle; }
Task<void> join_scope(TaskScope& scope) { co_await scope.join(); }
Task<int> await_call(RemoteCall<int>& call) { co_return co_await call; }
Task<int> await_owned_call(RemoteCall<int> call) { co_return co_await call; }
Task<void> wait_drained(Gate::Drained& drained) { co_await drained; }
Task<void> leave_after(std::optional<Gate::Holder>& holder, Clock::duration delay) {
  co_await veloq::sleep_for(delay);
  holder.reset();
}

RuntimeConfig two_unpinned_shards() {
  RuntimeConfig config;
  config.shards = 2;
  config.pin_threads = false;
  return config;
}

// Holds the lock for `delay`, so that a lock nothing stops still ends (late).
Task<void> hold_for(Mutex& mutex, Clock::duration delay) {
  auto guard = co_await mutex.lock();
  co_await veloq::sleep_for(delay);
}
Task<void> release_after(Semaphore& units, Clock::duration delay) {
  co_await veloq::sleep_for(delay);
  units.release();
}
Task<void> send_after(Channel<int>& channel, int value, Clock::duration delay) {
  co_await veloq::sleep_for(delay);
  co_await channel.send(value);
}
Task<int> answer_after(Clock::duration delay) {
  co_await veloq::sleep_for(delay);
  co_return 42;
}

// Expects `region` to end with TimeoutError naming `wait`, well before the 3 s backstops.
template <typename T>
Task<void> expect_timeout(Task<T> region, std::string wait) {
  auto start = Clock::now();
  try {
    co_await with_timeout(30ms, std::move(region));
    FAIL("not stopped: " << wait);
  } catch (const TimeoutError& e) {
    CHECK(std::string(e.what()).find(wait) == 0);
  }
  CHECK(Clock::now() - start < 2s);
}

// Connects to `address` after `delay`, so that an accept nothing stops still ends (late).
Task<void> connect_after(SocketAddress address, Clock::duration delay) {
  co_await veloq::sleep_for(delay);
  auto stream = co_await TcpStream::connect(address);
  co_await veloq::sleep_for(1h);  // keeps the connection open until cancelled
}

}  // namespace

TEST_CASE("cancelling a task cancels its pending receive and the stream stays usable") {
  LocalExecutor ex;
  ex.block_on([]() -> Task<void> {
    auto pair = co_await io_test::connected_pair();
    auto reader = spawn(read_into_frame(pair.client));
    co_await let_others_run();  // the receive is in the kernel now
    reader.cancel();
    CHECK_THROWS_AS(co_await reader, TaskCancelled);
    // Data sent afterwards is not lost into the cancelled task's freed buffer.
    co_await pair.server.write_all("ping", 4);
    char got[4];
    co_await pair.client.read_exact(got, 4);
    CHECK(std::string(got, 4) == "ping");
  }());
}

TEST_CASE("a task destroyed while its receive is in flight frees nothing the kernel still uses") {
  // Run under ASan (-Db_sanitize=address): a kernel write into a freed frame,
  // or a completion for a freed record, would be reported.
  LocalExecutor ex;
  ex.block_on([]() -> Task<void> {
    auto pair = co_await io_test::connected_pair();
    for (int round = 0; round < 50; ++round) {
      auto reader = spawn(read_into_frame(pair.client));
      co_await veloq::yield();
      // Data and cancellation race: sometimes the data wins, sometimes the cancel.
      if (round % 2 == 0) co_await pair.server.write_all("data", 4);
      reader.cancel();
      try {
        co_await reader;
      } catch (const TaskCancelled&) {
      }
    }
  }());
}

TEST_CASE("an executor shut down with receives in flight cancels them cleanly") {
  io_test::TcpPair* leaked = nullptr;
  {
    LocalExecutor ex;
    ex.block_on([&]() -> Task<void> {
      static io_test::TcpPair pair;
      pair = co_await io_test::connected_pair();
      leaked = &pair;
      for (int i = 0; i < 10; ++i) spawn(read_into_frame(pair.client)).detach();
      co_await let_others_run();
    }());
    // ~LocalExecutor destroys the ten readers with their receives in flight.
  }
  *leaked = {};
  CHECK(true);
}

TEST_CASE("a sleeping task is cancelled through its JoinHandle") {
  LocalExecutor ex;
  ex.block_on([]() -> Task<void> {
    auto start = Clock::now();
    auto sleeper = spawn([]() -> Task<void> { co_await sleep_for(1h); }());
    co_await veloq::yield();
    sleeper.cancel();
    CHECK_THROWS_AS(co_await sleeper, TaskCancelled);
    CHECK(Clock::now() - start < 5s);
  }());
}

TEST_CASE("a CancellationToken cancels the pending receive of the task running under it") {
  LocalExecutor ex;
  ex.block_on([]() -> Task<void> {
    auto pair = co_await io_test::connected_pair();
    CancellationToken token;
    auto reader = spawn(with_cancellation(token, read_into_frame(pair.client)));
    co_await let_others_run();
    token.cancel();
    try {
      co_await reader;
      FAIL("the read was not cancelled");
    } catch (const OperationCancelled& e) {
      CHECK(e.code().value() == ECANCELED);
      CHECK(std::string(e.what()).find("recv 127.0.0.1:") == 0);
    }
    // Work started under a cancelled token fails at once.
    CHECK_THROWS_AS(co_await with_cancellation(token, read_into_frame(pair.client)), OperationCancelled);
  }());
}

TEST_CASE("with_timeout returns the result of work that finishes in time") {
  LocalExecutor ex;
  ex.block_on([]() -> Task<void> {
    auto pair = co_await io_test::connected_pair();
    co_await pair.server.write_all("abc", 3);
    std::size_t n = co_await with_timeout(5s, read_into_frame(pair.client));
    CHECK(n == 3);
  }());
}

TEST_CASE("with_timeout throws TimeoutError when a receive outlives the deadline") {
  LocalExecutor ex;
  ex.block_on([]() -> Task<void> {
    auto pair = co_await io_test::connected_pair();
    auto start = Clock::now();
    try {
      co_await with_timeout(50ms, read_into_frame(pair.client));
      FAIL("no timeout");
    } catch (const TimeoutError& e) {
      CHECK(e.code().value() == ETIMEDOUT);
    }
    auto took = Clock::now() - start;
    CHECK(took >= 50ms);
    CHECK(took < 5s);
    // The stream is still usable after the timed-out read.
    co_await pair.server.write_all("z", 1);
    char c = 0;
    co_await pair.client.read_exact(&c, 1);
    CHECK(c == 'z');
  }());
}

TEST_CASE("a deadline on a single receive throws TimeoutError naming the receive") {
  LocalExecutor ex;
  ex.block_on([]() -> Task<void> {
    auto pair = co_await io_test::connected_pair();
    char buffer[8];
    try {
      co_await pair.client.read(buffer, sizeof buffer).with_timeout(20ms);
      FAIL("no timeout");
    } catch (const TimeoutError& e) {
      CHECK(std::string(e.what()).find("recv 127.0.0.1:") == 0);
      CHECK(std::string(e.what()).find("(ETIMEDOUT)") != std::string::npos);
    }
  }());
}

TEST_CASE("nested with_timeout: the outer deadline stops the inner work") {
  LocalExecutor ex;
  ex.block_on([]() -> Task<void> {
    auto pair = co_await io_test::connected_pair();
    auto inner = [](TcpStream& s) -> Task<std::size_t> { co_return co_await with_timeout(1h, read_into_frame(s)); };
    CHECK_THROWS_AS(co_await with_timeout(30ms, inner(pair.client)), TimeoutError);
  }());
}

TEST_CASE("write_all stopped by its deadline mid-transfer throws TimeoutError, never reports a partial send as done") {
  // 64 KiB socket buffers on both ends keep each send short, so the 4 MiB
  // go out in many partial sends however fast the draining thread is. (With
  // default buffers, a reader that keeps up lets one send take everything in
  // a single syscall, and no deadline can land mid-transfer: on kernel 6.18
  // every transfer finished in 2 runs of 20.) Deadlines from 50 us to 48 ms
  // land before, during and after the transfer. A call that returns must
  // have delivered every byte.
  LocalExecutor ex;
  ex.block_on([]() -> Task<void> {
    constexpr std::size_t size = 4 << 20;
    std::vector<std::byte> data(size);
    int completed = 0, timed_out = 0;
    for (int i = 0; i < 100; ++i) {
      auto pair = co_await io_test::connected_pair();
      pair.client.set_send_buffer_size(64 * 1024);
      pair.server.set_receive_buffer_size(64 * 1024);
      std::atomic<std::size_t> received{0};
      std::thread reader([fd = pair.server.fd(), &received] {
        std::vector<char> buffer(64 * 1024);
        for (;;) {
          ssize_t n = ::recv(fd, buffer.data(), buffer.size(), 0);
          if (n <= 0) break;
          received += static_cast<std::size_t>(n);
        }
      });
      bool returned = false;
      try {
        auto deadline = std::chrono::microseconds((50 + 5 * (i % 10)) << (i / 10));
        co_await pair.client.write_all(data.data(), size).with_timeout(deadline);
        returned = true;
      } catch (const TimeoutError&) {
        ++timed_out;
      }
      ::shutdown(pair.client.fd(), SHUT_WR);  // the reader sees the end of the stream
      reader.join();
      if (returned) {
        ++completed;
        CHECK(received.load() == size);
      }
    }
    CHECK(timed_out > 0);  // the deadlines did stop transfers (and most let theirs finish)
    CHECK(completed > 0);
  }());
}

TEST_CASE("close reaches the kernel inside a cancelled scope and past a deadline: no descriptor leaks") {
  LocalExecutor ex;
  ex.block_on([]() -> Task<void> {
    auto pair = co_await io_test::connected_pair();
    int client_fd = pair.client.fd();
    int server_fd = pair.server.fd();
    CancellationToken token;
    token.cancel();
    // A cleanup path of cancelled work: the read fails at once, the close does not.
    co_await with_cancellation(token, [](TcpStream& stream) -> Task<void> {
      char byte;
      CHECK_THROWS_AS(co_await stream.read(&byte, 1), OperationCancelled);
      co_await stream.close();
    }(pair.client));
    CHECK(::fcntl(client_fd, F_GETFD) == -1);
    CHECK(errno == EBADF);
    co_await pair.server.close().with_timeout(0ms);
    CHECK(::fcntl(server_fd, F_GETFD) == -1);
    CHECK(errno == EBADF);
  }());
}

TEST_CASE("with_timeout and a CancellationToken end a sleep in their region") {
  LocalExecutor ex;
  ex.block_on([]() -> Task<void> {
    auto start = Clock::now();
    try {
      co_await with_timeout(30ms, sleep_3s());
      FAIL("the sleep was not stopped");
    } catch (const TimeoutError& e) {
      CHECK(std::string(e.what()).find("sleep: ") == 0);
    }
    CHECK(Clock::now() - start < 2s);

    CancellationToken token;
    auto sleeper = spawn(with_cancellation(token, sleep_3s()));
    co_await let_others_run();
    start = Clock::now();
    token.cancel();
    CHECK_THROWS_AS(co_await sleeper, OperationCancelled);
    // A sleep started under a cancelled token fails at once.
    CHECK_THROWS_AS(co_await with_cancellation(token, sleep_3s()), OperationCancelled);
    CHECK(Clock::now() - start < 2s);
  }());
}

TEST_CASE("with_timeout and a CancellationToken stop a task waiting in accept; the next connection is not lost") {
  LocalExecutor ex;
  ex.block_on([]() -> Task<void> {
    auto listener = TcpListener::bind(SocketAddress::parse("127.0.0.1:0"));
    auto backstop = spawn(connect_after(listener.local_address(), 3s));
    auto start = Clock::now();
    try {
      co_await with_timeout(30ms, accept_one(listener));
      FAIL("the accept was not stopped");
    } catch (const TimeoutError& e) {
      CHECK(std::string(e.what()).find("accept 127.0.0.1:") == 0);
    }
    CHECK(Clock::now() - start < 2s);

    CancellationToken token;
    auto acceptor = spawn(with_cancellation(token, accept_one(listener)));
    co_await let_others_run();
    token.cancel();
    CHECK_THROWS_AS(co_await acceptor, OperationCancelled);
    CHECK(Clock::now() - start < 2s);

    // The stopped waiters left the queue: a connection made now goes to the next accept.
    auto client = co_await TcpStream::connect(listener.local_address());
    auto server = co_await with_timeout(5s, accept_one(listener));
    co_await client.write_all("x", 1);
    char c = 0;
    co_await server.read_exact(&c, 1);
    CHECK(c == 'x');
    backstop.cancel();
    CHECK_THROWS_AS(co_await backstop, TaskCancelled);
  }());
}

TEST_CASE("with_timeout stops a task waiting for a mutex, a semaphore or a channel, and the primitive loses nothing") {
  LocalExecutor ex;
  ex.block_on([]() -> Task<void> {
    Mutex mutex;
    auto holder = spawn(hold_for(mutex, 3s));
    co_await let_others_run();
    REQUIRE(mutex.locked());
    co_await expect_timeout(lock_once(mutex), "wait on mutex: ");
    holder.cancel();
    CHECK_THROWS_AS(co_await holder, TaskCancelled);
    CHECK_FALSE(mutex.locked());  // the stopped waiter was not handed the lock
    CHECK(mutex.try_lock().has_value());

    Semaphore units(0);
    auto releaser = spawn(release_after(units, 3s));
    co_await expect_timeout(acquire_one(units), "wait on semaphore: ");
    units.release();
    CHECK(units.available() == 1);  // not granted to the stopped waiter
    CHECK(units.waiters() == 0);

    Channel<int> channel(1);
    auto sender = spawn(send_after(channel, 7, 3s));
    co_await expect_timeout(receive_one(channel), "wait on channel: ");
    int item = 5;
    REQUIRE(channel.try_send(item));
    std::optional<int> got = co_await receive_one(channel);
    CHECK(got == 5);  // the item went to the next receiver, not to the stopped one

    releaser.cancel();
    sender.cancel();
    CHECK_THROWS_AS(co_await releaser, TaskCancelled);
    CHECK_THROWS_AS(co_await sender, TaskCancelled);
  }());
}

TEST_CASE("with_timeout stops a join of a task or of a TaskScope; the work runs on and can still be joined") {
  LocalExecutor ex;
  ex.block_on([]() -> Task<void> {
    JoinHandle<int> handle = spawn(answer_after(200ms));
    co_await expect_timeout(join_one(handle), "join: ");
    REQUIRE(handle.valid());
    CHECK(co_await handle == 42);

    TaskScope scope;
    scope.spawn(sleep_3s());
    co_await expect_timeout(join_scope(scope), "join of a TaskScope: ");
    scope.cancel();
    co_await scope.join();
  }());
}

TEST_CASE("with_timeout stops a wait for a submit_to reply; the call runs on and can still be awaited") {
  Runtime rt(two_unpinned_shards());
  rt.run([]() -> Task<void> {
    auto slow = []() -> Task<int> { co_return co_await answer_after(200ms); };
    RemoteCall<int> call = submit_to(1, slow);
    co_await expect_timeout(await_call(call), "submit_to: ");
    CHECK(co_await std::move(call) == 42);
  });
}

// Joins and replies have no list of their own to be taken off: each asks at
// the start whether its region is stopped already (else, with nothing left
// to stop it, it would wait for the work; here the 1.5 s backstop).
TEST_CASE("a join, a TaskScope join or a submit_to wait started in a cancelled region fails at once") {
  Runtime rt(two_unpinned_shards());
  rt.run([]() -> Task<void> {
    CancellationToken token;
    token.cancel();
    auto start = Clock::now();
    JoinHandle<int> handle = spawn(answer_after(1500ms));
    CHECK_THROWS_AS(co_await with_cancellation(token, join_one(handle)), OperationCancelled);
    TaskScope scope;
    scope.spawn(sleep_3s());
    CHECK_THROWS_AS(co_await with_cancellation(token, join_scope(scope)), OperationCancelled);
    auto slow = []() -> Task<int> { co_return co_await answer_after(1500ms); };
    CHECK_THROWS_AS(co_await with_cancellation(token, await_owned_call(submit_to(1, slow))), OperationCancelled);
    CHECK(Clock::now() - start < 1s);
    handle.cancel();
    scope.cancel();
    co_await scope.join();
  });
}

// A stopped wait keeps nothing of its region: the RemoteCall below is awaited
// again (as an lvalue, so the same awaitable) after the region closed, and an
// answered one is destroyed after it (ASan: no use of the freed scope).
TEST_CASE("a RemoteCall outlives the regions it was awaited in: awaited again after a stop, or dropped after an answer") {
  Runtime rt(two_unpinned_shards());
  rt.run([]() -> Task<void> {
    auto slow = []() -> Task<int> { co_return co_await answer_after(200ms); };
    RemoteCall<int> call = submit_to(1, slow);
    CHECK_THROWS_AS(co_await with_timeout(30ms, await_call(call)), TimeoutError);
    CHECK(co_await call == 42);

    auto fast = []() -> Task<int> { co_return 42; };
    {
      RemoteCall<int> answered = submit_to(1, fast);
      CHECK(co_await with_timeout(2s, await_call(answered)) == 42);
    }
    co_await veloq::sleep_for(1ms);
  });
}

// A stopped waiter is taken off its primitive's list: the gate, drained
// later, must not resume it at the resume point of a coroutine frame that
// is gone (wait_drained's, destroyed with the region).
TEST_CASE("a waiter stopped by with_timeout is not resumed later by its primitive") {
  LocalExecutor ex;
  ex.block_on([]() -> Task<void> {
    Gate gate;
    std::optional<Gate::Holder> holder;
    holder.emplace(gate.enter());
    Gate::Drained drained = gate.close();
    CHECK_THROWS_AS(co_await with_timeout(20ms, wait_drained(drained)), TimeoutError);
    auto leaver = spawn(leave_after(holder, 50ms));
    co_await veloq::sleep_for(300ms);
    co_await leaver;
    CHECK(gate.holders() == 0);
  }());
}
