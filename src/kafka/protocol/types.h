#pragma once

#include <array>
#include <compare>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "base/result.h"

namespace runnel::kafka::protocol {

/// Opaque bytes of a message field (`bytes`, and `records`: RecordBatch v2 bytes kept verbatim).
using bytes = std::vector<std::byte>;

/// A Kafka UUID (topic ids): 16 bytes, all zero when unset.
struct uuid {
    std::array<uint8_t, 16> value{};

    bool is_zero() const noexcept { return *this == uuid{}; }
    auto operator<=>(const uuid&) const = default;
};

class reader;
class writer;

} // namespace runnel::kafka::protocol
