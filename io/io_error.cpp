#include <veloq/io/io_error.hpp>

#include <cerrno>
#include <cstring>

namespace veloq::io {

std::string errno_name(int error_number) {
  if (const char* name = ::strerrorname_np(error_number)) return name;
  return "errno " + std::to_string(error_number);
}

IoError::IoError(int error_number, std::string_view operation)
    : std::system_error(error_number, std::system_category()) {
  message_.reserve(operation.size() + 64);
  message_.append(operation);
  message_.append(": ");
  message_.append(std::strerror(error_number));
  message_.append(" (");
  message_.append(errno_name(error_number));
  message_.append(")");
}

TimeoutError::TimeoutError(std::string_view operation) : IoError(ETIMEDOUT, operation) {}

OperationCancelled::OperationCancelled(std::string_view operation) : IoError(ECANCELED, operation) {}

UnexpectedEof::UnexpectedEof(std::string_view operation, std::size_t got, std::size_t wanted)
    : IoError(ENODATA, std::string(operation) + ": the peer closed the stream after " + std::to_string(got) +
                           " of " + std::to_string(wanted) + " bytes") {}

}  // namespace veloq::io
