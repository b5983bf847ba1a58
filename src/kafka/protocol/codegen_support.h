#pragma once

// What generated codecs (messages/*.cc) need beyond the public headers. Not for other modules.

#include <algorithm>
#include <cstdint>
#include <utility>

#include "kafka/protocol/errc.h"
#include "kafka/protocol/wire.h"

/// Reads `expr` (a `result<T>`) into the lvalue `dst`, or returns its failure.
#define RUNNEL_KP_READ(dst, expr)                                                               \
    do {                                                                                        \
        auto&& runnel_kp_r = (expr);                                                            \
        if (!runnel_kp_r) [[unlikely]] {                                                        \
            return runnel_kp_r.error();                                                         \
        }                                                                                       \
        (dst) = std::move(runnel_kp_r).assume_value();                                          \
    } while (false)

/// Returns the failure of `expr` (a `result<void>`), if any.
#define RUNNEL_KP_CHECK(expr)                                                                   \
    do {                                                                                        \
        auto&& runnel_kp_r = (expr);                                                            \
        if (!runnel_kp_r) [[unlikely]] {                                                        \
            return runnel_kp_r.error();                                                         \
        }                                                                                       \
    } while (false)

namespace runnel::kafka::protocol {

/// How many elements to reserve for an array that claims `n`: the count is checked against
/// the remaining bytes, not against memory, so reserve a bounded amount and let it grow.
inline std::size_t reserve_hint(int32_t n) noexcept {
    return static_cast<std::size_t>(std::clamp<int32_t>(n, 0, 256));
}

} // namespace runnel::kafka::protocol
