#include "sql/binder_internal.h"

#include "base/text.h"
#include "sql/functions.h"
#include "sql/parser.h"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>

namespace runnel::sql {

namespace {

using namespace bind_detail;

bool is_ranking(std::string_view u) {
    return u == "ROW_NUMBER" || u == "RANK" || u == "DENSE_RANK" || u == "PERCENT_RANK" ||
           u == "CUME_DIST" || u == "NTILE" || u == "LAG" || u == "LEAD";
}

bool is_group_window(std::string_view u) { return u == "TUMBLE" || u == "HOP" || u == "SESSION"; }

} // namespace

// ---- expressions -------------------------------------------------------------------------

parse_result<data_type> binder::column(const expr& e, const scope& s) {
    // Calcite's order for a.b.c: a table alias first (a.b is a column, c a field), then a
    // column (a is a column, b.c fields of its ROW).
    std::size_t col_at = e.names.size() - 1;
    if (e.names.size() >= 2) {
        bool alias = false;
        bool column = false;
        for (const scope* cur = &s; cur && !alias && !column; cur = cur->outer) {
            for (const auto& rel : cur->relations) {
                alias = alias || rel.qualifier == e.names[0];
                for (const auto& c : rel.columns) {
                    column = column || c.name == e.names[0];
                }
            }
        }
        if (alias) {
            col_at = 1;
        } else if (column) {
            col_at = 0;
        }
    }
    expr head = e;
    head.names.assign(e.names.begin() + (col_at > 0 ? col_at - 1 : 0), e.names.begin() + col_at + 1);
    auto t = column_of(head, s);
    if (!t) {
        return t;
    }
    data_type cur_type = std::move(t).value();
    std::string path = quote_identifier(e.names[col_at]);
    for (std::size_t i = col_at + 1; i < e.names.size(); ++i) {
        const std::string& f = e.names[i];
        if (cur_type.kind != type_kind::row) {
            return at(e, fmt::format("{} is {}, not a ROW: it has no field {}", path,
                                     to_string(cur_type), quote_identifier(f)));
        }
        auto k = find_field(cur_type, f);
        if (!k) {
            std::string hint = runnel::text::closest_name(f, cur_type.field_names);
            std::string list;
            for (const auto& n : cur_type.field_names) {
                list += (list.empty() ? "" : ", ") + quote_identifier(n);
            }
            return at(e, hint.empty()
                             ? fmt::format("ROW {} has no field {}; its fields: {}", path,
                                           quote_identifier(f), list)
                             : fmt::format("ROW {} has no field {}; did you mean {}?", path,
                                           quote_identifier(f),
                                           quote_identifier(hint)));
        }
        bool nullable = cur_type.nullable;
        data_type next = cur_type.children[*k];
        next.nullable = next.nullable || nullable;
        cur_type = std::move(next);
        path += "." + quote_identifier(f);
    }
    return cur_type;
}

parse_result<data_type> binder::column_of(const expr& e, const scope& s) {
    const std::string& name = e.names.back();
    const std::string* qualifier = e.names.size() > 1 ? &e.names[e.names.size() - 2] : nullptr;
    bool qualifier_seen = false;
    for (const scope* cur = &s; cur; cur = cur->outer) {
        const bound_column* found = nullptr;
        const bound_column* second = nullptr;
        for (const auto& rel : cur->relations) {
            if (qualifier && rel.qualifier != *qualifier) {
                continue;
            }
            qualifier_seen = true;
            for (const auto& c : rel.columns) {
                if (c.name == name) {
                    if (found) {
                        second = &c;
                    } else {
                        found = &c;
                    }
                }
            }
        }
        if (found && second) {
            return at(e, fmt::format("column {} is ambiguous: {} and {} both have it; qualify it",
                                     quote_identifier(name),
                                     found->qualifier.empty() ? "a subquery" : quote_identifier(found->qualifier),
                                     second->qualifier.empty() ? "a subquery" : quote_identifier(second->qualifier)));
        }
        if (found) {
            return found->type;
        }
    }
    if (qualifier && !qualifier_seen) {
        return at(e, fmt::format("no table or alias {} in FROM (for {}.{})",
                                 quote_identifier(*qualifier), quote_identifier(*qualifier),
                                 quote_identifier(name)));
    }
    // Suggest a column that differs only in case, else list a few that exist.
    std::vector<std::string> names;
    std::string hint;
    for (const scope* cur = &s; cur; cur = cur->outer) {
        for (const auto& rel : cur->relations) {
            if (qualifier && rel.qualifier != *qualifier) {
                continue;
            }
            for (const auto& c : rel.columns) {
                if (text::iequals(c.name, name) && hint.empty()) {
                    hint = c.name;
                }
                if (names.size() < 8 &&
                    std::find(names.begin(), names.end(), c.name) == names.end()) {
                    names.push_back(c.name);
                }
            }
        }
    }
    std::string where = qualifier ? " in " + quote_identifier(*qualifier) : std::string();
    if (!hint.empty()) {
        return at(e, fmt::format("column {} does not exist{}; did you mean {}? (names are "
                                 "case-sensitive)",
                                 quote_identifier(name), where, quote_identifier(hint)));
    }
    if (names.empty()) {
        return at(e, fmt::format("column {} does not exist: the query reads no table",
                                 quote_identifier(name)));
    }
    std::string list;
    for (const auto& n : names) {
        list += (list.empty() ? "" : ", ") + quote_identifier(n);
    }
    return at(e, fmt::format("column {} does not exist{}; known columns: {}",
                             quote_identifier(name), where, list));
}

parse_result<data_type> binder::expr_(const expr& e, const scope& s, expr_context& ctx) {
    if (++_depth > max_bind_depth) {
        --_depth;
        error err = at(e, "expression nested too deeply");
        err.code = errc::too_complex;
        return err;
    }
    struct leave {
        int& d;
        ~leave() { --d; }
    } guard{_depth};
    auto sub = [&](const expr& a) { return expr_(a, s, ctx); };
    switch (e.kind) {
    case expr_kind::literal:
        switch (e.literal) {
        case literal_kind::null:
            return data_type{};
        case literal_kind::boolean:
            return make(type_kind::boolean, false);
        case literal_kind::integer: {
            int64_t v = 0;
            auto [p, ec] = std::from_chars(e.text.data(), e.text.data() + e.text.size(), v);
            if (ec != std::errc()) {
                data_type d = make(type_kind::decimal, false, std::min<int32_t>(38, static_cast<int32_t>(e.text.size())));
                d.scale = 0;
                return d;
            }
            return make(v > INT32_MAX ? type_kind::bigint : type_kind::int_, false);
        }
        case literal_kind::decimal: {
            if (e.text.find_first_of("eE") != std::string::npos) {
                return make(type_kind::double_, false);
            }
            auto dot = e.text.find('.');
            int32_t digits = 0;
            for (char c : e.text) {
                digits += std::isdigit(static_cast<unsigned char>(c)) ? 1 : 0;
            }
            data_type d = make(type_kind::decimal, false, std::clamp(digits, 1, 38));
            d.scale = static_cast<int32_t>(dot == std::string::npos ? 0 : e.text.size() - dot - 1);
            d.scale = std::min(*d.scale, *d.precision);
            return d;
        }
        case literal_kind::string:
            return make(type_kind::string, false);
        case literal_kind::date:
            return make(type_kind::date, false);
        case literal_kind::time:
            return make(type_kind::time, false);
        case literal_kind::timestamp:
            return make(type_kind::timestamp, false, 3);
        }
        return data_type{};
    case expr_kind::interval:
        return make(e.unit == time_unit::year || e.unit == time_unit::month || e.unit == time_unit::quarter
                      ? type_kind::interval_year_month
                      : type_kind::interval_day_time,
                    false);
    case expr_kind::column:
        return column(e, s);
    case expr_kind::star:
        return at(e.pos, 1, "* stands for columns only in the SELECT list and in COUNT(*)");
    case expr_kind::unary: {
        auto a = sub(e.args[0]);
        if (!a) {
            return a;
        }
        const data_type& t = a.value();
        if (e.text == "NOT") {
            if (!is_boolean(t)) {
                return at(e.pos, 3, fmt::format("NOT needs a BOOLEAN, not {}", describe(e.args[0], t)));
            }
            return t;
        }
        if (!unknown(t) && !is_numeric(t.kind) && !is_interval(t.kind)) {
            return at(e.pos, 1, fmt::format("unary {} needs a number, not {}", e.text, describe(e.args[0], t)));
        }
        return t;
    }
    case expr_kind::binary: {
        auto l = sub(e.args[0]);
        if (!l) {
            return l;
        }
        auto r = sub(e.args[1]);
        if (!r) {
            return r;
        }
        const data_type& a = l.value();
        const data_type& b = r.value();
        const std::string& op = e.text;
        uint32_t len = static_cast<uint32_t>(op.size());
        auto mismatch = [&](const char* what, const char* joiner) {
            return at(e.pos, len, fmt::format("{} {} {} {} {}", op, what, describe(e.args[0], a),
                                              joiner, describe(e.args[1], b)));
        };
        if (op == "AND" || op == "OR") {
            if (!is_boolean(a)) {
                return at(e.args[0], fmt::format("{} needs BOOLEAN operands, not {}", op, describe(e.args[0], a)));
            }
            if (!is_boolean(b)) {
                return at(e.args[1], fmt::format("{} needs BOOLEAN operands, not {}", op, describe(e.args[1], b)));
            }
            return make(type_kind::boolean, a.nullable || b.nullable);
        }
        if (op == "=" || op == "<>" || op == "<" || op == "<=" || op == ">" || op == ">=") {
            if (!comparable(a, b)) {
                return mismatch("cannot compare", "with");
            }
            return make(type_kind::boolean, a.nullable || b.nullable);
        }
        if (op == "||") {
            if ((!unknown(a) && !is_character(a.kind)) || (!unknown(b) && !is_character(b.kind))) {
                return mismatch("joins text; it cannot join", "and");
            }
            return make(type_kind::string, a.nullable || b.nullable);
        }
        if (unknown(a) || unknown(b)) {
            return unknown(a) ? b : a;
        }
        if (is_numeric(a.kind) && is_numeric(b.kind)) {
            auto ct = common_type(a, b);
            if (op == "%" && (!is_integer(a.kind) || !is_integer(b.kind))) {
                return mismatch("needs integers; it cannot take", "and");
            }
            return *ct;
        }
        if ((op == "+" || op == "-") && is_temporal(a.kind) && is_interval(b.kind)) {
            return a;
        }
        if (op == "+" && is_interval(a.kind) && is_temporal(b.kind)) {
            return b;
        }
        if ((op == "+" || op == "-") && is_interval(a.kind) && a.kind == b.kind) {
            return a;
        }
        if ((op == "*" || op == "/") && is_interval(a.kind) && is_numeric(b.kind)) {
            return a;
        }
        if (op == "*" && is_numeric(a.kind) && is_interval(b.kind)) {
            return b;
        }
        return mismatch("cannot combine", "and");
    }
    case expr_kind::call:
        return call(e, s, ctx);
    case expr_kind::cast: {
        auto a = sub(e.args[0]);
        if (!a) {
            return a;
        }
        const data_type& from = a.value();
        const data_type& to = e.type;
        bool ok = unknown(from) || is_character(from.kind) || is_character(to.kind) ||
                  (is_numeric(from.kind) && (is_numeric(to.kind) || to.kind == type_kind::boolean)) ||
                  (from.kind == type_kind::boolean && (is_numeric(to.kind) || to.kind == type_kind::boolean)) ||
                  (is_temporal(from.kind) && is_temporal(to.kind)) ||
                  (is_integer(from.kind) && is_time(to)) || (is_time(from) && is_integer(to.kind)) ||
                  from.kind == to.kind;
        if (!ok) {
            return at(e.pos, 4, fmt::format("cannot cast {} to {}", describe(e.args[0], from), to_string(to)));
        }
        data_type out = to;
        out.nullable = e.flag || from.nullable || to.nullable;
        return out;
    }
    case expr_kind::case_when: {
        std::size_t i = 0;
        data_type operand;
        if (e.flag) {
            auto o = sub(e.args[0]);
            if (!o) {
                return o;
            }
            operand = o.value();
            i = 1;
        }
        std::size_t pairs_end = e.args.size() - (e.has_else ? 1 : 0);
        std::optional<data_type> result;
        bool any_nullable = !e.has_else;
        auto merge = [&](const expr& v) -> parse_result<bool> {
            auto t = sub(v);
            if (!t) {
                return t.error();
            }
            any_nullable = any_nullable || t.value().nullable;
            if (!result || unknown(*result)) {
                result = t.value();
                return true;
            }
            auto ct = common_type(*result, t.value());
            if (!ct) {
                data_type shown = *result;
                shown.nullable = true;
                return at(v, fmt::format("CASE results mix {} and {}", to_string(shown),
                                         describe(v, t.value())));
            }
            result = *ct;
            return true;
        };
        for (; i + 2 <= pairs_end; i += 2) {
            auto c = sub(e.args[i]);
            if (!c) {
                return c;
            }
            if (e.flag ? !comparable(operand, c.value()) : !is_boolean(c.value())) {
                if (e.flag) {
                    return at(e.args[i], fmt::format("CASE compares {} with {}", to_string(operand),
                                                     describe(e.args[i], c.value())));
                }
                return at(e.args[i], fmt::format("WHEN needs a BOOLEAN condition, not {}",
                                                 describe(e.args[i], c.value())));
            }
            auto m = merge(e.args[i + 1]);
            if (!m) {
                return m.error();
            }
        }
        if (e.has_else) {
            auto m = merge(e.args.back());
            if (!m) {
                return m.error();
            }
        }
        data_type out = result.value_or(data_type{});
        out.nullable = any_nullable;
        return out;
    }
    case expr_kind::between: {
        data_type types[3];
        for (int k = 0; k < 3; ++k) {
            auto t = sub(e.args[static_cast<std::size_t>(k)]);
            if (!t) {
                return t;
            }
            types[k] = t.value();
        }
        for (int k = 1; k < 3; ++k) {
            if (!comparable(types[0], types[k])) {
                return at(e.args[static_cast<std::size_t>(k)],
                          fmt::format("BETWEEN compares {} with {}", describe(e.args[0], types[0]),
                                      describe(e.args[static_cast<std::size_t>(k)], types[k])));
            }
        }
        return make(type_kind::boolean);
    }
    case expr_kind::in_list: {
        auto v = sub(e.args[0]);
        if (!v) {
            return v;
        }
        for (std::size_t k = 1; k < e.args.size(); ++k) {
            auto t = sub(e.args[k]);
            if (!t) {
                return t;
            }
            if (!comparable(v.value(), t.value())) {
                return at(e.args[k], fmt::format("IN compares {} with {}", describe(e.args[0], v.value()),
                                                 describe(e.args[k], t.value())));
            }
        }
        return make(type_kind::boolean);
    }
    case expr_kind::in_query:
    case expr_kind::scalar_query:
    case expr_kind::exists: {
        data_type left;
        if (e.kind == expr_kind::in_query) {
            auto v = sub(e.args[0]);
            if (!v) {
                return v;
            }
            left = v.value();
        }
        auto r = query_(*e.subquery, &s);
        if (!r) {
            return r.error();
        }
        if (e.kind == expr_kind::exists) {
            return make(type_kind::boolean, false);
        }
        if (r.value().columns.size() != 1) {
            return at(e.pos, 1, fmt::format("a subquery used as a value must return one column, "
                                            "not {}",
                                            r.value().columns.size()));
        }
        const data_type& t = r.value().columns[0].type;
        if (e.kind == expr_kind::in_query) {
            if (!comparable(left, t)) {
                return at(e.args[0], fmt::format("IN compares {} with a subquery of {}",
                                                 describe(e.args[0], left), to_string(t)));
            }
            return make(type_kind::boolean);
        }
        return nullable(t);
    }
    case expr_kind::like: {
        for (const expr& a : e.args) {
            auto t = sub(a);
            if (!t) {
                return t;
            }
            if (!unknown(t.value()) && !is_character(t.value().kind)) {
                return at(a, fmt::format("LIKE matches text, not {}", describe(a, t.value())));
            }
        }
        return make(type_kind::boolean);
    }
    case expr_kind::is_null: {
        auto t = sub(e.args[0]);
        if (!t) {
            return t;
        }
        return make(type_kind::boolean, false);
    }
    case expr_kind::is_bool: {
        auto t = sub(e.args[0]);
        if (!t) {
            return t;
        }
        if (!is_boolean(t.value())) {
            return at(e.args[0], fmt::format("IS TRUE/FALSE needs a BOOLEAN, not {}", describe(e.args[0], t.value())));
        }
        return make(type_kind::boolean, false);
    }
    case expr_kind::extract: {
        auto t = sub(e.args[0]);
        if (!t) {
            return t;
        }
        if (!unknown(t.value()) && !is_temporal(t.value().kind) && !is_interval(t.value().kind)) {
            return at(e.args[0], fmt::format("EXTRACT needs a date or time, not {}", describe(e.args[0], t.value())));
        }
        return make(type_kind::bigint, t.value().nullable);
    }
    case expr_kind::descriptor:
    case expr_kind::table_arg:
    case expr_kind::named_arg:
        return at(e.pos, 1, "DESCRIPTOR, TABLE and named arguments belong inside TABLE(TUMBLE(...)), "
                            "TABLE(HOP(...)), TABLE(CUMULATE(...)) or TABLE(SESSION(...))");
    }
    return data_type{};
}

parse_result<data_type> binder::call(const expr& e, const scope& s, expr_context& ctx) {
    std::string u = e.names.empty() ? std::string() : text::to_upper(e.names.back());
    const std::string& shown = e.names.empty() ? u : e.names.back();
    std::size_t n = e.args.size();
    if (!e.text.empty()) {
        // The keyword forms: FLOOR/CEIL(x TO unit), POSITION(a IN b), SUBSTRING(s FROM i
        // [FOR n]), TRIM(mode [chars] FROM s).
        std::vector<data_type> types;
        bool any_nullable = false;
        for (std::size_t k = 0; k < n; ++k) {
            auto t = expr_(e.args[k], s, ctx);
            if (!t) {
                return t;
            }
            char kind = e.text == "TO" ? 't' : (e.text == "FROM" && k > 0) ? 'i' : 's';
            if (!fits_kind(kind, t.value())) {
                return at(e.args[k], fmt::format("argument {} of {} must be {}, not {}", k + 1,
                                                 shown, kind_name(kind),
                                                 describe(e.args[k], t.value())));
            }
            any_nullable = any_nullable || t.value().nullable;
            types.push_back(t.value());
        }
        if (e.text == "TO") {
            return types.empty() ? data_type{} : types[0];
        }
        return make(e.text == "IN" ? type_kind::int_ : type_kind::string, any_nullable);
    }
    if (e.over) {
        if (!ctx.allow_over) {
            return at(e, fmt::format("{}(...) OVER (...) is not allowed in {}", shown, ctx.clause));
        }
        expr_context inner;
        inner.clause = "OVER";
        for (const expr& p : e.over->partition_by) {
            auto t = expr_(p, s, inner);
            if (!t) {
                return t;
            }
        }
        for (const order_item& o : e.over->order_by) {
            auto t = expr_(o.value, s, inner);
            if (!t) {
                return t;
            }
        }
    }
    if (is_ranking(u)) {
        if (!e.over) {
            return at(e, fmt::format("{} needs OVER (PARTITION BY ... ORDER BY ...)", shown));
        }
        if (u != "NTILE" && u != "LAG" && u != "LEAD" && n != 0) {
            return at(e, fmt::format("{} takes no arguments", shown));
        }
        if (u == "LAG" || u == "LEAD") {
            if (n == 0) {
                return at(e, fmt::format("{} needs a value", shown));
            }
            auto t = expr_(e.args[0], s, ctx);
            if (!t) {
                return t;
            }
            return nullable(t.value());
        }
        return make(type_kind::bigint, false);
    }
    if (is_aggregate(u)) {
        if (ctx.inside_aggregate) {
            return at(e, fmt::format("aggregate {} inside another aggregate", shown));
        }
        if (!ctx.allow_aggregate && !e.over) {
            return at(e, fmt::format("aggregate {} is not allowed in {}", shown, ctx.clause));
        }
        if (!e.over) {
            ctx.saw_aggregate = true;
        }
        expr_context inner = ctx;
        inner.inside_aggregate = true;
        inner.allow_over = false;
        std::vector<data_type> types;
        for (const expr& a : e.args) {
            if (a.kind == expr_kind::star) {
                if (u != "COUNT" || n != 1) {
                    return at(a.pos, 1, fmt::format("* is an argument of COUNT only, not of {}", shown));
                }
                types.push_back(make(type_kind::bigint, false));
                continue;
            }
            auto t = expr_(a, s, inner);
            if (!t) {
                return t;
            }
            types.push_back(t.value());
        }
        if (e.filter) {
            expr_context f;
            f.clause = "FILTER";
            auto t = expr_(*e.filter, s, f);
            if (!t) {
                return t;
            }
            if (!is_boolean(t.value())) {
                return at(*e.filter, fmt::format("FILTER (WHERE ...) needs a BOOLEAN condition, not {}",
                                                 describe(*e.filter, t.value())));
            }
        }
        if (u == "COUNT") {
            return make(type_kind::bigint, false);
        }
        if (n != 1 && u != "LISTAGG") {
            return at(e, fmt::format("{} takes one argument, not {}", shown, n));
        }
        if (n < 1 || n > 2) {
            return at(e, fmt::format("{} takes one or two arguments", shown));
        }
        const data_type& t = types[0];
        if (u == "LISTAGG") {
            return make(type_kind::string);
        }
        if (u == "MIN" || u == "MAX" || u == "FIRST_VALUE" || u == "LAST_VALUE") {
            return nullable(t);
        }
        if (!unknown(t) && !is_numeric(t.kind)) {
            return at(e.args[0], fmt::format("{} needs a number, not {}", shown, describe(e.args[0], t)));
        }
        if (u == "SUM") {
            if (is_integer(t.kind)) {
                return make(type_kind::bigint);
            }
            if (t.kind == type_kind::decimal) {
                data_type d = make(type_kind::decimal, true, 38);
                d.scale = effective_scale(t);
                return d;
            }
            return nullable(t);
        }
        if (u == "AVG") {
            return nullable(t);
        }
        return make(type_kind::double_);
    }
    if (e.filter) {
        return at(e, fmt::format("FILTER (WHERE ...) applies to aggregates; {} is not one", shown));
    }
    if (is_group_window(u)) {
        if (!ctx.in_group_by) {
            return at(e, fmt::format("{}(...) groups rows into windows: use it in GROUP BY, or as "
                                     "TABLE({}(TABLE t, DESCRIPTOR(time), ...)) in FROM",
                                     shown, u));
        }
        std::size_t want = u == "HOP" ? 3 : 2;
        if (n != want && !(u == "TUMBLE" && n == 3)) {
            return at(e, fmt::format("{} in GROUP BY takes {} arguments (time column{}), not {}",
                                     shown, want, u == "HOP" ? ", slide, size" : ", interval", n));
        }
        ctx.saw_group_window = true;
        auto t = expr_(e.args[0], s, ctx);
        if (!t) {
            return t;
        }
        if (!unknown(t.value()) && !is_time(t.value())) {
            return at(e.args[0], fmt::format("{} groups by a time column (TIMESTAMP or "
                                             "TIMESTAMP_LTZ), not {}",
                                             shown, describe(e.args[0], t.value())));
        }
        for (std::size_t k = 1; k < n; ++k) {
            auto iv = expr_(e.args[k], s, ctx);
            if (!iv) {
                return iv;
            }
            if (!unknown(iv.value()) && iv.value().kind != type_kind::interval_day_time) {
                return at(e.args[k], fmt::format("{} takes intervals such as INTERVAL '10' "
                                                 "SECOND, not {}",
                                                 shown, describe(e.args[k], iv.value())));
            }
        }
        return make(type_kind::timestamp, false, 3);
    }
    if (is_group_window_property(u)) {
        for (const expr& a : e.args) {
            auto t = expr_(a, s, ctx);
            if (!t) {
                return t;
            }
        }
        bool proctime = u.ends_with("PROCTIME");
        return make(proctime ? type_kind::timestamp_ltz : type_kind::timestamp, false, 3);
    }
    const function_def* sig = find_function(u);
    if (!sig) {
        if (_catalog.has_function(u) || _catalog.has_function(shown)) {
            for (const expr& a : e.args) {
                auto t = expr_(a, s, ctx);
                if (!t) {
                    return t;
                }
            }
            return data_type{};
        }
        return at(e, fmt::format("unknown function {}", shown));
    }
    if (!sig->takes(n)) {
        std::string count = sig->min_args == sig->max_args
                              ? fmt::format("{}", sig->min_args)
                              : sig->max_args == variadic ? fmt::format("at least {}", sig->min_args)
                                                      : fmt::format("{} to {}", sig->min_args, sig->max_args);
        return at(e, fmt::format("{} takes {} argument{}, not {}", shown, count,
                                 sig->max_args == 1 && sig->min_args == 1 ? "" : "s", n));
    }
    std::vector<data_type> types;
    bool any_nullable = false;
    for (std::size_t k = 0; k < n; ++k) {
        const expr& a = e.args[k];
        bool unit_arg = (u == "TIMESTAMPDIFF" || u == "TIMESTAMPADD") && k == 0;
        if (unit_arg) {
            types.push_back(data_type{}); // the unit, a bare word such as SECOND
            continue;
        }
        auto t = expr_(a, s, ctx);
        if (!t) {
            return t;
        }
        char kind = sig->kind_of(k);
        if (!fits_kind(kind, t.value())) {
            return at(a, fmt::format("argument {} of {} must be {}, not {}", k + 1, shown,
                                     kind_name(kind), describe(a, t.value())));
        }
        any_nullable = any_nullable || t.value().nullable;
        types.push_back(t.value());
    }
    data_type out;
    switch (sig->rule) {
    case function_def::fixed:
        out = make(sig->result, !sig->not_null, sig->precision);
        if (!sig->not_null) {
            out.nullable = true;
        }
        return out;
    case function_def::first:
        return types.empty() ? data_type{} : types[0];
    case function_def::third:
        return types.size() < 3 ? data_type{} : types[2];
    case function_def::common: {
        std::size_t from = u == "IF" ? 1 : 0;
        std::optional<data_type> acc;
        for (std::size_t k = from; k < types.size(); ++k) {
            if (!acc || unknown(*acc)) {
                acc = types[k];
                continue;
            }
            auto ct = common_type(*acc, types[k]);
            if (!ct) {
                return at(e.args[k], fmt::format("the arguments of {} mix {} and {}", shown,
                                                 to_string(*acc), describe(e.args[k], types[k])));
            }
            acc = *ct;
        }
        out = acc.value_or(data_type{});
        out.nullable = out.nullable || any_nullable;
        return out;
    }
    }
    return out;
}

} // namespace runnel::sql
