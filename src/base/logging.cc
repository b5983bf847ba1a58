#include "base/logging.h"

#include <map>
#include <mutex>

#include <spdlog/sinks/stdout_color_sinks.h>

namespace runnel::logging {
namespace {

struct registry {
    std::mutex mu;
    spdlog::sink_ptr sink = std::make_shared<spdlog::sinks::stderr_color_sink_mt>();
    spdlog::level::level_enum level = spdlog::level::info;
    std::map<std::string, std::shared_ptr<spdlog::logger>, std::less<>> loggers;
};

registry& reg() {
    static registry r;
    return r;
}

} // namespace

spdlog::logger& get(const std::string& module) {
    auto& r = reg();
    std::lock_guard lock(r.mu);
    auto it = r.loggers.find(module);
    if (it == r.loggers.end()) {
        auto lg = std::make_shared<spdlog::logger>(module, r.sink);
        lg->set_level(r.level);
        lg->set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%-5l%$ [%n] %v");
        it = r.loggers.emplace(module, std::move(lg)).first;
    }
    return *it->second;
}

void set_level(spdlog::level::level_enum level) {
    auto& r = reg();
    std::lock_guard lock(r.mu);
    r.level = level;
    for (auto& [_, lg] : r.loggers) {
        lg->set_level(level);
    }
}

bool rate_limit::allow(uint64_t& held_back) noexcept {
    const auto now = std::chrono::steady_clock::now();
    std::lock_guard lock(_mu);
    if (now - _window_start >= _interval) {
        _window_start = now;
        _in_window = 0;
    }
    if (_in_window >= _burst) {
        ++_held_back;
        return false;
    }
    ++_in_window;
    held_back = _held_back;
    _held_back = 0;
    return true;
}

} // namespace runnel::logging
