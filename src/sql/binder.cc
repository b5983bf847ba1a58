#include "sql/binder_internal.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <optional>
#include <string_view>

#include <fmt/format.h>

#include "base/text.h"
#include "sql/functions.h"
#include "sql/parser.h"

namespace runnel::sql {

namespace bind_detail {

error at(source_pos pos, uint32_t length, std::string message) {
    return error_at(pos, length, std::move(message));
}

error at(const expr& e, std::string message) { return at(e.pos, head_length(e), std::move(message)); }

std::string describe(const expr& e, data_type t) {
    t.nullable = true; // nullability is noise in these messages
    if (e.kind == expr_kind::column) {
        std::string name;
        for (std::size_t i = 0; i < e.names.size(); ++i) {
            name += (i ? "." : "") + quote_identifier(e.names[i]);
        }
        return fmt::format("column {} ({})", name, to_string(t));
    }
    std::string text = to_string(e);
    if (text.size() > 40) {
        text = text.substr(0, 37) + "...";
    }
    return fmt::format("{} ({})", text, to_string(t));
}

bool unknown(const data_type& t) { return t.kind == type_kind::null; }

bool is_boolean(const data_type& t) { return unknown(t) || t.kind == type_kind::boolean; }

bool is_time(const data_type& t) {
    return t.kind == type_kind::timestamp || t.kind == type_kind::timestamp_ltz;
}

bool comparable(const data_type& a, const data_type& b) {
    if (unknown(a) || unknown(b) || common_type(a, b)) {
        return true;
    }
    if (is_temporal(a.kind) && is_temporal(b.kind)) {
        return true;
    }
    // A text literal compares with a time by conversion, as in Flink.
    return (is_character(a.kind) && is_temporal(b.kind)) ||
           (is_temporal(a.kind) && is_character(b.kind));
}

data_type make(type_kind k, bool nullable, std::optional<int32_t> precision) {
    data_type t = data_type::of(k);
    t.nullable = nullable;
    t.precision = precision;
    return t;
}

data_type nullable(data_type t) {
    t.nullable = true;
    return t;
}

bool is_aggregate(std::string_view u) {
    static constexpr std::string_view names[] = {
      "AVG", "COLLECT", "COUNT", "FIRST_VALUE", "LAST_VALUE", "LISTAGG", "MAX", "MIN",
      "STDDEV_POP", "STDDEV_SAMP", "SUM", "VAR_POP", "VAR_SAMP"};
    return std::find(std::begin(names), std::end(names), u) != std::end(names);
}

bool is_group_window_property(std::string_view u) {
    for (std::string_view w : {"TUMBLE_", "HOP_", "SESSION_"}) {
        if (u.starts_with(w)) {
            std::string_view rest = u.substr(w.size());
            return rest == "START" || rest == "END" || rest == "ROWTIME" || rest == "PROCTIME";
        }
    }
    return false;
}

bool fits_kind(char k, const data_type& t) {
    if (unknown(t)) {
        return true;
    }
    switch (k) {
    case 'n':
        return is_numeric(t.kind);
    case 'i':
        return is_integer(t.kind);
    case 's':
        return is_character(t.kind);
    case 't':
        return is_temporal(t.kind);
    case 'b':
        return t.kind == type_kind::boolean;
    case 'v':
        return is_interval(t.kind);
    default:
        return true;
    }
}

} // namespace bind_detail

namespace {

using namespace bind_detail;

std::string output_name(const select_item& item, std::size_t index) {
    if (!item.alias.empty()) {
        return item.alias;
    }
    if (item.value.kind == expr_kind::column && !item.value.names.empty()) {
        return item.value.names.back();
    }
    return fmt::format("EXPR${}", index);
}

} // namespace

// ---- relations ---------------------------------------------------------------------------

parse_result<relation_type> binder::bind_table(const table_schema& t) {
    if (t.definition) {
        return query_(*t.definition, nullptr);
    }
    relation_type r;
    scope physical;
    physical.relations.emplace_back();
    for (const column_schema& c : t.columns) {
        if (!c.computed) {
            physical.relations[0].columns.push_back({c.name, c.type, ""});
        }
    }
    for (const column_schema& c : t.columns) {
        bound_column b{c.name, c.type, ""};
        if (c.computed) {
            expr_context ctx;
            ctx.clause = "a computed column";
            auto ty = expr_(*c.computed, physical, ctx);
            if (!ty) {
                return ty.error();
            }
            b.type = ty.value();
        }
        r.columns.push_back(std::move(b));
    }
    return r;
}

parse_result<relation_type> binder::named_relation(const table_ref& t) {
    if (t.names.size() == 1) {
        for (auto it = _ctes.rbegin(); it != _ctes.rend(); ++it) {
            auto found = it->find(t.names[0]);
            if (found != it->end()) {
                return found->second;
            }
        }
    }
    const table_schema* schema = _catalog.find_table(t.names);
    if (!schema) {
        std::string name;
        for (std::size_t i = 0; i < t.names.size(); ++i) {
            name += (i ? "." : "") + quote_identifier(t.names[i]);
        }
        return at(t.pos, static_cast<uint32_t>(name.size()),
                  fmt::format("table or view {} does not exist", name));
    }
    return bind_table(*schema);
}

parse_result<bool> binder::from_item(const table_ref& t, scope& into, const scope* outer) {
    if (++_depth > max_bind_depth) {
        --_depth;
        error e = at(t.pos, 1, "statement nested too deeply");
        e.code = errc::too_complex;
        return e;
    }
    struct leave {
        int& d;
        ~leave() { --d; }
    } guard{_depth};
    auto add = [&](relation_type rel, const std::string& default_qualifier) -> parse_result<bool> {
        scope::entry e;
        e.qualifier = t.alias.empty() ? default_qualifier : t.alias;
        if (!t.column_aliases.empty()) {
            if (t.column_aliases.size() != rel.columns.size()) {
                return at(t.pos, 1,
                          fmt::format("{} names {} columns but the relation has {}",
                                      quote_identifier(t.alias), t.column_aliases.size(),
                                      rel.columns.size()));
            }
            for (std::size_t i = 0; i < rel.columns.size(); ++i) {
                rel.columns[i].name = t.column_aliases[i];
            }
        }
        for (auto& c : rel.columns) {
            c.qualifier = e.qualifier;
        }
        e.columns = std::move(rel.columns);
        into.relations.push_back(std::move(e));
        return true;
    };
    switch (t.kind) {
    case table_ref_kind::named: {
        auto rel = named_relation(t);
        if (!rel) {
            return rel.error();
        }
        if (t.system_time) {
            scope left = into;
            left.outer = outer;
            expr_context ctx;
            ctx.clause = "FOR SYSTEM_TIME AS OF";
            auto ty = expr_(*t.system_time, left, ctx);
            if (!ty) {
                return ty.error();
            }
            if (!unknown(ty.value()) && !is_time(ty.value())) {
                return at(*t.system_time,
                          fmt::format("FOR SYSTEM_TIME AS OF needs a time attribute such as "
                                      "PROCTIME() or an event-time column, not {}",
                                      describe(*t.system_time, ty.value())));
            }
        }
        return add(std::move(rel).value(), t.names.back());
    }
    case table_ref_kind::subquery: {
        auto rel = query_(*t.subquery, outer);
        if (!rel) {
            return rel.error();
        }
        return add(std::move(rel).value(), "");
    }
    case table_ref_kind::function:
        return window_function(*t.function, into, t.alias);
    case table_ref_kind::join: {
        auto l = from_item(*t.left, into, outer);
        if (!l) {
            return l.error();
        }
        std::size_t left_count = into.relations.size();
        auto r = from_item(*t.right, into, outer);
        if (!r) {
            return r.error();
        }
        scope joined = into;
        joined.outer = outer;
        if (t.condition) {
            expr_context ctx;
            ctx.clause = "ON";
            auto ty = expr_(*t.condition, joined, ctx);
            if (!ty) {
                return ty.error();
            }
            if (!is_boolean(ty.value())) {
                return at(*t.condition, fmt::format("a join condition must be BOOLEAN, not {}",
                                                    describe(*t.condition, ty.value())));
            }
        }
        for (const std::string& col : t.using_columns) {
            auto has = [&](std::size_t from, std::size_t to) {
                for (std::size_t i = from; i < to; ++i) {
                    for (const auto& c : into.relations[i].columns) {
                        if (c.name == col) {
                            return true;
                        }
                    }
                }
                return false;
            };
            if (!has(0, left_count) || !has(left_count, into.relations.size())) {
                return at(t.pos, 1,
                          fmt::format("USING column {} must be a column of both sides of the join",
                                      quote_identifier(col)));
            }
        }
        return true;
    }
    }
    return true;
}

parse_result<bool> binder::window_function(const expr& call, scope& into, const std::string& alias) {
    std::string u = call.names.empty() ? std::string() : text::to_upper(call.names.back());
    int intervals = 0;
    if (u == "TUMBLE") {
        intervals = 1;
    } else if (u == "HOP" || u == "CUMULATE") {
        intervals = 2;
    } else if (u == "SESSION") {
        intervals = 1;
    } else {
        return at(call, fmt::format("unknown table function {}; expected TUMBLE, HOP, CUMULATE "
                                    "or SESSION",
                                    call.names.empty() ? std::string("?") : call.names.back()));
    }
    const std::string& fname = call.names.back();
    // Named arguments may come in any order; put them in the positional order.
    std::vector<const expr*> args;
    bool named = !call.args.empty() && call.args[0].kind == expr_kind::named_arg;
    if (named) {
        static constexpr std::string_view order[] = {"DATA", "TIMECOL", "SIZE", "SLIDE", "STEP",
                                                     "GAP", "OFFSET"};
        for (std::string_view want : order) {
            for (const expr& a : call.args) {
                if (a.kind == expr_kind::named_arg && text::iequals(a.names[0], want)) {
                    args.push_back(&a.args[0]);
                }
            }
        }
        if (args.size() != call.args.size()) {
            return at(call, fmt::format("{} takes the named arguments DATA, TIMECOL and SIZE, "
                                        "SLIDE, STEP or GAP",
                                        fname));
        }
    } else {
        for (const expr& a : call.args) {
            args.push_back(&a);
        }
    }
    std::size_t expected_args = 2 + static_cast<std::size_t>(intervals);
    if (args.size() != expected_args && !(u == "TUMBLE" && args.size() == expected_args + 1)) {
        return at(call, fmt::format("{} takes {} arguments (TABLE t, DESCRIPTOR(time column){}), "
                                    "not {}",
                                    fname, expected_args,
                                    intervals == 2 ? ", two intervals" : ", an interval",
                                    args.size()));
    }
    if (args[0]->kind != expr_kind::table_arg) {
        return at(*args[0], fmt::format("the first argument of {} is TABLE name", fname));
    }
    table_ref named_table;
    named_table.kind = table_ref_kind::named;
    named_table.names = args[0]->names;
    named_table.pos = args[0]->pos;
    auto rel = named_relation(named_table);
    if (!rel) {
        return rel.error();
    }
    relation_type r = std::move(rel).value();
    if (!args[0]->args.empty() && u != "SESSION") {
        return at(*args[0], fmt::format("PARTITION BY belongs to SESSION windows, not {}", fname));
    }
    auto find = [&](const std::string& name) -> const bound_column* {
        for (const auto& c : r.columns) {
            if (c.name == name) {
                return &c;
            }
        }
        return nullptr;
    };
    for (const expr& key : args[0]->args) {
        if (key.kind != expr_kind::column || key.names.size() != 1 || !find(key.names[0])) {
            return at(key, fmt::format("PARTITION BY of {} must name columns of {}", fname,
                                       quote_identifier(named_table.names.back())));
        }
    }
    if (args[1]->kind != expr_kind::descriptor || args[1]->names.size() != 1) {
        return at(*args[1], fmt::format("the second argument of {} is DESCRIPTOR(time column)", fname));
    }
    const bound_column* time = find(args[1]->names[0]);
    if (!time) {
        return at(*args[1], fmt::format("DESCRIPTOR({}): table {} has no such column",
                                        quote_identifier(args[1]->names[0]),
                                        quote_identifier(named_table.names.back())));
    }
    if (!unknown(time->type) && !is_time(time->type)) {
        return at(*args[1], fmt::format("DESCRIPTOR({}): the time column of a window must be "
                                        "TIMESTAMP(p) or TIMESTAMP_LTZ(p), not {}",
                                        quote_identifier(time->name), to_string(time->type)));
    }
    data_type time_type = time->type;
    for (std::size_t i = 2; i < args.size(); ++i) {
        scope empty;
        expr_context ctx;
        ctx.clause = "a window size";
        auto ty = expr_(*args[i], empty, ctx);
        if (!ty) {
            return ty.error();
        }
        if (!unknown(ty.value()) && ty.value().kind != type_kind::interval_day_time) {
            return at(*args[i], fmt::format("window sizes of {} are intervals such as INTERVAL "
                                            "'10' SECOND, not {}",
                                            fname, describe(*args[i], ty.value())));
        }
    }
    scope::entry e;
    e.qualifier = alias.empty() ? named_table.names.back() : alias;
    e.columns = std::move(r.columns);
    data_type bound = make(type_kind::timestamp, false, 3);
    e.columns.push_back({"window_start", bound, e.qualifier});
    e.columns.push_back({"window_end", bound, e.qualifier});
    data_type wt = time_type;
    wt.precision = 3;
    wt.nullable = false;
    e.columns.push_back({"window_time", wt, e.qualifier});
    for (auto& c : e.columns) {
        c.qualifier = e.qualifier;
    }
    into.relations.push_back(std::move(e));
    return true;
}

// ---- queries -----------------------------------------------------------------------------

parse_result<relation_type> binder::bind_query(const query& q) { return query_(q, nullptr); }

parse_result<relation_type> binder::query_(const query& q, const scope* outer) {
    if (++_depth > max_bind_depth) {
        --_depth;
        error e = at(q.pos, 1, "statement nested too deeply");
        e.code = errc::too_complex;
        return e;
    }
    struct leave {
        binder& b;
        bool pop;
        ~leave() {
            --b._depth;
            if (pop) {
                b._ctes.pop_back();
            }
        }
    } guard{*this, !q.with.empty()};
    if (!q.with.empty()) {
        _ctes.emplace_back();
        for (const common_table& ct : q.with) {
            auto rel = query_(*ct.body, outer);
            if (!rel) {
                return rel.error();
            }
            relation_type r = std::move(rel).value();
            if (!ct.columns.empty()) {
                if (ct.columns.size() != r.columns.size()) {
                    return at(q.pos, 1, fmt::format("WITH {} names {} columns but its query has {}",
                                                    quote_identifier(ct.name), ct.columns.size(),
                                                    r.columns.size()));
                }
                for (std::size_t i = 0; i < r.columns.size(); ++i) {
                    r.columns[i].name = ct.columns[i];
                }
            }
            _ctes.back()[ct.name] = std::move(r);
        }
    }
    relation_type out;
    switch (q.kind) {
    case query_kind::select: {
        auto r = select_(q, outer);
        if (!r) {
            return r.error();
        }
        out = std::move(r).value();
        break;
    }
    case query_kind::values: {
        scope empty;
        empty.outer = outer;
        for (std::size_t row = 0; row < q.rows.size(); ++row) {
            for (std::size_t i = 0; i < q.rows[row].size(); ++i) {
                expr_context ctx;
                ctx.clause = "VALUES";
                auto ty = expr_(q.rows[row][i], empty, ctx);
                if (!ty) {
                    return ty.error();
                }
                if (row == 0) {
                    out.columns.push_back({fmt::format("EXPR${}", i), ty.value(), ""});
                    continue;
                }
                auto ct = common_type(out.columns[i].type, ty.value());
                if (!ct) {
                    return at(q.rows[row][i],
                              fmt::format("VALUES column {} mixes {} and {}", i + 1,
                                          to_string(out.columns[i].type), to_string(ty.value())));
                }
                out.columns[i].type = *ct;
            }
        }
        break;
    }
    case query_kind::union_: {
        auto l = query_(*q.left, outer);
        if (!l) {
            return l.error();
        }
        auto r = query_(*q.right, outer);
        if (!r) {
            return r.error();
        }
        out = std::move(l).value();
        const relation_type& right = r.value();
        if (out.columns.size() != right.columns.size()) {
            return at(q.right->pos, 1,
                      fmt::format("UNION branches differ in width: {} column(s), then {}",
                                  out.columns.size(), right.columns.size()));
        }
        for (std::size_t i = 0; i < out.columns.size(); ++i) {
            auto ct = common_type(out.columns[i].type, right.columns[i].type);
            if (!ct) {
                return at(q.right->pos, 1,
                          fmt::format("UNION column {} ({}) is {} in one branch and {} in the "
                                      "other",
                                      i + 1, quote_identifier(out.columns[i].name),
                                      to_string(out.columns[i].type),
                                      to_string(right.columns[i].type)));
            }
            out.columns[i].type = *ct;
        }
        break;
    }
    }
    if (q.kind != query_kind::select) {
        // ORDER BY of a UNION or VALUES names output columns or their positions.
        scope s;
        s.relations.push_back({"", out.columns});
        s.outer = outer;
        for (const order_item& o : q.order_by) {
            expr_context ctx;
            ctx.clause = "ORDER BY";
            if (o.value.kind == expr_kind::literal && o.value.literal == literal_kind::integer) {
                continue;
            }
            auto ty = expr_(o.value, s, ctx);
            if (!ty) {
                return ty.error();
            }
        }
    }
    if (q.limit) {
        scope empty;
        expr_context ctx;
        ctx.clause = "LIMIT";
        auto ty = expr_(*q.limit, empty, ctx);
        if (!ty) {
            return ty.error();
        }
        if (!is_integer(ty.value().kind)) {
            return at(*q.limit, fmt::format("LIMIT takes a whole number, not {}",
                                            describe(*q.limit, ty.value())));
        }
    }
    return out;
}

parse_result<relation_type> binder::select_(const query& q, const scope* outer) {
    const select_core& sel = q.select;
    for (const auto& h : sel.hints) {
        if (!text::iequals(h.name, parallelism_hint_name)) {
            return at(h.pos, h.length, fmt::format("unknown hint {}; the hint Runnel reads is {}(instances)",
                                                   h.name, parallelism_hint_name));
        }
        if (&sel != _top) {
            return at(h.pos, h.length, fmt::format("{} sets the instances of the whole pipeline: give it after the "
                                                   "outermost SELECT of an INSERT or a materialized view",
                                                   parallelism_hint_name));
        }
        if (!hint_parallelism(h)) {
            return at(h.pos, h.length, fmt::format("{} takes one number of instances from 1 to {}, such as {}(4)",
                                                   parallelism_hint_name, max_parallelism, parallelism_hint_name));
        }
    }
    scope s;
    s.outer = outer;
    for (const table_ref& t : sel.from) {
        auto r = from_item(t, s, outer);
        if (!r) {
            return r.error();
        }
    }
    if (sel.where) {
        expr_context ctx;
        ctx.clause = "WHERE";
        auto ty = expr_(*sel.where, s, ctx);
        if (!ty) {
            return ty.error();
        }
        if (!is_boolean(ty.value())) {
            return at(*sel.where, fmt::format("WHERE needs a BOOLEAN condition, not {}",
                                              describe(*sel.where, ty.value())));
        }
    }
    bool window_group = false;
    for (const expr& key : sel.group_by) {
        expr_context ctx;
        ctx.clause = "GROUP BY";
        ctx.in_group_by = true;
        auto ty = expr_(key, s, ctx);
        if (!ty) {
            return ty.error();
        }
        window_group = window_group || ctx.saw_group_window;
    }
    relation_type out;
    bool aggregated = !sel.group_by.empty();
    std::vector<std::pair<const expr*, std::size_t>> checked; // select items to check if grouped
    for (std::size_t i = 0; i < sel.items.size(); ++i) {
        const select_item& item = sel.items[i];
        if (item.value.kind == expr_kind::star) {
            bool any = false;
            for (const auto& rel : s.relations) {
                if (!item.value.names.empty() && rel.qualifier != item.value.names.back()) {
                    continue;
                }
                any = true;
                for (const auto& c : rel.columns) {
                    out.columns.push_back({c.name, c.type, ""});
                }
            }
            if (!any) {
                return at(item.value.pos, 1,
                          item.value.names.empty()
                            ? std::string("SELECT * needs a FROM clause")
                            : fmt::format("{}.*: no table or alias {} in FROM",
                                          quote_identifier(item.value.names.back()),
                                          quote_identifier(item.value.names.back())));
            }
            if (!sel.group_by.empty()) {
                return at(item.value.pos, 1, "SELECT * cannot be used with GROUP BY; name the group keys");
            }
            continue;
        }
        expr_context ctx;
        ctx.clause = "SELECT";
        ctx.allow_aggregate = true;
        ctx.allow_over = true;
        auto ty = expr_(item.value, s, ctx);
        if (!ty) {
            return ty.error();
        }
        aggregated = aggregated || ctx.saw_aggregate;
        out.columns.push_back({output_name(item, i), ty.value(), ""});
        checked.emplace_back(&item.value, i);
    }
    if (sel.having) {
        expr_context ctx;
        ctx.clause = "HAVING";
        ctx.allow_aggregate = true;
        auto ty = expr_(*sel.having, s, ctx);
        if (!ty) {
            return ty.error();
        }
        if (!is_boolean(ty.value())) {
            return at(*sel.having, fmt::format("HAVING needs a BOOLEAN condition, not {}",
                                               describe(*sel.having, ty.value())));
        }
        aggregated = true;
    }
    if (aggregated) {
        for (const auto& [e, i] : checked) {
            auto r = check_grouped(*e, sel.group_by, s, window_group, "SELECT");
            if (!r) {
                return r.error();
            }
        }
        if (sel.having) {
            auto r = check_grouped(*sel.having, sel.group_by, s, window_group, "HAVING");
            if (!r) {
                return r.error();
            }
        }
    }
    // ORDER BY may name an output column (alias) or anything in FROM.
    scope with_output = s;
    with_output.relations.insert(with_output.relations.begin(), {"", out.columns});
    for (const order_item& o : q.order_by) {
        if (o.value.kind == expr_kind::literal && o.value.literal == literal_kind::integer) {
            int64_t n = 0;
            std::from_chars(o.value.text.data(), o.value.text.data() + o.value.text.size(), n);
            if (n < 1 || static_cast<std::size_t>(n) > out.columns.size()) {
                return at(o.value, fmt::format("ORDER BY {}: the query has {} columns", o.value.text,
                                               out.columns.size()));
            }
            continue;
        }
        bool is_output = o.value.kind == expr_kind::column && o.value.names.size() == 1 &&
                         std::any_of(out.columns.begin(), out.columns.end(),
                                     [&](const bound_column& c) { return c.name == o.value.names[0]; });
        if (is_output) {
            continue;
        }
        expr_context ctx;
        ctx.clause = "ORDER BY";
        ctx.allow_aggregate = aggregated;
        auto ty = expr_(o.value, s, ctx);
        if (!ty) {
            return ty.error();
        }
    }
    return out;
}

parse_result<bool> binder::check_grouped(const expr& e, const std::vector<expr>& keys,
                                         const scope& s, bool window_group, const char* clause) {
    for (const expr& k : keys) {
        if (k == e) {
            return true;
        }
    }
    switch (e.kind) {
    case expr_kind::column: {
        // Same column, however qualified.
        auto target = column(e, s);
        for (const expr& k : keys) {
            if (k.kind != expr_kind::column || k.names.back() != e.names.back()) {
                continue;
            }
            if (k.names.size() == 1 || e.names.size() == 1) {
                return true;
            }
        }
        (void)target;
        return at(e, fmt::format("column {} in {} must be a GROUP BY key or inside an aggregate "
                                 "such as MAX({})",
                                 quote_identifier(e.names.back()), clause,
                                 quote_identifier(e.names.back())));
    }
    case expr_kind::call: {
        std::string u = e.names.empty() ? std::string() : text::to_upper(e.names.back());
        if (is_aggregate(u) || e.over) {
            return true;
        }
        if (is_group_window_property(u)) {
            if (!window_group) {
                return at(e, fmt::format("{} needs a matching group window ({}(...)) in GROUP BY",
                                         e.names.back(), u.substr(0, u.find('_'))));
            }
            return true;
        }
        break;
    }
    case expr_kind::scalar_query:
    case expr_kind::exists:
    case expr_kind::in_query:
    case expr_kind::literal:
    case expr_kind::interval:
        if (e.kind != expr_kind::in_query) {
            return true;
        }
        break;
    default:
        break;
    }
    for (const expr& a : e.args) {
        auto r = check_grouped(a, keys, s, window_group, clause);
        if (!r) {
            return r;
        }
    }
    return true;
}

// ---- statements --------------------------------------------------------------------------

parse_result<relation_type> binder::bind(const statement& st) {
    // A plain view is a name for a query, read inside others: it takes no PARALLELISM.
    const auto* view = std::get_if<create_view_stmt>(&st.node);
    if (!view || view->materialized) _top = top_select(st);
    if (auto* q = std::get_if<query_stmt>(&st.node)) {
        return bind_query(q->body);
    }
    if (auto* v = std::get_if<create_view_stmt>(&st.node)) {
        auto r = bind_query(v->body);
        if (!r) {
            return r;
        }
        relation_type out = std::move(r).value();
        if (!v->columns.empty()) {
            if (v->columns.size() != out.columns.size()) {
                return at(st.pos, 6, fmt::format("view {} names {} columns but its query has {}",
                                                 quote_identifier(v->name.back()), v->columns.size(),
                                                 out.columns.size()));
            }
            for (std::size_t i = 0; i < out.columns.size(); ++i) {
                out.columns[i].name = v->columns[i];
            }
        }
        return out;
    }
    if (auto* ins = std::get_if<insert_stmt>(&st.node)) {
        const table_schema* sink = _catalog.find_table(ins->table);
        if (!sink) {
            return at(st.pos, 6, fmt::format("INSERT INTO {}: no such table",
                                             quote_identifier(ins->table.back())));
        }
        auto target = bind_table(*sink);
        if (!target) {
            return target;
        }
        std::vector<bound_column> sink_columns;
        for (std::size_t i = 0; i < sink->columns.size(); ++i) {
            const column_schema& c = sink->columns[i];
            if (c.computed || (c.metadata && c.is_virtual)) {
                continue; // not written
            }
            if (!ins->columns.empty() &&
                std::find(ins->columns.begin(), ins->columns.end(), c.name) == ins->columns.end()) {
                continue;
            }
            sink_columns.push_back(target.value().columns[i]);
        }
        for (const std::string& named : ins->columns) {
            if (!sink->find_column(named) || sink->columns[*sink->find_column(named)].name != named) {
                return at(st.pos, 6, fmt::format("INSERT INTO {}: the table has no column {}",
                                                 quote_identifier(ins->table.back()),
                                                 quote_identifier(named)));
            }
        }
        auto r = bind_query(ins->body);
        if (!r) {
            return r;
        }
        const relation_type& src = r.value();
        if (src.columns.size() != sink_columns.size()) {
            return at(ins->body.pos, 1,
                      fmt::format("INSERT INTO {} writes {} columns but the query gives {}",
                                  quote_identifier(ins->table.back()), sink_columns.size(),
                                  src.columns.size()));
        }
        for (std::size_t i = 0; i < src.columns.size(); ++i) {
            const data_type& from = src.columns[i].type;
            const data_type& to = sink_columns[i].type;
            bool fits = unknown(from) || unknown(to) || from.kind == to.kind ||
                        (is_numeric(from.kind) && is_numeric(to.kind)) ||
                        (is_character(from.kind) && is_character(to.kind)) ||
                        (is_temporal(from.kind) && is_temporal(to.kind));
            if (!fits) {
                return at(ins->body.pos, 1,
                          fmt::format("INSERT INTO {}: column {} ({}) is {} but the query gives "
                                      "{} ({})",
                                      quote_identifier(ins->table.back()), i + 1,
                                      quote_identifier(sink_columns[i].name), to_string(to),
                                      to_string(from), quote_identifier(src.columns[i].name)));
            }
        }
        return relation_type{};
    }
    if (auto* t = std::get_if<create_table_stmt>(&st.node)) {
        auto schema = table_schema_from(*t, _catalog.check_options());
        if (!schema) {
            return schema.error();
        }
        auto r = bind_table(schema.value());
        if (!r) {
            return r;
        }
        if (!schema.value().event_time_column.empty()) {
            scope own;
            own.relations.push_back({"", r.value().columns});
            expr_context ctx;
            ctx.clause = "WATERMARK";
            auto w = expr_(*schema.value().watermark, own, ctx);
            if (!w) {
                return w.error();
            }
            if (!unknown(w.value()) && !is_time(w.value())) {
                return at(*schema.value().watermark,
                          fmt::format("a WATERMARK is a time, such as ts - INTERVAL '5' SECOND, "
                                      "not {}",
                                      describe(*schema.value().watermark, w.value())));
            }
            auto i = schema.value().find_column(schema.value().event_time_column);
            if (i && !unknown(r.value().columns[*i].type) && !is_time(r.value().columns[*i].type)) {
                return at(t->watermarks[0].pos, 9,
                          fmt::format("WATERMARK FOR {}: the column is {}, but an event-time "
                                      "column must be TIMESTAMP(p) or TIMESTAMP_LTZ(p)",
                                      quote_identifier(schema.value().event_time_column),
                                      to_string(r.value().columns[*i].type)));
            }
        }
        return r;
    }
    if (auto* ex = std::get_if<explain_stmt>(&st.node)) {
        return bind(*ex->target);
    }
    return relation_type{};
}

} // namespace runnel::sql
