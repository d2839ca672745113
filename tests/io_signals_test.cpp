#include <doctest/doctest.h>

#include <veloq/io/signals.hpp>
#include <veloq/runtime/local_executor.hpp>
#include <veloq/runtime/yield.hpp>

#include <signal.h>
#include <unistd.h>

using namespace veloq;

TEST_CASE("a blocked SIGTERM sent to the process completes wait_for_stop_signal") {
  // Only this thread exists in the test binary while the executor runs, so
  // blocking here is blocking in every thread.
  sigset_t previous;
  sigemptyset(&previous);
  pthread_sigmask(SIG_SETMASK, nullptr, &previous);
  io::block_stop_signals();
  LocalExecutor ex;
  int signal = ex.block_on([]() -> Task<int> {
    auto waiter = spawn(io::wait_for_stop_signal());
    co_await veloq::yield();
    ::kill(::getpid(), SIGTERM);
    co_return co_await waiter;
  }());
  CHECK(signal == SIGTERM);
  pthread_sigmask(SIG_SETMASK, &previous, nullptr);
}
