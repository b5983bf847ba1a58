#pragma once

#include <atomic>
#include <string>
#include <string_view>

namespace runnel::fail_point {

namespace detail {
inline std::atomic<int> armed_count{0};
bool take_slow(std::string_view name) noexcept;
} // namespace detail

/// True when a test armed failure point `name` ("storage.fsync", "storage.write"): the caller
/// then fails as the real system call would. Costs one relaxed atomic load when nothing is
/// armed, so points stay compiled into every build. Thread-safe.
inline bool take(std::string_view name) noexcept {
    return detail::armed_count.load(std::memory_order_relaxed) != 0 && detail::take_slow(name);
}

/// Makes the next `times` calls of `take(name)` return true (-1: every call until disarmed).
void arm(std::string name, int times = 1);
void disarm_all();

} // namespace runnel::fail_point
