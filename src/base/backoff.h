#pragma once

#include <algorithm>
#include <chrono>

namespace runnel {

/// The pause before retrying an operation that keeps failing for a reason that may pass (an
/// accept failing because the process is out of file descriptors): `first` after the first
/// failure, doubling up to `most`; `reset` after a success. A loop that waits `next()` before
/// each retry costs a few wake-ups a second instead of a core. Not thread-safe: one per loop.
class backoff {
public:
    constexpr backoff(std::chrono::milliseconds first = std::chrono::milliseconds(10),
                      std::chrono::milliseconds most = std::chrono::seconds(1)) noexcept
      : _first(first), _most(most) {}

    /// The pause before the next retry; each call doubles the one after it.
    std::chrono::milliseconds next() noexcept {
        _current = _current.count() == 0 ? _first : std::min(_current * 2, _most);
        return _current;
    }
    void reset() noexcept { _current = std::chrono::milliseconds(0); }

private:
    std::chrono::milliseconds _first;
    std::chrono::milliseconds _most;
    std::chrono::milliseconds _current{0};
};

} // namespace runnel
