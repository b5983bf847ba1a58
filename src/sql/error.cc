#include "sql/error.h"

#include "sql/ast.h"

#include <algorithm>

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

} // namespace

std::string format_error(std::string_view source, const error& e) {
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
