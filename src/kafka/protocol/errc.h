#pragma once

#include <cstdint>
#include <system_error>

#include "base/result.h"

namespace runnel::kafka::protocol {

/// Why bytes are not a valid Kafka message, or a request Runnel cannot decode.
enum class errc {
    success = 0,
    truncated,            ///< fewer bytes remain than a field needs
    negative_length,      ///< a length below -1, or null (-1) where the field is not nullable
    invalid_length,       ///< an array count larger than the bytes left, or a length past 2^31-1
    varint_too_long,      ///< a varint longer than its type allows, or a value past 32 bits
    string_too_long,      ///< a string longer than 32767 bytes
    invalid_tagged_field, ///< a known tagged field whose size disagrees with its contents
    trailing_bytes,       ///< bytes left over after a whole message
    unsupported_api_key,  ///< an api Runnel does not speak
    unsupported_version,  ///< a version of a known api outside the supported range
};

const char* errc_message(errc e) noexcept;
RUNNEL_ERRC_ENUM(errc);

/// Kafka error codes this module itself has reasons to produce.
namespace error_codes {
inline constexpr int16_t none = 0;
inline constexpr int16_t corrupt_message = 2;
inline constexpr int16_t unsupported_version = 35;
inline constexpr int16_t invalid_request = 42;
} // namespace error_codes

/// The Kafka error code to answer a request that failed to decode with `e`:
/// UNSUPPORTED_VERSION for unknown apis and versions, INVALID_REQUEST for malformed bytes.
int16_t kafka_error_code(errc e) noexcept;

} // namespace runnel::kafka::protocol

RUNNEL_ERRC_REGISTER(runnel::kafka::protocol::errc, "kafka.protocol");
