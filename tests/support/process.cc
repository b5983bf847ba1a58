#include "support/process.h"

#include <cerrno>
#include <csignal>
#include <fcntl.h>
#include <poll.h>
#include <stdexcept>
#include <sys/wait.h>
#include <unistd.h>

namespace runnel::testing {

using clock = std::chrono::steady_clock;

process::process(std::vector<std::string> argv) {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) {
        throw std::runtime_error("pipe failed");
    }
    _pid = ::fork();
    if (_pid < 0) {
        throw std::runtime_error("fork failed");
    }
    if (_pid == 0) {
        ::dup2(fds[1], STDOUT_FILENO);
        ::dup2(fds[1], STDERR_FILENO);
        std::vector<char*> args;
        for (auto& a : argv) {
            args.push_back(a.data());
        }
        args.push_back(nullptr);
        ::execv(args[0], args.data());
        ::_exit(127);
    }
    ::close(fds[1]);
    _out = fds[0];
}

process::~process() {
    if (!_status && _pid > 0) {
        ::kill(_pid, SIGKILL);
        int st = 0;
        ::waitpid(_pid, &st, 0);
    }
    if (_out >= 0) {
        ::close(_out);
    }
}

bool process::pump(int timeout_ms) {
    if (_eof) {
        return false;
    }
    pollfd p{_out, POLLIN, 0};
    if (::poll(&p, 1, timeout_ms) <= 0) {
        return true;
    }
    char buf[4096];
    auto n = ::read(_out, buf, sizeof(buf));
    if (n <= 0) {
        _eof = true;
        return false;
    }
    _output.append(buf, static_cast<std::size_t>(n));
    return true;
}

bool process::wait_for_output(const std::string& needle, std::chrono::milliseconds timeout) {
    auto deadline = clock::now() + timeout;
    while (_output.find(needle) == std::string::npos) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock::now());
        if (left.count() <= 0 || !pump(static_cast<int>(left.count()))) {
            return _output.find(needle) != std::string::npos;
        }
    }
    return true;
}

void process::signal(int sig) const {
    if (!_status) {
        ::kill(_pid, sig);
    }
}

std::optional<int> process::wait(std::chrono::milliseconds timeout) {
    auto deadline = clock::now() + timeout;
    while (!_status) {
        int st = 0;
        pid_t r = ::waitpid(_pid, &st, WNOHANG);
        if (r == _pid) {
            _status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
            break;
        }
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock::now());
        if (left.count() <= 0) {
            return std::nullopt;
        }
        // Keep draining output while waiting, so the child never blocks on a full pipe.
        if (!pump(static_cast<int>(std::min<long>(left.count(), 20)))) {
            pollfd none{-1, 0, 0};
            ::poll(&none, 0, 5); // output closed: poll the exit status at a short interval
        }
    }
    while (pump(0)) {
    }
    return _status;
}

} // namespace runnel::testing
