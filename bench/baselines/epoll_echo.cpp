// epoll-echo: the readiness-based echo server Veloq's echo benchmark compares against.
//
// One thread, level-triggered epoll, nonblocking sockets. A readable connection is read
// until a short read or EAGAIN says the socket is drained, and each chunk is written
// straight back. If the peer's window is full, the unsent rest stays in the connection's
// buffer and the connection waits for EPOLLOUT instead of EPOLLIN, so a slow reader
// never makes the server buffer without bound. SIGINT and SIGTERM arrive through a
// signalfd in the same epoll set; the server then exits with status 0.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/epoll.h>
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

constexpr std::size_t buffer_size = 4096;
constexpr int max_events = 1024;

const char usage[] =
    "usage: epoll-echo --port P [--host 127.0.0.1]\n"
    "\n"
    "Single-thread nonblocking epoll TCP echo server (baseline for Veloq's echo benchmark).\n"
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
                std::fprintf(stderr, "epoll-echo: bad port '%s'\n", argv[i]);
                return 2;
            }
            out.port = port;
            continue;
        }
        std::fprintf(stderr, "epoll-echo: unexpected argument '%s'\n%s", argv[i], usage);
        return 2;
    }
    if (out.port < 0) {
        std::fprintf(stderr, "epoll-echo: --port is required\n%s", usage);
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

// Returns the nonblocking listening socket and stores the bound port, or returns -1
// after reporting.
int open_listener(const options& opts, int& bound_port) {
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<std::uint16_t>(opts.port));
    if (inet_pton(AF_INET, opts.host.c_str(), &addr.sin_addr) != 1) {
        std::fprintf(stderr, "epoll-echo: bad IPv4 address '%s'\n", opts.host.c_str());
        return -1;
    }
    const int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    const int one = 1;
    socklen_t len = sizeof addr;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        bind(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0 ||
        listen(fd, SOMAXCONN) != 0 ||
        getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
        std::fprintf(stderr, "epoll-echo: cannot listen on %s:%d: %s\n", opts.host.c_str(), opts.port,
                     std::strerror(errno));
        return -1;
    }
    bound_port = ntohs(addr.sin_port);
    return fd;
}

struct connection {
    std::size_t length = 0;  // bytes in buffer still owed to the peer, starting at sent
    std::size_t sent = 0;
    char buffer[buffer_size];
};

class echo_server {
public:
    echo_server(int epoll_fd, int listen_fd, int signal_fd) noexcept
        : _epoll_fd(epoll_fd), _listen_fd(listen_fd), _signal_fd(signal_fd) {}

    // Serves until SIGINT/SIGTERM; returns -errno if epoll itself fails.
    int run() {
        epoll_event events[max_events];
        while (true) {
            const int ready = epoll_wait(_epoll_fd, events, max_events, -1);
            if (ready < 0) {
                if (errno == EINTR) {
                    continue;
                }
                return -errno;
            }
            for (int i = 0; i < ready; ++i) {
                const int fd = events[i].data.fd;
                if (fd == _signal_fd) {
                    return 0;
                }
                if (fd == _listen_fd) {
                    accept_pending();
                } else if (connection_of(fd).length != 0) {
                    flush_backlog(fd);  // EPOLLOUT, or an error the send will report
                } else {
                    echo_available(fd);
                }
            }
        }
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

    void watch(int fd, std::uint32_t events, int operation) noexcept {
        epoll_event event{};
        event.events = events;
        event.data.fd = fd;
        epoll_ctl(_epoll_fd, operation, fd, &event);
    }

    void accept_pending() {
        while (true) {
            const int fd = accept4(_listen_fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
            if (fd < 0) {
                return;  // EAGAIN: drained; other errors concern one peer
            }
            const int one = 1;
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            connection& conn = adopt(fd);
            conn.length = 0;
            conn.sent = 0;
            watch(fd, EPOLLIN, EPOLL_CTL_ADD);
        }
    }

    // Closing the socket also removes it from the epoll set.
    void drop(int fd) noexcept { close(fd); }

    void echo_available(int fd) noexcept {
        connection& conn = connection_of(fd);
        while (true) {
            const ssize_t got = read(fd, conn.buffer, buffer_size);
            if (got <= 0) {
                if (got == 0 || (errno != EAGAIN && errno != EINTR)) {
                    drop(fd);
                }
                return;
            }
            conn.length = static_cast<std::size_t>(got);
            conn.sent = 0;
            if (!write_backlog(fd, conn)) {
                return;
            }
            if (conn.length != 0) {
                watch(fd, EPOLLOUT, EPOLL_CTL_MOD);
                return;
            }
            // A short read means the socket is drained; level triggering reports any
            // data that arrives later, so skip the read that would only return EAGAIN.
            if (static_cast<std::size_t>(got) < buffer_size) {
                return;
            }
        }
    }

    void flush_backlog(int fd) noexcept {
        connection& conn = connection_of(fd);
        if (write_backlog(fd, conn) && conn.length == 0) {
            watch(fd, EPOLLIN, EPOLL_CTL_MOD);
        }
    }

    // Writes as much of the backlog as the socket takes. Returns false if the connection
    // failed and was dropped.
    bool write_backlog(int fd, connection& conn) noexcept {
        while (conn.length != 0) {
            const ssize_t put = send(fd, conn.buffer + conn.sent, conn.length, MSG_NOSIGNAL);
            if (put < 0) {
                if (errno == EAGAIN) {
                    return true;
                }
                if (errno == EINTR) {
                    continue;
                }
                drop(fd);
                return false;
            }
            conn.sent += static_cast<std::size_t>(put);
            conn.length -= static_cast<std::size_t>(put);
        }
        return true;
    }

    int _epoll_fd;
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
    const int epoll_fd = epoll_create1(EPOLL_CLOEXEC);
    if (signal_fd < 0 || epoll_fd < 0) {
        std::fprintf(stderr, "epoll-echo: %s: %s\n", signal_fd < 0 ? "signalfd" : "epoll_create1",
                     std::strerror(errno));
        return 1;
    }

    int port = 0;
    const int listen_fd = open_listener(opts, port);
    if (listen_fd < 0) {
        return 1;
    }
    for (const int fd : {listen_fd, signal_fd}) {
        epoll_event event{};
        event.events = EPOLLIN;
        event.data.fd = fd;
        epoll_ctl(epoll_fd, EPOLL_CTL_ADD, fd, &event);
    }
    std::printf("listening on %s:%d\n", opts.host.c_str(), port);
    std::fflush(stdout);

    echo_server server(epoll_fd, listen_fd, signal_fd);
    if (const int error = server.run(); error < 0) {
        std::fprintf(stderr, "epoll-echo: epoll_wait: %s\n", std::strerror(-error));
        return 1;
    }
    return 0;
}
