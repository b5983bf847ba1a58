#include "sql/parser.h"
#include "base/text.h"

#include <algorithm>
#include <charconv>
#include <cctype>
#include <initializer_list>

#include <fmt/format.h>

#include "sql/parser_internal.h"
#include "sql/lexer.h"

namespace runnel::sql {

namespace {

bool is_comparison(const token& t) {
    return t.kind == token_kind::symbol &&
           (t.text == "=" || t.text == "<>" || t.text == "!=" || t.text == "<" ||
            t.text == "<=" || t.text == ">" || t.text == ">=");
}

std::optional<time_unit> unit_from_word(const token& t) {
    if (t.kind != token_kind::identifier) {
        return std::nullopt;
    }
    std::string u = text::to_upper(t.text);
    if (u.size() > 1 && u.back() == 'S' && u != "S") {
        u.pop_back(); // SECONDS, MINUTES, ... read as their singular
    }
    if (u == "YEAR") return time_unit::year;
    if (u == "QUARTER") return time_unit::quarter;
    if (u == "MONTH") return time_unit::month;
    if (u == "WEEK") return time_unit::week;
    if (u == "DAY") return time_unit::day;
    if (u == "HOUR") return time_unit::hour;
    if (u == "MINUTE") return time_unit::minute;
    if (u == "SECOND") return time_unit::second;
    if (u == "MILLISECOND") return time_unit::millisecond;
    return std::nullopt;
}

} // namespace

namespace detail {

// ---- types -----------------------------------------------------------------------------
parse_result<data_type> parser::type() {
    SQL_CHECK(enter());
    depth_guard g(_depth);
    const token& t = cur();
    if (t.kind != token_kind::identifier) {
        return expected("a type such as BIGINT, STRING or TIMESTAMP(3)");
    }
    std::string w = text::to_upper(t.text);
    data_type d;
    auto opt_precision = [&](const char* what, int32_t lo, int32_t hi) -> ok_t {
        if (accept_symbol("(")) {
            SQL_TRY(p, small_integer(what, lo, hi));
            d.precision = p;
            SQL_CHECK(expect_symbol(")"));
        }
        return true;
    };
    ++_i;
    if (w == "STRING") {
        d.kind = type_kind::string;
    } else if (w == "VARCHAR" || w == "CHAR" || w == "CHARACTER") {
        d.kind = w == "VARCHAR" ? type_kind::varchar : type_kind::char_;
        if (w == "CHARACTER" && accept_keyword("VARYING")) {
            d.kind = type_kind::varchar;
        }
        SQL_CHECK(opt_precision("the length", 1, max_varchar_length));
    } else if (w == "BIGINT") {
        d.kind = type_kind::bigint;
    } else if (w == "INT" || w == "INTEGER") {
        d.kind = type_kind::int_;
    } else if (w == "SMALLINT") {
        d.kind = type_kind::smallint;
    } else if (w == "TINYINT") {
        d.kind = type_kind::tinyint;
    } else if (w == "DOUBLE") {
        accept_keyword("PRECISION");
        d.kind = type_kind::double_;
    } else if (w == "FLOAT" || w == "REAL") {
        d.kind = type_kind::float_;
    } else if (w == "DECIMAL" || w == "DEC" || w == "NUMERIC") {
        d.kind = type_kind::decimal;
        if (accept_symbol("(")) {
            SQL_TRY(p, small_integer("the precision of DECIMAL", 1, max_decimal_precision));
            d.precision = p;
            if (accept_symbol(",")) {
                SQL_TRY(s, small_integer("the scale of DECIMAL", 0, p));
                d.scale = s;
            }
            SQL_CHECK(expect_symbol(")"));
        }
    } else if (w == "BOOLEAN" || w == "BOOL") {
        d.kind = type_kind::boolean;
    } else if (w == "BYTES" || w == "VARBINARY" || w == "BINARY") {
        d.kind = type_kind::bytes;
        if (w != "BYTES") {
            SQL_CHECK(opt_precision("the length", 1, max_varchar_length));
            d.precision.reset();
        }
    } else if (w == "DATE") {
        d.kind = type_kind::date;
    } else if (w == "TIME") {
        d.kind = type_kind::time;
        SQL_CHECK(opt_precision("the precision of TIME", 0, max_timestamp_precision));
        if (accept_keyword("WITHOUT")) {
            SQL_CHECK(expect_keyword("TIME"));
            SQL_CHECK(expect_keyword("ZONE"));
        }
    } else if (w == "TIMESTAMP") {
        d.kind = type_kind::timestamp;
        SQL_CHECK(opt_precision("the precision of TIMESTAMP", 0, max_timestamp_precision));
        if (accept_keyword("WITHOUT")) {
            SQL_CHECK(expect_keyword("TIME"));
            SQL_CHECK(expect_keyword("ZONE"));
        } else if (at_keyword("WITH") && peek().is_keyword("LOCAL")) {
            _i += 2;
            SQL_CHECK(expect_keyword("TIME"));
            SQL_CHECK(expect_keyword("ZONE"));
            d.kind = type_kind::timestamp_ltz;
        }
    } else if (w == "TIMESTAMP_LTZ") {
        d.kind = type_kind::timestamp_ltz;
        SQL_CHECK(opt_precision("the precision of TIMESTAMP_LTZ", 0, max_timestamp_precision));
    } else if (w == "ARRAY") {
        d.kind = type_kind::array;
        SQL_CHECK(expect_symbol("<"));
        SQL_TRY(e, type());
        d.children.push_back(std::move(e));
        SQL_CHECK(expect_symbol(">"));
    } else if (w == "ROW") {
        // ROW<name type, …> or ROW(name type, …); at least one field, names unique.
        d.kind = type_kind::row;
        bool angle = at_symbol("<");
        if (!angle && !at_symbol("(")) {
            return expected(at_symbol("<>") ? "a field: ROW<name type, …>"
                                            : "'<' or '(' and the fields after ROW");
        }
        ++_i;
        do {
            const token& ft = cur();
            SQL_TRY(fname, identifier("a field name"));
            if (std::find(d.field_names.begin(), d.field_names.end(), fname) !=
                d.field_names.end()) {
                return fail_at(ft, fmt::format("field {} appears twice in the ROW",
                                               quote_identifier(fname)));
            }
            SQL_TRY(ftype, type());
            d.field_names.push_back(std::move(fname));
            d.children.push_back(std::move(ftype));
        } while (accept_symbol(","));
        SQL_CHECK(expect_symbol(angle ? ">" : ")"));
    } else if (w == "MAP") {
        d.kind = type_kind::map;
        SQL_CHECK(expect_symbol("<"));
        SQL_TRY(k, type());
        SQL_CHECK(expect_symbol(","));
        SQL_TRY(v, type());
        d.children.push_back(std::move(k));
        d.children.push_back(std::move(v));
        SQL_CHECK(expect_symbol(">"));
    } else {
        --_i;
        return fail(fmt::format("unknown type {}; expected one of STRING, VARCHAR(n), "
                                "BIGINT, INT, SMALLINT, TINYINT, DOUBLE, FLOAT, "
                                "DECIMAL(p, s), BOOLEAN, DATE, TIME, TIMESTAMP(p), "
                                "TIMESTAMP_LTZ(p), BYTES, ARRAY<t>, MAP<k, v>",
                                describe(t)));
    }
    if (at_keyword("NOT") && peek().is_keyword("NULL")) {
        _i += 2;
        d.nullable = false;
    } else if (at_keyword("NULL")) {
        ++_i;
    }
    return d;
}

// ---- queries ---------------------------------------------------------------------------
parse_result<query> parser::query_() {
    SQL_CHECK(enter());
    depth_guard g(_depth);
    source_pos pos = cur().pos;
    std::vector<common_table> with;
    if (accept_keyword("WITH")) {
        do {
            common_table ct;
            SQL_TRY(name, identifier("a name for the WITH query"));
            ct.name = std::move(name);
            if (at_symbol("(")) {
                SQL_TRY(cols, identifier_list("a column name"));
                ct.columns = std::move(cols);
            }
            SQL_CHECK(expect_keyword("AS"));
            SQL_CHECK(expect_symbol("("));
            SQL_TRY(body, query_());
            ct.body = box<query>(std::move(body));
            SQL_CHECK(expect_symbol(")"));
            with.push_back(std::move(ct));
        } while (accept_symbol(","));
    }
    SQL_TRY(q, query_union());
    bool has_tail = at_keyword("ORDER") || at_keyword("LIMIT");
    if (!with.empty() || has_tail) {
        if ((!with.empty() && !q.with.empty()) ||
            (has_tail && (!q.order_by.empty() || q.limit))) {
            q = wrap(std::move(q));
        }
    }
    if (!with.empty()) {
        q.with = std::move(with);
    }
    if (accept_keyword("ORDER")) {
        SQL_CHECK(expect_keyword("BY"));
        SQL_TRY(items, order_list());
        q.order_by = std::move(items);
    }
    if (accept_keyword("LIMIT")) {
        SQL_TRY(n, expression());
        q.limit = box<expr>(std::move(n));
    }
    if (at_keyword("OFFSET") || at_keyword("FETCH")) {
        return fail(fmt::format("{} is not supported; use LIMIT n", text::to_upper(cur().text)));
    }
    q.pos = pos;
    return q;
}

/// `SELECT * FROM (q)`: lets a parenthesized query with its own ORDER BY / LIMIT take
/// another.
query parser::wrap(query inner) {
    query q;
    q.pos = inner.pos;
    select_item star;
    star.value.kind = expr_kind::star;
    q.select.items.push_back(std::move(star));
    table_ref from;
    from.kind = table_ref_kind::subquery;
    from.subquery = box<query>(std::move(inner));
    q.select.from.push_back(std::move(from));
    return q;
}

parse_result<query> parser::query_union() {
    SQL_TRY(left, query_term());
    while (at_keyword("UNION")) {
        ++_i;
        bool all = accept_keyword("ALL");
        if (!all) {
            accept_keyword("DISTINCT");
        }
        SQL_TRY(right, query_term());
        query u;
        u.pos = left.pos;
        u.kind = query_kind::union_;
        u.union_all = all;
        u.left = box<query>(std::move(left));
        u.right = box<query>(std::move(right));
        left = std::move(u);
    }
    if (at_keyword("INTERSECT") || at_keyword("EXCEPT")) {
        return fail(fmt::format("{} is not supported; UNION and UNION ALL are", text::to_upper(cur().text)));
    }
    return left;
}

parse_result<query> parser::query_term() {
    SQL_CHECK(enter());
    depth_guard g(_depth);
    if (at_symbol("(")) {
        ++_i;
        SQL_TRY(q, query_());
        SQL_CHECK(expect_symbol(")"));
        return q;
    }
    if (at_keyword("VALUES")) {
        query q;
        q.pos = cur().pos;
        ++_i;
        q.kind = query_kind::values;
        do {
            SQL_CHECK(expect_symbol("("));
            std::vector<expr> row;
            do {
                SQL_TRY(e, expression());
                row.push_back(std::move(e));
            } while (accept_symbol(","));
            SQL_CHECK(expect_symbol(")"));
            if (!q.rows.empty() && q.rows.front().size() != row.size()) {
                return fail_at(_t[_i - 1],
                               fmt::format("VALUES rows differ in length: {} then {}",
                                           q.rows.front().size(), row.size()));
            }
            q.rows.push_back(std::move(row));
        } while (accept_symbol(","));
        return q;
    }
    if (!at_keyword("SELECT")) {
        return expected("SELECT");
    }
    query q;
    q.pos = cur().pos;
    ++_i;
    select_core& s = q.select;
    if (accept_symbol("/*+")) {
        do {
            if (cur().kind != token_kind::identifier) return expected("a hint's name, such as PARALLELISM");
            query_hint h;
            h.name = cur().text;
            h.pos = cur().pos;
            h.length = cur().length;
            ++_i;
            if (accept_symbol("(")) {
                if (!at_symbol(")")) {
                    do {
                        const auto k = cur().kind;
                        if (k != token_kind::identifier && k != token_kind::integer && k != token_kind::string &&
                            k != token_kind::decimal && k != token_kind::quoted_identifier) {
                            return expected("a hint's argument");
                        }
                        // As written, so the printer gives it back: a string keeps its quotes.
                        std::string arg = cur().text;
                        if (k == token_kind::string) {
                            std::string q = "'";
                            for (char ch : arg) q += ch == '\'' ? std::string("''") : std::string(1, ch);
                            arg = q + "'";
                        }
                        h.args.push_back(std::move(arg));
                        ++_i;
                    } while (accept_symbol(","));
                }
                if (!accept_symbol(")")) return expected("')'");
            }
            s.hints.push_back(std::move(h));
        } while (accept_symbol(","));
        if (!accept_symbol("*/")) return expected("'*/' closing the hint");
    }
    if (accept_keyword("DISTINCT")) {
        s.distinct = true;
    } else {
        accept_keyword("ALL");
    }
    do {
        SQL_TRY(item, select_item_());
        s.items.push_back(std::move(item));
    } while (accept_symbol(","));
    if (accept_keyword("FROM")) {
        do {
            SQL_TRY(t, table_join());
            s.from.push_back(std::move(t));
        } while (accept_symbol(","));
    }
    if (accept_keyword("WHERE")) {
        SQL_TRY(e, expression());
        s.where = box<expr>(std::move(e));
    }
    if (accept_keyword("GROUP")) {
        SQL_CHECK(expect_keyword("BY"));
        do {
            SQL_TRY(e, expression());
            s.group_by.push_back(std::move(e));
        } while (accept_symbol(","));
    }
    if (accept_keyword("HAVING")) {
        SQL_TRY(e, expression());
        s.having = box<expr>(std::move(e));
    }
    return q;
}

parse_result<select_item> parser::select_item_() {
    select_item it;
    if (at_keyword("FROM")) {
        return expected("an expression or * in the SELECT list");
    }
    SQL_TRY(e, expression());
    it.value = std::move(e);
    if (it.value.kind == expr_kind::star) {
        return it;
    }
    SQL_TRY(alias, opt_alias());
    it.alias = std::move(alias);
    return it;
}

parse_result<std::string> parser::opt_alias() {
    if (accept_keyword("AS")) {
        if (cur().kind == token_kind::string) {
            return _t[_i++].text;
        }
        return identifier("an alias after AS");
    }
    if (at_identifier()) {
        return _t[_i++].text;
    }
    return std::string();
}

parse_result<std::vector<order_item>> parser::order_list() {
    std::vector<order_item> out;
    do {
        order_item o;
        SQL_TRY(e, expression());
        o.value = std::move(e);
        if (accept_keyword("DESC")) {
            o.descending = true;
            o.explicit_direction = true;
        } else if (accept_keyword("ASC")) {
            o.explicit_direction = true;
        }
        if (at_keyword("NULLS")) {
            ++_i;
            if (accept_keyword("FIRST")) {
                o.nulls_first = true;
            } else if (accept_keyword("LAST")) {
                o.nulls_first = false;
            } else {
                return expected("FIRST or LAST after NULLS");
            }
        }
        out.push_back(std::move(o));
    } while (accept_symbol(","));
    return out;
}

// ---- FROM ------------------------------------------------------------------------------
parse_result<table_ref> parser::table_join() {
    SQL_CHECK(enter());
    depth_guard g(_depth);
    SQL_TRY(left, table_primary());
    while (true) {
        source_pos pos = cur().pos;
        join_kind kind;
        if (at_keyword("JOIN") || (at_keyword("INNER") && peek().is_keyword("JOIN"))) {
            kind = join_kind::inner;
            _i += at_keyword("INNER") ? 2 : 1;
        } else if (at_keyword("LEFT") || at_keyword("RIGHT") || at_keyword("FULL")) {
            kind = at_keyword("LEFT")    ? join_kind::left
                   : at_keyword("RIGHT") ? join_kind::right
                                         : join_kind::full;
            ++_i;
            accept_keyword("OUTER");
            SQL_CHECK(expect_keyword("JOIN"));
        } else if (at_keyword("CROSS")) {
            ++_i;
            SQL_CHECK(expect_keyword("JOIN"));
            kind = join_kind::cross;
        } else if (at_keyword("INNER")) {
            ++_i;
            return expected("JOIN after INNER");
        } else if (at_keyword("NATURAL")) {
            return fail("NATURAL JOIN is not supported; name the columns with USING (...)");
        } else {
            return left;
        }
        SQL_CHECK(enter());
        depth_guard inner(_depth);
        SQL_TRY(right, table_primary());
        table_ref j;
        j.kind = table_ref_kind::join;
        j.pos = pos;
        j.join = kind;
        if (kind != join_kind::cross) {
            if (accept_keyword("ON")) {
                SQL_TRY(c, expression());
                j.condition = box<expr>(std::move(c));
            } else if (accept_keyword("USING")) {
                SQL_TRY(cols, identifier_list("a column name"));
                j.using_columns = std::move(cols);
            } else {
                return expected("ON or USING after the joined table");
            }
        }
        j.left = box<table_ref>(std::move(left));
        j.right = box<table_ref>(std::move(right));
        left = std::move(j);
    }
}

ok_t parser::alias_into(table_ref& t) {
    SQL_TRY(alias, opt_alias());
    t.alias = std::move(alias);
    if (!t.alias.empty() && at_symbol("(")) {
        SQL_TRY(cols, identifier_list("a column alias"));
        t.column_aliases = std::move(cols);
    }
    return true;
}

parse_result<table_ref> parser::table_primary() {
    SQL_CHECK(enter());
    depth_guard g(_depth);
    table_ref t;
    t.pos = cur().pos;
    if (at_symbol("(")) {
        if (query_follows_paren()) {
            ++_i;
            SQL_TRY(q, query_());
            SQL_CHECK(expect_symbol(")"));
            t.kind = table_ref_kind::subquery;
            t.subquery = box<query>(std::move(q));
            SQL_CHECK(alias_into(t));
            return t;
        }
        ++_i;
        SQL_TRY(inner, table_join());
        SQL_CHECK(expect_symbol(")"));
        return inner;
    }
    if (at_keyword("TABLE")) {
        ++_i;
        SQL_CHECK(expect_symbol("("));
        const token& at = cur();
        SQL_TRY(call, expression());
        if (call.kind != expr_kind::call) {
            return fail_at(at, "expected a table function such as TUMBLE(TABLE t, "
                               "DESCRIPTOR(ts), INTERVAL '1' MINUTE) inside TABLE(...)");
        }
        SQL_CHECK(expect_symbol(")"));
        t.kind = table_ref_kind::function;
        t.function = box<expr>(std::move(call));
        SQL_CHECK(alias_into(t));
        return t;
    }
    if (at_keyword("LATERAL") || at_keyword("UNNEST")) {
        return fail(fmt::format("{} is not supported", text::to_upper(cur().text)));
    }
    SQL_TRY(name, qualified("a table name, a subquery or TABLE(...)"));
    t.kind = table_ref_kind::named;
    t.names = std::move(name);
    if (at_keyword("FOR")) {
        ++_i;
        SQL_CHECK(expect_keyword("SYSTEM_TIME"));
        SQL_CHECK(expect_keyword("AS"));
        SQL_CHECK(expect_keyword("OF"));
        SQL_TRY(e, concat_level());
        t.system_time = box<expr>(std::move(e));
    }
    SQL_CHECK(alias_into(t));
    return t;
}

// ---- expressions -----------------------------------------------------------------------
parse_result<expr> parser::expression() {
    SQL_CHECK(enter());
    depth_guard g(_depth);
    return or_level();
}

expr parser::binary(std::string op, expr l, expr r, source_pos pos) {
    expr e;
    e.kind = expr_kind::binary;
    e.pos = pos;
    e.text = std::move(op);
    e.args.push_back(std::move(l));
    e.args.push_back(std::move(r));
    return e;
}

parse_result<expr> parser::or_level() {
    SQL_TRY(left, and_level());
    while (at_keyword("OR")) {
        source_pos pos = cur().pos;
        ++_i;
        SQL_TRY(right, and_level());
        left = binary("OR", std::move(left), std::move(right), pos);
    }
    return left;
}

parse_result<expr> parser::and_level() {
    SQL_TRY(left, not_level());
    while (at_keyword("AND")) {
        source_pos pos = cur().pos;
        ++_i;
        SQL_TRY(right, not_level());
        left = binary("AND", std::move(left), std::move(right), pos);
    }
    return left;
}

parse_result<expr> parser::not_level() {
    if (at_keyword("NOT")) {
        SQL_CHECK(enter());
        depth_guard g(_depth);
        expr e;
        e.kind = expr_kind::unary;
        e.pos = cur().pos;
        e.text = "NOT";
        ++_i;
        SQL_TRY(inner, not_level());
        e.args.push_back(std::move(inner));
        return e;
    }
    return compare_level();
}

parse_result<expr> parser::compare_level() {
    SQL_TRY(left, concat_level());
    while (true) {
        source_pos pos = cur().pos;
        if (is_comparison(cur())) {
            std::string op = cur().text == "!=" ? "<>" : cur().text;
            ++_i;
            SQL_TRY(right, concat_level());
            left = binary(std::move(op), std::move(left), std::move(right), pos);
            continue;
        }
        if (at_keyword("IS")) {
            ++_i;
            expr e;
            e.pos = pos;
            e.negated = accept_keyword("NOT");
            if (accept_keyword("NULL")) {
                e.kind = expr_kind::is_null;
            } else if (at_keyword("TRUE") || at_keyword("FALSE")) {
                e.kind = expr_kind::is_bool;
                e.flag = at_keyword("TRUE");
                ++_i;
            } else {
                return expected("NULL, NOT NULL, TRUE or FALSE after IS");
            }
            e.args.push_back(std::move(left));
            left = std::move(e);
            continue;
        }
        bool negated = false;
        if (at_keyword("NOT") && (peek().is_keyword("BETWEEN") || peek().is_keyword("IN") ||
                                  peek().is_keyword("LIKE"))) {
            negated = true;
            ++_i;
        }
        if (accept_keyword("BETWEEN")) {
            expr e;
            e.kind = expr_kind::between;
            e.pos = pos;
            e.negated = negated;
            accept_keyword("ASYMMETRIC");
            SQL_TRY(lo, concat_level());
            SQL_CHECK(expect_keyword("AND"));
            SQL_TRY(hi, concat_level());
            e.args.push_back(std::move(left));
            e.args.push_back(std::move(lo));
            e.args.push_back(std::move(hi));
            left = std::move(e);
            continue;
        }
        if (accept_keyword("LIKE")) {
            expr e;
            e.kind = expr_kind::like;
            e.pos = pos;
            e.negated = negated;
            SQL_TRY(pattern, concat_level());
            e.args.push_back(std::move(left));
            e.args.push_back(std::move(pattern));
            if (accept_keyword("ESCAPE")) {
                SQL_TRY(esc, concat_level());
                e.args.push_back(std::move(esc));
            }
            left = std::move(e);
            continue;
        }
        if (accept_keyword("IN")) {
            expr e;
            e.pos = pos;
            e.negated = negated;
            SQL_CHECK(expect_symbol("("));
            e.args.push_back(std::move(left));
            if (at_query_start()) {
                e.kind = expr_kind::in_query;
                SQL_TRY(q, query_());
                e.subquery = box<query>(std::move(q));
            } else {
                e.kind = expr_kind::in_list;
                do {
                    SQL_TRY(item, expression());
                    e.args.push_back(std::move(item));
                } while (accept_symbol(","));
            }
            SQL_CHECK(expect_symbol(")"));
            left = std::move(e);
            continue;
        }
        return left;
    }
}

parse_result<expr> parser::concat_level() {
    SQL_TRY(left, add_level());
    while (at_symbol("||")) {
        source_pos pos = cur().pos;
        ++_i;
        SQL_TRY(right, add_level());
        left = binary("||", std::move(left), std::move(right), pos);
    }
    return left;
}

parse_result<expr> parser::add_level() {
    SQL_TRY(left, mul_level());
    while (at_symbol("+") || at_symbol("-")) {
        source_pos pos = cur().pos;
        std::string op = _t[_i++].text;
        SQL_TRY(right, mul_level());
        left = binary(std::move(op), std::move(left), std::move(right), pos);
    }
    return left;
}

parse_result<expr> parser::mul_level() {
    SQL_TRY(left, unary_level());
    while (at_symbol("*") || at_symbol("/") || at_symbol("%")) {
        source_pos pos = cur().pos;
        std::string op = _t[_i++].text;
        SQL_TRY(right, unary_level());
        left = binary(std::move(op), std::move(left), std::move(right), pos);
    }
    return left;
}

parse_result<expr> parser::unary_level() {
    if (at_symbol("-") || at_symbol("+")) {
        SQL_CHECK(enter());
        depth_guard g(_depth);
        expr e;
        e.kind = expr_kind::unary;
        e.pos = cur().pos;
        e.text = _t[_i++].text;
        SQL_TRY(inner, unary_level());
        e.args.push_back(std::move(inner));
        return e;
    }
    return primary();
}

parse_result<expr> parser::paren_query(expr_kind kind, source_pos pos) {
    expr e;
    e.kind = kind;
    e.pos = pos;
    SQL_CHECK(expect_symbol("("));
    if (!at_query_start()) {
        return expected("a query (SELECT ...)");
    }
    SQL_TRY(q, query_());
    e.subquery = box<query>(std::move(q));
    SQL_CHECK(expect_symbol(")"));
    return e;
}

bool parser::niladic(std::string_view upper_name) {
    return upper_name == "CURRENT_TIMESTAMP" || upper_name == "CURRENT_DATE" ||
           upper_name == "CURRENT_TIME" || upper_name == "LOCALTIMESTAMP" ||
           upper_name == "LOCALTIME";
}

parse_result<expr> parser::primary() {
    SQL_CHECK(enter());
    depth_guard g(_depth);
    const token& t = cur();
    expr e;
    e.pos = t.pos;
    switch (t.kind) {
    case token_kind::integer:
    case token_kind::decimal:
        e.kind = expr_kind::literal;
        e.literal = t.kind == token_kind::integer ? literal_kind::integer : literal_kind::decimal;
        e.text = t.text;
        ++_i;
        return e;
    case token_kind::string:
        e.kind = expr_kind::literal;
        e.literal = literal_kind::string;
        e.text = t.text;
        ++_i;
        return e;
    case token_kind::end:
        return expected("an expression");
    case token_kind::symbol:
        if (t.text == "(") {
            if (query_follows_paren()) {
                return paren_query(expr_kind::scalar_query, t.pos);
            }
            ++_i;
            SQL_TRY(inner, expression());
            if (at_symbol(",")) {
                return fail("row values such as (a, b) are not supported here");
            }
            SQL_CHECK(expect_symbol(")"));
            return inner;
        }
        if (t.text == "*") {
            ++_i;
            e.kind = expr_kind::star;
            return e;
        }
        return expected("an expression");
    case token_kind::quoted_identifier:
        return name_or_call();
    case token_kind::identifier:
        break;
    }
    std::string w = text::to_upper(t.text);
    if (w == "NULL" || w == "TRUE" || w == "FALSE") {
        ++_i;
        e.kind = expr_kind::literal;
        e.literal = w == "NULL" ? literal_kind::null : literal_kind::boolean;
        e.text = w == "NULL" ? "" : w;
        return e;
    }
    if ((w == "DATE" || w == "TIME" || w == "TIMESTAMP") &&
        peek().kind == token_kind::string) {
        ++_i;
        e.kind = expr_kind::literal;
        e.literal = w == "DATE"   ? literal_kind::date
                    : w == "TIME" ? literal_kind::time
                                  : literal_kind::timestamp;
        e.text = _t[_i++].text;
        return e;
    }
    if (w == "INTERVAL") {
        ++_i;
        return interval(e);
    }
    if (w == "CASE") {
        ++_i;
        return case_(e);
    }
    if ((w == "CAST" || w == "TRY_CAST") && peek().is_symbol("(")) {
        _i += 2;
        e.kind = expr_kind::cast;
        e.flag = w == "TRY_CAST";
        SQL_TRY(v, expression());
        e.args.push_back(std::move(v));
        SQL_CHECK(expect_keyword("AS"));
        SQL_TRY(ty, type());
        e.type = std::move(ty);
        SQL_CHECK(expect_symbol(")"));
        return e;
    }
    if (w == "EXTRACT" && peek().is_symbol("(")) {
        _i += 2;
        e.kind = expr_kind::extract;
        auto unit = unit_from_word(cur());
        if (!unit) {
            return expected("a time unit such as YEAR, DAY, HOUR or SECOND");
        }
        ++_i;
        e.unit = *unit;
        SQL_CHECK(expect_keyword("FROM"));
        SQL_TRY(v, expression());
        e.args.push_back(std::move(v));
        SQL_CHECK(expect_symbol(")"));
        return e;
    }
    if (w == "EXISTS") {
        ++_i;
        return paren_query(expr_kind::exists, t.pos);
    }
    if (w == "DESCRIPTOR" && peek().is_symbol("(")) {
        ++_i;
        e.kind = expr_kind::descriptor;
        SQL_TRY(cols, identifier_list("a column name"));
        e.names = std::move(cols);
        return e;
    }
    if ((w == "FLOOR" || w == "CEIL" || w == "CEILING" || w == "POSITION" ||
         w == "SUBSTRING" || w == "TRIM") &&
        peek().is_symbol("(")) {
        return keyword_form(w);
    }
    if ((w == "LEFT" || w == "RIGHT" || w == "INSERT") && peek().is_symbol("(")) {
        return name_or_call(); // the string functions of these names
    }
    if (is_reserved(w)) {
        return expected("an expression");
    }
    return name_or_call();
}

/// FLOOR/CEIL(x TO unit), POSITION(a IN b), SUBSTRING(s FROM i [FOR n]) and
/// TRIM([BOTH | LEADING | TRAILING] [chars] FROM s); the plain call forms of the same
/// functions go on to `call_rest`.
parse_result<expr> parser::keyword_form(const std::string& w) {
    expr e;
    e.kind = expr_kind::call;
    e.pos = cur().pos;
    e.names.push_back(cur().text);
    _i += 2;
    if (w == "TRIM") {
        std::string mode;
        for (const char* m : {"BOTH", "LEADING", "TRAILING"}) {
            if (at_keyword(m)) {
                mode = m;
                ++_i;
                break;
            }
        }
        if (mode.empty() && !at_keyword("FROM")) {
            SQL_TRY(first, expression());
            if (!at_keyword("FROM")) {
                e.args.push_back(std::move(first));
                if (accept_symbol(",")) {
                    do {
                        SQL_TRY(more, call_argument());
                        e.args.push_back(std::move(more));
                    } while (accept_symbol(","));
                }
                if (!accept_symbol(")")) {
                    return expected("FROM, ',' or ')' in TRIM(...)");
                }
                e.kind = expr_kind::call;
                return e;
            }
            e.args.push_back(std::move(first));
        } else if (!at_keyword("FROM")) {
            SQL_TRY(chars, expression());
            e.args.push_back(std::move(chars));
        }
        SQL_CHECK(expect_keyword("FROM"));
        SQL_TRY(source, expression());
        e.args.push_back(std::move(source));
        e.text = mode.empty() ? "BOTH" : mode;
        SQL_CHECK(expect_symbol(")"));
        return e;
    }
    if (w == "POSITION") {
        SQL_TRY(needle, concat_level());
        e.args.push_back(std::move(needle));
        if (accept_keyword("IN")) {
            SQL_TRY(hay, expression());
            e.args.push_back(std::move(hay));
            e.text = "IN";
            SQL_CHECK(expect_symbol(")"));
            return e;
        }
    } else {
        SQL_TRY(first, expression());
        e.args.push_back(std::move(first));
        if (w != "SUBSTRING" && accept_keyword("TO")) {
            auto unit = unit_from_word(cur());
            if (!unit) {
                return expected("a time unit such as MINUTE, HOUR or DAY after TO");
            }
            ++_i;
            e.unit = *unit;
            e.text = "TO";
            SQL_CHECK(expect_symbol(")"));
            return e;
        }
        if (w == "SUBSTRING" && accept_keyword("FROM")) {
            SQL_TRY(from, expression());
            e.args.push_back(std::move(from));
            if (accept_keyword("FOR")) {
                SQL_TRY(len, expression());
                e.args.push_back(std::move(len));
            }
            e.text = "FROM";
            SQL_CHECK(expect_symbol(")"));
            return e;
        }
    }
    while (accept_symbol(",")) {
        SQL_TRY(more, call_argument());
        e.args.push_back(std::move(more));
    }
    if (!accept_symbol(")")) {
        return expected("',' or ')' after the arguments of " + e.names.back());
    }
    return e;
}

parse_result<expr> parser::interval(expr e) {
    e.kind = expr_kind::interval;
    bool negative = false;
    if (at_symbol("-") || at_symbol("+")) {
        negative = at_symbol("-");
        ++_i;
    }
    if (cur().kind == token_kind::string || cur().kind == token_kind::integer) {
        e.text = _t[_i++].text;
    } else {
        return expected("a quoted amount such as INTERVAL '10' SECOND");
    }
    if (negative) {
        e.text = e.text.starts_with("-") ? e.text.substr(1) : "-" + e.text;
    }
    auto unit = unit_from_word(cur());
    if (!unit) {
        return expected("a time unit (YEAR, MONTH, DAY, HOUR, MINUTE, SECOND) after "
                        "INTERVAL '" + e.text + "'");
    }
    ++_i;
    e.unit = *unit;
    if (accept_symbol("(")) {
        SQL_CHECK(small_integer("the interval precision", 0, 9));
        SQL_CHECK(expect_symbol(")"));
    }
    if (accept_keyword("TO")) {
        auto to = unit_from_word(cur());
        if (!to) {
            return expected("a time unit after TO");
        }
        ++_i;
        e.unit_to = *to;
        if (accept_symbol("(")) {
            SQL_CHECK(small_integer("the interval precision", 0, 9));
            SQL_CHECK(expect_symbol(")"));
        }
    }
    return e;
}

parse_result<expr> parser::case_(expr e) {
    e.kind = expr_kind::case_when;
    if (!at_keyword("WHEN")) {
        e.flag = true;
        SQL_TRY(operand, expression());
        e.args.push_back(std::move(operand));
    }
    if (!at_keyword("WHEN")) {
        return expected("WHEN in CASE");
    }
    while (accept_keyword("WHEN")) {
        SQL_TRY(cond, expression());
        SQL_CHECK(expect_keyword("THEN"));
        SQL_TRY(value, expression());
        e.args.push_back(std::move(cond));
        e.args.push_back(std::move(value));
    }
    if (accept_keyword("ELSE")) {
        SQL_TRY(otherwise, expression());
        e.args.push_back(std::move(otherwise));
        e.has_else = true;
    }
    if (!accept_keyword("END")) {
        return expected("WHEN, ELSE or END in CASE");
    }
    return e;
}

parse_result<expr> parser::name_or_call() {
    expr e;
    e.pos = cur().pos;
    bool quoted = cur().kind == token_kind::quoted_identifier;
    e.names.push_back(_t[_i++].text);
    while (at_symbol(".")) {
        ++_i;
        if (at_symbol("*")) {
            ++_i;
            e.kind = expr_kind::star;
            return e;
        }
        if (cur().kind != token_kind::identifier && cur().kind != token_kind::quoted_identifier) {
            return expected("a name or * after '.'");
        }
        e.names.push_back(_t[_i++].text);
    }
    if (at_symbol("(")) {
        ++_i;
        return call_rest(std::move(e));
    }
    if (!quoted && e.names.size() == 1 && niladic(text::to_upper(e.names[0]))) {
        e.kind = expr_kind::call;
        e.names[0] = text::to_upper(e.names[0]);
        e.flag = true;
        return e;
    }
    e.kind = expr_kind::column;
    return e;
}

/// After `name(`: arguments, `)`, then FILTER (WHERE ...) and OVER (...).
parse_result<expr> parser::call_rest(expr e) {
    e.kind = expr_kind::call;
    if (!at_symbol(")")) {
        if (accept_keyword("DISTINCT")) {
            e.distinct = true;
        } else {
            accept_keyword("ALL");
        }
        do {
            SQL_TRY(arg, call_argument());
            e.args.push_back(std::move(arg));
        } while (accept_symbol(","));
    }
    if (!accept_symbol(")")) {
        return expected("',' or ')' after the arguments of " + e.names.back());
    }
    if (at_keyword("FILTER")) {
        ++_i;
        SQL_CHECK(expect_symbol("("));
        SQL_CHECK(expect_keyword("WHERE"));
        SQL_TRY(f, expression());
        e.filter = box<expr>(std::move(f));
        SQL_CHECK(expect_symbol(")"));
    }
    if (at_keyword("OVER")) {
        ++_i;
        SQL_TRY(w, window());
        e.over = box<window_spec>(std::move(w));
    }
    return e;
}

parse_result<expr> parser::call_argument() {
    if (at_keyword("TABLE")) {
        expr e;
        e.kind = expr_kind::table_arg;
        e.pos = cur().pos;
        ++_i;
        SQL_TRY(name, qualified("a table name after TABLE"));
        e.names = std::move(name);
        if (at_keyword("PARTITION")) {
            ++_i;
            SQL_CHECK(expect_keyword("BY"));
            do {
                SQL_TRY(k, concat_level());
                e.args.push_back(std::move(k));
            } while (at_symbol(",") && !starts_next_argument());
        }
        return e;
    }
    if ((cur().kind == token_kind::identifier || cur().kind == token_kind::quoted_identifier) &&
        peek().is_symbol("=>")) {
        expr e;
        e.kind = expr_kind::named_arg;
        e.pos = cur().pos;
        e.names.push_back(_t[_i].text);
        _i += 2;
        SQL_TRY(v, call_argument());
        e.args.push_back(std::move(v));
        return e;
    }
    return expression();
}

/// In `TABLE t PARTITION BY a, b, DESCRIPTOR(ts), ...` a ',' continues the key list
/// unless what follows is the next argument of the window function.
bool parser::starts_next_argument() {
    const token& n = peek();
    if (n.is_keyword("DESCRIPTOR") || n.is_keyword("INTERVAL") || n.is_keyword("TABLE")) {
        return true;
    }
    if (peek(2).is_symbol("=>")) {
        return true;
    }
    ++_i; // consume ',' and continue with the next key
    return false;
}

parse_result<window_spec> parser::window() {
    window_spec w;
    SQL_CHECK(expect_symbol("("));
    if (accept_keyword("PARTITION")) {
        SQL_CHECK(expect_keyword("BY"));
        do {
            SQL_TRY(e, expression());
            w.partition_by.push_back(std::move(e));
        } while (accept_symbol(","));
    }
    if (accept_keyword("ORDER")) {
        SQL_CHECK(expect_keyword("BY"));
        SQL_TRY(items, order_list());
        w.order_by = std::move(items);
    }
    if (at_keyword("ROWS") || at_keyword("RANGE")) {
        w.has_frame = true;
        w.rows = at_keyword("ROWS");
        ++_i;
        if (accept_keyword("BETWEEN")) {
            SQL_TRY(s, frame_bound_());
            SQL_CHECK(expect_keyword("AND"));
            SQL_TRY(e, frame_bound_());
            w.start = std::move(s);
            w.end = std::move(e);
        } else {
            SQL_TRY(s, frame_bound_());
            w.start = std::move(s);
            w.end.kind = frame_bound_kind::current_row;
        }
    }
    if (!accept_symbol(")")) {
        return expected("PARTITION BY, ORDER BY, ROWS, RANGE or ')' in OVER (...)");
    }
    return w;
}

parse_result<frame_bound> parser::frame_bound_() {
    frame_bound b;
    if (accept_keyword("UNBOUNDED")) {
        if (accept_keyword("PRECEDING")) {
            b.kind = frame_bound_kind::unbounded_preceding;
        } else if (accept_keyword("FOLLOWING")) {
            b.kind = frame_bound_kind::unbounded_following;
        } else {
            return expected("PRECEDING or FOLLOWING after UNBOUNDED");
        }
        return b;
    }
    if (at_keyword("CURRENT")) {
        ++_i;
        SQL_CHECK(expect_keyword("ROW"));
        b.kind = frame_bound_kind::current_row;
        return b;
    }
    SQL_TRY(off, concat_level());
    b.offset = box<expr>(std::move(off));
    if (accept_keyword("PRECEDING")) {
        b.kind = frame_bound_kind::preceding;
    } else if (accept_keyword("FOLLOWING")) {
        b.kind = frame_bound_kind::following;
    } else {
        return expected("PRECEDING or FOLLOWING");
    }
    return b;
}

} // namespace detail

namespace {

using detail::parser;


template <typename F>
auto run(std::string_view sql, parse_limits limits, F&& f) -> decltype(f(std::declval<parser&>())) {
    auto tokens = tokenize(sql);
    if (!tokens.has_value()) {
        return std::move(tokens).error();
    }
    if (tokens.value().size() > limits.max_tokens) {
        error e;
        e.code = errc::too_complex;
        e.message = fmt::format("more than {} tokens", limits.max_tokens);
        return e;
    }
    parser p(std::move(tokens).value(), limits);
    return f(p);
}

} // namespace

parse_result<std::vector<statement>> parse_script(std::string_view sql, parse_limits limits) {
    return run(sql, limits, [](parser& p) { return p.script(); });
}

parse_result<statement> parse_statement(std::string_view sql, parse_limits limits) {
    return run(sql, limits, [](parser& p) { return p.single(); });
}

parse_result<expr> parse_expression(std::string_view sql, parse_limits limits) {
    return run(sql, limits, [](parser& p) { return p.whole_expression(); });
}

parse_result<data_type> parse_type(std::string_view sql) {
    return run(sql, parse_limits{}, [](parser& p) { return p.whole_type(); });
}

std::string keep_statements(std::string_view text, const std::vector<statement>& script, const std::vector<bool>& keep,
                            std::size_t upto) {
    const auto start = [&](std::size_t i) {
        return i < script.size() ? std::min<std::size_t>(script[i].pos.offset, text.size()) : text.size();
    };
    std::string out(text.substr(0, start(upto + 1)));
    for (std::size_t i = 0; i <= upto && i < script.size(); ++i) {
        if (i < keep.size() && keep[i]) {
            continue;
        }
        for (std::size_t b = i == 0 ? 0 : start(i); b < start(i + 1) && b < out.size(); ++b) {
            if (out[b] != '\n') {
                out[b] = ' ';
            }
        }
    }
    return out;
}

} // namespace runnel::sql
