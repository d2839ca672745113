// veloq-kv: an in-memory key-value server whose keys are spread over the
// shards, one line per request over TCP.
//
//   veloq-kv [--shards N] [--port P] [--host 127.0.0.1]
//
//   SET <key> <value>   ->  OK
//   GET <key>           ->  VALUE <value>   or  NOT_FOUND
//   DEL <key>           ->  DELETED         or  NOT_FOUND
//
// Each key belongs to one shard, picked by its hash, and only that shard's
// thread touches it: a connection's shard asks the owner with a cross-shard
// call (Sharded<Store>::invoke_on), so the store needs no lock. Every shard
// accepts on the same port (SO_REUSEPORT).
//
// A connection reads its requests as lines (buffers::LineReader over a
// multishot receive: a request may span chunks, a chunk may carry many
// requests) and answers them in order. The replies to the requests that
// arrived together are written into a buffer of the shard's pool and go out
// in one send, without the connection's task waiting for it
// (buffers::BufferedWriter over a SendQueue). A client that stops reading
// holds at most four reply buffers: its task then waits for them to be
// sent, and the other connections go on.
//
// Keys are 1 to 250 bytes without spaces; a line ends with "\n" (a "\r"
// before it is ignored). A malformed request gets "ERROR <why>" and the
// connection goes on. A line longer than 2 KiB gets "ERROR line too long"
// and the connection is closed, since where the next request starts is
// unknown. Prints "listening on HOST:PORT" once every shard listens; on
// SIGINT or SIGTERM prints per-shard counters and exits 0.
#include "../common/tcp_server.hpp"

#include <veloq/buffers/buffered_writer.hpp>
#include <veloq/buffers/line_reader.hpp>
#include <veloq/buffers/multishot_recv.hpp>
#include <veloq/buffers/send_queue.hpp>
#include <veloq/io/signals.hpp>
#include <veloq/io/tcp_listener.hpp>
#include <veloq/io/tcp_stream.hpp>
#include <veloq/mesh/sharded.hpp>
#include <veloq/mesh/submit_to.hpp>
#include <veloq/runtime/log.hpp>
#include <veloq/runtime/runtime.hpp>
#include <veloq/runtime/runtime_context.hpp>

#include <cstdint>
#include <cstdio>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace {

const char usage[] =
    "usage: veloq-kv [--shards N] [--port P] [--host 127.0.0.1]\n"
    "\n"
    "In-memory key-value server on Veloq; keys are spread over the shards.\n"
    "Requests, one per line: SET <key> <value> | GET <key> | DEL <key>\n"
    "  --shards N  shards (threads), default 1\n"
    "  --port P    TCP port; 0 (default) picks a free port, shared by all shards\n"
    "  --host H    IPv4 or IPv6 address to bind, default 127.0.0.1\n"
    "Prints 'listening on HOST:PORT' when ready; exits 0 on SIGINT/SIGTERM after\n"
    "printing its counters.\n";

constexpr std::size_t max_line = 2048;
constexpr std::size_t max_key = 250;
constexpr std::size_t reply_buffer_bytes = 4096;  // the replies to a batch of requests, in one send as a rule
constexpr std::size_t max_unsent_replies = 4;     // reply buffers a connection may have unsent

// One shard's part of the keys. Its methods run on that shard only, and
// return the whole reply line.
struct Store {
  std::unordered_map<std::string, std::string> entries;

  std::string set(std::string key, std::string value) {
    entries.insert_or_assign(std::move(key), std::move(value));
    return "OK\n";
  }
  std::string get(const std::string& key) const {
    auto it = entries.find(key);
    return it == entries.end() ? "NOT_FOUND\n" : "VALUE " + it->second + "\n";
  }
  std::string del(const std::string& key) { return entries.erase(key) == 1 ? "DELETED\n" : "NOT_FOUND\n"; }
};

// Written only by its own shard; read by main after the runtime has stopped.
struct alignas(64) ShardCounters {
  std::uint64_t connections = 0;
  std::uint64_t requests = 0;
  std::uint64_t errors = 0;  // requests answered with ERROR
};

// A request line taken apart; `error` says what is wrong with it, if anything.
struct Request {
  std::string_view verb, key, value;
  const char* error = nullptr;
};

Request parse(std::string_view line) {
  Request r;
  std::size_t space = line.find(' ');
  r.verb = line.substr(0, space);
  std::string_view rest = space == std::string_view::npos ? std::string_view{} : line.substr(space + 1);
  space = rest.find(' ');
  r.key = rest.substr(0, space);
  r.value = space == std::string_view::npos ? std::string_view{} : rest.substr(space + 1);
  const bool has_value = space != std::string_view::npos;
  if (r.verb != "SET" && r.verb != "GET" && r.verb != "DEL")
    r.error = "ERROR unknown command\n";
  else if (r.key.empty() || r.key.size() > max_key)
    r.error = "ERROR key must be 1 to 250 bytes without spaces\n";
  else if (r.verb == "SET" ? !has_value : has_value)
    r.error = r.verb == "SET" ? "ERROR SET needs a value\n" : "ERROR too many arguments\n";
  return r;
}

// The reply to a well-formed request, from the shard that owns its key.
veloq::Task<std::string> answer(veloq::Sharded<Store>& stores, const Request& r) {
  std::string key(r.key);
  const unsigned owner = static_cast<unsigned>(std::hash<std::string>{}(key) % veloq::shard_count());
  if (r.verb == "SET") co_return co_await stores.invoke_on(owner, &Store::set, std::move(key), std::string(r.value));
  if (r.verb == "GET") co_return co_await stores.invoke_on(owner, &Store::get, std::move(key));
  co_return co_await stores.invoke_on(owner, &Store::del, std::move(key));
}

veloq::Task<void> serve(veloq::io::TcpStream stream, veloq::buffers::ProvidedBufferRing& buffers,
                        veloq::Sharded<Store>& stores, ShardCounters& counters) {
  try {
    veloq::buffers::MultishotRecv received(buffers, stream.fd());
    veloq::buffers::SendQueue replies(stream.fd());
    veloq::buffers::BufferedWriter writer(replies,
                                          {.buffer_bytes = reply_buffer_bytes, .max_unsent = max_unsent_replies});
    veloq::buffers::LineReader lines(received, {.max_line = max_line});
    bool too_long = false;
    try {
      while (std::optional<std::string_view> line = co_await lines.next()) {
        ++counters.requests;
        Request request = parse(*line);
        if (request.error != nullptr) {
          ++counters.errors;
          co_await writer.write(request.error);
        } else {
          std::string reply = co_await answer(stores, request);
          co_await writer.write(reply);
        }
        // The replies to what has arrived go out together, in one send.
        if (!lines.has_buffered_line()) co_await writer.flush();
      }
    } catch (const veloq::buffers::LineTooLong&) {
      too_long = true;  // where the next request starts is unknown: answer, then close
    }
    if (too_long) {
      ++counters.errors;
      co_await writer.write("ERROR line too long\n");
      co_await writer.flush();
    }
    co_await replies.drained();  // finish answering before closing
  } catch (const std::exception& e) {
    // A client that resets, or a request arriving while the server stops
    // (the stores refuse calls then), ends this connection only.
    veloq::log().debug("connection ended: {}", e.what());
  }
}

veloq::Task<void> accept_connections(veloq::io::TcpListener listener, veloq::Sharded<Store>& stores,
                                     ShardCounters& counters) {
  veloq::RuntimeContext& context = veloq::RuntimeContext::current("accept_connections");
  veloq::buffers::ProvidedBufferRing buffers(context.driver(), context.shard_id(),
                                             {.group_id = 1, .entries = 256, .buffer_bytes = 4096});
  co_await veloq_examples::accept_forever(listener, [&](veloq::io::TcpStream stream) {
    ++counters.connections;
    veloq::spawn(serve(std::move(stream), buffers, stores, counters), {.name = "kv connection"}).detach();
  });
}

}  // namespace

int main(int argc, char** argv) {
  veloq_examples::ServerOptions options;
  if (int status = veloq_examples::prepare_server(argc, argv, "veloq-kv", usage, options); status >= 0) return status;

  std::vector<ShardCounters> counters(options.shards);
  // Outlives the shards: a connection may still call it while the runtime stops.
  veloq::Sharded<Store> stores;
  veloq::RuntimeConfig config;
  config.shards = options.shards;
  try {
    veloq::Runtime runtime(config);
    runtime.run([&]() -> veloq::Task<void> {
      co_await stores.start();
      auto serve = [&stores, &counters](veloq::io::TcpListener listener) {
        return accept_connections(std::move(listener), stores, counters[veloq::shard_id()]);
      };
      veloq::io::SocketAddress address = co_await veloq_examples::listen_on_every_shard(
          veloq::io::SocketAddress::ip(options.host, options.port), serve, "kv acceptor");
      std::printf("listening on %s\n", address.to_string().c_str());
      std::fflush(stdout);
      co_await veloq::io::wait_for_stop_signal();
      co_await stores.stop();  // requests still arriving get an error and end their connection
    });
  } catch (const std::exception& e) {
    std::fprintf(stderr, "veloq-kv: %s\n", e.what());
    return 1;
  }

  ShardCounters total;
  for (unsigned shard = 0; shard < options.shards; ++shard) {
    const ShardCounters& c = counters[shard];
    std::printf("shard %u: connections %llu, requests %llu, errors %llu\n", shard,
                static_cast<unsigned long long>(c.connections), static_cast<unsigned long long>(c.requests),
                static_cast<unsigned long long>(c.errors));
    total.connections += c.connections;
    total.requests += c.requests;
    total.errors += c.errors;
  }
  std::printf("total: connections %llu, requests %llu, errors %llu\n",
              static_cast<unsigned long long>(total.connections), static_cast<unsigned long long>(total.requests),
              static_cast<unsigned long long>(total.errors));
  std::fflush(stdout);
  return 0;
}
