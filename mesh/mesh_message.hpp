// MeshMessage: one entry of a mesh ring, 32 bytes (two per cache line). It is
// a function pointer plus 24 bytes of payload: small trivially copyable
// closures travel inline; anything else travels as a pointer to an object
// owned by the sending shard, which gets it back over the mesh to free it.
#pragma once

#include <cstddef>
#include <cstring>
#include <new>
#include <type_traits>
#include <utility>

namespace veloq::mesh {

// How a message is handled: normally run on the receiving shard, or, while a
// runtime shuts down and its loops have stopped, discarded so that whatever it
// owns is released.
enum class Delivery { run, discard };

struct MeshMessage {
  using Handler = void (*)(MeshMessage& self, Delivery how);
  static constexpr std::size_t payload_bytes = 24;

  Handler handler = nullptr;
  alignas(8) std::byte payload[payload_bytes];

  template <typename T>
  static constexpr bool fits_inline =
      sizeof(T) <= payload_bytes && alignof(T) <= 8 && std::is_trivially_copyable_v<T> &&
      std::is_trivially_destructible_v<T>;

  template <typename T>
  static MeshMessage make(Handler h, const T& value) noexcept {
    static_assert(fits_inline<T>);
    MeshMessage m;
    m.handler = h;
    std::memcpy(m.payload, &value, sizeof(T));
    return m;
  }

  // The inline payload. memcpy into the byte array implicitly created the T
  // (it is trivially copyable), so it can be used in place.
  template <typename T>
  T& get() noexcept {
    static_assert(fits_inline<T>);
    return *std::launder(reinterpret_cast<T*>(payload));
  }
};

static_assert(sizeof(MeshMessage) == 32);
static_assert(std::is_trivially_copyable_v<MeshMessage>);

}  // namespace veloq::mesh
