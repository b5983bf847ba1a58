#pragma once

// Test support for the generated `fill` functions (tests/generated/<api>_fill.cc): each sets
// every field present in a version to a value different from its default (or, with `nulls`,
// every field nullable in that version to null), so a round trip exercises every field.

#include <concepts>
#include <cstdint>
#include <string>

#include "kafka/protocol/types.h"

namespace runnel::kafka::protocol::testing {

/// Deterministic, distinct values: each call returns something not returned before.
class value_source {
public:
    /// A value of T different from `dflt`.
    template <std::integral T>
    T next(T dflt) {
        auto v = static_cast<T>(static_cast<uint64_t>(++_n) * 7919 + 3);
        return v == dflt ? static_cast<T>(v + 1) : v;
    }
    double next_double() { return static_cast<double>(++_n) + 0.25; }
    uuid next_uuid() {
        uuid u;
        ++_n;
        for (std::size_t i = 0; i < u.value.size(); ++i) {
            u.value[i] = static_cast<uint8_t>(_n * 31 + i);
        }
        return u;
    }
    std::string next_string() { return "s" + std::to_string(++_n); }
    bytes next_bytes() {
        ++_n;
        bytes b(3 + _n % 5);
        for (std::size_t i = 0; i < b.size(); ++i) {
            b[i] = static_cast<std::byte>(_n + i);
        }
        return b;
    }

private:
    uint32_t _n = 0;
};

} // namespace runnel::kafka::protocol::testing
