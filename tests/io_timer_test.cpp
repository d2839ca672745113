#include <doctest/doctest.h>

#include <veloq/io/file_descriptor.hpp>
#include <veloq/io/poll.hpp>
#include <veloq/io/tcp_listener.hpp>
#include <veloq/io/tcp_stream.hpp>
#include <veloq/io/with_timeout.hpp>
#include <veloq/runtime/local_executor.hpp>
#include <veloq/runtime/sleep.hpp>
#include <veloq/runtime/yield.hpp>

#include <poll.h>
#include <sys/eventfd.h>

#include <chrono>
#include <cstdint>
#include <vector>

using namespace veloq;
using namespace std::chrono_literals;

TEST_CASE("10,000 timers fire in deadline order") {
  constexpr int timers = 10'000;
  LocalExecutor ex;
  std::vector<Clock::time_point> fired;
  fired.reserve(timers);
  ex.block_on([&]() -> Task<void> {
    // Far enough ahead that every task is asleep before the first deadline,
    // even in a sanitizer build (a task that starts late would not sleep at all).
    auto base = Clock::now() + 500ms;
    std::uint32_t x = 12345;
    std::vector<JoinHandle<void>> handles;
    handles.reserve(timers);
    for (int i = 0; i < timers; ++i) {
      x = x * 1664525u + 1013904223u;
      auto deadline = base + std::chrono::microseconds(x % 200'000);  // spread over 200 ms, unordered
      handles.push_back(spawn([](Clock::time_point when, std::vector<Clock::time_point>& out) -> Task<void> {
        co_await sleep_until(when);
        CHECK(Clock::now() >= when);
        out.push_back(when);
      }(deadline, fired)));
    }
    for (auto& h : handles) co_await h;
  }());
  REQUIRE(fired.size() == timers);
  bool ordered = true;
  for (std::size_t i = 1; i < fired.size(); ++i) ordered = ordered && fired[i - 1] <= fired[i];
  CHECK(ordered);
}

namespace {
Task<int> answer() { co_return 42; }
}  // namespace

// hours::max() in nanoseconds overflows: such a timeout must mean "never",
// not a deadline that wrapped into the past.
TEST_CASE("a timeout too long for the clock never expires") {
  LocalExecutor ex;
  ex.block_on([]() -> Task<void> {
    constexpr auto forever = std::chrono::hours::max();
    auto sleeper = spawn([]() -> Task<void> { co_await sleep_for(std::chrono::hours::max()); }());
    for (int i = 0; i < 5; ++i) co_await yield();
    CHECK_FALSE(sleeper.done());
    sleeper.cancel();
    try {
      co_await sleeper;
    } catch (const TaskCancelled&) {
    }

    io::FileDescriptor event(::eventfd(0, 0));
    CHECK((co_await io::poll_ready(event.get(), POLLOUT).with_timeout(forever) & POLLOUT) != 0);
    CHECK(co_await io::with_timeout(forever, answer()) == 42);

    auto listener = io::TcpListener::bind(io::SocketAddress::parse("127.0.0.1:0"));
    auto client = co_await io::TcpStream::connect(listener.local_address(), Clock::duration::max() - std::chrono::seconds(1));
    auto server = co_await listener.accept();
  }());
}

TEST_CASE("a timer armed again on another queue leaves the first one") {
  internal::TimerQueue first, second;
  internal::Timer other;  // keeps `second` from being empty
  second.arm(other, Clock::now() + 1h, [](internal::Timer*) noexcept {});
  {
    internal::Timer t;
    first.arm(t, Clock::now() + 1h, [](internal::Timer*) noexcept {});
    second.arm(t, Clock::now() + 2h, [](internal::Timer*) noexcept {});
    CHECK(first.size() == 0);
    CHECK(second.size() == 2);
  }
  CHECK(second.size() == 1);
  CHECK(second.next_deadline() == other.deadline());
}
