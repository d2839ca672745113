#include <doctest/doctest.h>

#include "io_test_support.hpp"

#include <veloq/io/file.hpp>
#include <veloq/io/filesystem.hpp>
#include <veloq/io/io_error.hpp>
#include <veloq/io/tcp_stream.hpp>
#include <veloq/runtime/local_executor.hpp>
#include <veloq/runtime/yield.hpp>

#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

using namespace veloq;
using namespace veloq::io;

namespace {
// A fresh directory on a disk-backed filesystem (O_DIRECT needs one; tmpfs refuses it).
std::string scratch_dir() {
  std::string base = ::access("/var/tmp", W_OK) == 0 ? "/var/tmp" : ".";
  return base + "/veloq-io-file-test-" + std::to_string(::getpid());
}

struct AlignedFree {
  void operator()(void* p) const noexcept { std::free(p); }
};
std::unique_ptr<std::byte, AlignedFree> aligned_block(std::size_t size) {
  return std::unique_ptr<std::byte, AlignedFree>(static_cast<std::byte*>(std::aligned_alloc(4096, size)));
}
}  // namespace

TEST_CASE("files are created, written, read, synced, grown, stat'ed, renamed and removed through the ring") {
  LocalExecutor ex;
  ex.block_on([]() -> Task<void> {
    std::string dir = scratch_dir();
    co_await make_directory(dir);
    std::string path = dir + "/data";
    File file = co_await File::create(path);
    auto data = io_test::pattern(10000);
    CHECK(co_await file.write_at(data.data(), data.size(), 0) == data.size());
    co_await file.fsync();
    co_await file.fdatasync();
    std::vector<std::byte> back(data.size());
    CHECK(co_await file.read_at(back.data(), back.size(), 0) == back.size());
    CHECK(back == data);

    char a[3] = {'a', 'b', 'c'}, b[2] = {'d', 'e'};
    iovec out[] = {{a, 3}, {b, 2}};
    CHECK(co_await file.writev_at(out, 2, 20000) == 5);
    char c[5] = {};
    iovec in[] = {{c, 2}, {c + 2, 3}};
    CHECK(co_await file.readv_at(in, 2, 20000) == 5);
    CHECK(std::string(c, 5) == "abcde");

    co_await file.fallocate(0, 1 << 20);
    struct statx st = co_await file.stat();
    CHECK(st.stx_size == 1 << 20);
    CHECK(co_await file.read_at(back.data(), 16, 2 << 20) == 0);  // past the end
    co_await file.close();

    co_await rename_file(path, dir + "/renamed");
    CHECK((co_await stat_path(dir + "/renamed")).stx_size == 1 << 20);
    try {
      co_await stat_path(path);
      FAIL("the old name still exists");
    } catch (const IoError& e) {
      CHECK(e.code().value() == ENOENT);
      CHECK(std::string(e.what()) == "statx " + path + ": No such file or directory (ENOENT)");
    }
    co_await remove_file(dir + "/renamed");
    co_await remove_directory(dir);
    CHECK_THROWS_AS(co_await File::open(dir + "/renamed", O_RDONLY), IoError);
  }());
}

TEST_CASE("O_DIRECT reads and writes aligned blocks; a misaligned request fails with EINVAL") {
  LocalExecutor ex;
  ex.block_on([]() -> Task<void> {
    std::string path = scratch_dir() + ".direct";
    File file;
    try {
      file = co_await File::open(path, O_RDWR | O_CREAT | O_TRUNC | O_DIRECT);
    } catch (const IoError& e) {
      MESSAGE("O_DIRECT not supported here: " << e.what());
      co_return;
    }
    constexpr std::size_t block = 4096;
    auto out = aligned_block(4 * block);
    auto in = aligned_block(4 * block);
    auto data = io_test::pattern(4 * block);
    std::memcpy(out.get(), data.data(), data.size());
    CHECK(co_await file.write_at(out.get(), 4 * block, 0) == 4 * block);
    CHECK(co_await file.read_at(in.get(), 4 * block, 0) == 4 * block);
    CHECK(std::memcmp(in.get(), out.get(), 4 * block) == 0);
    try {
      co_await file.read_at(in.get() + 1, block, 0);  // misaligned buffer
      FAIL("a misaligned O_DIRECT read succeeded");
    } catch (const IoError& e) {
      CHECK(e.code().value() == EINVAL);
      CHECK(std::string(e.what()).find("read_at " + path) == 0);
      CHECK(std::string(e.what()).find("(EINVAL)") != std::string::npos);
    }
    CHECK_THROWS_AS(co_await file.write_at(out.get(), 100, 0), IoError);  // misaligned length
    co_await file.close();
    co_await remove_file(path);
  }());
}

TEST_CASE("read_fixed and write_fixed use the shard's registered buffer pool") {
  LocalExecutor ex;
  ex.block_on([&]() -> Task<void> {
    RuntimeContext& ctx = RuntimeContext::current();
    REQUIRE(ctx.buffer_pool() != nullptr);
    REQUIRE(ctx.buffer_pool()->registered());
    auto out = ctx.buffer_pool()->try_acquire(4096);
    auto in = ctx.buffer_pool()->try_acquire(4096);
    REQUIRE(out);
    REQUIRE(in);
    int out_index = out.fixed_index_for(ctx.driver());
    int in_index = in.fixed_index_for(ctx.driver());
    REQUIRE(out_index >= 0);
    REQUIRE(in_index >= 0);
    std::string path = scratch_dir() + ".fixed";
    File file = co_await File::create(path);
    std::memset(out.data(), 'q', 4096);
    CHECK(co_await file.write_fixed(out.data(), 4096, 0, out_index) == 4096);
    std::memset(in.data(), 0, 4096);
    CHECK(co_await file.read_fixed(in.data(), 4096, 0, in_index) == 4096);
    CHECK(std::memcmp(out.data(), in.data(), 4096) == 0);
    co_await file.close();
    co_await remove_file(path);
  }());
}

namespace {
Task<void> open_and_hold(std::string path) {
  File file = co_await File::open(path, O_RDONLY);
  co_await veloq::yield();
  co_await file.close();
}
}  // namespace

TEST_CASE("opens whose task is cancelled at any moment leak no descriptor") {
  // The cancel lands at different points of the open: before it reaches the
  // kernel, while the kernel runs it (the CQE then still carries a new fd),
  // after its CQE woke the task but before the task ran, and after it ran.
  const int before = io_test::open_fd_count();
  std::string path = scratch_dir() + "-opens";
  {
    LocalExecutor ex;
    ex.block_on([&]() -> Task<void> {
      File created = co_await File::create(path);
      co_await created.close();
      for (int round = 0; round < 400; ++round) {
        std::vector<JoinHandle<void>> openers;
        for (int i = 0; i < 8; ++i) openers.push_back(spawn(open_and_hold(path)));
        for (int y = 0; y < round % 5; ++y) co_await veloq::yield();
        co_await io_test::cancel_and_join(openers);
      }
      co_await remove_file(path);
    }());
  }
  CHECK(io_test::open_fd_count() == before);
}

TEST_CASE("an executor destroyed with opens in flight closes the descriptors they return") {
  const int before = io_test::open_fd_count();
  std::string path = scratch_dir() + "-shutdown";
  {
    LocalExecutor ex;
    ex.block_on([&]() -> Task<void> {
      File created = co_await File::create(path);
      co_await created.close();
      for (int i = 0; i < 64; ++i) spawn(open_and_hold(path)).detach();
      co_await veloq::yield();  // the opens reach the kernel in this turn's enter
    }());
  }
  ::unlink(path.c_str());
  CHECK(io_test::open_fd_count() == before);
}

TEST_CASE("a read or receive asking for 4 GiB or more comes back short, not empty") {
  // 4 GiB of address space, never touched: only the first bytes are written.
  constexpr std::size_t huge = std::size_t{4} << 30;
  void* space = ::mmap(nullptr, huge, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  REQUIRE(space != MAP_FAILED);
  LocalExecutor ex;
  ex.block_on([](void* space) -> Task<void> {
    std::string path = scratch_dir() + ".huge";
    File file = co_await File::create(path);
    CHECK(co_await file.write_at("hello", 5, 0) == 5);
    CHECK(co_await file.read_at(space, huge, 0) == 5);  // a length cut to 32 bits would ask for 0
    co_await file.close();
    co_await remove_file(path);

    auto pair = co_await io_test::connected_pair();
    co_await pair.server.write_all("world", 5);
    CHECK(co_await pair.client.read(space, huge) == 5);
    CHECK(std::memcmp(space, "world", 5) == 0);
  }(space));
  ::munmap(space, huge);
}

TEST_CASE("read_at and write_at at offset 2^64-1 fail with EINVAL, not at the file position") {
  LocalExecutor ex;
  ex.block_on([]() -> Task<void> {
    std::string path = "./veloq-test-offset-" + std::to_string(::getpid());
    File file = co_await File::create(path);
    CHECK(co_await file.write_at("hello", 5, 0) == 5);
    int error = 0;
    try {
      (void)co_await file.write_at("XY", 2, UINT64_MAX);
    } catch (const IoError& e) {
      error = e.code().value();
    }
    CHECK(error == EINVAL);
    char back[5] = {};
    CHECK(co_await file.read_at(back, 5, 0) == 5);
    CHECK(std::string(back, 5) == "hello");  // not "XYllo"
    error = 0;
    try {
      (void)co_await file.read_at(back, 5, UINT64_MAX);
    } catch (const IoError& e) {
      error = e.code().value();
    }
    CHECK(error == EINVAL);
    co_await file.close();
    co_await remove_file(path);
  }());
}

TEST_CASE("a rename that fails names the destination too") {
  LocalExecutor ex;
  ex.block_on([]() -> Task<void> {
    std::string from = "./veloq-test-rename-" + std::to_string(::getpid());
    std::string to = from + "-missing-dir/target";
    File file = co_await File::create(from);
    co_await file.close();
    std::string message;
    try {
      co_await rename_file(from, to);
    } catch (const IoError& e) {
      CHECK(e.code().value() == ENOENT);
      message = e.what();
    }
    INFO(message);
    CHECK(message.find(to) != std::string::npos);
    CHECK(message.find(from) != std::string::npos);
    co_await remove_file(from);
  }());
}
