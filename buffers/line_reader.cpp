#include <veloq/buffers/line_reader.hpp>

#include <string>
#include <utility>

namespace veloq::buffers {

LineTooLong::LineTooLong(std::size_t max_line)
    : std::length_error("veloq: a line is longer than " + std::to_string(max_line) + " bytes") {}

LineReader::LineReader(MultishotRecv& source, LineReaderConfig config) : source_(source), config_(config) {}

bool LineReader::has_buffered_line() const noexcept {
  return !too_long_ && unread_.find('\n') != std::string_view::npos;
}

std::string_view LineReader::finish(std::string_view line) const noexcept {
  if (config_.strip_cr && !line.empty() && line.back() == '\r') line.remove_suffix(1);
  return line;
}

void LineReader::fail_too_long() {
  too_long_ = true;
  throw LineTooLong(config_.max_line);
}

std::optional<std::string_view> LineReader::take_buffered() {
  const std::size_t end = unread_.find('\n');
  if (end == std::string_view::npos) {
    // The line goes on in a later chunk: keep its start (one byte over the
    // limit may be the "\r" of its end of line).
    if (partial_.size() + unread_.size() > config_.max_line + (config_.strip_cr ? 1 : 0)) fail_too_long();
    partial_.append(unread_);
    unread_ = {};
    return std::nullopt;
  }
  std::string_view line = unread_.substr(0, end);  // within one chunk: a view, no copy
  unread_.remove_prefix(end + 1);
  if (!partial_.empty()) {
    partial_.append(line);
    partial_handed_ = true;
    line = partial_;
  }
  line = finish(line);
  if (line.size() > config_.max_line) fail_too_long();
  return line;
}

Task<std::optional<std::string_view>> LineReader::next() {
  if (too_long_) fail_too_long();  // where the next line starts is unknown
  if (std::exchange(partial_handed_, false)) partial_.clear();
  for (;;) {
    if (!unread_.empty())
      if (std::optional<std::string_view> line = take_buffered()) co_return line;
    // Every line of the chunk has been handed out: its buffer goes back
    // before the wait, not after it.
    chunk_.reset();
    std::optional<ProvidedBuffer> chunk = co_await source_.next();
    if (!chunk) {
      if (partial_.empty()) co_return std::nullopt;
      partial_handed_ = true;  // the last line had no end of line
      std::string_view last = finish(partial_);
      if (last.size() > config_.max_line) fail_too_long();
      co_return last;
    }
    chunk_ = std::move(*chunk);
    unread_ = chunk_.chars();
  }
}

}  // namespace veloq::buffers
