// The shard's ring itself: completions that overflow the CQ ring, a shutdown
// that finds the submission queue full, descriptors nobody received.
#include <doctest/doctest.h>

#include "io_test_support.hpp"
#include "log_capture.hpp"

#include <veloq/io/file.hpp>
#include <veloq/io/file_descriptor.hpp>
#include <veloq/io/poll.hpp>
#include <veloq/runtime/local_executor.hpp>
#include <veloq/runtime/sleep.hpp>
#include <veloq/runtime/yield.hpp>

#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>

#include <chrono>
#include <vector>

using namespace veloq;
using namespace veloq::io;
using namespace std::chrono_literals;

namespace {
ShardConfig tiny_ring() {
  ShardConfig config;
  config.driver.entries = 4;  // SQ of 4, CQ of 8
  config.buffer_pool = false;
  return config;
}
}  // namespace

TEST_CASE("a shutdown whose closes fill the submission queue still cancels everything in flight") {
  test_support::LogCapture logs;
  {
    LocalExecutor ex(tiny_ring());
    ex.block_on([]() -> Task<void> {
      // Four sleeping tasks each own a descriptor: destroying them at shutdown
      // queues four IORING_OP_CLOSE, filling the SQ before the drain starts.
      for (int i = 0; i < 4; ++i)
        spawn([](FileDescriptor) -> Task<void> { co_await sleep_for(1h); }(FileDescriptor(::eventfd(0, 0))))
            .detach();
      co_await yield();
    }());
  }
  INFO(logs.text());
  CHECK(logs.count("still in flight at shutdown") == 0);
}

TEST_CASE("completions that overflow a small CQ ring are all delivered") {
  ShardConfig config = tiny_ring();
  config.idle_spin_us = 0;
  LocalExecutor ex(config);
  int done = 0;
  ex.block_on([&]() -> Task<void> {
    FileDescriptor fd(::eventfd(0, 0));
    std::vector<JoinHandle<void>> handles;
    for (int i = 0; i < 200; ++i)
      handles.push_back(spawn([](int fd, int& done) -> Task<void> {
        for (int k = 0; k < 5; ++k) co_await poll_ready(fd, POLLOUT);
        ++done;
      }(fd.get(), done)));
    for (auto& h : handles) co_await h;
  }());
  CHECK(done == 200);
  CHECK(ex.driver().in_flight() == 1);  // only the shard's own wake-up read
}

TEST_CASE("an open whose task is cancelled between its CQE and its resumption closes the descriptor") {
  LocalExecutor ex;
  const int before = io_test::open_fd_count();
  ex.block_on([]() -> Task<void> {
    for (int i = 0; i < 50; ++i) {
      auto opener = spawn([]() -> Task<void> { File f = co_await File::open("/dev/null", O_RDONLY); }());
      co_await yield();  // the open completes in this turn's reap; cancel before the opener resumes
      opener.cancel();
      try {
        co_await opener;
      } catch (const TaskCancelled&) {
      }
    }
  }());
  ex.block_on([]() -> Task<void> { co_await yield(); }());  // the closes it queued reach the kernel
  CHECK(io_test::open_fd_count() == before);
}
