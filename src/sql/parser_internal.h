#pragma once

// The parser's class, shared by the files that define its grammar rules: `parser.cc`
// (types, queries, expressions) and `parser_ddl.cc` (statements). Internal to `sql`.

#include <algorithm>
#include <charconv>
#include <cctype>
#include <initializer_list>

#include <fmt/format.h>

#include "sql/lexer.h"
#include "sql/parser.h"

namespace runnel::sql::detail {

/// Depth guard: counts nesting while a parse function runs.
class depth_guard {
public:
    explicit depth_guard(int& depth)
      : _depth(depth) {
        ++_depth;
    }
    depth_guard(const depth_guard&) = delete;
    depth_guard& operator=(const depth_guard&) = delete;
    ~depth_guard() { --_depth; }

private:
    int& _depth;
};

#define SQL_TRY(var, e)                                                                         \
    auto var##_r = (e);                                                                         \
    if (!var##_r.has_value()) {                                                                 \
        return std::move(var##_r).error();                                                      \
    }                                                                                           \
    auto var = std::move(var##_r).value()

#define SQL_CHECK(e)                                                                            \
    do {                                                                                        \
        auto check_r_ = (e);                                                                    \
        if (!check_r_.has_value()) {                                                            \
            return std::move(check_r_).error();                                                 \
        }                                                                                       \
    } while (0)

using ok_t = parse_result<bool>;

/// Recursive descent over one script's tokens: one member function per grammar rule, each
/// consuming tokens from `_i` and returning a tree or the first error. Every function that
/// can recurse goes through `enter()`, which refuses nesting past `parse_limits::max_depth`.
/// Lives for one parse call on the caller's thread.
class parser {
public:
    parser(std::vector<token> tokens, parse_limits limits)
      : _t(std::move(tokens))
      , _limits(limits) {}

    parse_result<std::vector<statement>> script() {
        std::vector<statement> out;
        while (true) {
            while (cur().is_symbol(";")) {
                ++_i;
            }
            if (cur().kind == token_kind::end) {
                return out;
            }
            SQL_TRY(s, statement_());
            out.push_back(std::move(s));
            if (!cur().is_symbol(";") && cur().kind != token_kind::end) {
                return expected("';' or the end of the statement");
            }
        }
    }

    parse_result<statement> single() {
        if (cur().kind == token_kind::end) {
            return expected("a statement");
        }
        SQL_TRY(s, statement_());
        if (cur().is_symbol(";")) {
            ++_i;
        }
        SQL_CHECK(expect_end());
        return s;
    }

    parse_result<expr> whole_expression() {
        SQL_TRY(e, expression());
        SQL_CHECK(expect_end());
        return e;
    }

    parse_result<data_type> whole_type() {
        SQL_TRY(t, type());
        SQL_CHECK(expect_end());
        return t;
    }

private:
    // ---- tokens ----------------------------------------------------------------------------

    const token& cur() const { return _t[_i]; }
    const token& peek(std::size_t ahead = 1) const {
        return _t[std::min(_i + ahead, _t.size() - 1)];
    }
    bool at_keyword(std::string_view k) const { return cur().is_keyword(k); }
    bool at_symbol(std::string_view s) const { return cur().is_symbol(s); }

    bool accept_keyword(std::string_view k) {
        if (at_keyword(k)) {
            ++_i;
            return true;
        }
        return false;
    }
    bool accept_symbol(std::string_view s) {
        if (at_symbol(s)) {
            ++_i;
            return true;
        }
        return false;
    }

    /// A token as a message shows it: one line, at most 40 bytes of it.
    static std::string describe(const token& t) {
        std::string text = t.text.substr(0, std::min(t.text.find('\n'), std::size_t{40}));
        if (text.size() < t.text.size()) {
            text += "...";
        }
        switch (t.kind) {
        case token_kind::end:
            return "end of input";
        case token_kind::string:
            return fmt::format("string {}", quote_string(text));
        case token_kind::quoted_identifier:
            return fmt::format("`{}`", text);
        default:
            return fmt::format("'{}'", text);
        }
    }

    /// An error at token `t`; at the end of input it points just past the previous token.
    error fail_at(const token& t, std::string message) const {
        error e;
        e.message = std::move(message);
        if (t.kind == token_kind::end && &t != &_t.front()) {
            const token& prev = _t[static_cast<std::size_t>(&t - _t.data()) - 1];
            e.line = prev.pos.line;
            // Words, numbers and symbols are their own text, so their width in characters
            // is the count of bytes that start a UTF-8 character.
            auto width = std::count_if(prev.text.begin(), prev.text.end(), [](char c) {
                return (static_cast<unsigned char>(c) & 0xC0) != 0x80;
            });
            e.column = prev.pos.column + static_cast<int32_t>(width);
            e.offset = prev.pos.offset + prev.length;
            e.length = 0;
            // A multi-line token (a string, a comment-free literal) ends elsewhere; point at its
            // start instead of guessing a column.
            if (prev.kind == token_kind::string || prev.kind == token_kind::quoted_identifier) {
                e.column = prev.pos.column;
                e.offset = prev.pos.offset;
                e.length = prev.length;
            }
            return e;
        }
        e.line = t.pos.line;
        e.column = t.pos.column;
        e.offset = t.pos.offset;
        e.length = t.length;
        return e;
    }
    error fail(std::string message) const { return fail_at(cur(), std::move(message)); }
    error expected(std::string_view what) const {
        return fail(fmt::format("expected {} but found {}", what, describe(cur())));
    }

    ok_t expect_keyword(std::string_view k) {
        if (!accept_keyword(k)) {
            return expected(k);
        }
        return true;
    }
    ok_t expect_symbol(std::string_view s) {
        if (!accept_symbol(s)) {
            return expected(fmt::format("'{}'", s));
        }
        return true;
    }
    ok_t expect_end() {
        if (cur().kind != token_kind::end) {
            return expected("end of input");
        }
        return true;
    }
    ok_t enter() {
        if (_depth > _limits.max_depth) {
            error e = fail(fmt::format("statement nested more than {} levels deep", _limits.max_depth));
            e.code = errc::too_complex;
            return e;
        }
        return true;
    }

    bool at_identifier() const {
        return cur().kind == token_kind::quoted_identifier ||
               (cur().kind == token_kind::identifier && !is_reserved(cur().text));
    }

    parse_result<std::string> identifier(std::string_view what = "a name") {
        if (!at_identifier()) {
            if (cur().kind == token_kind::identifier) {
                return fail(fmt::format("expected {} but found reserved word {}; quote it as `{}` "
                                        "to use it as a name",
                                        what, describe(cur()), cur().text));
            }
            return expected(what);
        }
        return _t[_i++].text;
    }

    parse_result<qualified_name> qualified(std::string_view what = "a name") {
        qualified_name n;
        SQL_TRY(first, identifier(what));
        n.push_back(std::move(first));
        while (at_symbol(".") && (peek().kind == token_kind::identifier ||
                                  peek().kind == token_kind::quoted_identifier)) {
            ++_i;
            SQL_TRY(part, identifier(what));
            n.push_back(std::move(part));
        }
        return n;
    }

    parse_result<std::string> string_literal(std::string_view what) {
        if (cur().kind != token_kind::string) {
            return expected(what);
        }
        return _t[_i++].text;
    }

    parse_result<std::vector<std::string>> identifier_list(std::string_view what) {
        std::vector<std::string> out;
        SQL_CHECK(expect_symbol("("));
        do {
            SQL_TRY(n, identifier(what));
            out.push_back(std::move(n));
        } while (accept_symbol(","));
        SQL_CHECK(expect_symbol(")"));
        return out;
    }

    parse_result<int32_t> small_integer(std::string_view what, int32_t lo, int32_t hi) {
        const token& t = cur();
        if (t.kind != token_kind::integer) {
            return expected(what);
        }
        int64_t v = 0;
        auto [p, ec] = std::from_chars(t.text.data(), t.text.data() + t.text.size(), v);
        if (ec != std::errc() || v < lo || v > hi) {
            return fail(fmt::format("{} must be between {} and {}, not {}", what, lo, hi, t.text));
        }
        ++_i;
        return static_cast<int32_t>(v);
    }

    // ---- statements ------------------------------------------------------------------------

    bool at_query_start() const;

    /// After a '(' at the current token: does a query start inside (possibly behind more '(')?
    bool query_follows_paren() const;

    parse_result<statement> statement_();

    parse_result<create_table_stmt> create_table();

    ok_t not_enforced();

    parse_result<column_def> column(create_table_stmt& t);

    /// `( 'key' = 'value', … )`; the position of each key goes to `pos`.
    parse_result<table_options> options(std::vector<source_pos>& pos);

    parse_result<create_view_stmt> create_view(bool or_replace);

    // ---- types -----------------------------------------------------------------------------

    parse_result<data_type> type();

    // ---- queries ---------------------------------------------------------------------------

    parse_result<query> query_();

    /// `SELECT * FROM (q)`: lets a parenthesized query with its own ORDER BY / LIMIT take
    /// another.
    static query wrap(query inner);

    parse_result<query> query_union();

    parse_result<query> query_term();

    parse_result<select_item> select_item_();

    parse_result<std::string> opt_alias();

    parse_result<std::vector<order_item>> order_list();

    // ---- FROM ------------------------------------------------------------------------------

    parse_result<table_ref> table_join();

    ok_t alias_into(table_ref& t);

    parse_result<table_ref> table_primary();

    // ---- expressions -----------------------------------------------------------------------

    parse_result<expr> expression();

    static expr binary(std::string op, expr l, expr r, source_pos pos);

    parse_result<expr> or_level();

    parse_result<expr> and_level();

    parse_result<expr> not_level();

    parse_result<expr> compare_level();

    parse_result<expr> concat_level();

    parse_result<expr> add_level();

    parse_result<expr> mul_level();

    parse_result<expr> unary_level();

    parse_result<expr> paren_query(expr_kind kind, source_pos pos);

    static bool niladic(std::string_view upper_name);

    parse_result<expr> primary();

    /// FLOOR/CEIL(x TO unit), POSITION(a IN b), SUBSTRING(s FROM i [FOR n]) and
    /// TRIM([BOTH | LEADING | TRAILING] [chars] FROM s); the plain call forms of the same
    /// functions go on to `call_rest`.
    parse_result<expr> keyword_form(const std::string& w);

    parse_result<expr> interval(expr e);

    parse_result<expr> case_(expr e);

    parse_result<expr> name_or_call();

    /// After `name(`: arguments, `)`, then FILTER (WHERE ...) and OVER (...).
    parse_result<expr> call_rest(expr e);

    parse_result<expr> call_argument();

    /// In `TABLE t PARTITION BY a, b, DESCRIPTOR(ts), ...` a ',' continues the key list
    /// unless what follows is the next argument of the window function.
    bool starts_next_argument();

    parse_result<window_spec> window();

    parse_result<frame_bound> frame_bound_();


    std::vector<token> _t;
    std::size_t _i = 0;
    int _depth = 0;
    parse_limits _limits;
};

} // namespace runnel::sql::detail
