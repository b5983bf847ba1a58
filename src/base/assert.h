#pragma once

namespace runnel::detail {
[[noreturn]] void assert_failed(const char* cond, const char* why, const char* file, int line,
                                const char* function);
} // namespace runnel::detail

/// Checks an invariant: a failure is a bug, so the process logs and aborts.
/// Stays on in release builds; never use it for conditions outside input can cause.
#define RUNNEL_ASSERT(cond, why)                                                                \
    do {                                                                                        \
        if (!(cond)) [[unlikely]] {                                                             \
            ::runnel::detail::assert_failed(#cond, why, __FILE__, __LINE__, __func__);          \
        }                                                                                       \
    } while (0)
