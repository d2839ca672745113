// AcceptQueue (internal): the accepting side of a listening socket, shared
// by TcpListener and UnixListener.
//
// One multishot IORING_OP_ACCEPT stays armed while anyone wants connections:
// each CQE carries a new connection, handed straight to the oldest waiting
// accept() or queued for the next one. Kernels that refuse multishot accept
// (before 5.19) get a single-shot accept re-armed after each connection.
// When `max_queued` connections wait unclaimed, the multishot accept is
// cancelled (back-pressure: the kernel's backlog fills instead) and re-armed
// on the next accept().
//
// The queue is heap-allocated and outlives its listener while an accept is in
// the kernel: closing the listener queues ASYNC_CANCEL and lets the final CQE
// free it, so dropping a listener never blocks.
#pragma once

#include <veloq/io/completion.hpp>
#include <veloq/io/driver.hpp>
#include <veloq/io/file_descriptor.hpp>
#include <veloq/io/io_error.hpp>
#include <veloq/io/socket_address.hpp>
#include <veloq/runtime/local_executor.hpp>
#include <veloq/runtime/stop_scope.hpp>
#include <veloq/runtime/task_state.hpp>

#include <cerrno>
#include <coroutine>
#include <cstddef>
#include <deque>
#include <string>

namespace veloq::io::internal {

class AcceptQueue : Completion {
 public:
  struct Waiter {
    Waiter* next = nullptr;
    Waiter* prev = nullptr;
    veloq::internal::TaskState* task = nullptr;
    int result = 0;  // the accepted fd, or -errno
    bool linked = false;
    bool done = false;
    bool queue_closed = false;  // the listener closed: the queue may be gone
    // With an error: what failed, written when it is delivered, because the
    // listener may close (and the queue go) before the task resumes.
    std::string failed_op;
  };

  static constexpr std::size_t max_queued = 1024;

  AcceptQueue(int listen_fd, std::string description) noexcept;

  // Hands out a queued connection, if one waits.
  bool try_take(Waiter& w) noexcept;
  // Links `w` to wait for the next connection (arming the accept if needed).
  void wait(Waiter& w, veloq::internal::TaskState* task, Driver& driver);
  void unlink(Waiter& w) noexcept;
  int listen_fd() const noexcept { return listen_fd_; }
  // "accept 127.0.0.1:8080", as errors name the operation.
  std::string operation() const { return "accept " + description_; }

  // The listener is gone: closes queued connections, cancels the accept and
  // closes the listening socket; frees itself now or at the final CQE.
  void close() noexcept;

 private:
  static void on_cqe(Completion* self, int result, std::uint32_t flags) noexcept;
  void arm(Driver& driver);
  void deliver(int result);

  int listen_fd_;
  std::string description_;
  Driver* driver_ = nullptr;
  std::deque<int> ready_;
  Waiter* head_ = nullptr;
  Waiter* tail_ = nullptr;
  bool armed_ = false;
  bool multishot_ = true;
  bool closed_ = false;
  bool cancel_sent_ = false;
};

// The awaitable of listener.accept(): resumes with a connected Stream.
template <typename Stream>
class [[nodiscard("co_await listener.accept()")]] AcceptOperation {
 public:
  explicit AcceptOperation(AcceptQueue* queue) noexcept : queue_(queue) {}
  AcceptOperation(const AcceptOperation&) = delete;
  AcceptOperation& operator=(const AcceptOperation&) = delete;
  ~AcceptOperation() {
    if (waiter_.linked) queue_->unlink(waiter_);
    if (waiter_.done && !taken_ && waiter_.result >= 0) FileDescriptor(waiter_.result).close_in_background();
  }

  bool await_ready() noexcept {
    if (queue_ == nullptr) return true;
    if (stop_.stopped_before_start()) {
      name_stopped_wait();
      return true;
    }
    return queue_->try_take(waiter_);
  }
  void await_suspend(std::coroutine_handle<> h) {
    RuntimeContext& context = RuntimeContext::current("accept");
    veloq::internal::TaskState* task = context.executor().current_task();
    task->resume_point = h;
    queue_->wait(waiter_, task, context.driver());
    stop_.join(task, this);
  }
  Stream await_resume() {
    stop_.end(waiter_.failed_op.empty() ? "accept" : waiter_.failed_op.c_str());
    if (queue_ == nullptr || waiter_.queue_closed) throw IoError(EBADF, "accept on a closed listener");
    if (waiter_.result < 0) throw IoError(-waiter_.result, waiter_.failed_op);
    taken_ = true;
    return Stream(FileDescriptor(waiter_.result));
  }

  // A scope the task runs in stopped (with_timeout, a cancellation token).
  void stop_waiting(const veloq::internal::StopScope& by) noexcept {
    if (!waiter_.linked) return;  // a connection or an error came first: it stands
    queue_->unlink(waiter_);
    name_stopped_wait();  // now: the listener may close before the task resumes
    stop_.note_stopped(by);
    waiter_.task->wake();
  }

 private:
  void name_stopped_wait() noexcept {
    try {
      waiter_.failed_op = queue_->operation();
    } catch (...) {  // the error then says "accept" only
    }
  }

  AcceptQueue* queue_;
  AcceptQueue::Waiter waiter_;
  veloq::internal::StoppableWait stop_;
  bool taken_ = false;
};

}  // namespace veloq::io::internal
