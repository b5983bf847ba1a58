#pragma once

#include <compare>
#include <concepts>
#include <cstddef>
#include <functional>
#include <limits>
#include <ostream>

#include <fmt/format.h>

namespace runnel {

/// A domain integer that cannot be mixed with another domain integer by accident.
///
/// `named_type<int64_t, struct offset_tag>` and `named_type<int64_t, struct epoch_tag>` are
/// distinct types: comparing or adding them does not compile. Arithmetic is limited to what
/// makes sense for counters and positions (add/subtract a raw delta, increment).
template <std::integral T, typename Tag>
class named_type {
public:
    using value_type = T;

    constexpr named_type() = default;
    constexpr explicit named_type(T v) noexcept
      : _value(v) {}

    constexpr T operator()() const noexcept { return _value; }
    constexpr T value() const noexcept { return _value; }

    static constexpr named_type min() noexcept { return named_type(std::numeric_limits<T>::min()); }
    static constexpr named_type max() noexcept { return named_type(std::numeric_limits<T>::max()); }

    constexpr auto operator<=>(const named_type&) const = default;

    constexpr named_type& operator++() noexcept {
        ++_value;
        return *this;
    }
    constexpr named_type operator++(int) noexcept { return named_type(_value++); }
    constexpr named_type& operator+=(T delta) noexcept {
        _value += delta;
        return *this;
    }
    constexpr named_type& operator-=(T delta) noexcept {
        _value -= delta;
        return *this;
    }
    friend constexpr named_type operator+(named_type a, T delta) noexcept {
        return named_type(a._value + delta);
    }
    friend constexpr named_type operator-(named_type a, T delta) noexcept {
        return named_type(a._value - delta);
    }
    /// The distance between two values of the same kind is a raw number.
    friend constexpr T operator-(named_type a, named_type b) noexcept { return a._value - b._value; }

    friend std::ostream& operator<<(std::ostream& os, named_type v) { return os << v._value; }

private:
    T _value{};
};

} // namespace runnel

template <std::integral T, typename Tag>
struct std::hash<runnel::named_type<T, Tag>> {
    std::size_t operator()(runnel::named_type<T, Tag> v) const noexcept {
        return std::hash<T>{}(v());
    }
};

template <std::integral T, typename Tag>
struct fmt::formatter<runnel::named_type<T, Tag>> : fmt::formatter<T> {
    auto format(runnel::named_type<T, Tag> v, fmt::format_context& ctx) const {
        return fmt::formatter<T>::format(v(), ctx);
    }
};
