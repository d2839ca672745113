// SourceLocation: where a task was spawned. std::source_location is not
// usable with clang 14 on libstdc++ 12, so this keeps the same idea on the
// compiler builtins both compilers have.
#pragma once

namespace veloq {

struct SourceLocation {
  const char* file = "";
  const char* function = "";
  unsigned line = 0;

  static constexpr SourceLocation current(const char* file = __builtin_FILE(),
                                          const char* function = __builtin_FUNCTION(),
                                          unsigned line = __builtin_LINE()) noexcept {
    return SourceLocation{file, function, line};
  }
};

}  // namespace veloq
