#include <veloq/buffers/buffer_pool.hpp>
#include <veloq/buffers/buffered_writer.hpp>

#include <algorithm>
#include <cstring>
#include <utility>

namespace veloq::buffers {

BufferedWriter::BufferedWriter(SendQueue& queue, BufferedWriterConfig config)
    : queue_(queue), config_(config) {
  if (config_.buffer_bytes == 0) config_.buffer_bytes = 1;
  if (config_.max_unsent == 0) config_.max_unsent = 1;
}

Task<void> BufferedWriter::push_buffer() {
  if (used_ > 0) queue_.push(std::move(buffer_), std::exchange(used_, 0));
  if (queue_.queued() >= config_.max_unsent) co_await queue_.drained();
}

Task<void> BufferedWriter::write(std::string_view bytes) {
  while (!bytes.empty()) {
    if (!buffer_) buffer_ = co_await BufferPool::current().acquire(config_.buffer_bytes);
    const std::size_t n = std::min(bytes.size(), buffer_.size() - used_);
    std::memcpy(buffer_.chars() + used_, bytes.data(), n);
    used_ += n;
    bytes.remove_prefix(n);
    if (used_ == buffer_.size()) co_await push_buffer();
  }
}

Task<void> BufferedWriter::flush() { co_await push_buffer(); }

}  // namespace veloq::buffers
