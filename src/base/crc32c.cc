#include "base/crc32c.h"

#include <array>
#include <cstring>

#if defined(__x86_64__)
#include <nmmintrin.h>
#endif

namespace runnel::crc32c {
namespace {

constexpr uint32_t reflected_polynomial = 0x82f63b78;

/// Slicing-by-8 tables: table[k][b] is the CRC of byte b followed by k zero bytes.
constexpr auto make_tables() {
    std::array<std::array<uint32_t, 256>, 8> t{};
    for (uint32_t b = 0; b < 256; ++b) {
        uint32_t c = b;
        for (int i = 0; i < 8; ++i) {
            c = (c & 1) ? (c >> 1) ^ reflected_polynomial : c >> 1;
        }
        t[0][b] = c;
    }
    for (uint32_t b = 0; b < 256; ++b) {
        for (std::size_t k = 1; k < 8; ++k) {
            t[k][b] = (t[k - 1][b] >> 8) ^ t[0][t[k - 1][b] & 0xff];
        }
    }
    return t;
}

constexpr auto tables = make_tables();

uint64_t load_le64(const unsigned char* p) noexcept {
    uint64_t v;
    std::memcpy(&v, p, sizeof(v));
    return v; // x86_64 and aarch64 are little-endian; the table walk below assumes it.
}

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) uint32_t extend_sse42(
  uint32_t crc, const unsigned char* p, std::size_t n) noexcept {
    uint64_t c = ~crc;
    while (n >= 8) {
        c = _mm_crc32_u64(c, load_le64(p));
        p += 8;
        n -= 8;
    }
    auto c32 = static_cast<uint32_t>(c);
    while (n > 0) {
        c32 = _mm_crc32_u8(c32, *p++);
        --n;
    }
    return ~c32;
}
#endif

const bool has_hardware = [] {
#if defined(__x86_64__)
    return __builtin_cpu_supports("sse4.2") != 0;
#else
    return false;
#endif
}();

} // namespace

uint32_t extend_portable(uint32_t crc, std::span<const std::byte> bytes) noexcept {
    auto p = reinterpret_cast<const unsigned char*>(bytes.data());
    std::size_t n = bytes.size();
    uint32_t c = ~crc;
    while (n >= 8) {
        uint64_t v = load_le64(p) ^ c;
        c = tables[7][v & 0xff] ^ tables[6][(v >> 8) & 0xff] ^ tables[5][(v >> 16) & 0xff]
            ^ tables[4][(v >> 24) & 0xff] ^ tables[3][(v >> 32) & 0xff]
            ^ tables[2][(v >> 40) & 0xff] ^ tables[1][(v >> 48) & 0xff] ^ tables[0][v >> 56];
        p += 8;
        n -= 8;
    }
    while (n > 0) {
        c = tables[0][(c ^ *p++) & 0xff] ^ (c >> 8);
        --n;
    }
    return ~c;
}

bool hardware_available() noexcept { return has_hardware; }

uint32_t extend_hardware(uint32_t crc, std::span<const std::byte> bytes) noexcept {
#if defined(__x86_64__)
    if (has_hardware) {
        return extend_sse42(crc, reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size());
    }
#endif
    return extend_portable(crc, bytes);
}

uint32_t extend(uint32_t crc, std::span<const std::byte> bytes) noexcept {
    return extend_hardware(crc, bytes);
}

} // namespace runnel::crc32c
