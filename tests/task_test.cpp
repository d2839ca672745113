#include <doctest/doctest.h>

#include <veloq/runtime/local_executor.hpp>
#include <veloq/runtime/sleep.hpp>
#include <veloq/runtime/yield.hpp>

using namespace veloq;

namespace {
Task<int> add(int a, int b) { co_return a + b; }
}

TEST_CASE("a task returns its value to the awaiting task") {
  LocalExecutor ex;
  int v = ex.block_on([]() -> Task<int> { co_return co_await add(2, 3); }());
  CHECK(v == 5);
}
