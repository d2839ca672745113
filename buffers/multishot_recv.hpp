// MultishotRecv: a stream of received chunks from one socket, fed by a single
// multishot IORING_OP_RECV that draws its buffers from a ProvidedBufferRing.
//
// One SQE keeps receiving for as long as it stays armed: each arrival is a
// CQE naming the provided buffer the kernel filled, queued here in order
// until a task takes it with `co_await stream.next()`. The stream re-arms by
// itself when the kernel ends the receive early: after ENOBUFS (the ring ran
// dry; it waits for a buffer to be given back first, counted in the ring's
// enobufs_events()) and after a final CQE without IORING_CQE_F_MORE that still
// carried data. It is armed lazily, by the first next().
//
//   veloq::buffers::MultishotRecv stream(ring, fd);
//   while (std::optional<veloq::buffers::ProvidedBuffer> chunk = co_await stream.next())
//     parse(chunk->chars());           // dropping the chunk gives its buffer back
//
// A task that stops taking chunks does not run the ring dry for the shard's
// other sockets: once `max_queued` chunks wait untaken, the stream cancels
// its receive (the kernel's socket buffer then fills, and TCP slows the
// peer), and re-arms when the task has taken half of them. A few chunks the
// kernel had already received may still land beyond the limit.
//
// next() yields std::nullopt once the peer has closed (after every chunk that
// came before), and throws io::IoError for a receive error, naming it
// ("recv_multishot fd 7: Connection reset by peer (ECONNRESET)"), again on
// every later call. Hold few chunks at a time: each one keeps a ring buffer
// from the kernel.
//
// Inside io::with_timeout or io::with_cancellation, a task waiting in next()
// stops with the region and throws TimeoutError or OperationCancelled; the
// receive itself stays armed, and what it receives waits for the next next().
//
// A stream may outlive its ring: destroying the ring cancels the receive, and
// next() then throws ClosedError (again on every later call) once the chunks
// received before are taken.
//
// Dropping the stream while the receive is armed cancels it with
// IORING_OP_ASYNC_CANCEL; its operation record (and the ring's memory) stay
// alive until the final CQE arrives, and any chunk that lands meanwhile is
// given straight back. The socket must stay open until then too. A task
// still waiting in next() on a stream another task dropped resumes with
// io::IoError (EBADF).
// Single-shard: use the stream on the ring's shard only.
#pragma once

#include <veloq/buffers/provided_buffer_ring.hpp>
#include <veloq/runtime/stop_scope.hpp>

#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <optional>

namespace veloq::buffers {

class MultishotRecv {
  struct Op;

 public:
  // Receives on socket `fd` into buffers of `ring`, holding at most about
  // `max_queued` untaken chunks (see above).
  MultishotRecv(ProvidedBufferRing& ring, int fd, std::size_t max_queued = 32);
  MultishotRecv(const MultishotRecv&) = delete;
  MultishotRecv& operator=(const MultishotRecv&) = delete;
  ~MultishotRecv();

  class [[nodiscard("co_await stream.next()")]] NextChunk {
   public:
    explicit NextChunk(Op& op) noexcept : op_(op) {}
    NextChunk(const NextChunk&) = delete;
    NextChunk& operator=(const NextChunk&) = delete;
    [[gnu::hot]] ~NextChunk();

    [[gnu::hot]] bool await_ready() noexcept;
    [[gnu::hot]] void await_suspend(std::coroutine_handle<> h) noexcept;
    [[gnu::hot]] std::optional<ProvidedBuffer> await_resume();

    // A scope the task runs in stopped (with_timeout, a cancellation token).
    void stop_waiting(const veloq::internal::StopScope& by) noexcept;

   private:
    Op& op_;
    veloq::internal::TaskState* task_ = nullptr;
    bool stream_gone_ = false;  // the stream was destroyed while this waited: op_ may be freed
    int stopped_fd_ = -1;       // the socket, for the error of a stopped wait (op_ may be freed by then)
    veloq::internal::StoppableWait stop_;
  };
  // The next chunk received; std::nullopt at end of stream.
  NextChunk next() noexcept { return NextChunk(*op_); }

  // True while a receive is in flight in the kernel.
  bool armed() const noexcept;
  // How many times the receive was submitted (the first arm included).
  std::uint64_t arms() const noexcept;
  // Chunks received and not yet taken by next().
  std::size_t queued() const noexcept;

 private:
  static ProvidedBuffer adopt(internal::ProvidedRingCore* core, std::uint16_t id, std::uint32_t bytes) noexcept {
    return ProvidedBuffer(core, id, bytes);
  }

  Op* op_;
};

}  // namespace veloq::buffers
