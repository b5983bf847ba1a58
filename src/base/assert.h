#pragma once

#include <source_location>

namespace runnel::detail {
[[noreturn]] void assert_failed(const char* cond, const char* why, std::source_location where);
} // namespace runnel::detail

/// Checks an invariant: a failure is a bug, so the process logs and aborts.
/// Stays on in release builds; never use it for conditions outside input can cause.
#define RUNNEL_ASSERT(cond, why)                                                                \
    do {                                                                                        \
        if (!(cond)) [[unlikely]] {                                                             \
            ::runnel::detail::assert_failed(#cond, why, std::source_location::current());       \
        }                                                                                       \
    } while (0)
