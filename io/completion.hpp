// Completion: what a submitted io_uring operation points at through its
// user_data. When the kernel's completion arrives, the driver calls
// `on_complete` with the result; the object decides whether to wake a task,
// re-arm, or free itself. Keeping it a plain function pointer keeps the hot
// path free of virtual calls and lets awaitables embed it.
#pragma once

#include <cstdint>

namespace veloq::io {

struct Completion {
  using Handler = void (*)(Completion* self, int result, std::uint32_t cqe_flags) noexcept;
  Handler on_complete = nullptr;
};

}  // namespace veloq::io
