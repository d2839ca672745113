// veloq-echo: a TCP echo server, one listener per shard on one port.
//
//   veloq-echo [--shards N] [--port P] [--host 127.0.0.1]
//
// Every shard binds its own SO_REUSEPORT listener, so the kernel spreads
// connections over the shards and no socket is shared between threads. With
// port 0, shard 0 binds first and the others reuse the port it was given.
// Each connection is a task that receives through one multishot receive
// and hands each chunk it got to a send queue, which sends it back without
// the task waiting. The chunks come from a ring of provided buffers the
// shard's connections share, so an idle connection holds no buffer, the
// receive stays armed from one message to the next, and the task wakes once
// per message rather than once for the message and once for its reply. A
// client that sends without reading its replies holds a few dozen buffers
// at most (16 unsent, and what its paused receive queued), so the shard's
// other connections keep their share.
// Prints "listening on HOST:PORT" once every shard listens; on SIGINT or
// SIGTERM it stops, prints per-shard counters (connections and bytes echoed,
// the loop's turns, io_uring enters and parks, and how many receive buffers
// the load needed offered and how often they ran out) and exits 0. On SIGUSR2 it
// prints every live task of every shard (name, spawn site, state).
#include "../common/tcp_server.hpp"

#include <veloq/buffers/multishot_recv.hpp>
#include <veloq/buffers/send_queue.hpp>
#include <veloq/io/signals.hpp>
#include <veloq/io/tcp_listener.hpp>
#include <veloq/io/tcp_stream.hpp>
#include <veloq/mesh/submit_to.hpp>
#include <veloq/runtime/log.hpp>
#include <veloq/runtime/runtime.hpp>
#include <veloq/runtime/runtime_context.hpp>
#include <veloq/runtime/shard_stats.hpp>
#include <veloq/runtime/task_dump.hpp>

#include <signal.h>

#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace {

const char usage[] =
    "usage: veloq-echo [--shards N] [--port P] [--host 127.0.0.1]\n"
    "\n"
    "TCP echo server on Veloq: one SO_REUSEPORT listener per shard.\n"
    "  --shards N  shards (threads), default 1\n"
    "  --port P    TCP port; 0 (default) picks a free port, shared by all shards\n"
    "  --host H    IPv4 or IPv6 address to bind, default 127.0.0.1\n"
    "Prints 'listening on HOST:PORT' when ready; exits 0 on SIGINT/SIGTERM after\n"
    "printing its counters.\n";

// Written only by its own shard; read by main after the runtime has stopped.
struct alignas(64) ShardCounters {
  std::uint64_t connections = 0;
  std::uint64_t bytes = 0;
  const veloq::buffers::ProvidedBufferRing* buffers = nullptr;  // while the shard's acceptor runs
  unsigned buffers_offered = 0;                                  // the ring's offer limit at the stop
  std::uint64_t buffers_ran_dry = 0;                             // its ENOBUFS events
};

// The provided buffers each shard's connections receive into: 4 MiB per
// shard, however many connections it holds. The kernel is offered as many as
// the load has needed at once (64 at first), so it keeps reusing warm ones.
constexpr veloq::buffers::ProvidedBufferRingConfig receive_buffers{.group_id = 1, .entries = 1024, .buffer_bytes = 4096};
// Chunks a connection may have received and not yet sent back.
constexpr std::size_t max_unsent_chunks = 16;

veloq::Task<void> echo(veloq::io::TcpStream stream, veloq::buffers::ProvidedBufferRing& buffers,
                       ShardCounters& counters) {
  try {
    stream.set_nodelay(true);
    veloq::buffers::MultishotRecv received(buffers, stream.fd());
    veloq::buffers::SendQueue replies(stream.fd());
    while (std::optional<veloq::buffers::ProvidedBuffer> chunk = co_await received.next()) {
      counters.bytes += chunk->size();
      replies.push(std::move(*chunk));
      // A client that does not read its replies holds a few buffers and
      // waits alone, instead of running the shard's ring dry for the others.
      if (replies.queued() >= max_unsent_chunks) [[unlikely]] co_await replies.drained();
    }
    co_await replies.drained();  // the peer closed its side: finish echoing before closing ours
  } catch (const veloq::io::IoError& e) {
    veloq::log().debug("connection ended: {}", e.what());  // a peer that resets is not the server's failure
  }
}

veloq::Task<void> accept_connections(veloq::io::TcpListener listener, ShardCounters& counters) {
  veloq::RuntimeContext& context = veloq::RuntimeContext::current("accept_connections");
  veloq::buffers::ProvidedBufferRing buffers(context.driver(), context.shard_id(), receive_buffers);
  counters.buffers = &buffers;
  co_await veloq_examples::accept_forever(listener, [&](veloq::io::TcpStream stream) {
    ++counters.connections;
    veloq::spawn(echo(std::move(stream), buffers, counters), {.name = "echo connection"}).detach();
  });
}

// On every SIGUSR2, prints what each live task of each shard is doing.
veloq::Task<void> dump_tasks_on_sigusr2() {
  for (;;) {
    veloq::Task<int> signal = veloq::io::wait_for_signal({SIGUSR2});  // g++ 12 rejects the list inside co_await
    co_await std::move(signal);
    std::string dump = co_await veloq::dump_all_tasks();
    std::printf("task dump:\n%s", dump.c_str());
    std::fflush(stdout);
  }
}

}  // namespace

int main(int argc, char** argv) {
  veloq_examples::ServerOptions options;
  if (int status = veloq_examples::prepare_server(argc, argv, "veloq-echo", usage, options); status >= 0) return status;
  veloq::io::block_signals({SIGUSR2});  // before any thread starts: every shard inherits the mask

  std::vector<ShardCounters> counters(options.shards);
  std::vector<veloq::ShardStats> stats;
  veloq::RuntimeConfig config;
  config.shards = options.shards;
  config.shard.driver.entries = 4096;
  try {
    veloq::Runtime runtime(config);
    runtime.run([&]() -> veloq::Task<void> {
      auto serve = [&counters](veloq::io::TcpListener listener) {
        return accept_connections(std::move(listener), counters[veloq::shard_id()]);
      };
      veloq::io::SocketAddress address = co_await veloq_examples::listen_on_every_shard(
          veloq::io::SocketAddress::ip(options.host, options.port), serve, "echo acceptor");
      veloq::spawn(dump_tasks_on_sigusr2(), {.name = "task dumper"}).detach();
      std::printf("listening on %s\n", address.to_string().c_str());
      std::fflush(stdout);
      co_await veloq::io::wait_for_stop_signal();
      for (unsigned shard = 0; shard < options.shards; ++shard)
        co_await veloq::submit_to(shard, [&counters, shard] {
          ShardCounters& c = counters[shard];
          if (c.buffers == nullptr) return;  // stopped before the acceptor first ran
          c.buffers_offered = c.buffers->offer_limit();
          c.buffers_ran_dry = c.buffers->enobufs_events();
        });
      stats = co_await veloq::collect_shard_stats();
    });
  } catch (const std::exception& e) {
    std::fprintf(stderr, "veloq-echo: %s\n", e.what());
    return 1;
  }

  ShardCounters total;
  for (unsigned shard = 0; shard < options.shards; ++shard) {
    const veloq::ShardStats& s = stats[shard];  // run() returned, so every shard's stats were collected
    std::printf(
        "shard %u: connections %llu, bytes %llu, loop turns %llu, io_uring enters %llu, parks %llu, "
        "receive buffers offered %u, ran dry %llu times\n",
        shard, static_cast<unsigned long long>(counters[shard].connections),
        static_cast<unsigned long long>(counters[shard].bytes), static_cast<unsigned long long>(s.loop_turns),
        static_cast<unsigned long long>(s.ring_enters), static_cast<unsigned long long>(s.parks),
        counters[shard].buffers_offered, static_cast<unsigned long long>(counters[shard].buffers_ran_dry));
    total.connections += counters[shard].connections;
    total.bytes += counters[shard].bytes;
  }
  std::printf("total: connections %llu, bytes %llu\n", static_cast<unsigned long long>(total.connections),
              static_cast<unsigned long long>(total.bytes));
  std::fflush(stdout);
  return 0;
}
