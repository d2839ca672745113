// LineReader: the lines of a byte stream that arrives as MultishotRecv
// chunks, for servers that speak a line-based protocol.
//
// A chunk may hold many lines and a line may span chunks. A line that lies
// within one chunk is handed out as a view into the chunk's provided buffer,
// without a copy; only a line split over chunks is gathered into a string
// the reader keeps. A chunk's buffer goes back to the ring when the reader
// moves past its last line.
//
//   veloq::buffers::MultishotRecv received(ring, stream.fd());
//   veloq::buffers::LineReader lines(received, {.max_line = 2048});
//   while (std::optional<std::string_view> line = co_await lines.next()) {
//     co_await writer.write(answer(*line));           // *line stays valid until the next next()
//     if (!lines.has_buffered_line()) co_await writer.flush();  // one send per batch
//   }
//
// A line ends at "\n"; the "\n" is not part of it, nor, with strip_cr, a
// "\r" just before it. At the end of the stream a last line without "\n" is
// still handed out, then next() yields std::nullopt.
//
// A line longer than `max_line` bytes (its end of line not counted) makes
// next() throw LineTooLong as soon as the reader has seen that many bytes
// without an end of line, so a peer cannot make it buffer without bound.
// Where the next line starts is then unknown: the reader throws again on
// every later call, and the connection should be closed. Errors of the
// receive itself (io::IoError, ClosedError) pass through unchanged.
// Single-shard, like the receive it reads from.
#pragma once

#include <veloq/buffers/multishot_recv.hpp>
#include <veloq/buffers/provided_buffer_ring.hpp>
#include <veloq/runtime/task.hpp>

#include <cstddef>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

namespace veloq::buffers {

struct LineReaderConfig {
  std::size_t max_line = 8192;  // longest line accepted, in bytes, without its end of line
  bool strip_cr = true;         // "\r\n" ends a line as "\n" does
};

// A line went past LineReaderConfig::max_line.
class LineTooLong : public std::length_error {
 public:
  explicit LineTooLong(std::size_t max_line);
};

class LineReader {
 public:
  // Reads from `source`, which must outlive the reader.
  explicit LineReader(MultishotRecv& source, LineReaderConfig config = {});
  LineReader(const LineReader&) = delete;
  LineReader& operator=(const LineReader&) = delete;

  // The next line, valid until the next call; std::nullopt at the end of the
  // stream. Waits for the network only when no whole line is buffered.
  Task<std::optional<std::string_view>> next();

  // True when a whole line has arrived and not been read: the next next()
  // returns without waiting. A server that answers in batches flushes its
  // replies when this turns false.
  bool has_buffered_line() const noexcept;

 private:
  // The next line from what has arrived; std::nullopt if its end has not.
  std::optional<std::string_view> take_buffered();
  std::string_view finish(std::string_view line) const noexcept;
  [[noreturn]] void fail_too_long();

  MultishotRecv& source_;
  LineReaderConfig config_;
  ProvidedBuffer chunk_;       // the chunk being read
  std::string_view unread_;    // its part not yet handed out
  std::string partial_;        // the start of a line begun in earlier chunks
  bool partial_handed_ = false;  // the last line handed out was partial_: clear it first
  bool too_long_ = false;
};

}  // namespace veloq::buffers
