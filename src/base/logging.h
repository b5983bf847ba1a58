#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

#include <spdlog/spdlog.h>

namespace runnel::logging {

/// The logger of one module ("storage", "kafka", …), created on first use. All loggers
/// share one sink on stderr, so lines from every shard interleave whole. Thread-safe.
spdlog::logger& get(const std::string& module);

/// Sets the level of every logger, present and future ("trace" … "off").
void set_level(spdlog::level::level_enum level);

/// Lets one repeated log line through at most `burst` times per `interval`, and counts the
/// lines it held back, so a fault that repeats in a tight loop (accept failing with "Too many
/// open files" for every pending connection) writes a few lines a second, not millions.
/// One per call site, usually a function-local static. Thread-safe.
class rate_limit {
public:
    explicit rate_limit(std::chrono::milliseconds interval = std::chrono::seconds(1), uint32_t burst = 1) noexcept
      : _interval(interval), _burst(burst) {}

    /// True when a line may be written now; `held_back` is then the number of lines refused
    /// since the last one let through.
    bool allow(uint64_t& held_back) noexcept;

private:
    std::mutex _mu;
    std::chrono::milliseconds _interval;
    uint32_t _burst;
    std::chrono::steady_clock::time_point _window_start{};
    uint32_t _in_window = 0;
    uint64_t _held_back = 0;
};

/// Logs through `limit`: `log_limited(limit, lg(), spdlog::level::warn, "accept failed: {}", why)`.
/// A line let through after others were held back says how many ("… (412 similar lines
/// suppressed)").
template <typename... Args>
void log_limited(rate_limit& limit, spdlog::logger& logger, spdlog::level::level_enum level,
                 fmt::format_string<Args...> format, Args&&... args) {
    if (!logger.should_log(level)) {
        return;
    }
    uint64_t held_back = 0;
    if (!limit.allow(held_back)) {
        return;
    }
    if (held_back == 0) {
        logger.log(level, format, std::forward<Args>(args)...);
    } else {
        logger.log(level, "{} ({} similar lines suppressed)", fmt::format(format, std::forward<Args>(args)...),
                   held_back);
    }
}

} // namespace runnel::logging
