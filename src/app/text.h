#pragma once

// Text encodings the client commands print and read: JSON string literals, UTF-8 checks and
// base64 (for keys, values and headers that are not text).

#include <optional>
#include <string>
#include <string_view>

namespace runnel::app {

/// True when `s` is well-formed UTF-8 (no overlong forms, no surrogates, at most U+10FFFF).
bool valid_utf8(std::string_view s) noexcept;

/// Appends `s` as a JSON string literal: quotes, `\"`, `\\` and control characters escaped.
/// Bytes that are not valid UTF-8 are replaced by U+FFFD, so the output is always JSON.
void append_json_string(std::string& out, std::string_view s);

/// Standard base64 (RFC 4648, with padding).
std::string base64_encode(std::string_view bytes);

/// Decodes standard base64; nullopt when `text` is not base64. Padding is optional.
std::optional<std::string> base64_decode(std::string_view text);

} // namespace runnel::app
