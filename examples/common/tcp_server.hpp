// What the example TCP servers share: their command line (--shards, --port,
// --host), a raised descriptor limit, a listener on every shard, and the
// accept loop that keeps serving through EMFILE. Header-only; for the
// programs under examples/.
#pragma once

#include <veloq/io/signals.hpp>
#include <veloq/io/tcp_listener.hpp>
#include <veloq/io/tcp_stream.hpp>
#include <veloq/mesh/submit_to.hpp>
#include <veloq/runtime/log.hpp>
#include <veloq/runtime/runtime_context.hpp>
#include <veloq/runtime/sleep.hpp>
#include <veloq/runtime/task.hpp>

#include <sys/resource.h>

#include <charconv>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>
#include <utility>

namespace veloq_examples {

struct ServerOptions {
  unsigned shards = 1;
  std::uint16_t port = 0;
  std::string host = "127.0.0.1";
};

template <typename T>
bool parse_number(std::string_view text, T& out) {
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  return ec == std::errc{} && end == text.data() + text.size();
}

// Reads --shards, --port and --host; `usage` is printed for --help (to
// stdout) and after a usage error (to stderr, prefixed by `program`).
// Returns -1 to run, else main's exit status: 0 after --help, 2 for a usage error.
inline int parse_server_options(int argc, char** argv, const char* program, const char* usage,
                                ServerOptions& options) {
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      std::fputs(usage, stdout);
      return 0;
    }
    if (i + 1 >= argc || (arg != "--shards" && arg != "--port" && arg != "--host")) {
      std::fprintf(stderr, "%s: unexpected argument '%s'\n%s", program, argv[i], usage);
      return 2;
    }
    std::string_view value = argv[++i];
    bool ok = true;
    if (arg == "--shards")
      ok = parse_number(value, options.shards) && options.shards > 0;
    else if (arg == "--port")
      ok = parse_number(value, options.port);
    else
      options.host = value;
    if (!ok) {
      std::fprintf(stderr, "%s: bad value '%s' for %s\n", program, argv[i], argv[i - 1]);
      return 2;
    }
  }
  return -1;
}

// What a server does before its runtime starts: reads its options (see
// parse_server_options), blocks SIGINT and SIGTERM so that every shard
// inherits the mask and veloq::io::wait_for_stop_signal() receives them, and
// raises the soft limit on open descriptors to the hard one (a server holds
// one per connection). Returns -1 to go on, else the exit status for main.
inline int prepare_server(int argc, char** argv, const char* program, const char* usage, ServerOptions& options) {
  if (int status = parse_server_options(argc, argv, program, usage, options); status >= 0) return status;
  veloq::io::block_stop_signals();
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    setrlimit(RLIMIT_NOFILE, &limit);
  }
  return -1;
}

// Accepts connections for as long as the task runs, handing each to
// `on_connection(TcpStream)`. An accept that fails (EMFILE and the like)
// leaves the connection in the backlog, so a retry at once would fail at
// once: it pauses 50 ms instead of spinning, and warns once per episode
// rather than per retry.
template <typename OnConnection>
veloq::Task<void> accept_forever(veloq::io::TcpListener& listener, OnConnection on_connection) {
  bool failing = false;
  for (;;) {
    bool failed = false;
    try {
      veloq::io::TcpStream stream = co_await listener.accept();
      failing = false;
      on_connection(std::move(stream));
    } catch (const veloq::io::IoError& e) {
      if (!failing) veloq::log().warn("accept failed: {}; retrying every 50 ms until it succeeds", e.what());
      failing = failed = true;
    }
    if (failed) co_await veloq::sleep_for(std::chrono::milliseconds(50));
  }
}

// Binds an SO_REUSEPORT listener to `address` on every shard, so the kernel
// spreads connections over them and no socket is shared between threads,
// and runs `serve(listener)` there as a detached task named `name`. Shard 0
// binds first, so that port 0 is resolved once and shared. Returns the
// bound address. Call on shard 0.
template <typename Serve>
veloq::Task<veloq::io::SocketAddress> listen_on_every_shard(veloq::io::SocketAddress address, Serve serve,
                                                            const char* name) {
  auto listen_here = [serve, name](const veloq::io::SocketAddress& at) {
    auto listener = veloq::io::TcpListener::bind(at, {.reuse_port = true});
    veloq::io::SocketAddress bound = listener.local_address();
    veloq::spawn(serve(std::move(listener)), {.name = name}).detach();
    return bound;
  };
  address = listen_here(address);
  for (unsigned shard = 1; shard < veloq::shard_count(); ++shard) {
    auto listen_there = [address, listen_here] { listen_here(address); };  // named: see submit_to.hpp on g++ 12
    co_await veloq::submit_to(shard, listen_there);
  }
  co_return address;
}

}  // namespace veloq_examples
