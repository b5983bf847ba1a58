#include "app/wire_client.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

namespace runnel::app {
namespace {

using clock = std::chrono::steady_clock;

/// Waits for `events` on `fd` until `deadline`; false at the deadline.
bool wait_fd(int fd, short events, clock::time_point deadline) {
    for (;;) {
        auto left =
            std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock::now()).count();
        if (left <= 0) {
            return false;
        }
        pollfd p{fd, events, 0};
        int n = ::poll(&p, 1, static_cast<int>(left));
        if (n > 0) {
            return true;
        }
        if (n < 0 && errno != EINTR) {
            return false;
        }
    }
}

} // namespace

wire_connection::wire_connection(std::string host, int port, std::chrono::milliseconds timeout)
    : _host(std::move(host))
    , _port(port)
    , _timeout(timeout) {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* found = nullptr;
    if (int rc = ::getaddrinfo(_host.c_str(), std::to_string(_port).c_str(), &hints, &found);
        rc != 0) {
        throw failure(fmt::format("cannot resolve broker {}: {}", address(), gai_strerror(rc)));
    }
    const auto deadline = clock::now() + _timeout;
    std::string why = "timed out";
    for (auto* ai = found; ai && _fd < 0; ai = ai->ai_next) {
        int fd = ::socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                          ai->ai_protocol);
        if (fd < 0) {
            why = std::strerror(errno);
            continue;
        }
        int rc = ::connect(fd, ai->ai_addr, ai->ai_addrlen);
        if (rc < 0 && errno == EINPROGRESS && wait_fd(fd, POLLOUT, deadline)) {
            int err = 0;
            socklen_t len = sizeof err;
            ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
            rc = err == 0 ? 0 : -1;
            errno = err;
        }
        if (rc == 0) {
            _fd = fd;
        } else {
            why = errno ? std::strerror(errno) : "timed out";
            ::close(fd);
        }
    }
    ::freeaddrinfo(found);
    if (_fd < 0) {
        throw failure(fmt::format("cannot connect to broker {}: {}", address(), why));
    }
}

wire_connection::~wire_connection() {
    if (_fd >= 0) {
        ::close(_fd);
    }
}

std::vector<std::byte> wire_connection::exchange(std::span<const std::byte> frame) {
    const auto deadline = clock::now() + _timeout;
    auto fail = [&](std::string_view what) {
        return failure(fmt::format("broker {}: {}", address(), what));
    };
    std::size_t done = 0;
    while (done < frame.size()) {
        ssize_t n = ::send(_fd, frame.data() + done, frame.size() - done, MSG_NOSIGNAL);
        if (n > 0) {
            done += static_cast<std::size_t>(n);
        } else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
            if (!wait_fd(_fd, POLLOUT, deadline)) {
                throw fail(
                    fmt::format("no progress sending a request within {} ms", _timeout.count()));
            }
        } else {
            throw fail(fmt::format("send failed: {}", std::strerror(errno)));
        }
    }
    auto read_exact = [&](std::byte* out, std::size_t size) {
        std::size_t got = 0;
        while (got < size) {
            ssize_t n = ::recv(_fd, out + got, size - got, 0);
            if (n > 0) {
                got += static_cast<std::size_t>(n);
            } else if (n == 0) {
                throw fail("closed the connection before answering");
            } else if (errno == EAGAIN || errno == EINTR) {
                if (!wait_fd(_fd, POLLIN, deadline)) {
                    throw fail(fmt::format("no answer within {} ms", _timeout.count()));
                }
            } else {
                throw fail(fmt::format("receive failed: {}", std::strerror(errno)));
            }
        }
    };
    std::array<std::byte, 4> size_bytes{};
    read_exact(size_bytes.data(), size_bytes.size());
    const auto size = read_be<int32_t>(size_bytes.data());
    if (size < 4 || size > (64 << 20)) {
        throw fail(fmt::format("answered with a frame of {} bytes", size));
    }
    std::vector<std::byte> body(static_cast<std::size_t>(size));
    read_exact(body.data(), body.size());
    return body;
}

std::optional<int16_t> wire_connection::version_for(kafka::protocol::api_key key) {
    namespace proto = kafka::protocol;
    if (!_versions) {
        _versions = call<proto::api_versions_response>(proto::api_versions_request{}, 0);
        if (_versions->error_code != 0) {
            throw failure(fmt::format("broker {} refused ApiVersions v0 (error {})", address(),
                                      _versions->error_code));
        }
    }
    const auto* ours = proto::find_api(key);
    if (!ours) {
        return std::nullopt;
    }
    for (const auto& a : _versions->api_keys) {
        if (a.api_key == static_cast<int16_t>(key)) {
            const int16_t hi = std::min(a.max_version, ours->max_version);
            const int16_t lo = std::max(a.min_version, ours->min_version);
            if (lo <= hi) {
                return hi;
            }
        }
    }
    return std::nullopt;
}

} // namespace runnel::app
