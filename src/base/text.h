#pragma once

// Text encodings shared by every module that reads text from outside or writes JSON: the UTF-8
// check (with the position of the first bad byte), JSON string literals and base64 (for keys,
// values and payloads that are not text).

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace runnel::text {

/// The byte offset of the first byte of `s` that does not start a well-formed UTF-8 sequence
/// (overlong forms, surrogates, values past U+10FFFF and cut-off sequences are not), or
/// nullopt when all of `s` is UTF-8.
std::optional<std::size_t> invalid_utf8_at(std::string_view s) noexcept;

/// True when `s` is well-formed UTF-8.
bool valid_utf8(std::string_view s) noexcept;

/// `s` with every byte that does not start a well-formed UTF-8 sequence replaced by U+FFFD,
/// for text from outside that ends up in a message (a JSON library copies bytes as they are).
std::string scrub_utf8(std::string_view s);

/// Appends `s` as a JSON string literal: quotes, `\"`, `\\` and control characters escaped.
/// Bytes that are not valid UTF-8 are replaced by U+FFFD, so the output is always JSON.
void append_json_string(std::string& out, std::string_view s);
/// `s` as a JSON string literal (see `append_json_string`).
std::string json_string(std::string_view s);

/// Standard base64 (RFC 4648, with padding).
std::string base64_encode(std::string_view bytes);

/// Decodes standard base64; nullopt when `text` is not base64. Padding is optional.
std::optional<std::string> base64_decode(std::string_view text);

/// URL-safe base64 without padding (RFC 4648 section 5, as JWTs use it).
std::string base64url_encode(std::string_view bytes);
/// Decodes URL-safe base64 without padding; nullopt when `text` is not that.
std::optional<std::string> base64url_decode(std::string_view text);

/// Decodes %XX escapes (and '+' as a space when `form`, as in HTML forms); nullopt for a
/// broken escape.
std::optional<std::string> percent_decode(std::string_view s, bool form = false);

/// `s` with ASCII letters in lower (upper) case; other bytes as they are. For keywords,
/// option names and identifiers compared without case, never for display text.
std::string to_lower(std::string_view s);
std::string to_upper(std::string_view s);
/// Equal ignoring ASCII case.
bool iequals(std::string_view a, std::string_view b) noexcept;

/// The name of `known` closest to `name` (a typo's few edits, ignoring case), or empty when
/// none is close: for "did you mean …?" hints.
std::string closest_name(std::string_view name, const std::vector<std::string>& known);

} // namespace runnel::text
