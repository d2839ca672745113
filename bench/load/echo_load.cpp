// veloq-echo-load: closed-loop load generator for the echo benchmarks.
//
// Opens C connections to an echo server; each connection keeps exactly one request of
// `size` bytes outstanding and sends the next only after the whole echo came back. After
// a warm-up it counts the round trips that complete during D seconds and records each
// one's latency in a log-linear histogram, then prints
//     round_trips/s: X  p50_us: Y  p99_us: Z  client_cpu: C%  turns_per_rt: T
// and optionally writes the same figures as JSON.
//
// The client is one thread on io_uring, so that it costs less per round trip than the
// servers it measures: a round trip is one send SQE, submitted in a batch with all other
// connections' work by one io_uring_enter() per loop turn, and one CQE of the
// connection's multishot receive, which stays armed for the whole run and reads into a
// ring of provided buffers (no receive to prepare, and no poll to arm and tear down, per
// round trip). Every echo is compared with what was sent, so a server that corrupts or
// mixes up data fails the run instead of producing a number.

#include <liburing.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <string>
#include <string_view>
#include <vector>

namespace {

constexpr unsigned sq_entries = 4096;
constexpr unsigned cq_entries = 32768;
constexpr int max_conns = 100000;
constexpr std::size_t max_size = 1 << 20;
// Upper bound on one blocking connect(), so an overloaded or absent listener cannot hang
// the client (a dropped SYN is otherwise retried for minutes).
constexpr int connect_timeout_s = 5;
// The provided-buffer ring behind the receives: at most this many buffers of at most
// max_chunk bytes each (a longer echo arrives in several buffers), and at most
// max_recv_bytes in all.
constexpr unsigned max_recv_buffers = 32768;
constexpr std::size_t max_chunk = 4096;
constexpr std::size_t max_recv_bytes = 64u << 20;
constexpr unsigned short recv_group = 0;

const char usage[] =
    "usage: veloq-echo-load --port P [--host 127.0.0.1] [--conns C] [--seconds D]\n"
    "                       [--size BYTES] [--warmup S] [--json PATH]\n"
    "\n"
    "Closed-loop TCP echo load: C connections, each with one request of BYTES outstanding.\n"
    "Counts round trips completed during D seconds after S seconds of warm-up.\n"
    "  --host H       server IPv4 address (default 127.0.0.1)\n"
    "  --port P       server port (required)\n"
    "  --conns C      connections (default 1)\n"
    "  --seconds D    measured duration in seconds (default 5)\n"
    "  --size BYTES   request size (default 64)\n"
    "  --warmup S     warm-up seconds before measuring (default 1)\n"
    "  --json PATH    also write {conns,size,seconds,round_trips,rps,p50_us,p99_us,...}\n"
    "Prints 'round_trips/s: X  p50_us: Y  p99_us: Z  client_cpu: C%  turns_per_rt: T' (C: the\n"
    "client's own CPU time over the run, as a share of one core; near 100% the client sets the\n"
    "pace. T: the client's loop turns, one io_uring_enter each, per round trip; a server that\n"
    "answers in larger batches lets the client pay for fewer). Exits 1 if a connection fails.\n";

struct options {
    std::string host = "127.0.0.1";
    int port = -1;
    int conns = 1;
    double seconds = 5.0;
    std::size_t size = 64;
    double warmup = 1.0;
    std::string json_path;
};

template <typename T>
bool parse_integer(std::string_view text, T& out) {
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
    return ec == std::errc{} && end == text.data() + text.size();
}

bool parse_seconds(const char* text, double& out) {
    char* end = nullptr;
    errno = 0;
    out = std::strtod(text, &end);
    return errno == 0 && end != text && *end == '\0' && std::isfinite(out) && out >= 0.0;
}

// Returns 0 to run, 1 after --help, 2 on a usage error.
int parse_options(int argc, char** argv, options& out) {
    for (int i = 1; i < argc; ++i) {
        const std::string_view arg = argv[i];
        if (arg == "--help" || arg == "-h") {
            std::fputs(usage, stdout);
            return 1;
        }
        if (i + 1 >= argc) {
            std::fprintf(stderr, "veloq-echo-load: unexpected argument '%s'\n%s", argv[i], usage);
            return 2;
        }
        const char* value = argv[++i];
        bool ok = true;
        if (arg == "--host") {
            out.host = value;
        } else if (arg == "--port") {
            ok = parse_integer(value, out.port) && out.port > 0 && out.port <= 65535;
        } else if (arg == "--conns") {
            ok = parse_integer(value, out.conns) && out.conns > 0 && out.conns <= max_conns;
        } else if (arg == "--seconds") {
            ok = parse_seconds(value, out.seconds) && out.seconds > 0.0;
        } else if (arg == "--size") {
            ok = parse_integer(value, out.size) && out.size > 0 && out.size <= max_size;
        } else if (arg == "--warmup") {
            ok = parse_seconds(value, out.warmup);
        } else if (arg == "--json") {
            out.json_path = value;
        } else {
            std::fprintf(stderr, "veloq-echo-load: unexpected argument '%s'\n%s", argv[i - 1], usage);
            return 2;
        }
        if (!ok) {
            std::fprintf(stderr, "veloq-echo-load: bad value '%s' for %s\n", value, argv[i - 1]);
            return 2;
        }
    }
    if (out.port < 0) {
        std::fprintf(stderr, "veloq-echo-load: --port is required\n%s", usage);
        return 2;
    }
    return 0;
}

std::uint64_t now_ns() noexcept {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000u + static_cast<std::uint64_t>(ts.tv_nsec);
}

std::uint64_t seconds_to_ns(double seconds) noexcept {
    return static_cast<std::uint64_t>(std::llround(seconds * 1e9));
}

// Latency histogram in nanoseconds with 32 linear sub-buckets per power of two, so a
// recorded value is off by at most 1/32 (about 3%) and recording is a few instructions.
class latency_histogram {
public:
    void record(std::uint64_t ns) noexcept {
        ++_counts[index_of(ns)];
        ++_total;
    }

    std::uint64_t total() const noexcept { return _total; }

    // Midpoint of the bucket holding the q-quantile (0 < q <= 1); 0 when empty.
    double quantile_ns(double q) const noexcept {
        if (_total == 0) {
            return 0.0;
        }
        const auto rank = std::max<std::uint64_t>(1, static_cast<std::uint64_t>(std::ceil(q * static_cast<double>(_total))));
        std::uint64_t seen = 0;
        for (std::size_t i = 0; i < _counts.size(); ++i) {
            seen += _counts[i];
            if (seen >= rank) {
                return midpoint_of(i);
            }
        }
        return midpoint_of(_counts.size() - 1);
    }

private:
    static constexpr unsigned sub_bits = 5;
    static constexpr std::uint64_t sub_buckets = 1u << sub_bits;

    // Values below 2*sub_buckets get a bucket each; above, the octave [2^e, 2^(e+1))
    // is split into sub_buckets equal parts.
    static std::size_t index_of(std::uint64_t v) noexcept {
        if (v < sub_buckets) {
            return v;
        }
        const unsigned e = static_cast<unsigned>(std::bit_width(v)) - 1;
        const std::uint64_t mantissa = (v >> (e - sub_bits)) & (sub_buckets - 1);
        return (e - sub_bits + 1) * sub_buckets + mantissa;
    }

    static double midpoint_of(std::size_t index) noexcept {
        if (index < sub_buckets) {
            return static_cast<double>(index);
        }
        const std::size_t octave = index / sub_buckets;
        const std::uint64_t mantissa = index % sub_buckets;
        const std::uint64_t width = std::uint64_t{1} << (octave - 1);
        const std::uint64_t lower = (sub_buckets + mantissa) << (octave - 1);
        return static_cast<double>(lower) + static_cast<double>(width - 1) / 2.0;
    }

    std::array<std::uint64_t, 64 * sub_buckets> _counts{};
    std::uint64_t _total = 0;
};

struct connection {
    int fd = -1;
    std::size_t sent = 0;       // bytes of the current request that the kernel took
    std::size_t received = 0;   // bytes of its echo received so far
    std::uint64_t issued_ns = 0;
};

enum class op : std::uint32_t { send = 1, recv = 2 };

constexpr std::uint64_t tag(op kind, std::size_t index) noexcept {
    return (std::uint64_t{static_cast<std::uint32_t>(kind)} << 32) | static_cast<std::uint32_t>(index);
}

void raise_fd_limit(int needed) {
    rlimit limit{};
    if (getrlimit(RLIMIT_NOFILE, &limit) != 0) {
        return;
    }
    if (limit.rlim_cur < limit.rlim_max) {
        limit.rlim_cur = limit.rlim_max;
        setrlimit(RLIMIT_NOFILE, &limit);
    }
    if (limit.rlim_cur != RLIM_INFINITY && limit.rlim_cur < static_cast<rlim_t>(needed) + 16) {
        std::fprintf(stderr,
                     "veloq-echo-load: warning: RLIMIT_NOFILE hard limit %llu is too low for %d connections\n",
                     static_cast<unsigned long long>(limit.rlim_cur), needed);
    }
}

// Opens one blocking TCP connection or reports why it failed and returns -1.
int connect_one(const sockaddr_in& addr, const options& opts, int ordinal) {
    const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        std::fprintf(stderr, "veloq-echo-load: socket() for connection %d of %d failed: %s\n", ordinal,
                     opts.conns, std::strerror(errno));
        return -1;
    }
    const timeval timeout{connect_timeout_s, 0};
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
    if (connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
        const int error = errno == EINPROGRESS ? ETIMEDOUT : errno;
        std::fprintf(stderr, "veloq-echo-load: connect to %s:%d failed (connection %d of %d): %s\n",
                     opts.host.c_str(), opts.port, ordinal, opts.conns, std::strerror(error));
        close(fd);
        return -1;
    }
    const timeval no_timeout{0, 0};
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &no_timeout, sizeof no_timeout);
    const int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

struct results {
    std::uint64_t round_trips = 0;
    latency_histogram latency;
    // The client's own CPU time (user + system) over the whole run, as a share of
    // one core: near 1.0 means the client, not the server, set the pace.
    double client_cpu = 0;
    // Loop turns (one io_uring_enter each) in the measured window: the fewer turns per
    // round trip, the less the client pays for each.
    std::uint64_t turns = 0;

    double turns_per_round_trip() const noexcept {
        return round_trips == 0 ? 0.0 : static_cast<double>(turns) / static_cast<double>(round_trips);
    }
};

// User plus system CPU time this process has used, in ns.
std::uint64_t process_cpu_ns() noexcept {
    rusage usage{};
    getrusage(RUSAGE_SELF, &usage);
    auto ns = [](const timeval& t) {
        return static_cast<std::uint64_t>(t.tv_sec) * 1'000'000'000u + static_cast<std::uint64_t>(t.tv_usec) * 1'000u;
    };
    return ns(usage.ru_utime) + ns(usage.ru_stime);
}

class load_generator {
public:
    load_generator(const options& opts, std::vector<int> fds)
        : _opts(opts), _request(opts.size), _connections(fds.size()) {
        for (std::size_t i = 0; i < _request.size(); ++i) {
            _request[i] = static_cast<char>('a' + i % 26);
        }
        for (std::size_t i = 0; i < fds.size(); ++i) {
            _connections[i].fd = fds[i];
        }
    }
    load_generator(const load_generator&) = delete;
    load_generator& operator=(const load_generator&) = delete;
    ~load_generator() {
        if (_ring_ready) {
            io_uring_queue_exit(&_ring);  // also unregisters the buffer ring
        }
        if (_buffers != nullptr) {
            munmap(_buffers, _buffer_count * sizeof(io_uring_buf));
        }
    }

    int setup_ring() noexcept {
        const unsigned preferred[] = {
            IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_SUBMIT_ALL,
            IORING_SETUP_COOP_TASKRUN | IORING_SETUP_SUBMIT_ALL,
            0,
        };
        int result = -EINVAL;
        for (const unsigned flags : preferred) {
            io_uring_params params{};
            params.flags = flags | IORING_SETUP_CQSIZE;
            params.cq_entries = cq_entries;
            result = io_uring_queue_init_params(sq_entries, &_ring, &params);
            if (result == 0) {
                _ring_ready = true;
                return setup_buffers();
            }
            if (result != -EINVAL) {
                return result;
            }
        }
        return result;
    }

    // Runs warm-up then measurement; returns false after reporting a failed connection.
    bool run(results& out) {
        const std::uint64_t start = now_ns();
        const std::uint64_t cpu_at_start = process_cpu_ns();
        _measure_from = start + seconds_to_ns(_opts.warmup);
        _measure_until = _measure_from + seconds_to_ns(_opts.seconds);
        _results = &out;
        for (std::size_t i = 0; i < _connections.size(); ++i) {
            arm_recv(i);
            issue_request(i, start);
        }
        while (true) {
            const std::uint64_t now = now_ns();
            if (now >= _measure_until) {
                out.client_cpu = static_cast<double>(process_cpu_ns() - cpu_at_start) / static_cast<double>(now - start);
                return true;
            }
            // Wake at least every 100 ms so a stalled server cannot stretch the run.
            const std::uint64_t wait = std::min<std::uint64_t>(_measure_until - now, 100'000'000);
            __kernel_timespec timeout{};
            timeout.tv_sec = static_cast<long long>(wait / 1'000'000'000u);
            timeout.tv_nsec = static_cast<long long>(wait % 1'000'000'000u);
            io_uring_cqe* first = nullptr;
            publish_returned_buffers();
            const int submitted = io_uring_submit_and_wait_timeout(&_ring, &first, 1, &timeout, nullptr);
            if (submitted < 0 && submitted != -ETIME && submitted != -EINTR && submitted != -EAGAIN &&
                submitted != -EBUSY) {
                std::fprintf(stderr, "veloq-echo-load: io_uring_submit_and_wait_timeout: %s\n",
                             std::strerror(-submitted));
                return false;
            }
            // One clock read per batch: every completion in it is stamped with the time
            // the batch was seen, which is when this client could act on it.
            const std::uint64_t seen_at = now_ns();
            unsigned head = 0;
            unsigned seen = 0;
            io_uring_cqe* cqe = nullptr;
            bool ok = true;
            io_uring_for_each_cqe(&_ring, head, cqe) {
                ++seen;
                if (!on_completion(*cqe, seen_at)) {
                    ok = false;
                    break;
                }
            }
            io_uring_cq_advance(&_ring, seen);
            if (seen_at >= _measure_from) {
                ++out.turns;
            }
            if (!ok) {
                return false;
            }
        }
    }

private:
    // Registers the ring of receive buffers: enough for two whole echoes per connection
    // (within the limits above), so the receives do not run dry in a closed loop.
    int setup_buffers() noexcept {
        _chunk_size = std::min(_opts.size, max_chunk);
        const std::size_t chunks_per_echo = (_opts.size + _chunk_size - 1) / _chunk_size;
        const std::size_t wanted = 2 * chunks_per_echo * _connections.size();
        const std::size_t most = std::min<std::size_t>(max_recv_buffers, std::bit_floor(max_recv_bytes / _chunk_size));
        _buffer_count = static_cast<unsigned>(std::bit_ceil(std::clamp<std::size_t>(wanted, 16, most)));
        _chunks.resize(_buffer_count * _chunk_size);
        void* ring = mmap(nullptr, _buffer_count * sizeof(io_uring_buf), PROT_READ | PROT_WRITE,
                          MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (ring == MAP_FAILED) {
            return -errno;
        }
        _buffers = static_cast<io_uring_buf_ring*>(ring);
        io_uring_buf_reg reg{};
        reg.ring_addr = reinterpret_cast<std::uintptr_t>(ring);
        reg.ring_entries = _buffer_count;
        reg.bgid = recv_group;
        if (const int result = io_uring_register_buf_ring(&_ring, &reg, 0); result < 0) {
            return result;
        }
        io_uring_buf_ring_init(_buffers);
        for (unsigned id = 0; id < _buffer_count; ++id) {
            give_back(static_cast<unsigned short>(id));
        }
        publish_returned_buffers();
        return 0;
    }

    char* chunk(unsigned short id) noexcept { return _chunks.data() + std::size_t{id} * _chunk_size; }

    // Puts buffer `id` back in the ring; the kernel sees it at the next publish.
    void give_back(unsigned short id) noexcept {
        io_uring_buf_ring_add(_buffers, chunk(id), static_cast<unsigned>(_chunk_size), id,
                              io_uring_buf_ring_mask(_buffer_count), static_cast<int>(_returned++));
    }

    void publish_returned_buffers() noexcept {
        if (_returned > 0) {
            io_uring_buf_ring_advance(_buffers, static_cast<int>(_returned));
            _returned = 0;
        }
    }

    io_uring_sqe* next_sqe() noexcept {
        io_uring_sqe* sqe = io_uring_get_sqe(&_ring);
        while (sqe == nullptr) {
            publish_returned_buffers();
            io_uring_submit(&_ring);
            sqe = io_uring_get_sqe(&_ring);
        }
        return sqe;
    }

    void queue_send(std::size_t index) noexcept {
        connection& conn = _connections[index];
        io_uring_sqe* sqe = next_sqe();
        io_uring_prep_send(sqe, conn.fd, _request.data() + conn.sent, _opts.size - conn.sent, MSG_NOSIGNAL);
        io_uring_sqe_set_data64(sqe, tag(op::send, index));
    }

    // Arms the connection's multishot receive: one CQE per chunk that arrives, each in
    // a buffer of the ring, until the kernel ends it (no CQE_F_MORE) and it is re-armed.
    void arm_recv(std::size_t index) noexcept {
        io_uring_sqe* sqe = next_sqe();
        io_uring_prep_recv_multishot(sqe, _connections[index].fd, nullptr, 0, 0);
        sqe->flags |= IOSQE_BUFFER_SELECT;
        sqe->buf_group = recv_group;
        io_uring_sqe_set_data64(sqe, tag(op::recv, index));
    }

    void issue_request(std::size_t index, std::uint64_t now) noexcept {
        connection& conn = _connections[index];
        conn.sent = 0;
        conn.received = 0;
        conn.issued_ns = now;
        queue_send(index);
    }

    // Checks one received chunk against the request and gives its buffer back; false
    // (after reporting it) if the echo is not what was sent.
    bool take_chunk(const io_uring_cqe& cqe, std::size_t index) {
        connection& conn = _connections[index];
        if ((cqe.flags & IORING_CQE_F_BUFFER) == 0) {
            std::fprintf(stderr, "veloq-echo-load: a receive on connection %zu completed without a buffer\n",
                         index + 1);
            return false;
        }
        const auto id = static_cast<unsigned short>(cqe.flags >> IORING_CQE_BUFFER_SHIFT);
        const auto bytes = static_cast<std::size_t>(cqe.res);
        const bool same = conn.received + bytes <= _opts.size &&
                          std::memcmp(chunk(id), _request.data() + conn.received, bytes) == 0;
        give_back(id);
        if (!same) {
            std::fprintf(stderr, "veloq-echo-load: connection %zu received an echo that differs from its request\n",
                         index + 1);
            return false;
        }
        conn.received += bytes;
        return true;
    }

    bool on_completion(const io_uring_cqe& cqe, std::uint64_t now) {
        const auto kind = static_cast<op>(cqe.user_data >> 32);
        const std::size_t index = cqe.user_data & 0xffffffffu;
        connection& conn = _connections[index];
        if (kind == op::recv && (cqe.flags & IORING_CQE_F_MORE) == 0) {
            // The kernel ended the receive. ENOBUFS: the ring ran dry; the buffers given
            // back during this turn refill it before the new receive reaches the kernel.
            if (cqe.res == -ENOBUFS) {
                arm_recv(index);
                return true;
            }
            if (cqe.res > 0) {
                arm_recv(index);
            }
        }
        if (cqe.res <= 0) {
            const char* what = kind == op::send ? "send" : "recv";
            if (cqe.res == 0 && kind == op::recv) {
                std::fprintf(stderr, "veloq-echo-load: connection %zu was closed by the server\n", index + 1);
            } else {
                std::fprintf(stderr, "veloq-echo-load: %s on connection %zu failed: %s\n", what, index + 1,
                             std::strerror(-cqe.res));
            }
            return false;
        }
        if (kind == op::send) {
            conn.sent += static_cast<std::size_t>(cqe.res);
            if (conn.sent < _opts.size) {
                queue_send(index);
                return true;
            }
        } else {
            if (!take_chunk(cqe, index)) {
                return false;
            }
            if (conn.received < _opts.size) {
                return true;
            }
        }
        // The round trip is over once both the send and the whole echo have completed.
        if (conn.sent < _opts.size || conn.received < _opts.size) {
            return true;
        }
        if (now >= _measure_from && now < _measure_until) {
            ++_results->round_trips;
            _results->latency.record(now - conn.issued_ns);
        }
        issue_request(index, now);
        return true;
    }

    const options& _opts;
    std::vector<char> _request;
    std::vector<connection> _connections;
    io_uring _ring{};
    bool _ring_ready = false;
    io_uring_buf_ring* _buffers = nullptr;  // the receive buffers' ring, shared with the kernel
    unsigned _buffer_count = 0;
    std::size_t _chunk_size = 0;
    std::vector<char> _chunks;  // _buffer_count buffers of _chunk_size bytes
    unsigned _returned = 0;     // buffers given back since the last publish
    std::uint64_t _measure_from = 0;
    std::uint64_t _measure_until = 0;
    results* _results = nullptr;
};

bool write_json(const options& opts, const results& res, double rps, double p50_us, double p99_us, double p999_us) {
    std::FILE* file = std::fopen(opts.json_path.c_str(), "w");
    if (file == nullptr) {
        std::fprintf(stderr, "veloq-echo-load: cannot open %s: %s\n", opts.json_path.c_str(), std::strerror(errno));
        return false;
    }
    std::fprintf(file,
                 "{\"conns\":%d,\"size\":%zu,\"seconds\":%g,\"warmup\":%g,\"round_trips\":%llu,"
                 "\"rps\":%.1f,\"p50_us\":%.2f,\"p99_us\":%.2f,\"p999_us\":%.2f,\"client_cpu_percent\":%.1f,"
                 "\"turns_per_round_trip\":%.4f}\n",
                 opts.conns, opts.size, opts.seconds, opts.warmup,
                 static_cast<unsigned long long>(res.round_trips), rps, p50_us, p99_us, p999_us, 100 * res.client_cpu,
                 res.turns_per_round_trip());
    const bool ok = std::fflush(file) == 0 && !std::ferror(file);
    return std::fclose(file) == 0 && ok;
}

void close_all(const std::vector<int>& fds) noexcept {
    // Reset instead of a normal close so thousands of sockets are not left in TIME_WAIT
    // to crowd the ephemeral ports of the next run.
    const linger reset{1, 0};
    for (const int fd : fds) {
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &reset, sizeof reset);
        close(fd);
    }
}

}  // namespace

int main(int argc, char** argv) {
    options opts;
    if (const int parsed = parse_options(argc, argv, opts); parsed != 0) {
        return parsed == 1 ? 0 : 2;
    }
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<std::uint16_t>(opts.port));
    if (inet_pton(AF_INET, opts.host.c_str(), &addr.sin_addr) != 1) {
        std::fprintf(stderr, "veloq-echo-load: bad IPv4 address '%s'\n", opts.host.c_str());
        return 2;
    }
    raise_fd_limit(opts.conns);

    std::vector<int> fds;
    fds.reserve(static_cast<std::size_t>(opts.conns));
    for (int i = 0; i < opts.conns; ++i) {
        const int fd = connect_one(addr, opts, i + 1);
        if (fd < 0) {
            close_all(fds);
            return 1;
        }
        fds.push_back(fd);
    }

    results res;
    bool ok = false;
    {
        load_generator generator(opts, fds);
        if (const int error = generator.setup_ring(); error < 0) {
            std::fprintf(stderr, "veloq-echo-load: setting up io_uring and its receive buffers: %s\n",
                         std::strerror(-error));
        } else {
            ok = generator.run(res);
        }
    }  // the ring goes first, cancelling its in-flight requests
    close_all(fds);
    if (!ok) {
        return 1;
    }

    const double rps = static_cast<double>(res.round_trips) / opts.seconds;
    const double p50_us = res.latency.quantile_ns(0.50) / 1e3;
    const double p99_us = res.latency.quantile_ns(0.99) / 1e3;
    const double p999_us = res.latency.quantile_ns(0.999) / 1e3;
    std::printf("round_trips/s: %.0f  p50_us: %.1f  p99_us: %.1f  client_cpu: %.0f%%  turns_per_rt: %.3f\n", rps,
                p50_us, p99_us, 100 * res.client_cpu, res.turns_per_round_trip());
    std::fflush(stdout);
    if (!opts.json_path.empty() && !write_json(opts, res, rps, p50_us, p99_us, p999_us)) {
        return 1;
    }
    if (res.round_trips == 0) {
        std::fprintf(stderr, "veloq-echo-load: no round trip completed during the measurement\n");
        return 1;
    }
    return 0;
}
