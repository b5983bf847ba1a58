#pragma once

#include <string>
#include <system_error>
#include <type_traits>

#include <boost/outcome/std_result.hpp>
#include <boost/outcome/try.hpp>

namespace runnel {

namespace outcome = boost::outcome_v2;

/// The value of an operation that can fail for outside reasons (bad bytes, a full disk, an
/// unknown topic). Failures carry a `std::error_code` from a module's `errc` enum; reading
/// the value of a failed result throws `std::system_error` (that is a bug in the caller).
template <typename T>
using result = outcome::std_result<T>;

/// Success of a `result<void>`.
inline auto ok() { return outcome::success(); }

/// Declares `std::error_category` for a module's `errc` enum.
///
/// A module writes `enum class errc { … }` plus a free function
/// `const char* errc_message(errc)`, then registers it with the two macros below.
template <typename E>
struct errc_traits;

template <typename E>
class errc_category final : public std::error_category {
public:
    const char* name() const noexcept override { return errc_traits<E>::domain; }
    std::string message(int code) const override { return errc_message(static_cast<E>(code)); }
    static const errc_category& instance() {
        static const errc_category cat;
        return cat;
    }
};

} // namespace runnel

/// Use inside the enum's namespace: `RUNNEL_ERRC_ENUM(errc)`; then, at global scope,
/// `RUNNEL_ERRC_REGISTER(runnel::storage::errc, "storage")`. The value 0 must not be an error.
#define RUNNEL_ERRC_ENUM(E)                                                             \
    inline std::error_code make_error_code(E e) noexcept {                                      \
        return {static_cast<int>(e), ::runnel::errc_category<E>::instance()};                   \
    }                                                                                           \
    static_assert(static_cast<int>(E{}) == 0)

#define RUNNEL_ERRC_REGISTER(E, DOMAIN)                                                         \
    template <>                                                                                 \
    struct runnel::errc_traits<E> {                                                             \
        static constexpr const char* domain = DOMAIN;                                           \
    };                                                                                          \
    template <>                                                                                 \
    struct std::is_error_code_enum<E> : std::true_type {}

/// `RUNNEL_TRY(auto x, f())` — returns the failure of `f()` from the enclosing function,
/// otherwise binds its value.
#define RUNNEL_TRY BOOST_OUTCOME_TRY
