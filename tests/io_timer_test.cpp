#include <doctest/doctest.h>

#include <veloq/runtime/local_executor.hpp>
#include <veloq/runtime/sleep.hpp>

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
