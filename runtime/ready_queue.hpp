// ReadyQueue: the FIFO of tasks ready to run, linked through the tasks
// themselves (TaskState::next_ready), so scheduling never allocates.
#pragma once

#include <veloq/runtime/task_state.hpp>

namespace veloq::internal {

class ReadyQueue {
 public:
  ReadyQueue() noexcept = default;
  // `tail_link_` may point at `head_`: the queue stays where it was built.
  ReadyQueue(const ReadyQueue&) = delete;
  ReadyQueue& operator=(const ReadyQueue&) = delete;

  bool empty() const noexcept { return head_ == nullptr; }

  void push_back(TaskState* t) noexcept {
    t->next_ready = nullptr;
    *tail_link_ = t;
    tail_link_ = &t->next_ready;
  }

  TaskState* pop_front() noexcept {
    TaskState* t = head_;
    if (t) {
      head_ = t->next_ready;
      if (!head_) tail_link_ = &head_;
    }
    return t;
  }

 private:
  TaskState* head_ = nullptr;
  TaskState** tail_link_ = &head_;  // the link the next push fills: head_ or the last task's next_ready
};

inline void TaskState::wake() noexcept {
  if (phase >= Phase::queued) return;  // queued or done
  phase = Phase::queued;
  ready_queue->push_back(this);
}

}  // namespace veloq::internal
