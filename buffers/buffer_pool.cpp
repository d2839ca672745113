#include <veloq/buffers/buffer_pool.hpp>
#include <veloq/buffers/home_route.hpp>
#include <veloq/io/driver.hpp>
#include <veloq/runtime/errors.hpp>
#include <veloq/runtime/local_executor.hpp>
#include <veloq/runtime/log.hpp>
#include <veloq/runtime/runtime_context.hpp>
#include <veloq/runtime/task_state.hpp>

#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cassert>
#include <cerrno>
#include <cstring>
#include <limits>
#include <memory>
#include <stdexcept>
#include <string>
#include <system_error>

namespace veloq::buffers {

namespace internal {

// The pool itself. BufferPool is its owner's handle; the core outlives the
// handle while buffers are still out, so a late drop never touches freed
// memory. Every member is touched only on the home shard's thread, except
// `shard` and `owner`, which never change after construction.
class PoolCore {
 public:
  struct Class {
    std::byte* base = nullptr;
    std::size_t bytes = 0;
    std::uint32_t count = 0;
    // Free indices; the most recently returned is reused first, warm in cache.
    // Reserved to `count` up front, so returning a buffer never allocates.
    std::vector<std::uint32_t> free;
    veloq::internal::WaitList waiters{"buffer pool"};
  };

  PoolCore(io::Driver& driver, unsigned shard_id, const BufferPoolConfig& config);
  PoolCore(const PoolCore&) = delete;
  PoolCore& operator=(const PoolCore&) = delete;
  ~PoolCore() { munmap(region_, region_bytes_); }

  bool on_home_thread() const noexcept { return &veloq::internal::this_thread_tag == owner_tag; }

  std::uint16_t class_for(std::size_t bytes) const {
    for (std::size_t i = 0; i < class_count; ++i)
      if (bytes <= classes[i].bytes) return static_cast<std::uint16_t>(i);
    throw std::length_error("veloq: a buffer of " + std::to_string(bytes) + " bytes was asked for, but the pool's " +
                            "largest size class is " + std::to_string(classes[class_count - 1].bytes) + " bytes");
  }

  // Hands out a free buffer of class `c` (there must be one).
  Buffer take_free(std::uint16_t c) noexcept {
    std::uint32_t index = classes[c].free.back();
    classes[c].free.pop_back();
    ++outstanding_;
    return handle(c, index);
  }

  Buffer handle(std::uint16_t c, std::uint32_t index) noexcept {
    ++stats.acquired;
    const Class& cls = classes[c];
    return Buffer(this, cls.base + static_cast<std::size_t>(index) * cls.bytes, registered ? driver_ : nullptr,
                  static_cast<std::uint32_t>(cls.bytes), index, c);
  }

  // A buffer is back on its home thread: the first waiter of its class gets
  // it directly (so a try_acquire cannot overtake a waiting task), otherwise
  // it joins the free list.
  void put_back(std::uint16_t c, std::uint32_t index) noexcept {
    Class& cls = classes[c];
    if (!cls.waiters.empty()) {
      static_cast<BufferGrant*>(cls.waiters.front())->index = index;
      cls.waiters.wake_front();
      return;
    }
    cls.free.push_back(index);
    --outstanding_;
    free_if_unused();
  }

  // An acquire() awaiter exists: the core outlives it, even when it is never
  // awaited or the pool goes first (it then throws ClosedError if awaited).
  void awaiter_made() noexcept { ++awaiters_; }
  void awaiter_gone() noexcept {
    --awaiters_;
    free_if_unused();
  }
  bool closed() const noexcept { return closed_; }

  // The handle is gone: unregister, turn waiters away, and free the memory
  // now or when the last buffer or acquire() awaiter is gone.
  void close() noexcept {
    closed_ = true;
    if (registered) {
      if (int rc = io_uring_unregister_buffers(&driver_->ring()); rc < 0)
        log().warn("buffer pool: unregistering its buffers failed: {}", std::strerror(-rc));
      registered = false;
    }
    for (std::size_t c = 0; c < class_count; ++c) {
      Class& cls = classes[c];
      while (!cls.waiters.empty()) {
        static_cast<BufferGrant*>(cls.waiters.front())->pool_closed = true;
        cls.waiters.wake_front();
      }
    }
    if (outstanding_ == 0) return free_if_unused();
    log().warn("buffer pool destroyed with {} buffers still out; its memory is freed when they come back",
               outstanding_);
  }

  std::size_t region_bytes() const noexcept { return region_bytes_; }

  const unsigned shard;
  const char* const owner_tag;  // the home thread's this_thread_tag
  std::unique_ptr<Class[]> classes;  // a WaitList does not move, so no vector
  std::size_t class_count = 0;
  bool registered = false;
  BufferPoolStats stats;

 private:
  void register_region(const BufferPoolConfig& config);

  // After close(), the last buffer or awaiter to go frees the core.
  void free_if_unused() noexcept {
    if (closed_ && outstanding_ == 0 && awaiters_ == 0) delete this;
  }

  io::Driver* driver_;
  void* region_ = nullptr;
  std::size_t region_bytes_ = 0;
  std::size_t outstanding_ = 0;  // handed out, or granted to a waiter
  std::size_t awaiters_ = 0;     // acquire() awaiters not yet destroyed
  bool closed_ = false;
};

namespace {

void validate(const BufferPoolConfig& config, std::size_t page) {
  auto fail = [](const std::string& why) { throw std::invalid_argument("veloq: BufferPoolConfig: " + why); };
  if (config.classes.empty()) fail("it has no size classes");
  if (config.classes.size() > 1024) fail("it has more than 1024 size classes");
  std::size_t previous = 0;
  for (const SizeClass& c : config.classes) {
    if (c.bytes == 0 || c.bytes % page != 0)
      fail("size class of " + std::to_string(c.bytes) + " bytes is not a positive multiple of the page size (" +
           std::to_string(page) + ")");
    if (c.bytes > std::numeric_limits<std::uint32_t>::max())
      fail("size class of " + std::to_string(c.bytes) + " bytes is larger than 4 GiB");
    if (c.bytes <= previous) fail("size classes must be listed in ascending order without repeats");
    if (c.count == 0) fail("size class of " + std::to_string(c.bytes) + " bytes has no buffers");
    previous = c.bytes;
  }
}

std::string memlock_limit_text() {
  rlimit limit{};
  if (getrlimit(RLIMIT_MEMLOCK, &limit) != 0) return "unknown";
  if (limit.rlim_cur == RLIM_INFINITY) return "unlimited";
  return std::to_string(limit.rlim_cur / 1024) + " KiB";
}

}  // namespace

PoolCore::PoolCore(io::Driver& driver, unsigned shard_id, const BufferPoolConfig& config)
    : shard(shard_id), owner_tag(&veloq::internal::this_thread_tag), driver_(&driver) {
  const auto page = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
  validate(config, page);
  for (const SizeClass& c : config.classes) {
    if (c.count > (std::numeric_limits<std::size_t>::max() - region_bytes_) / c.bytes)
      throw std::invalid_argument("veloq: BufferPoolConfig: the pool's total size overflows");
    region_bytes_ += c.bytes * c.count;
  }
  // Anonymous memory is page-aligned, and every class size is a multiple of
  // the page, so every buffer starts on a page boundary (O_DIRECT needs it).
  region_ = mmap(nullptr, region_bytes_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (region_ == MAP_FAILED)
    throw std::system_error(errno, std::generic_category(),
                            "veloq: mapping a buffer pool of " + std::to_string(region_bytes_) + " bytes");
  auto* at = static_cast<std::byte*>(region_);
  class_count = config.classes.size();
  classes = std::make_unique<Class[]>(class_count);
  for (std::size_t i = 0; i < class_count; ++i) {
    const SizeClass& c = config.classes[i];
    Class& cls = classes[i];
    cls.base = at;
    cls.bytes = c.bytes;
    cls.count = c.count;
    cls.free.reserve(c.count);
    for (std::uint32_t i = c.count; i > 0; --i) cls.free.push_back(i - 1);  // index 0 is handed out first
    at += c.bytes * c.count;
  }
  if (config.register_buffers) register_region(config);
}

void PoolCore::register_region(const BufferPoolConfig& config) {
  std::vector<iovec> iovecs;
  iovecs.reserve(class_count);
  for (std::size_t c = 0; c < class_count; ++c) iovecs.push_back(iovec{classes[c].base, classes[c].bytes * classes[c].count});
  int rc = config.simulate_registration_failure
               ? -ENOMEM
               : io_uring_register_buffers(&driver_->ring(), iovecs.data(), static_cast<unsigned>(iovecs.size()));
  if (rc == 0) {
    registered = true;
    log().debug("buffer pool: registered {} KiB in {} size classes", region_bytes_ / 1024, class_count);
    return;
  }
  // Logged once, here: the pool stays unregistered for its whole life.
  log().warn("buffer pool: io_uring refused to register {} KiB of buffers ({}{}); they stay unregistered and I/O "
             "on them uses plain read/write. RLIMIT_MEMLOCK is {}; raise it (ulimit -l, systemd LimitMEMLOCK=) "
             "or shrink the pool",
             region_bytes_ / 1024, std::strerror(-rc), config.simulate_registration_failure ? ", simulated" : "",
             memlock_limit_text());
}

namespace {

struct ReturnNote {
  PoolCore* core;
  std::uint32_t index;
  std::uint16_t size_class;
};

void arrive_home(mesh::MeshMessage& m, mesh::Delivery) {
  auto note = m.get<ReturnNote>();
  // A message discarded at shutdown is handed over on its sender's thread
  // (staged, never pushed) or on the home thread (pushed, never drained):
  // only the latter may touch the pool.
  if (!note.core->on_home_thread()) {
    log().debug("a buffer of shard {} was dropped at shutdown before it reached home", note.core->shard);
    return;
  }
  ++note.core->stats.remote_returns;
  note.core->put_back(note.size_class, note.index);
}

}  // namespace

bool still_registered(const PoolCore* core) noexcept { return core->registered; }

void release_buffer(PoolCore* core, std::uint16_t size_class, std::uint32_t index) noexcept {
  if (core->on_home_thread()) return core->put_back(size_class, index);
  send_to_home_shard(core->shard, mesh::MeshMessage::make(&arrive_home, ReturnNote{core, index, size_class}),
                     "pool buffer");
}

}  // namespace internal

BufferPool::BufferPool(io::Driver& driver, unsigned shard_id, const BufferPoolConfig& config)
    : core_(new internal::PoolCore(driver, shard_id, config)) {}

BufferPool::~BufferPool() {
  assert(core_->on_home_thread() && "a BufferPool is destroyed on its own shard");
  core_->close();
}

BufferPool& BufferPool::current() {
  RuntimeContext& ctx = RuntimeContext::current("BufferPool::current");
  if (ctx.buffer_pool() == nullptr)
    throw RuntimeMisuse("veloq: no buffer pool is bound to shard " + std::to_string(ctx.shard_id()) +
                        "; create a BufferPool on the shard and bind it with RuntimeContext::bind_buffer_pool");
  return *ctx.buffer_pool();
}

Buffer BufferPool::try_acquire(std::size_t bytes) {
  assert(core_->on_home_thread() && "buffers are acquired on the pool's own shard");
  std::uint16_t c = core_->class_for(bytes);
  if (core_->classes[c].free.empty()) {
    ++core_->stats.exhausted;
    return Buffer();
  }
  return core_->take_free(c);
}

BufferPool::AcquireAwaiter BufferPool::acquire(std::size_t bytes) {
  assert(core_->on_home_thread() && "buffers are acquired on the pool's own shard");
  return AcquireAwaiter(*core_, core_->class_for(bytes));
}

BufferPool::AcquireAwaiter::AcquireAwaiter(internal::PoolCore& core, std::uint16_t size_class) noexcept
    : core_(core), size_class_(size_class) {
  core_.awaiter_made();
}

BufferPool::AcquireAwaiter::~AcquireAwaiter() {
  if (grant_.woken && !grant_.pool_closed && !taken_) core_.put_back(size_class_, grant_.index);
  core_.awaiter_gone();
}

bool BufferPool::AcquireAwaiter::await_ready() {
  if (core_.closed()) return true;  // await_resume throws ClosedError
  // A free buffer means nobody waits: put_back serves waiters first.
  if (core_.classes[size_class_].free.empty()) {
    ++core_.stats.waited;
    return false;
  }
  ready_ = core_.take_free(size_class_);
  return true;
}

void BufferPool::AcquireAwaiter::await_suspend(std::coroutine_handle<> h) noexcept {
  veloq::internal::TaskState* task = veloq::internal::running_task();
  task->resume_point = h;
  core_.classes[size_class_].waiters.push_back(grant_, task, h);
}

Buffer BufferPool::AcquireAwaiter::await_resume() {
  grant_.throw_if_interrupted();  // a stopped region: a buffer granted meanwhile goes back in the destructor
  taken_ = true;
  if (ready_) return std::move(ready_);
  if (!grant_.woken) throw ClosedError("veloq: acquire() on a buffer pool that was destroyed");
  if (grant_.pool_closed) throw ClosedError("veloq: the buffer pool was destroyed while a task waited for a buffer");
  return core_.handle(size_class_, grant_.index);
}

bool BufferPool::registered() const noexcept { return core_->registered; }
unsigned BufferPool::shard_id() const noexcept { return core_->shard; }
std::size_t BufferPool::class_count() const noexcept { return core_->class_count; }
std::size_t BufferPool::class_bytes(std::size_t c) const noexcept { return core_->classes[c].bytes; }
std::uint32_t BufferPool::class_capacity(std::size_t c) const noexcept { return core_->classes[c].count; }
std::uint32_t BufferPool::free_count(std::size_t c) const noexcept {
  return static_cast<std::uint32_t>(core_->classes[c].free.size());
}
std::size_t BufferPool::free_count() const noexcept {
  std::size_t n = 0;
  for (std::size_t c = 0; c < core_->class_count; ++c) n += core_->classes[c].free.size();
  return n;
}
std::size_t BufferPool::waiting(std::size_t c) const noexcept { return core_->classes[c].waiters.size(); }
std::size_t BufferPool::region_bytes() const noexcept { return core_->region_bytes(); }
const BufferPoolStats& BufferPool::stats() const noexcept { return core_->stats; }

}  // namespace veloq::buffers
