#pragma once

// Whether this build runs under AddressSanitizer (`make test-asan`, the fuzz targets).

namespace runnel {

/// True in a build instrumented by AddressSanitizer. The sanitizer build runs code several
/// times slower than a release build; randomized tests use it to run fewer seeds there, since
/// what it looks for (memory and undefined-behaviour errors) shows on the first seeds, while
/// an uninstrumented build of the same test (`build/dev`) runs every seed.
#if defined(__SANITIZE_ADDRESS__)
inline constexpr bool sanitized_build = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
inline constexpr bool sanitized_build = true;
#else
inline constexpr bool sanitized_build = false;
#endif
#else
inline constexpr bool sanitized_build = false;
#endif

/// `full` in an uninstrumented build, a quarter of it (at least 1) under the sanitizers: the
/// number of seeds or rounds a randomized test runs.
constexpr int test_rounds(int full) { return sanitized_build ? (full + 3) / 4 : full; }

} // namespace runnel
