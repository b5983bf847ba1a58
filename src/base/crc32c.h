#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

namespace runnel::crc32c {

/// CRC-32C (Castagnoli), as Kafka's RecordBatch v2 and iSCSI use it.
///
/// `extend(crc, a + b) == extend(extend(crc, a), b)`; the CRC of nothing is 0. Uses the SSE4.2
/// `crc32` instruction when the CPU has it (checked once at start-up) and a table otherwise.
uint32_t extend(uint32_t crc, std::span<const std::byte> bytes) noexcept;

inline uint32_t value(std::span<const std::byte> bytes) noexcept { return extend(0, bytes); }
inline uint32_t value(std::string_view s) noexcept { return extend(0, std::as_bytes(std::span(s))); }

/// The two implementations, exposed so tests can check both on any machine.
uint32_t extend_portable(uint32_t crc, std::span<const std::byte> bytes) noexcept;
uint32_t extend_hardware(uint32_t crc, std::span<const std::byte> bytes) noexcept;
bool hardware_available() noexcept;

} // namespace runnel::crc32c
