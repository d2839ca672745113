// ReadyQueue: the FIFO of tasks ready to run, linked through the tasks
// themselves (TaskState::next_ready), so scheduling never allocates.
#pragma once

#include <veloq/runtime/task_state.hpp>

namespace veloq::internal {

class ReadyQueue {
 public:
  bool empty() const noexcept { return head_ == nullptr; }

  void push_back(TaskState* t) noexcept {
    t->next_ready = nullptr;
    (tail_ ? tail_->next_ready : head_) = t;
    tail_ = t;
  }

  TaskState* pop_front() noexcept {
    TaskState* t = head_;
    if (t) {
      head_ = t->next_ready;
      if (!head_) tail_ = nullptr;
    }
    return t;
  }

 private:
  TaskState* head_ = nullptr;
  TaskState* tail_ = nullptr;
};

inline void TaskState::wake() noexcept {
  if (phase >= Phase::queued) return;  // queued or done
  phase = Phase::queued;
  ready_queue->push_back(this);
}

}  // namespace veloq::internal
