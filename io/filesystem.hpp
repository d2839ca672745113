// Directory-level operations, each one IORING_OP_* through the shard's ring:
// remove_file (unlinkat), remove_directory (unlinkat AT_REMOVEDIR),
// make_directory (mkdirat), rename_file (renameat), stat_path (statx).
//
//   co_await veloq::io::make_directory("/data/new");
//   co_await veloq::io::rename_file("/data/tmp", "/data/final");
//
// Paths are relative to the current directory unless absolute; errors name
// the operation and the path ("unlink /data/x: No such file or directory (ENOENT)").
#pragma once

#include <veloq/io/file.hpp>

#include <string>

namespace veloq::io {

// Removes a file (IORING_OP_UNLINKAT).
inline auto remove_file(std::string path) {
  struct Prepare : internal::PathPrepare {
    void operator()(io_uring_sqe* sqe) { io_uring_prep_unlinkat(sqe, AT_FDCWD, path.c_str(), 0); }
  };
  return Operation("unlink", -1, Prepare{{std::move(path)}}, internal::Nothing{});
}

// Removes an empty directory (IORING_OP_UNLINKAT with AT_REMOVEDIR).
inline auto remove_directory(std::string path) {
  struct Prepare : internal::PathPrepare {
    void operator()(io_uring_sqe* sqe) { io_uring_prep_unlinkat(sqe, AT_FDCWD, path.c_str(), AT_REMOVEDIR); }
  };
  return Operation("rmdir", -1, Prepare{{std::move(path)}}, internal::Nothing{});
}

// Creates a directory (IORING_OP_MKDIRAT).
inline auto make_directory(std::string path, mode_t mode = 0755) {
  struct Prepare : internal::PathPrepare {
    mode_t mode;
    void operator()(io_uring_sqe* sqe) { io_uring_prep_mkdirat(sqe, AT_FDCWD, path.c_str(), mode); }
  };
  return Operation("mkdir", -1, Prepare{{std::move(path)}, mode}, internal::Nothing{});
}

// Renames `from` to `to`, replacing `to` (IORING_OP_RENAMEAT).
inline auto rename_file(std::string from, std::string to) {
  struct Prepare : internal::PathPrepare {
    std::string to;
    std::string both;  // what an error names: either path may be the one at fault
    const char* subject_path() const noexcept { return both.c_str(); }
    void operator()(io_uring_sqe* sqe) {
      io_uring_prep_renameat(sqe, AT_FDCWD, path.c_str(), AT_FDCWD, to.c_str(), 0);
    }
  };
  std::string both = from + " -> " + to;
  return Operation("rename", -1, Prepare{{std::move(from)}, std::move(to), std::move(both)}, internal::Nothing{});
}

// A path's metadata (IORING_OP_STATX) -> struct statx.
inline auto stat_path(std::string path, unsigned mask = STATX_BASIC_STATS) {
  struct Prepare : internal::PathPrepare {
    unsigned mask;
    struct statx result {};
    void operator()(io_uring_sqe* sqe) { io_uring_prep_statx(sqe, AT_FDCWD, path.c_str(), 0, mask, &result); }
  };
  return Operation("statx", -1, Prepare{{std::move(path)}, mask}, [](int, Prepare& p) noexcept { return p.result; });
}

}  // namespace veloq::io
