#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <vector>

namespace runnel::testing {

/// A child process started by a test, with its stderr and stdout captured together.
///
/// Waiting is always on a condition with a deadline, never a sleep. The destructor kills
/// (SIGKILL) and reaps a child that is still running, so a failed test leaves nothing behind.
class process {
public:
    explicit process(std::vector<std::string> argv);
    ~process();
    process(const process&) = delete;
    process& operator=(const process&) = delete;

    int pid() const noexcept { return _pid; }

    /// Reads output until a line containing `needle` arrives; false at the deadline or EOF.
    bool wait_for_output(const std::string& needle, std::chrono::milliseconds timeout);

    /// Everything read so far.
    const std::string& output() const noexcept { return _output; }

    void signal(int sig) const;

    /// Waits for the child to exit; its exit code, or 128 + signal, or nullopt at the deadline.
    std::optional<int> wait(std::chrono::milliseconds timeout);

private:
    /// Reads what is available within `timeout_ms`; false at EOF.
    bool pump(int timeout_ms);

    int _pid = -1;
    int _out = -1;
    bool _eof = false;
    std::optional<int> _status;
    std::string _output;
};

} // namespace runnel::testing
