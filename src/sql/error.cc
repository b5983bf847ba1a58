#include "sql/error.h"

#include "sql/ast.h"
#include "sql/lexer.h"

#include "base/secret.h"

#include <algorithm>
#include <string>
#include <vector>

#include <fmt/format.h>

namespace runnel::sql {

const char* errc_message(errc e) noexcept {
    switch (e) {
    case errc::success:
        return "success";
    case errc::syntax_error:
        return "SQL syntax error";
    case errc::too_complex:
        return "SQL statement too complex";
    }
    return "unknown SQL error";
}

std::string error::headline() const {
    return fmt::format("line {}:{}: {}", line, column, message);
}

namespace {

bool continuation_byte(char c) { return (static_cast<unsigned char>(c) & 0xC0) == 0x80; }

/// `format_error` of text without secrets.
std::string format_plain(std::string_view source, const error& e) {
    std::string out = e.headline();
    std::size_t at = std::min<std::size_t>(e.offset, source.size());
    std::size_t begin = 0;
    if (at > 0) {
        std::size_t nl = source.rfind('\n', at - 1);
        begin = nl == std::string_view::npos ? 0 : nl + 1;
    }
    std::size_t end = source.find('\n', at);
    if (end == std::string_view::npos) {
        end = source.size();
    }
    std::string_view line = source.substr(begin, end - begin);
    if (!line.empty() && line.back() == '\r') {
        line.remove_suffix(1);
    }
    out += "\n  ";
    out += line;
    out += "\n  ";
    // The caret line copies tabs so it lines up under the token however tabs are shown.
    for (std::size_t i = begin; i < at && i < begin + line.size(); ++i) {
        if (continuation_byte(source[i])) {
            continue;
        }
        out += source[i] == '\t' ? '\t' : ' ';
    }
    std::size_t token_end = std::min<std::size_t>(at + e.length, begin + line.size());
    std::size_t carets = 0;
    for (std::size_t i = at; i < token_end; ++i) {
        carets += continuation_byte(source[i]) ? 0 : 1;
    }
    out.append(std::max<std::size_t>(carets, 1), '^');
    return out;
}

} // namespace

std::string format_error(std::string_view source, const error& e) {
    const auto spans = secret_spans(source);
    if (spans.empty()) {
        return format_plain(source, e);
    }
    // Show the masked text, with the carets moved to where the token is in it (a token inside
    // a secret value points at the mask), and no secret in the message.
    const std::size_t shown = text::masked.size() + 2; // with its quotes
    auto moved = [&](std::size_t off, bool token_end) {
        std::size_t shift = 0;
        for (const auto& [b, end] : spans) {
            if (off >= end) {
                shift += (end - b) - shown;
            } else if (off > b) {
                return b - shift + (token_end ? shown : 0);
            } else {
                break;
            }
        }
        return off - shift;
    };
    error m = e;
    const std::size_t at = std::min<std::size_t>(e.offset, source.size());
    const std::size_t to = std::min<std::size_t>(at + e.length, source.size());
    m.offset = uint32_t(moved(at, false));
    m.length = uint32_t(std::max(moved(to, true), std::size_t(m.offset)) - m.offset);
    for (const auto& [b, end] : spans) {
        // The token the error points at, when it lies in the secret, is part of it.
        std::vector<std::string> parts;
        if (to > b && at < end) {
            parts.emplace_back(source.substr(std::max(at, b), std::min(to, end) - std::max(at, b)));
        }
        std::string raw(source.substr(b, end - b));
        if (!raw.empty() && raw.front() == '\'') raw.erase(0, 1);
        if (!raw.empty() && raw.back() == '\'' && end - b >= 2) raw.pop_back();
        std::string value;
        for (std::size_t i = 0; i < raw.size(); ++i) {
            value += raw[i];
            if (raw[i] == '\'' && i + 1 < raw.size() && raw[i + 1] == '\'') ++i;
        }
        parts.push_back(raw);
        parts.push_back(value);
        std::sort(parts.begin(), parts.end(), [](const auto& x, const auto& y) { return x.size() > y.size(); });
        for (const auto& v : parts) {
            if (v.empty()) continue;
            for (auto p = m.message.find(v); p != std::string::npos; p = m.message.find(v, p + text::masked.size())) {
                m.message.replace(p, v.size(), text::masked);
            }
        }
    }
    return format_plain(mask_secrets(source), m);
}

error error_at(source_pos pos, uint32_t length, std::string message) {
    error e;
    e.line = pos.line;
    e.column = pos.column;
    e.offset = pos.offset;
    e.length = length;
    e.message = std::move(message);
    return e;
}

uint32_t head_length(const expr& e) {
    if (e.kind == expr_kind::column || e.kind == expr_kind::call) {
        std::size_t n = 0;
        for (const auto& part : e.names) {
            n += part.size() + 1;
        }
        return static_cast<uint32_t>(n > 0 ? n - 1 : 1);
    }
    return 1;
}

} // namespace runnel::sql
