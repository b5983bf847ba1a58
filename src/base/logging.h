#pragma once

#include <memory>
#include <string>

#include <spdlog/spdlog.h>

namespace runnel::logging {

/// The logger of one module ("storage", "kafka", …), created on first use. All loggers
/// share one sink on stderr, so lines from every shard interleave whole. Thread-safe.
spdlog::logger& get(const std::string& module);

/// Sets the level of every logger, present and future ("trace" … "off").
void set_level(spdlog::level::level_enum level);

} // namespace runnel::logging
