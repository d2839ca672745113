// The exceptions Veloq's I/O operations throw.
//
// Every failed operation throws an IoError (a std::system_error carrying the
// errno) whose what() names the operation, what it acted on, the system's
// message and the errno's name, so a log line alone says what went wrong:
//
//   connect 127.0.0.1:1: Connection refused (ECONNREFUSED)
//
// Operations stopped by a deadline throw TimeoutError (errno ETIMEDOUT) and
// operations stopped by a CancellationToken throw OperationCancelled (errno
// ECANCELED); both are IoErrors, so one catch clause sees every I/O failure.
// EINTR and EAGAIN are never thrown: the operation is retried instead.
#pragma once

#include <string>
#include <string_view>
#include <system_error>

namespace veloq::io {

class IoError : public std::system_error {
 public:
  // `operation` says what was attempted, e.g. "connect 127.0.0.1:1".
  IoError(int error_number, std::string_view operation);
  const char* what() const noexcept override { return message_.c_str(); }

 private:
  std::string message_;
};

// An operation (or a with_timeout region) outlived its deadline.
class TimeoutError : public IoError {
 public:
  explicit TimeoutError(std::string_view operation);
};

// An operation was cancelled through a CancellationToken.
class OperationCancelled : public IoError {
 public:
  explicit OperationCancelled(std::string_view operation);
};

// read_exact met the end of the stream before it had all the bytes it wanted.
class UnexpectedEof : public IoError {
 public:
  UnexpectedEof(std::string_view operation, std::size_t got, std::size_t wanted);
};

// "ECONNREFUSED" for ECONNREFUSED; "errno 4242" for numbers the C library cannot name.
std::string errno_name(int error_number);

}  // namespace veloq::io
