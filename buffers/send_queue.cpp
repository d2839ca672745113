#include <veloq/buffers/circular_queue.hpp>
#include <veloq/buffers/send_queue.hpp>
#include <veloq/io/completion.hpp>
#include <veloq/io/driver.hpp>
#include <veloq/io/io_error.hpp>
#include <veloq/runtime/local_executor.hpp>
#include <veloq/runtime/runtime_context.hpp>

#include <cerrno>
#include <stdexcept>
#include <string>
#include <utility>
#include <variant>

namespace veloq::buffers {

// One pushed chunk: the buffer that owns its bytes until they are sent, and
// where those bytes are (a handle's memory does not move with the handle).
struct SendQueue::Outgoing {
  std::variant<ProvidedBuffer, Buffer> owner;
  const std::byte* data = nullptr;
  std::size_t size = 0;
};

// The queue's record: the chunks not yet sent and the io_uring completion
// target of the one send in flight. It lives apart from the queue because the
// kernel may still complete a send after the queue is gone.
struct SendQueue::Record : io::Completion {
  Record(io::Driver& d, int socket, veloq::internal::WaitList& waiters)
      : driver(&d), fd(socket), drain_waiters(&waiters) {
    on_complete = &Record::on_cqe;
  }

  io::Driver* driver;
  int fd;
  // The front chunk is the one being sent, `sent` bytes of it already gone.
  internal::CircularQueue<Outgoing> chunks;
  std::size_t sent = 0;
  bool in_flight = false;
  bool abandoned = false;  // the queue is gone; free the record at the final CQE
  int error = 0;           // the send error that ended the queue
  std::uint64_t sends = 0;
  veloq::internal::WaitList* drain_waiters;  // the queue's, while it lives

  void drop_front() noexcept {
    chunks.pop_front();  // the buffer goes back to its ring or pool
    sent = 0;
  }
  void drop_all() noexcept {
    while (!chunks.empty()) drop_front();
  }

  // Submits the rest of the front chunk; throws when the submission queue stays full.
  void send_front() {
    io_uring_sqe* sqe = driver->prepare(this);
    const Outgoing& chunk = chunks.front();
    io_uring_prep_send(sqe, fd, chunk.data + sent, static_cast<unsigned>(chunk.size - sent), MSG_NOSIGNAL);
    in_flight = true;
    ++sends;
  }

  // From a completion: never throws; a full submission queue ends the queue.
  void send_front_or_fail() noexcept {
    try {
      send_front();
    } catch (...) {
      fail(EBUSY);
    }
  }

  void fail(int errno_value) noexcept {
    if (error == 0) error = errno_value;
    drop_all();
  }

  void wake_if_drained() noexcept {
    if (chunks.empty() || error != 0) drain_waiters->wake_all();
  }

  [[gnu::hot]] static void on_cqe(io::Completion* c, int result, std::uint32_t) noexcept {
    auto* r = static_cast<Record*>(c);
    r->in_flight = false;
    if (r->abandoned) {
      r->drop_all();
      delete r;
      return;
    }
    if (result == -EINTR || result == -EAGAIN) {
      r->send_front_or_fail();
    } else if (result < 0) {
      r->fail(-result);
    } else {
      r->sent += static_cast<std::size_t>(result);
      if (r->sent >= r->chunks.front().size) r->drop_front();
      if (!r->chunks.empty()) r->send_front_or_fail();
    }
    r->wake_if_drained();
  }

  [[noreturn]] void throw_error() const { throw io::IoError(error, "send fd " + std::to_string(fd)); }
};

SendQueue::SendQueue(int fd) : record_(new Record(RuntimeContext::current("SendQueue").driver(), fd, drain_waiters_)) {}

SendQueue::~SendQueue() {
  // Tasks still in drained() are woken with ClosedError when drain_waiters_ goes.
  Record* r = record_;
  r->drain_waiters = nullptr;
  if (!r->in_flight) {
    r->drop_all();
    delete r;
    return;
  }
  // The chunk in flight stays until its final CQE, which frees the record.
  r->abandoned = true;
  try {
    io_uring_sqe* sqe = r->driver->prepare();
    io_uring_prep_cancel(sqe, r, 0);
  } catch (...) {
    // The submission queue stayed full: the send completes by itself, or is
    // cancelled with everything else at the shard's shutdown.
  }
}

void SendQueue::push(ProvidedBuffer&& chunk) {
  const std::byte* data = chunk.data();
  std::size_t size = chunk.size();
  enqueue(Outgoing{std::move(chunk), data, size});
}

void SendQueue::push(Buffer&& buffer, std::size_t length) {
  if (length > buffer.size())
    throw std::invalid_argument("SendQueue::push: " + std::to_string(length) + " bytes from a buffer of " +
                                std::to_string(buffer.size()));
  const std::byte* data = buffer.data();
  enqueue(Outgoing{std::move(buffer), data, length});
}

void SendQueue::enqueue(Outgoing&& chunk) {
  Record& r = *record_;
  if (r.error != 0) r.throw_error();  // the chunk's buffer goes back as it is dropped
  if (chunk.size == 0) return;         // nothing to send
  r.chunks.push_back(std::move(chunk));
  if (r.in_flight) return;
  try {
    r.send_front();
  } catch (...) {
    r.drop_all();  // only the chunk just pushed was queued
    throw;
  }
}

std::size_t SendQueue::queued() const noexcept { return record_->chunks.size(); }
std::uint64_t SendQueue::sends() const noexcept { return record_->sends; }

bool SendQueue::failed() const noexcept { return record_->error != 0; }

void SendQueue::throw_if_failed() const {
  if (record_->error != 0) record_->throw_error();
}

void SendQueue::Drained::await_suspend(std::coroutine_handle<> h) noexcept {
  veloq::internal::TaskState* task = veloq::internal::running_task();
  task->resume_point = h;
  queue_.drain_waiters_.push_back(waiter_, task, h);
}

}  // namespace veloq::buffers
