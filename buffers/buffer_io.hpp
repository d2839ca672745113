// prep_read_buffer / prep_write_buffer: prepare an SQE that reads into or
// writes from a pool Buffer, as IORING_OP_READ_FIXED / WRITE_FIXED when the
// buffer is registered with the ring the SQE belongs to, and as plain
// IORING_OP_READ / WRITE otherwise (unregistered pool, or a buffer that
// travelled to another shard). The caller names that ring, because a
// buf_index only means something in the table of the ring it was registered with.
//
//   io_uring_sqe* sqe = driver.prepare(&op);
//   veloq::buffers::prep_read_buffer(sqe, driver, fd, buf, buf.size(), offset);
#pragma once

#include <veloq/buffers/buffer.hpp>
#include <veloq/io/driver.hpp>
#include <veloq/io/operation.hpp>

#include <cassert>
#include <cstddef>
#include <cstdint>

namespace veloq::buffers {

// Reads up to `len` bytes (at most buffer.size()) at `offset` of `fd` into `buffer`.
inline void prep_read_buffer(io_uring_sqe* sqe, const io::Driver& ring, int fd, Buffer& buffer, std::size_t len,
                             std::uint64_t offset) noexcept {
  assert(len <= buffer.size());
  int index = buffer.fixed_index_for(ring);
  offset = io::internal::explicit_offset(offset);  // never "at the file position"
  if (index >= 0)
    io_uring_prep_read_fixed(sqe, fd, buffer.data(), static_cast<unsigned>(len), offset, index);
  else
    io_uring_prep_read(sqe, fd, buffer.data(), static_cast<unsigned>(len), offset);
}

// Writes the first `len` bytes of `buffer` at `offset` of `fd`.
inline void prep_write_buffer(io_uring_sqe* sqe, const io::Driver& ring, int fd, const Buffer& buffer,
                              std::size_t len, std::uint64_t offset) noexcept {
  assert(len <= buffer.size());
  int index = buffer.fixed_index_for(ring);
  offset = io::internal::explicit_offset(offset);  // never "at the file position"
  if (index >= 0)
    io_uring_prep_write_fixed(sqe, fd, buffer.data(), static_cast<unsigned>(len), offset, index);
  else
    io_uring_prep_write(sqe, fd, buffer.data(), static_cast<unsigned>(len), offset);
}

}  // namespace veloq::buffers
