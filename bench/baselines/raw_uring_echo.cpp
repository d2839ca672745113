// raw-uring-echo: the hand-written io_uring echo server Veloq's echo server must match.
//
// One thread, one ring, straight liburing 2.3, with the choices a careful hand-written
// server makes and nothing more:
//   - the ring is created with SINGLE_ISSUER|DEFER_TASKRUN, so completions are produced
//     only when this thread asks for them; older kernels fall back to COOP_TASKRUN, then
//     to no flags;
//   - one multishot accept (single-shot on kernels without it);
//   - per connection, exactly one recv or send in flight, into the connection's own buffer;
//   - each loop turn calls io_uring_submit_and_wait() once, which both submits every SQE
//     queued while handling the previous batch and waits for the next batch.
// SIGINT and SIGTERM are blocked and polled through a signalfd by the ring, so a signal
// is just another completion and the server exits with status 0.

#include <liburing.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace {

constexpr unsigned sq_entries = 4096;
// Room for one completion per connection at 10k+ connections without overflowing.
constexpr unsigned cq_entries = 32768;
constexpr std::size_t buffer_size = 4096;

const char usage[] =
    "usage: raw-uring-echo --port P [--host 127.0.0.1]\n"
    "\n"
    "Single-thread TCP echo server on raw liburing (baseline for Veloq's echo benchmark).\n"
    "  --port P   TCP port to listen on; 0 picks a free port (printed on the ready line)\n"
    "  --host H   IPv4 address to bind (default 127.0.0.1)\n"
    "Prints 'listening on HOST:PORT' when ready; exits 0 on SIGINT/SIGTERM.\n";

struct options {
    std::string host = "127.0.0.1";
    int port = -1;
};

// Returns 0 to run, 1 after --help, 2 on a usage error.
int parse_options(int argc, char** argv, options& out) {
    for (int i = 1; i < argc; ++i) {
        const std::string_view arg = argv[i];
        if (arg == "--help" || arg == "-h") {
            std::fputs(usage, stdout);
            return 1;
        }
        if ((arg == "--port" || arg == "--host") && i + 1 < argc) {
            const std::string_view value = argv[++i];
            if (arg == "--host") {
                out.host = value;
                continue;
            }
            int port = -1;
            const auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), port);
            if (ec != std::errc{} || end != value.data() + value.size() || port < 0 || port > 65535) {
                std::fprintf(stderr, "raw-uring-echo: bad port '%s'\n", argv[i]);
                return 2;
            }
            out.port = port;
            continue;
        }
        std::fprintf(stderr, "raw-uring-echo: unexpected argument '%s'\n%s", argv[i], usage);
        return 2;
    }
    if (out.port < 0) {
        std::fprintf(stderr, "raw-uring-echo: --port is required\n%s", usage);
        return 2;
    }
    return 0;
}

void raise_fd_limit() noexcept {
    rlimit limit{};
    if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max) {
        limit.rlim_cur = limit.rlim_max;
        setrlimit(RLIMIT_NOFILE, &limit);
    }
}

// Returns the listening socket and stores the bound port, or returns -1 after reporting.
int open_listener(const options& opts, int& bound_port) {
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<std::uint16_t>(opts.port));
    if (inet_pton(AF_INET, opts.host.c_str(), &addr.sin_addr) != 1) {
        std::fprintf(stderr, "raw-uring-echo: bad IPv4 address '%s'\n", opts.host.c_str());
        return -1;
    }
    const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    const int one = 1;
    socklen_t len = sizeof addr;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        bind(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0 ||
        listen(fd, SOMAXCONN) != 0 ||
        getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
        std::fprintf(stderr, "raw-uring-echo: cannot listen on %s:%d: %s\n", opts.host.c_str(),
                     opts.port, std::strerror(errno));
        return -1;
    }
    bound_port = ntohs(addr.sin_port);
    return fd;
}

// What a completion is for: the operation in the high 32 bits of user_data, the file
// descriptor in the low 32 bits.
enum class op : std::uint32_t { accept = 1, recv, send, signal };

constexpr std::uint64_t tag(op kind, int fd) noexcept {
    return (std::uint64_t{static_cast<std::uint32_t>(kind)} << 32) | static_cast<std::uint32_t>(fd);
}

struct connection {
    std::size_t length = 0;  // bytes received and being echoed back
    std::size_t sent = 0;    // of those, bytes already sent
    char buffer[buffer_size];
};

class echo_server {
public:
    echo_server(int listen_fd, int signal_fd) : _listen_fd(listen_fd), _signal_fd(signal_fd) {}
    echo_server(const echo_server&) = delete;
    echo_server& operator=(const echo_server&) = delete;
    ~echo_server() {
        if (_ring_ready) {
            io_uring_queue_exit(&_ring);
        }
    }

    // Creates the ring with the best setup flags the kernel accepts; returns -errno.
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
                return 0;
            }
            if (result != -EINVAL) {
                return result;
            }
        }
        return result;
    }

    // Serves until SIGINT/SIGTERM; returns -errno if the ring itself fails.
    int run() {
        arm_accept();
        arm_signal();
        while (!_stopping) {
            const int submitted = io_uring_submit_and_wait(&_ring, 1);
            if (submitted < 0 && submitted != -EINTR && submitted != -EAGAIN && submitted != -EBUSY) {
                return submitted;
            }
            unsigned head = 0;
            unsigned seen = 0;
            io_uring_cqe* cqe = nullptr;
            io_uring_for_each_cqe(&_ring, head, cqe) {
                on_completion(*cqe);
                ++seen;
            }
            io_uring_cq_advance(&_ring, seen);
        }
        return 0;
    }

private:
    // A closed connection's buffer is kept for the next connection that gets its fd.
    connection& adopt(int fd) {
        const auto slot = static_cast<std::size_t>(fd);
        if (slot >= _connections.size()) {
            _connections.resize(slot + 1024);
        }
        if (!_connections[slot]) {
            _connections[slot] = std::make_unique<connection>();
        }
        return *_connections[slot];
    }

    connection& connection_of(int fd) noexcept { return *_connections[static_cast<std::size_t>(fd)]; }

    // Completions are handled while the CQ is being walked; when a large batch fills the
    // SQ, flush it to the kernel instead of stalling.
    io_uring_sqe* next_sqe() noexcept {
        io_uring_sqe* sqe = io_uring_get_sqe(&_ring);
        while (sqe == nullptr) {
            io_uring_submit(&_ring);
            sqe = io_uring_get_sqe(&_ring);
        }
        return sqe;
    }

    void arm_accept() noexcept {
        io_uring_sqe* sqe = next_sqe();
        if (_multishot_accept) {
            io_uring_prep_multishot_accept(sqe, _listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
        } else {
            io_uring_prep_accept(sqe, _listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
        }
        io_uring_sqe_set_data64(sqe, tag(op::accept, _listen_fd));
    }

    void arm_signal() noexcept {
        io_uring_sqe* sqe = next_sqe();
        io_uring_prep_poll_add(sqe, _signal_fd, POLLIN);
        io_uring_sqe_set_data64(sqe, tag(op::signal, _signal_fd));
    }

    void start_recv(int fd) noexcept {
        io_uring_sqe* sqe = next_sqe();
        io_uring_prep_recv(sqe, fd, connection_of(fd).buffer, buffer_size, 0);
        io_uring_sqe_set_data64(sqe, tag(op::recv, fd));
    }

    void continue_send(int fd) noexcept {
        connection& conn = connection_of(fd);
        io_uring_sqe* sqe = next_sqe();
        io_uring_prep_send(sqe, fd, conn.buffer + conn.sent, conn.length - conn.sent, MSG_NOSIGNAL);
        io_uring_sqe_set_data64(sqe, tag(op::send, fd));
    }

    void on_completion(const io_uring_cqe& cqe) {
        const auto kind = static_cast<op>(cqe.user_data >> 32);
        const int fd = static_cast<int>(cqe.user_data & 0xffffffffu);
        switch (kind) {
        case op::accept:
            on_accept(cqe);
            break;
        case op::recv:
            on_recv(fd, cqe.res);
            break;
        case op::send:
            on_send(fd, cqe.res);
            break;
        case op::signal:
            _stopping = true;
            break;
        }
    }

    void on_accept(const io_uring_cqe& cqe) {
        if (cqe.res == -EINVAL && _multishot_accept) {
            _multishot_accept = false;  // kernel older than 5.19
        }
        if (cqe.res >= 0) {
            const int fd = cqe.res;
            const int one = 1;
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            adopt(fd);
            start_recv(fd);
        }
        // Other failures (ECONNABORTED, EMFILE) concern one peer; keep accepting.
        if ((cqe.flags & IORING_CQE_F_MORE) == 0) {
            arm_accept();
        }
    }

    void on_recv(int fd, int result) noexcept {
        if (result <= 0) {
            close(fd);  // peer closed or reset; nothing else is in flight on this fd
            return;
        }
        connection& conn = connection_of(fd);
        conn.length = static_cast<std::size_t>(result);
        conn.sent = 0;
        continue_send(fd);
    }

    void on_send(int fd, int result) noexcept {
        if (result <= 0) {
            close(fd);
            return;
        }
        connection& conn = connection_of(fd);
        conn.sent += static_cast<std::size_t>(result);
        if (conn.sent < conn.length) {
            continue_send(fd);
        } else {
            start_recv(fd);
        }
    }

    io_uring _ring{};
    bool _ring_ready = false;
    bool _multishot_accept = true;
    bool _stopping = false;
    int _listen_fd;
    int _signal_fd;
    std::vector<std::unique_ptr<connection>> _connections;  // indexed by fd
};

}  // namespace

int main(int argc, char** argv) {
    options opts;
    if (const int parsed = parse_options(argc, argv, opts); parsed != 0) {
        return parsed == 1 ? 0 : 2;
    }
    raise_fd_limit();

    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    sigprocmask(SIG_BLOCK, &stop_signals, nullptr);
    const int signal_fd = signalfd(-1, &stop_signals, SFD_NONBLOCK | SFD_CLOEXEC);
    if (signal_fd < 0) {
        std::fprintf(stderr, "raw-uring-echo: signalfd: %s\n", std::strerror(errno));
        return 1;
    }

    int port = 0;
    const int listen_fd = open_listener(opts, port);
    if (listen_fd < 0) {
        return 1;
    }
    echo_server server(listen_fd, signal_fd);
    if (const int error = server.setup_ring(); error < 0) {
        std::fprintf(stderr, "raw-uring-echo: io_uring_queue_init_params: %s\n", std::strerror(-error));
        return 1;
    }
    std::printf("listening on %s:%d\n", opts.host.c_str(), port);
    std::fflush(stdout);

    if (const int error = server.run(); error < 0) {
        std::fprintf(stderr, "raw-uring-echo: io_uring_submit_and_wait: %s\n", std::strerror(-error));
        return 1;
    }
    return 0;
}
