#include <veloq/mesh/shard_signal.hpp>

#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <system_error>

namespace veloq::mesh {

ShardSignal::ShardSignal(unsigned shard_count)
    : words_((shard_count + bits_per_word - 1) / bits_per_word),
      wake_fd_(::eventfd(0, EFD_CLOEXEC)),
      pending_(new PaddedWord[words_]) {
  if (wake_fd_ < 0) throw std::system_error(errno, std::generic_category(), "eventfd for shard wake-ups");
}

ShardSignal::~ShardSignal() { ::close(wake_fd_); }

void ShardSignal::wake() noexcept {
  std::uint64_t one = 1;
  // Cannot block: the counter would need 2^64-2 unread wake-ups to fill.
  [[maybe_unused]] ssize_t n = ::write(wake_fd_, &one, sizeof one);
}

}  // namespace veloq::mesh
