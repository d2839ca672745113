// SendQueue: sends owned buffers on a socket, in order, without the sending
// task waiting for each send: chunks it received (ProvidedBuffers) and
// replies it wrote into buffers of the shard's BufferPool.
//
// A task that answers what it receives (an echo, a proxy, a request/reply
// protocol) would otherwise wait for every send to complete before it waits
// for the next request: two wake-ups per message. push() takes the buffer,
// starts its send when no other is in flight, and returns at once. The
// queue's record keeps one send in flight at a time, resubmits what a
// partial send left, and gives each buffer back to its ring or pool once the
// kernel has sent it. Queued chunks hold ring and pool buffers, so a peer
// that stops reading runs them dry: the receive waits (ENOBUFS), and so does
// BufferPool::acquire(). That is the back-pressure; memory stays bounded.
//
//   veloq::buffers::MultishotRecv received(ring, stream.fd());
//   veloq::buffers::SendQueue replies(stream.fd());
//   while (std::optional<veloq::buffers::ProvidedBuffer> chunk = co_await received.next())
//     replies.push(std::move(*chunk));
//   co_await replies.drained();   // everything pushed has been sent
//
//   veloq::buffers::Buffer reply = co_await pool.acquire(4096);
//   std::size_t length = format_reply(reply.chars(), reply.size());
//   replies.push(std::move(reply), length);   // sends reply.chars()[0, length)
//
// A send error ends the queue: push() and drained() throw io::IoError naming
// it ("send fd 7: Broken pipe (EPIPE)") from then on, and the chunks still
// queued are given back unsent. Inside io::with_timeout or
// io::with_cancellation, a task waiting in drained() stops with the region
// (the sends go on); one waiting when the queue is destroyed gets ClosedError.
//
// Dropping the queue cancels a send in flight (IORING_OP_ASYNC_CANCEL) and
// gives back what was not sent, so await drained() first to be sure it all
// went out. The record stays until the kernel's last completion. Like
// MultishotRecv, declare the queue after the socket it sends on, so that the
// socket is closed after it. Single-shard: use it on the shard it was made on.
#pragma once

#include <veloq/buffers/buffer.hpp>
#include <veloq/buffers/provided_buffer_ring.hpp>
#include <veloq/runtime/wait_list.hpp>

#include <coroutine>
#include <cstddef>
#include <cstdint>

namespace veloq::buffers {

class SendQueue {
  struct Outgoing;
  struct Record;

 public:
  // Sends on socket `fd` through the running shard's ring.
  explicit SendQueue(int fd);
  SendQueue(const SendQueue&) = delete;
  SendQueue& operator=(const SendQueue&) = delete;
  ~SendQueue();

  // Queues `chunk` to be sent after everything pushed before it. Throws
  // io::IoError once a send has failed, and what Driver::prepare throws when
  // the submission queue stays full; the chunk is then given back.
  [[gnu::hot]] void push(ProvidedBuffer&& chunk);
  // The same for the first `length` bytes of a pool buffer (from any shard's
  // pool: it goes home once sent). Throws std::invalid_argument, leaving the
  // buffer with the caller, if `length` exceeds buffer.size().
  void push(Buffer&& buffer, std::size_t length);

  class [[nodiscard("co_await queue.drained()")]] Drained {
   public:
    explicit Drained(SendQueue& queue) noexcept : queue_(queue) {}
    Drained(const Drained&) = delete;
    Drained& operator=(const Drained&) = delete;

    bool await_ready() const noexcept { return queue_.queued() == 0 || queue_.failed(); }
    void await_suspend(std::coroutine_handle<> h) noexcept;
    // Throws ClosedError if the queue was destroyed while the task waited.
    void await_resume() const {
      waiter_.throw_if_interrupted();
      queue_.throw_if_failed();
    }

   private:
    SendQueue& queue_;
    veloq::internal::Waiter waiter_;
  };
  // Completes once every chunk pushed so far has been sent; throws the send
  // error if one failed.
  Drained drained() noexcept { return Drained(*this); }

  // Chunks pushed and not yet completely sent (the one in flight included).
  std::size_t queued() const noexcept;
  // Sends submitted, resubmissions of partial sends included.
  std::uint64_t sends() const noexcept;
  // True once a send has failed.
  bool failed() const noexcept;

 private:
  [[gnu::hot]] void enqueue(Outgoing&& chunk);
  void throw_if_failed() const;

  Record* record_;
  veloq::internal::WaitList drain_waiters_{"send queue"};
};

}  // namespace veloq::buffers
