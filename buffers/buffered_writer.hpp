// BufferedWriter: small writes gathered into buffers of the shard's
// BufferPool and handed to a SendQueue a buffer at a time.
//
// A server that answers requests one by one would otherwise make a send per
// reply. Written through this, the replies to a batch of requests go out in
// one send when the task calls flush(), and the task does not wait for the
// send (the queue does it). A write that fills a buffer pushes it and goes on
// in a new one, so a write may be longer than a buffer.
//
//   veloq::buffers::SendQueue replies(stream.fd());
//   veloq::buffers::BufferedWriter writer(replies);
//   co_await writer.write("VALUE 42\n");
//   co_await writer.flush();              // pushed to the queue; sent in order
//   co_await replies.drained();           // everything has been sent
//
// Back-pressure: once a push leaves `max_unsent` buffers unsent in the
// queue, the task waits in write() or flush() until the queue has sent them
// all (a peer that stops reading holds that many at most), and in write()
// for a free pool buffer when the pool's class is exhausted. Send errors
// come from the queue: io::IoError once a send has failed. What was written
// and not flushed when the writer is destroyed is dropped, its buffer going
// back to the pool. Single-shard: use it on the shard whose pool it draws
// from.
#pragma once

#include <veloq/buffers/buffer.hpp>
#include <veloq/buffers/send_queue.hpp>
#include <veloq/runtime/task.hpp>

#include <cstddef>
#include <string_view>

namespace veloq::buffers {

struct BufferedWriterConfig {
  std::size_t buffer_bytes = 4096;  // the pool size asked for; a buffer holds at least this much
  std::size_t max_unsent = 4;       // buffers a peer may leave unsent before the writer waits
};

class BufferedWriter {
 public:
  // Writes to `queue`, which must outlive the writer, through the running
  // shard's BufferPool (BufferPool::current()).
  explicit BufferedWriter(SendQueue& queue, BufferedWriterConfig config = {});
  BufferedWriter(const BufferedWriter&) = delete;
  BufferedWriter& operator=(const BufferedWriter&) = delete;

  // Copies `bytes` after what was written before; full buffers are pushed.
  Task<void> write(std::string_view bytes);
  // Pushes what was written; waits if that left `max_unsent` buffers unsent.
  Task<void> flush();
  // Bytes written and not yet pushed to the queue.
  std::size_t buffered() const noexcept { return used_; }

 private:
  Task<void> push_buffer();

  SendQueue& queue_;
  BufferedWriterConfig config_;
  Buffer buffer_;  // empty until the first write after a push
  std::size_t used_ = 0;
};

}  // namespace veloq::buffers
