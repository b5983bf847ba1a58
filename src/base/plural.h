#pragma once

// Counts in messages: "1 record", "2 records", "0 partitions".

#include <cstdint>
#include <string>
#include <string_view>

#include <fmt/format.h>

namespace runnel {

/// `n` and the noun agreeing with it: `counted(1, "record")` is "1 record", `counted(3,
/// "record")` "3 records"; nouns with another plural pass it (`counted(n, "index", "indexes")`).
inline std::string counted(int64_t n, std::string_view singular, std::string_view plural = {}) {
    if (n == 1 || n == -1) return fmt::format("{} {}", n, singular);
    if (plural.empty()) return fmt::format("{} {}s", n, singular);
    return fmt::format("{} {}", n, plural);
}

} // namespace runnel
