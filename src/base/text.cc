#include "base/text.h"
#include "base/secret.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <cstdint>

namespace runnel::text {
namespace {

constexpr std::string_view base64_alphabet =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
constexpr std::string_view base64url_alphabet =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// The length of the well-formed UTF-8 sequence at the start of `s`, or 0 when it is not one.
std::size_t utf8_sequence(std::string_view s) noexcept {
    const auto b0 = static_cast<unsigned char>(s[0]);
    if (b0 < 0x80) {
        return 1;
    }
    std::size_t len = 0;
    uint32_t cp = 0;
    if ((b0 & 0xE0) == 0xC0) {
        len = 2;
        cp = b0 & 0x1F;
    } else if ((b0 & 0xF0) == 0xE0) {
        len = 3;
        cp = b0 & 0x0F;
    } else if ((b0 & 0xF8) == 0xF0) {
        len = 4;
        cp = b0 & 0x07;
    } else {
        return 0;
    }
    if (s.size() < len) {
        return 0;
    }
    for (std::size_t i = 1; i < len; ++i) {
        const auto b = static_cast<unsigned char>(s[i]);
        if ((b & 0xC0) != 0x80) {
            return 0;
        }
        cp = (cp << 6) | (b & 0x3F);
    }
    constexpr std::array<uint32_t, 5> min_for_length{0, 0, 0x80, 0x800, 0x10000};
    if (cp < min_for_length[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
        return 0;
    }
    return len;
}

} // namespace

std::optional<std::size_t> invalid_utf8_at(std::string_view s) noexcept {
    std::size_t at = 0;
    while (at < s.size()) {
        auto n = utf8_sequence(s.substr(at));
        if (n == 0) {
            return at;
        }
        at += n;
    }
    return std::nullopt;
}

bool valid_utf8(std::string_view s) noexcept { return !invalid_utf8_at(s).has_value(); }

std::string scrub_utf8(std::string_view s) {
    std::string out;
    out.reserve(s.size());
    while (!s.empty()) {
        auto n = utf8_sequence(s);
        if (n == 0) {
            out += "\xef\xbf\xbd";
            n = 1;
        } else {
            out.append(s.substr(0, n));
        }
        s.remove_prefix(n);
    }
    return out;
}

std::string json_string(std::string_view s) {
    std::string out;
    out.reserve(s.size() + 2);
    append_json_string(out, s);
    return out;
}

void append_json_string(std::string& out, std::string_view s) {
    constexpr std::string_view hex = "0123456789abcdef";
    out.push_back('"');
    while (!s.empty()) {
        const auto c = static_cast<unsigned char>(s[0]);
        if (c >= 0x80) {
            auto n = utf8_sequence(s);
            if (n == 0) {
                out += "\\ufffd";
                s.remove_prefix(1);
            } else {
                out.append(s.substr(0, n));
                s.remove_prefix(n);
            }
            continue;
        }
        switch (c) {
        case '"':
            out += "\\\"";
            break;
        case '\\':
            out += "\\\\";
            break;
        case '\n':
            out += "\\n";
            break;
        case '\r':
            out += "\\r";
            break;
        case '\t':
            out += "\\t";
            break;
        case '\b':
            out += "\\b";
            break;
        case '\f':
            out += "\\f";
            break;
        default:
            if (c < 0x20 || c == 0x7F) {
                out += "\\u00";
                out.push_back(hex[c >> 4]);
                out.push_back(hex[c & 0xF]);
            } else {
                out.push_back(static_cast<char>(c));
            }
        }
        s.remove_prefix(1);
    }
    out.push_back('"');
}

std::string base64_encode(std::string_view bytes) {
    std::string out;
    out.reserve((bytes.size() + 2) / 3 * 4);
    std::size_t i = 0;
    for (; i + 3 <= bytes.size(); i += 3) {
        const uint32_t v = (uint32_t(uint8_t(bytes[i])) << 16) |
                           (uint32_t(uint8_t(bytes[i + 1])) << 8) | uint32_t(uint8_t(bytes[i + 2]));
        out.push_back(base64_alphabet[(v >> 18) & 63]);
        out.push_back(base64_alphabet[(v >> 12) & 63]);
        out.push_back(base64_alphabet[(v >> 6) & 63]);
        out.push_back(base64_alphabet[v & 63]);
    }
    const auto rest = bytes.size() - i;
    if (rest > 0) {
        uint32_t v = uint32_t(uint8_t(bytes[i])) << 16;
        if (rest == 2) {
            v |= uint32_t(uint8_t(bytes[i + 1])) << 8;
        }
        out.push_back(base64_alphabet[(v >> 18) & 63]);
        out.push_back(base64_alphabet[(v >> 12) & 63]);
        out.push_back(rest == 2 ? base64_alphabet[(v >> 6) & 63] : '=');
        out.push_back('=');
    }
    return out;
}

namespace {

/// Decodes base64 over `alphabet` without padding; nullopt when `text` is not that.
std::optional<std::string> decode_base64_with(std::string_view alphabet, std::string_view text) {
    if (text.size() % 4 == 1) {
        return std::nullopt;
    }
    std::string out;
    out.reserve(text.size() * 3 / 4);
    uint32_t acc = 0;
    int bits = 0;
    for (char ch : text) {
        auto pos = alphabet.find(ch);
        if (pos == std::string_view::npos) {
            return std::nullopt;
        }
        acc = (acc << 6) | static_cast<uint32_t>(pos);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out.push_back(static_cast<char>((acc >> bits) & 0xFF));
        }
    }
    return out;
}

} // namespace

std::optional<std::string> base64_decode(std::string_view text) {
    while (!text.empty() && text.back() == '=') {
        text.remove_suffix(1);
    }
    return decode_base64_with(base64_alphabet, text);
}

std::optional<std::string> base64url_decode(std::string_view text) { return decode_base64_with(base64url_alphabet, text); }

std::string base64url_encode(std::string_view bytes) {
    std::string out;
    out.reserve((bytes.size() + 2) / 3 * 4);
    uint32_t acc = 0;
    int bits = 0;
    for (unsigned char c : bytes) {
        acc = (acc << 8) | c;
        bits += 8;
        while (bits >= 6) {
            bits -= 6;
            out.push_back(base64url_alphabet[(acc >> bits) & 0x3F]);
        }
    }
    if (bits > 0) {
        out.push_back(base64url_alphabet[(acc << (6 - bits)) & 0x3F]);
    }
    return out;
}

namespace {

int hex_digit(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

} // namespace

std::optional<std::string> percent_decode(std::string_view s, bool form) {
    std::string out;
    out.reserve(s.size());
    for (std::size_t i = 0; i < s.size(); ++i) {
        if (s[i] == '%') {
            if (i + 2 >= s.size()) {
                return std::nullopt;
            }
            const int hi = hex_digit(s[i + 1]);
            const int lo = hex_digit(s[i + 2]);
            if (hi < 0 || lo < 0) {
                return std::nullopt;
            }
            out += static_cast<char>(hi * 16 + lo);
            i += 2;
        } else if (form && s[i] == '+') {
            out += ' ';
        } else {
            out += s[i];
        }
    }
    return out;
}

namespace {

/// The edit distance of `a` and `b` ignoring case.
std::size_t name_distance(std::string_view a, std::string_view b) {
    std::vector<std::size_t> row(b.size() + 1);
    for (std::size_t j = 0; j <= b.size(); ++j) {
        row[j] = j;
    }
    for (std::size_t i = 1; i <= a.size(); ++i) {
        std::size_t diag = row[0];
        row[0] = i;
        for (std::size_t j = 1; j <= b.size(); ++j) {
            std::size_t up = row[j];
            bool same = std::tolower(static_cast<unsigned char>(a[i - 1])) ==
                        std::tolower(static_cast<unsigned char>(b[j - 1]));
            row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (same ? 0 : 1)});
            diag = up;
        }
    }
    return row[b.size()];
}

} // namespace

std::string to_lower(std::string_view s) {
    std::string out(s);
    for (char& c : out) {
        c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    }
    return out;
}

std::string to_upper(std::string_view s) {
    std::string out(s);
    for (char& c : out) {
        c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    }
    return out;
}

bool iequals(std::string_view a, std::string_view b) noexcept {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
               return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
           });
}

std::string closest_name(std::string_view name, const std::vector<std::string>& known) {
    std::string best;
    std::size_t best_d = std::max<std::size_t>(2, name.size() / 3) + 1;
    for (const auto& k : known) {
        std::size_t d = name_distance(name, k);
        if (d < best_d) {
            best_d = d;
            best = k;
        }
    }
    return best;
}

bool secret_key(std::string_view key) {
    std::string k(key);
    for (auto& c : k) c = char(std::tolower(static_cast<unsigned char>(c)));
    for (std::string_view part : {"password", "secret", "jaas.config", "key.pem", "oauthbearer.config", "apikey"}) {
        if (k.find(part) != std::string::npos) return true;
    }
    return false;
}

} // namespace runnel::text
