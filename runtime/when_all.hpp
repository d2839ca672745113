// when_all: runs several tasks concurrently on the current shard and waits for
// all of them. Results come back in argument order (a void task gives
// std::monostate). If any task throws, the others still finish and the first
// exception (in argument order) is rethrown. If the awaiting task is
// cancelled, the children are cancelled with it.
//
//   auto [a, b] = co_await veloq::when_all(fetch(1), fetch(2));
#pragma once

#include <veloq/runtime/local_executor.hpp>

#include <exception>
#include <tuple>
#include <type_traits>
#include <variant>
#include <vector>

namespace veloq {

namespace internal {
template <typename T>
using NonVoid = std::conditional_t<std::is_void_v<T>, std::monostate, T>;

// Cancels the children that have not finished when the join is abandoned.
template <typename Handles>
struct CancelUnfinished {
  Handles& handles;
  ~CancelUnfinished() {
    auto cancel = [](auto& h) {
      if (h.valid() && !h.done()) h.cancel();
    };
    if constexpr (requires { handles.begin(); })
      for (auto& h : handles) cancel(h);
    else
      std::apply([&](auto&... h) { (cancel(h), ...); }, handles);
  }
};

template <typename T>
Task<NonVoid<T>> join_capturing(JoinHandle<T>& handle, std::exception_ptr& first_error) {
  try {
    if constexpr (std::is_void_v<T>) {
      co_await handle;
      co_return std::monostate{};
    } else {
      co_return co_await handle;
    }
  } catch (...) {
    if (!first_error) first_error = std::current_exception();
  }
  co_return NonVoid<T>{};
}
template <typename Results, typename Handles, std::size_t... I>
Task<void> join_each(Results& results, Handles& handles, std::exception_ptr& first_error, std::index_sequence<I...>) {
  ((std::get<I>(results) = co_await join_capturing(std::get<I>(handles), first_error)), ...);
}
}  // namespace internal

template <typename... Ts>
Task<std::tuple<internal::NonVoid<Ts>...>> when_all(Task<Ts>... tasks) {
  // The guard comes first: if a spawn throws, the children already spawned are cancelled.
  std::tuple<JoinHandle<Ts>...> handles;
  internal::CancelUnfinished<std::tuple<JoinHandle<Ts>...>> guard{handles};
  std::apply([&](auto&... h) { ((h = spawn(std::move(tasks))), ...); }, handles);
  std::exception_ptr first_error;
  std::tuple<internal::NonVoid<Ts>...> results;
  co_await internal::join_each(results, handles, first_error, std::index_sequence_for<Ts...>{});
  if (first_error) std::rethrow_exception(first_error);
  co_return results;
}

template <typename T>
Task<std::vector<internal::NonVoid<T>>> when_all(std::vector<Task<T>> tasks) {
  std::vector<JoinHandle<T>> handles;
  handles.reserve(tasks.size());
  internal::CancelUnfinished<std::vector<JoinHandle<T>>> guard{handles};  // see above
  for (auto& t : tasks) handles.push_back(spawn(std::move(t)));
  std::exception_ptr first_error;
  std::vector<internal::NonVoid<T>> results;
  results.reserve(handles.size());
  for (auto& h : handles) results.push_back(co_await internal::join_capturing(h, first_error));
  if (first_error) std::rethrow_exception(first_error);
  co_return results;
}

}  // namespace veloq
