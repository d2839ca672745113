#include <veloq/io/file_descriptor.hpp>
#include <veloq/io/io_error.hpp>
#include <veloq/io/poll.hpp>
#include <veloq/io/signals.hpp>

#include <pthread.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <cerrno>
#include <vector>

namespace veloq::io {

namespace {
sigset_t set_of(std::initializer_list<int> signals) {
  sigset_t set;
  sigemptyset(&set);
  for (int s : signals) sigaddset(&set, s);
  return set;
}

Task<int> wait_on(sigset_t set) {
  int raw = ::signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
  if (raw < 0) throw IoError(errno, "signalfd");
  FileDescriptor fd(raw);
  for (;;) {
    signalfd_siginfo info{};
    ssize_t n = ::read(fd.get(), &info, sizeof info);
    if (n == static_cast<ssize_t>(sizeof info)) co_return static_cast<int>(info.ssi_signo);
    if (n < 0 && errno != EAGAIN && errno != EINTR) throw IoError(errno, "read signalfd");
    co_await poll_ready(fd.get(), POLLIN);
  }
}
}  // namespace

void block_stop_signals() { block_signals({SIGINT, SIGTERM}); }

void block_signals(std::initializer_list<int> signals) {
  sigset_t set = set_of(signals);
  if (int rc = ::pthread_sigmask(SIG_BLOCK, &set, nullptr); rc != 0) throw IoError(rc, "pthread_sigmask");
}

Task<int> wait_for_stop_signal() { return wait_on(set_of({SIGINT, SIGTERM})); }

Task<int> wait_for_signal(std::initializer_list<int> signals) { return wait_on(set_of(signals)); }

}  // namespace veloq::io
