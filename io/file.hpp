// File: an open file whose every operation goes through the shard's ring.
//
//   auto file = co_await File::open("/data/log", O_RDWR | O_CREAT | O_DIRECT);
//   std::size_t n = co_await file.write_at(block, 4096, 0);
//   co_await file.fdatasync();
//   struct statx st = co_await file.stat();
//   co_await file.close();
//
// Positions are explicit (pread/pwrite style); there is no file cursor.
// With O_DIRECT the buffer, length and offset must be aligned to the
// device's logical block size (usually 512 or 4096); misaligned requests fail
// with EINVAL ("read_at /data/log: Invalid argument (EINVAL)").
// read_fixed/write_fixed use buffers registered with the ring
// (io_uring_register_buffers); `buf_index` names the registration.
#pragma once

#include <veloq/io/file_descriptor.hpp>
#include <veloq/io/operation.hpp>

#include <fcntl.h>
#include <linux/stat.h>
#include <sys/stat.h>
#include <sys/uio.h>

#include <cstddef>
#include <cstdint>
#include <string>

namespace veloq::io {

namespace internal {
struct ToBytes {
  std::size_t operator()(int result) const noexcept { return static_cast<std::size_t>(result); }
};
struct Nothing {
  void operator()(int) const noexcept {}
};
// Prepares an operation on a path; keeps the path alive while the kernel reads it.
struct PathPrepare {
  std::string path;
  const char* subject_path() const noexcept { return path.c_str(); }
};
}  // namespace internal

class File {
 public:
  File() noexcept = default;
  explicit File(FileDescriptor fd) noexcept : fd_(std::move(fd)) {}

  // Opens `path` through the ring (IORING_OP_OPENAT) -> File. O_CLOEXEC is added.
  static auto open(std::string path, int flags, mode_t mode = 0644) {
    struct Prepare : internal::PathPrepare {
      int flags;
      mode_t mode;
      void operator()(io_uring_sqe* sqe) {
        io_uring_prep_openat(sqe, AT_FDCWD, path.c_str(), flags | O_CLOEXEC, mode);
      }
    };
    // A new fd: if the task is gone when the open completes, the operation closes it.
    struct ToFile : internal::ResultIsFd {
      File operator()(int fd) const noexcept { return File(FileDescriptor(fd)); }
    };
    return Operation("open", -1, Prepare{{std::move(path)}, flags, mode}, ToFile{});
  }
  // Creates (or truncates) `path` for reading and writing -> File.
  static auto create(std::string path, mode_t mode = 0644) {
    return open(std::move(path), O_RDWR | O_CREAT | O_TRUNC, mode);
  }

  int fd() const noexcept { return fd_.get(); }
  bool is_open() const noexcept { return fd_.valid(); }

  // Reads up to `size` bytes at `offset` -> std::size_t (0 at end of file).
  auto read_at(void* data, std::size_t size, std::uint64_t offset) {
    int fd = fd_.get();
    offset = internal::explicit_offset(offset);
    return Operation("read_at", fd,
                     [=](io_uring_sqe* sqe) { io_uring_prep_read(sqe, fd, data, internal::io_length(size), offset); },
                     internal::ToBytes{});
  }
  // Writes up to `size` bytes at `offset` -> std::size_t written.
  auto write_at(const void* data, std::size_t size, std::uint64_t offset) {
    int fd = fd_.get();
    offset = internal::explicit_offset(offset);
    return Operation(
        "write_at", fd,
        [=](io_uring_sqe* sqe) { io_uring_prep_write(sqe, fd, data, internal::io_length(size), offset); },
        internal::ToBytes{});
  }
  // Scatter/gather at `offset`; the iovec array must stay valid until the call returns.
  auto readv_at(const iovec* buffers, unsigned count, std::uint64_t offset) {
    int fd = fd_.get();
    offset = internal::explicit_offset(offset);
    return Operation("readv_at", fd,
                     [=](io_uring_sqe* sqe) { io_uring_prep_readv(sqe, fd, buffers, count, offset); },
                     internal::ToBytes{});
  }
  auto writev_at(const iovec* buffers, unsigned count, std::uint64_t offset) {
    int fd = fd_.get();
    offset = internal::explicit_offset(offset);
    return Operation("writev_at", fd,
                     [=](io_uring_sqe* sqe) { io_uring_prep_writev(sqe, fd, buffers, count, offset); },
                     internal::ToBytes{});
  }
  // Reads into / writes from a buffer registered with the ring at `buf_index`.
  auto read_fixed(void* buf, std::size_t len, std::uint64_t offset, int buf_index) {
    int fd = fd_.get();
    offset = internal::explicit_offset(offset);
    return Operation("read_fixed", fd,
                     [=](io_uring_sqe* sqe) {
                       io_uring_prep_read_fixed(sqe, fd, buf, internal::io_length(len), offset, buf_index);
                     },
                     internal::ToBytes{});
  }
  auto write_fixed(const void* buf, std::size_t len, std::uint64_t offset, int buf_index) {
    int fd = fd_.get();
    offset = internal::explicit_offset(offset);
    return Operation("write_fixed", fd,
                     [=](io_uring_sqe* sqe) {
                       io_uring_prep_write_fixed(sqe, fd, buf, internal::io_length(len), offset, buf_index);
                     },
                     internal::ToBytes{});
  }

  // Flushes data and metadata (IORING_OP_FSYNC).
  auto fsync() {
    int fd = fd_.get();
    return Operation("fsync", fd, [=](io_uring_sqe* sqe) { io_uring_prep_fsync(sqe, fd, 0); }, internal::Nothing{});
  }
  // Flushes data and only the metadata needed to read it back.
  auto fdatasync() {
    int fd = fd_.get();
    return Operation("fdatasync", fd,
                     [=](io_uring_sqe* sqe) { io_uring_prep_fsync(sqe, fd, IORING_FSYNC_DATASYNC); },
                     internal::Nothing{});
  }
  // Reserves (mode 0) or punches (FALLOC_FL_*) space (IORING_OP_FALLOCATE).
  auto fallocate(std::uint64_t offset, std::uint64_t length, int mode = 0) {
    int fd = fd_.get();
    return Operation("fallocate", fd,
                     [=](io_uring_sqe* sqe) { io_uring_prep_fallocate(sqe, fd, mode, offset, length); },
                     internal::Nothing{});
  }
  // The file's metadata (IORING_OP_STATX) -> struct statx.
  auto stat(unsigned mask = STATX_BASIC_STATS) {
    struct Prepare {
      int fd;
      unsigned mask;
      struct statx result {};
      void operator()(io_uring_sqe* sqe) { io_uring_prep_statx(sqe, fd, "", AT_EMPTY_PATH, mask, &result); }
    };
    return Operation("statx", fd_.get(), Prepare{fd_.get(), mask},
                     [](int, Prepare& p) noexcept { return p.result; });
  }

  // Closes through the ring (IORING_OP_CLOSE).
  auto close() { return fd_.close(); }

 private:
  FileDescriptor fd_;
};

}  // namespace veloq::io
