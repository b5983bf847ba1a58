#include "sql/lexer.h"
#include "base/text.h"

#include "base/secret.h"

#include <algorithm>
#include <array>
#include <cctype>

#include <fmt/format.h>

namespace runnel::sql {

namespace {

// Sorted, upper case. Words that start or end a clause, or that would make the grammar
// ambiguous as an alias; everything else (TIMESTAMP, WINDOW, JOBS, ...) stays usable as a
// name.
constexpr std::string_view reserved_words[] = {
  "ALL",      "AND",     "AS",       "ASC",     "BETWEEN",  "BY",       "CASE",
  "CAST",     "CREATE",  "CROSS",    "DESC",    "DESCRIBE", "DISTINCT", "DROP",
  "ELSE",     "END",     "ESCAPE",   "EXCEPT",  "EXISTS",   "EXPLAIN",  "FALSE",
  "FETCH",    "FILTER",  "FOR",      "FROM",    "FULL",     "GROUP",    "HAVING",
  "IN",       "INNER",   "INSERT",   "INTERSECT", "INTERVAL", "INTO",   "IS",
  "JOIN",     "LEFT",    "LIKE",     "LIMIT",   "NATURAL",  "NOT",      "NULL",
  "OFFSET",   "ON",      "OR",       "ORDER",   "OUTER",    "OVER",     "RIGHT",
  "SELECT",   "SET",     "TABLE",    "THEN",    "TRUE",     "UNION",    "USING",
  "VALUES",   "WHEN",    "WHERE",    "WITH"};
static_assert(std::is_sorted(std::begin(reserved_words), std::end(reserved_words)));

/// One pass over one source text, tracking line and column as it goes. Lives for one
/// `tokenize` call on the caller's thread.
class lexer {
public:
    explicit lexer(std::string_view src)
      : _src(src) {}

    parse_result<std::vector<token>> run() {
        std::vector<token> out;
        while (true) {
            if (auto e = skip_space_and_comments(); !e.has_value()) {
                return e.error();
            }
            if (_i >= _src.size()) {
                if (_in_hint) return fail(_hint_start, 3, "unterminated hint: '/*+' has no closing '*/'");
                token t;
                t.kind = token_kind::end;
                t.pos = here();
                out.push_back(std::move(t));
                return out;
            }
            auto t = next();
            if (!t.has_value()) {
                return t.error();
            }
            out.push_back(std::move(t).value());
        }
    }

private:
    source_pos here() const {
        return source_pos{_line, _column, static_cast<uint32_t>(_i)};
    }

    void advance() {
        char c = _src[_i++];
        if (c == '\n') {
            ++_line;
            _column = 1;
        } else if ((static_cast<unsigned char>(c) & 0xC0) != 0x80) {
            ++_column;
        }
    }

    char peek(std::size_t ahead = 0) const {
        return _i + ahead < _src.size() ? _src[_i + ahead] : '\0';
    }

    error fail(source_pos at, uint32_t length, std::string message) const {
        error e;
        e.line = at.line;
        e.column = at.column;
        e.offset = at.offset;
        e.length = length;
        e.message = std::move(message);
        return e;
    }

    parse_result<bool> skip_space_and_comments() {
        while (_i < _src.size()) {
            char c = peek();
            if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v') {
                advance();
            } else if (c == '-' && peek(1) == '-') {
                while (_i < _src.size() && peek() != '\n') {
                    advance();
                }
            } else if (c == '/' && peek(1) == '*' && peek(2) != '+') {
                source_pos start = here();
                advance();
                advance();
                while (_i < _src.size() && !(peek() == '*' && peek(1) == '/')) {
                    advance();
                }
                if (_i >= _src.size()) {
                    return fail(start, 2, "unterminated comment: '/*' has no closing '*/'");
                }
                advance();
                advance();
            } else {
                break;
            }
        }
        return true;
    }

    static bool word_start(char c) {
        return std::isalpha(static_cast<unsigned char>(c)) || c == '_' ||
               static_cast<unsigned char>(c) >= 0x80;
    }
    static bool word_char(char c) {
        return word_start(c) || std::isdigit(static_cast<unsigned char>(c)) || c == '$';
    }

    parse_result<token> next() {
        token t;
        t.pos = here();
        char c = peek();
        std::size_t start = _i;
        // A hint, /*+ NAME(args) */: its opening and closing are symbols, what is between tokens.
        if ((c == '/' && peek(1) == '*' && peek(2) == '+') || (_in_hint && c == '*' && peek(1) == '/')) {
            const bool open = c == '/';
            if (open && _in_hint) return fail(t.pos, 3, "a hint inside a hint: '/*+' before the '*/' of the last one");
            _in_hint = open;
            _hint_start = t.pos;
            for (int k = open ? 3 : 2; k > 0; --k) advance();
            t.kind = token_kind::symbol;
            t.text = open ? "/*+" : "*/";
            t.length = open ? 3 : 2;
            return t;
        }
        if (word_start(c)) {
            while (_i < _src.size() && word_char(peek())) {
                advance();
            }
            t.kind = token_kind::identifier;
            t.text = std::string(_src.substr(start, _i - start));
        } else if (std::isdigit(static_cast<unsigned char>(c)) ||
                   (c == '.' && std::isdigit(static_cast<unsigned char>(peek(1))))) {
            auto r = number(t);
            if (!r.has_value()) {
                return r.error();
            }
        } else if (c == '\'') {
            advance();
            std::string value;
            while (true) {
                if (_i >= _src.size()) {
                    return fail(t.pos, 1, "unterminated string literal: missing closing quote");
                }
                if (peek() == '\'') {
                    if (peek(1) == '\'') {
                        value.push_back('\'');
                        advance();
                        advance();
                        continue;
                    }
                    advance();
                    break;
                }
                value.push_back(peek());
                advance();
            }
            t.kind = token_kind::string;
            t.text = std::move(value);
        } else if (c == '`') {
            advance();
            std::string value;
            while (true) {
                if (_i >= _src.size()) {
                    return fail(t.pos, 1,
                                "unterminated quoted identifier: missing closing backtick");
                }
                if (peek() == '`') {
                    if (peek(1) == '`') {
                        value.push_back('`');
                        advance();
                        advance();
                        continue;
                    }
                    advance();
                    break;
                }
                value.push_back(peek());
                advance();
            }
            if (value.empty()) {
                return fail(t.pos, 2, "empty quoted identifier ``");
            }
            t.kind = token_kind::quoted_identifier;
            t.text = std::move(value);
        } else {
            static constexpr std::array<std::string_view, 9> two = {"<>", "!=", "<=", ">=", "||",
                                                                   "=>", "::", "==", "->"};
            std::string_view pair = _src.substr(_i, 2);
            auto it = std::find(two.begin(), two.end(), pair);
            if (it != two.end() && *it != "::" && *it != "==" && *it != "->") {
                advance();
                advance();
                t.kind = token_kind::symbol;
                t.text = std::string(pair);
            } else if (std::string_view("()[],.;+-*/%=<>").find(c) != std::string_view::npos) {
                advance();
                t.kind = token_kind::symbol;
                t.text = std::string(1, c);
            } else {
                std::string shown = std::isprint(static_cast<unsigned char>(c))
                                      ? fmt::format("'{}'", c)
                                      : fmt::format("byte 0x{:02X}", static_cast<unsigned char>(c));
                if (c == '"') {
                    return fail(t.pos, 1,
                                "unexpected character '\"': quote identifiers with backticks "
                                "(`name`) and strings with single quotes ('text')");
                }
                return fail(t.pos, 1, fmt::format("unexpected character {}", shown));
            }
        }
        t.length = static_cast<uint32_t>(_i - start);
        return t;
    }

    parse_result<bool> number(token& t) {
        std::size_t start = _i;
        bool is_decimal = false;
        while (std::isdigit(static_cast<unsigned char>(peek()))) {
            advance();
        }
        if (peek() == '.' && std::isdigit(static_cast<unsigned char>(peek(1)))) {
            is_decimal = true;
            advance();
            while (std::isdigit(static_cast<unsigned char>(peek()))) {
                advance();
            }
        } else if (peek() == '.' && !word_start(peek(1))) {
            // `1.` is a decimal; `t1.x` never reaches here, and `1.e5` is not accepted.
            is_decimal = true;
            advance();
        }
        if (peek() == 'e' || peek() == 'E') {
            std::size_t ahead = 1;
            if (peek(1) == '+' || peek(1) == '-') {
                ahead = 2;
            }
            if (std::isdigit(static_cast<unsigned char>(peek(ahead)))) {
                is_decimal = true;
                for (std::size_t k = 0; k < ahead; ++k) {
                    advance();
                }
                while (std::isdigit(static_cast<unsigned char>(peek()))) {
                    advance();
                }
            }
        }
        if (word_start(peek())) {
            source_pos at = t.pos;
            while (_i < _src.size() && word_char(peek())) {
                advance();
            }
            return fail(at, static_cast<uint32_t>(_i - start),
                        fmt::format("malformed number '{}'", _src.substr(start, _i - start)));
        }
        t.kind = is_decimal ? token_kind::decimal : token_kind::integer;
        t.text = std::string(_src.substr(start, _i - start));
        return true;
    }

    std::string_view _src;
    std::size_t _i = 0;
    bool _in_hint = false;     ///< between '/*+' and its '*/'
    source_pos _hint_start{};  ///< where the last hint opened
    int32_t _line = 1;
    int32_t _column = 1;
};

} // namespace

bool token::is_keyword(std::string_view keyword) const noexcept {
    return kind == token_kind::identifier && runnel::text::iequals(text, keyword);
}

bool is_reserved(std::string_view word) noexcept {
    if (word.size() > 16) {
        return false;
    }
    std::string upper(word);
    for (char& c : upper) {
        c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    }
    return std::binary_search(std::begin(reserved_words), std::end(reserved_words), upper);
}

parse_result<std::vector<token>> tokenize(std::string_view source) {
    if (source.size() > (std::size_t{1} << 30)) {
        error e;
        e.code = errc::too_complex;
        e.message = "SQL text larger than 1 GiB";
        return e;
    }
    return lexer(source).run();
}

std::vector<std::pair<std::size_t, std::size_t>> secret_spans(std::string_view source) {
    std::vector<std::pair<std::size_t, std::size_t>> out;
    auto tokens = tokenize(source);
    std::size_t cut = source.size();
    if (!tokens) {
        // Read up to where the lexer stopped; a secret value starting there runs to the end.
        cut = std::min<std::size_t>(tokens.error().offset, source.size());
        tokens = tokenize(source.substr(0, cut));
        if (!tokens) return {{0, source.size()}}; // unreadable: show none of it
    }
    const auto& ts = tokens.value();
    // A string after a secret key string (and '=', which a wrong script may lack).
    auto secret_key_before = [&](std::size_t i) {
        if (i >= 1 && ts[i - 1].is_symbol("=")) --i;
        return i >= 1 && ts[i - 1].kind == token_kind::string && text::secret_key(ts[i - 1].text);
    };
    for (std::size_t i = 0; i < ts.size(); ++i) {
        if (ts[i].kind == token_kind::string && secret_key_before(i)) {
            out.emplace_back(ts[i].pos.offset, std::size_t(ts[i].pos.offset) + ts[i].length);
        }
    }
    if (cut < source.size() && secret_key_before(ts.size() - 1)) out.emplace_back(cut, source.size());
    return out;
}

std::string mask_secrets(std::string_view source) {
    std::string out;
    std::size_t at = 0;
    for (const auto& [b, e] : secret_spans(source)) {
        out.append(source.substr(at, b - at));
        out += '\'';
        out += text::masked;
        out += '\'';
        at = e;
    }
    out.append(source.substr(at));
    return out;
}

} // namespace runnel::sql
