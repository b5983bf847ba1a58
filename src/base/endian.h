#pragma once

#include <bit>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <cstring>

namespace runnel {

/// byteswap arrives with C++23; this is the same for the integers we encode.
template <std::integral T>
constexpr T byteswap(T v) noexcept {
    if constexpr (sizeof(T) == 2) {
        return static_cast<T>(__builtin_bswap16(static_cast<uint16_t>(v)));
    } else if constexpr (sizeof(T) == 4) {
        return static_cast<T>(__builtin_bswap32(static_cast<uint32_t>(v)));
    } else if constexpr (sizeof(T) == 8) {
        return static_cast<T>(__builtin_bswap64(static_cast<uint64_t>(v)));
    } else {
        return v;
    }
}

/// Reads a big-endian (network order) integer from `p`; `p` need not be aligned.
template <std::integral T>
constexpr T read_be(const std::byte* p) noexcept {
    T v;
    std::memcpy(&v, p, sizeof(T));
    if constexpr (std::endian::native == std::endian::little && sizeof(T) > 1) {
        v = byteswap(v);
    }
    return v;
}

/// Writes `v` big-endian at `p`; `p` need not be aligned.
template <std::integral T>
constexpr void write_be(std::byte* p, T v) noexcept {
    if constexpr (std::endian::native == std::endian::little && sizeof(T) > 1) {
        v = byteswap(v);
    }
    std::memcpy(p, &v, sizeof(T));
}

/// Little-endian counterparts, for Runnel's own on-disk formats.
template <std::integral T>
constexpr T read_le(const std::byte* p) noexcept {
    T v;
    std::memcpy(&v, p, sizeof(T));
    if constexpr (std::endian::native == std::endian::big && sizeof(T) > 1) {
        v = byteswap(v);
    }
    return v;
}

template <std::integral T>
constexpr void write_le(std::byte* p, T v) noexcept {
    if constexpr (std::endian::native == std::endian::big && sizeof(T) > 1) {
        v = byteswap(v);
    }
    std::memcpy(p, &v, sizeof(T));
}

} // namespace runnel
