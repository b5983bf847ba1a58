#pragma once

#include <cstdint>

namespace runnel::connect::nexmark {

/// The 48-bit linear congruential generator specified for `java.util.Random`, bit for bit.
///
/// The Nexmark reference generator derives every field of an event from a generator of this
/// kind seeded with the event id, so reproducing its sequence is what makes our events the
/// reference's events. A plain value type; each event builds its own.
class java_random {
public:
    explicit java_random(int64_t seed) noexcept
      : _seed((static_cast<uint64_t>(seed) ^ multiplier) & mask) {}

    /// Uniform in [0, 2^32) reinterpreted as a signed 32-bit value.
    int32_t next_int() noexcept { return next(32); }

    /// Uniform in [0, bound). Precondition: bound > 0.
    int32_t next_int(int32_t bound) noexcept {
        if ((bound & -bound) == bound) {
            return static_cast<int32_t>((static_cast<int64_t>(bound) * next(31)) >> 31);
        }
        int32_t bits = 0;
        int32_t val = 0;
        do {
            bits = next(31);
            val = bits % bound;
            // Rejects the top partial range; the sum overflows exactly when the reference's does.
        } while (static_cast<int32_t>(static_cast<uint32_t>(bits) - static_cast<uint32_t>(val) +
                                      static_cast<uint32_t>(bound - 1)) < 0);
        return val;
    }

    int64_t next_long() noexcept {
        uint64_t hi = static_cast<uint64_t>(static_cast<int64_t>(next(32)));
        uint64_t lo = static_cast<uint64_t>(static_cast<int64_t>(next(32)));
        return static_cast<int64_t>((hi << 32) + lo);
    }

    /// Uniform in [0, 1) with 53 random bits.
    double next_double() noexcept {
        auto hi = static_cast<int64_t>(next(26));
        auto lo = static_cast<int64_t>(next(27));
        return static_cast<double>((hi << 27) + lo) * 0x1.0p-53;
    }

private:
    static constexpr uint64_t multiplier = 0x5DEECE66DULL;
    static constexpr uint64_t mask = (uint64_t{1} << 48) - 1;

    int32_t next(int bits) noexcept {
        _seed = (_seed * multiplier + 0xB) & mask;
        return static_cast<int32_t>(static_cast<uint32_t>(_seed >> (48 - bits)));
    }

    uint64_t _seed;
};

} // namespace runnel::connect::nexmark
