// Exceptions the runtime throws at its users. Each carries a message that says
// what was attempted and why it cannot be done, so a misuse reads as a sentence.
#pragma once

#include <stdexcept>
#include <string>

namespace veloq {

// Runtime code was called on a thread that has not entered a RuntimeContext.
class NoRuntimeContext : public std::logic_error {
 public:
  explicit NoRuntimeContext(const char* what_was_called)
      : std::logic_error(std::string("veloq: ") + what_was_called +
                         " needs a runtime context, but none is entered on this thread "
                         "(call it from a task inside Runtime::run, or enter a RuntimeContext)") {}
};

// A runtime was started, or a context entered, where that is not allowed.
class RuntimeMisuse : public std::logic_error {
 public:
  using std::logic_error::logic_error;
};

// Thrown when awaiting the result of a task that was cancelled before it finished.
class TaskCancelled : public std::runtime_error {
 public:
  TaskCancelled() : std::runtime_error("veloq: task was cancelled") {}
};

// A primitive (gate, channel, semaphore) was closed while the caller waited on it or tried to enter.
class ClosedError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace veloq
