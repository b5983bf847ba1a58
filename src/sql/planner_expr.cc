#include "sql/planner_internal.h"

#include "base/text.h"

#include <algorithm>
#include <cmath>
#include <charconv>
#include <cctype>

namespace runnel::sql::plan_detail {

namespace {

/// `n[from..]` joined with dots: the path of a ROW field.
std::string join_dotted(const qualified_name& n, std::size_t from) {
    std::string s;
    for (std::size_t i = from; i < n.size(); ++i) {
        s += (i > from ? "." : "") + n[i];
    }
    return s;
}

bool is_ranking(std::string_view u) {
    return u == "ROW_NUMBER" || u == "RANK" || u == "DENSE_RANK" || u == "PERCENT_RANK" ||
           u == "CUME_DIST" || u == "NTILE" || u == "LAG" || u == "LEAD";
}

} // namespace

error at(source_pos pos, uint32_t length, std::string message) {
    return error_at(pos, length, "planner: " + std::move(message));
}

error at(const expr& e, std::string message) {
    return at(e.pos, head_length(e), std::move(message));
}

error unsupported(const expr& e, std::string_view what) {
    return at(e, fmt::format("{} is not supported yet", what));
}

error unsupported(source_pos pos, std::string_view what) {
    return at(pos, 1, fmt::format("{} is not supported yet", what));
}

std::string join_names(const std::vector<std::string>& names, std::string_view sep) {
    std::string s;
    for (std::size_t i = 0; i < names.size(); ++i) {
        s += (i ? std::string(sep) : "") + names[i];
    }
    return s;
}

std::string dotted(const qualified_name& n) {
    return join_names(n, ".");
}

bool is_aggregate_name(std::string_view u) {
    static constexpr std::string_view names[] = {
        "AVG", "COLLECT",    "COUNT",       "FIRST_VALUE", "LAST_VALUE", "LISTAGG", "MAX",
        "MIN", "STDDEV_POP", "STDDEV_SAMP", "SUM",         "VAR_POP",    "VAR_SAMP"};
    return std::find(std::begin(names), std::end(names), u) != std::end(names);
}

bool is_group_window(std::string_view u) {
    return u == "TUMBLE" || u == "HOP" || u == "SESSION";
}

std::pair<std::string, std::string> group_window_property(std::string_view u) {
    for (std::string_view w : {"TUMBLE", "HOP", "SESSION"}) {
        if (u.size() > w.size() + 1 && u.starts_with(w) && u[w.size()] == '_') {
            std::string rest(u.substr(w.size() + 1));
            if (rest == "START" || rest == "END" || rest == "ROWTIME" || rest == "PROCTIME") {
                return {std::string(w), rest};
            }
        }
    }
    return {};
}

parse_result<int64_t> interval_ms(const expr& e) {
    if (e.kind != expr_kind::interval) {
        return at(e, "a window size or watermark delay must be an INTERVAL literal such as "
                     "INTERVAL '10' SECOND");
    }
    auto unit_ms = [](time_unit u) -> int64_t {
        switch (u) {
        case time_unit::week:
            return 7 * 86'400'000LL;
        case time_unit::day:
            return 86'400'000LL;
        case time_unit::hour:
            return 3'600'000LL;
        case time_unit::minute:
            return 60'000LL;
        case time_unit::second:
            return 1'000LL;
        case time_unit::millisecond:
            return 1LL;
        default:
            return 0;
        }
    };
    if (unit_ms(e.unit) == 0 || (e.unit_to && unit_ms(*e.unit_to) == 0)) {
        return unsupported(e, "a YEAR/QUARTER/MONTH interval (months have no fixed length)");
    }
    std::string_view text = e.text;
    bool negative = false;
    while (!text.empty() && text.front() == ' ') {
        text.remove_prefix(1);
    }
    if (!text.empty() && (text.front() == '-' || text.front() == '+')) {
        negative = text.front() == '-';
        text.remove_prefix(1);
    }
    // Fields from the leading unit down: '1 02:03:04.5' DAY TO SECOND, '1:30' MINUTE TO SECOND.
    static constexpr time_unit order[] = {time_unit::day, time_unit::hour, time_unit::minute,
                                          time_unit::second, time_unit::millisecond};
    std::size_t u = 0;
    while (u < std::size(order) && order[u] != e.unit) {
        ++u;
    }
    if (e.unit == time_unit::week) {
        u = 0;
    }
    double total = 0;
    std::size_t i = 0;
    bool any = false;
    while (i < text.size()) {
        std::size_t j = i;
        while (j < text.size() &&
               (std::isdigit(static_cast<unsigned char>(text[j])) || text[j] == '.')) {
            ++j;
        }
        if (j == i) {
            return at(e, fmt::format("cannot read INTERVAL '{}'", e.text));
        }
        double v = 0;
        auto [p, ec] = std::from_chars(text.data() + i, text.data() + j, v);
        if (ec != std::errc() || p != text.data() + j || u >= std::size(order)) {
            return at(e, fmt::format("cannot read INTERVAL '{}'", e.text));
        }
        total +=
            v * double(e.unit == time_unit::week ? unit_ms(time_unit::week) : unit_ms(order[u]));
        any = true;
        ++u;
        i = j;
        if (i < text.size()) {
            ++i; // the separator
        }
    }
    if (!any) {
        return at(e, fmt::format("cannot read INTERVAL '{}'", e.text));
    }
    if (!(total < 4.6e18)) {
        return at(e, fmt::format("INTERVAL '{}' is too long", e.text));
    }
    auto ms = static_cast<int64_t>(std::llround(total));
    return negative ? -ms : ms;
}

std::vector<const rel_column*> star_columns(const expr& star, const relation& rel) {
    std::vector<const rel_column*> out;
    for (const auto& c : rel.cols) {
        if (c.window_only || c.hidden) {
            continue;
        }
        if (!star.names.empty() && c.qualifier != star.names.back()) {
            continue;
        }
        out.push_back(&c);
    }
    return out;
}

parse_result<const rel_column*> translator::resolve(const expr& e) const {
    // A field of a ROW is the column named by its path: `t.col.field` (a table alias
    // first, as Calcite resolves it) or `col.field`.
    if (e.names.size() >= 2) {
        std::string rest = join_dotted(e.names, 1);
        std::string full = join_dotted(e.names, 0);
        for (int pass = 0; pass < 2; ++pass) {
            for (const auto& c : _rel.cols) {
                bool q = pass == 0 ? c.qualifier == e.names[0] : text::iequals(c.qualifier, e.names[0]);
                if (q && c.name == rest) {
                    return &c;
                }
            }
        }
        for (const auto& c : _rel.cols) {
            if (c.name == full && full.find('.') != std::string::npos) {
                return &c;
            }
        }
    }
    const std::string& name = e.names.back();
    std::string qual = e.names.size() > 1 ? e.names[e.names.size() - 2] : std::string();
    const rel_column* found = nullptr;
    for (int pass = 0; pass < 2 && !found; ++pass) {
        for (const auto& c : _rel.cols) {
            bool name_ok = pass == 0 ? c.name == name : text::iequals(c.name, name);
            if (name_ok &&
                (qual.empty() || c.qualifier == qual || text::iequals(c.qualifier, qual))) {
                found = &c;
                break;
            }
        }
    }
    if (!found) {
        return at(e,
                  fmt::format("column {} is not in the input of this query", dotted(e.names)));
    }
    return found;
}

std::optional<en::data_type> translator::type_of(const en::expr& e) const {
    if (!schema) {
        return std::nullopt;
    }
    auto b = en::bind(e, *schema);
    if (!b) {
        return std::nullopt;
    }
    return b.value().type();
}

parse_result<en::expr> translator::tr(const expr& e, std::optional<en::data_type> hint) {
    if (hook) {
        auto h = hook(e);
        if (!h) {
            return h.error();
        }
        if (h.value()) {
            return *h.value();
        }
    }
    switch (e.kind) {
    case expr_kind::literal:
        return literal(e, hint);
    case expr_kind::column: {
        auto c = resolve(e);
        if (!c) {
            return c.error();
        }
        if (c.value()->window_only) {
            return at(e,
                      fmt::format(
                          "{} exists only after the window aggregation; group by window_start, "
                          "window_end to use it",
                          c.value()->name));
        }
        return en::col(c.value()->engine);
    }
    case expr_kind::unary: {
        if (e.text == "NOT") {
            auto a = tr(e.args[0], en::data_type::boolean());
            if (!a) {
                return a;
            }
            return !a.value();
        }
        auto a = tr(e.args[0], hint);
        if (!a) {
            return a;
        }
        if (e.text == "-") {
            return -a.value();
        }
        return a;
    }
    case expr_kind::binary:
        return binary(e, hint);
    case expr_kind::call:
        return call(e, hint);
    case expr_kind::cast: {
        auto t = engine_type(e.type);
        if (!t || e.type.kind == type_kind::row) {
            return unsupported(e, fmt::format("CAST to {}", to_string(e.type)));
        }
        auto a = tr(e.args[0], *t);
        if (!a) {
            return a;
        }
        if (auto ct = type_of(a.value()); ct && *ct == *t) {
            return a;
        }
        return en::cast(a.value(), *t);
    }
    case expr_kind::case_when:
        return case_when(e, hint);
    case expr_kind::between: {
        auto v = tr(e.args[0]);
        if (!v) {
            return v;
        }
        auto ty = type_of(v.value());
        auto lo = tr(e.args[1], ty);
        if (!lo) {
            return lo;
        }
        auto hi = tr(e.args[2], ty);
        if (!hi) {
            return hi;
        }
        en::expr r = (v.value() >= lo.value()) && (v.value() <= hi.value());
        return e.negated ? !r : r;
    }
    case expr_kind::in_list: {
        auto v = tr(e.args[0]);
        if (!v) {
            return v;
        }
        auto ty = type_of(v.value());
        en::expr r;
        for (std::size_t i = 1; i < e.args.size(); ++i) {
            auto x = tr(e.args[i], ty);
            if (!x) {
                return x;
            }
            en::expr eq = v.value() == x.value();
            r = r.empty() ? eq : (r || eq);
        }
        return e.negated ? !r : r;
    }
    case expr_kind::like: {
        if (e.args.size() > 2) {
            if (e.args[2].kind != expr_kind::literal || e.args[2].text != "\\") {
                return unsupported(e.args[2], "LIKE … ESCAPE with a character other than '\\'");
            }
        }
        auto s = tr(e.args[0], en::data_type::string());
        if (!s) {
            return s;
        }
        auto p = tr(e.args[1], en::data_type::string());
        if (!p) {
            return p;
        }
        en::expr r = en::like(s.value(), p.value());
        return e.negated ? !r : r;
    }
    case expr_kind::is_null: {
        auto a = tr(e.args[0]);
        if (!a) {
            return a;
        }
        return e.negated ? en::is_not_null(a.value()) : en::is_null(a.value());
    }
    case expr_kind::is_bool: {
        auto a = tr(e.args[0], en::data_type::boolean());
        if (!a) {
            return a;
        }
        en::expr r = en::is_not_null(a.value()) && (e.flag ? a.value() : !a.value());
        return e.negated ? !r : r;
    }
    case expr_kind::interval:
        return unsupported(
            e, "an INTERVAL outside `timestamp ± INTERVAL`, a window or a watermark");
    case expr_kind::star:
        return unsupported(e, "* inside an expression");
    case expr_kind::in_query:
    case expr_kind::exists:
    case expr_kind::scalar_query:
        return unsupported(e, "a subquery inside an expression");
    case expr_kind::extract:
        return unsupported(e, "EXTRACT");
    case expr_kind::descriptor:
    case expr_kind::table_arg:
    case expr_kind::named_arg:
        return unsupported(e, "a table function argument here");
    }
    return unsupported(e, "this expression");
}

parse_result<en::expr> translator::literal(const expr& e, std::optional<en::data_type> hint) {
    switch (e.literal) {
    case literal_kind::null:
        return en::null_of(hint.value_or(en::data_type::int64()));
    case literal_kind::boolean:
        return en::lit(text::iequals(e.text, "TRUE"));
    case literal_kind::integer: {
        int64_t v = 0;
        auto [p, ec] = std::from_chars(e.text.data(), e.text.data() + e.text.size(), v);
        if (ec == std::errc() && p == e.text.data() + e.text.size()) {
            return en::lit(v);
        }
        [[fallthrough]];
    }
    case literal_kind::decimal: {
        double d = 0;
        auto [p, ec] = std::from_chars(e.text.data(), e.text.data() + e.text.size(), d);
        if (ec != std::errc() || p != e.text.data() + e.text.size()) {
            return at(e, fmt::format("cannot read the number {}", e.text));
        }
        return en::lit(d);
    }
    case literal_kind::string:
        return en::lit(e.text);
    case literal_kind::timestamp: {
        auto t = en::parse_timestamp(e.text, en::time_unit::millis);
        if (!t) {
            return at(e, fmt::format("cannot read TIMESTAMP '{}'", e.text));
        }
        return en::lit(en::value::ts(*t));
    }
    case literal_kind::date:
        return unsupported(e, "a DATE literal");
    case literal_kind::time:
        return unsupported(e, "a TIME literal");
    }
    return unsupported(e, "this literal");
}

parse_result<en::expr> translator::binary(const expr& e, std::optional<en::data_type> hint) {
    const std::string& op = e.text;
    const expr& l = e.args[0];
    const expr& r = e.args[1];
    if (op == "AND" || op == "OR") {
        auto a = tr(l, en::data_type::boolean());
        if (!a) {
            return a;
        }
        auto b = tr(r, en::data_type::boolean());
        if (!b) {
            return b;
        }
        return op == "AND" ? (a.value() && b.value()) : (a.value() || b.value());
    }
    if (op == "||") {
        auto a = to_text(l);
        if (!a) {
            return a;
        }
        auto b = to_text(r);
        if (!b) {
            return b;
        }
        return en::concat({a.value(), b.value()});
    }
    // timestamp ± INTERVAL: the engine adds a count of milliseconds to a timestamp.
    if ((op == "+" || op == "-") &&
        (l.kind == expr_kind::interval || r.kind == expr_kind::interval)) {
        const expr& iv = r.kind == expr_kind::interval ? r : l;
        const expr& other = r.kind == expr_kind::interval ? l : r;
        if (op == "-" && &iv == &l) {
            return unsupported(e, "INTERVAL - timestamp");
        }
        auto ms = interval_ms(iv);
        if (!ms) {
            return ms.error();
        }
        auto t = tr(other);
        if (!t) {
            return t;
        }
        return op == "+" ? t.value() + en::lit(ms.value()) : t.value() - en::lit(ms.value());
    }
    // A bare NULL takes the type of the other operand.
    const bool l_null = l.kind == expr_kind::literal && l.literal == literal_kind::null;
    auto first = tr(l_null ? r : l, hint);
    if (!first) {
        return first;
    }
    auto second = tr(l_null ? l : r, type_of(first.value()));
    if (!second) {
        return second;
    }
    const std::optional<en::expr> a = l_null ? second.value() : first.value();
    const std::optional<en::expr> b = l_null ? first.value() : second.value();
    if (op == "+") {
        return *a + *b;
    }
    if (op == "-") {
        return *a - *b;
    }
    if (op == "*") {
        return *a * *b;
    }
    if (op == "/") {
        return *a / *b;
    }
    if (op == "%") {
        return *a % *b;
    }
    if (op == "=") {
        return *a == *b;
    }
    if (op == "<>" || op == "!=") {
        return *a != *b;
    }
    if (op == "<") {
        return *a < *b;
    }
    if (op == "<=") {
        return *a <= *b;
    }
    if (op == ">") {
        return *a > *b;
    }
    if (op == ">=") {
        return *a >= *b;
    }
    return unsupported(e, fmt::format("the operator {}", op));
}

parse_result<en::expr> translator::to_text(const expr& e) {
    auto a = tr(e, en::data_type::string());
    if (!a) {
        return a;
    }
    if (auto t = type_of(a.value()); t && t->id != en::type_id::string) {
        return en::cast(a.value(), en::data_type::string());
    }
    return a;
}

parse_result<std::vector<en::expr>> translator::values_of(const std::vector<const expr*>& vals,
                                                          std::optional<en::data_type> hint) {
    std::vector<std::optional<en::expr>> out(vals.size());
    std::optional<en::data_type> ty = hint;
    for (std::size_t i = 0; i < vals.size(); ++i) {
        if (vals[i]->kind == expr_kind::literal && vals[i]->literal == literal_kind::null) {
            continue;
        }
        auto v = tr(*vals[i], ty);
        if (!v) {
            return v.error();
        }
        if (!ty) {
            ty = type_of(v.value());
        }
        out[i] = v.value();
    }
    std::vector<en::expr> r;
    for (std::size_t i = 0; i < vals.size(); ++i) {
        if (!out[i]) {
            auto v = tr(*vals[i], ty);
            if (!v) {
                return v.error();
            }
            out[i] = v.value();
        }
        r.push_back(*out[i]);
    }
    return r;
}

parse_result<en::expr> translator::case_when(const expr& e, std::optional<en::data_type> hint) {
    std::size_t i = 0;
    std::optional<en::expr> operand;
    if (e.flag) {
        auto o = tr(e.args[0]);
        if (!o) {
            return o;
        }
        operand = o.value();
        i = 1;
    }
    std::size_t end = e.args.size() - (e.has_else ? 1 : 0);
    std::vector<en::expr> conds;
    std::vector<const expr*> vals;
    for (; i + 2 <= end; i += 2) {
        const expr& w = e.args[i];
        if (operand) {
            auto v = tr(w, type_of(*operand));
            if (!v) {
                return v;
            }
            conds.push_back(*operand == v.value());
        } else {
            auto c = tr(w, en::data_type::boolean());
            if (!c) {
                return c;
            }
            conds.push_back(c.value());
        }
        vals.push_back(&e.args[i + 1]);
    }
    if (e.has_else) {
        vals.push_back(&e.args.back());
    }
    if (conds.empty()) {
        return at(e, "CASE without WHEN");
    }
    auto v = values_of(vals, hint);
    if (!v) {
        return v.error();
    }
    std::vector<std::pair<en::expr, en::expr>> branches;
    for (std::size_t k = 0; k < conds.size(); ++k) {
        branches.emplace_back(conds[k], v.value()[k]);
    }
    if (e.has_else) {
        return en::case_when(std::move(branches), v.value().back());
    }
    auto t = type_of(v.value()[0]);
    return en::case_when(std::move(branches), en::null_of(t.value_or(en::data_type::int64())));
}

/// A call's arguments as the function registry's lowerings read them.
class translator::call_args final : public function_args {
public:
    call_args(translator& t, const expr& e, std::optional<en::data_type> hint)
        : _t(t)
        , _e(e)
        , _hint(std::move(hint)) {}
    const expr& call() const override { return _e; }
    parse_result<en::expr> arg(std::size_t i, std::optional<en::data_type> hint) override {
        return _t.tr(_e.args[i], std::move(hint));
    }
    using function_args::arg;
    parse_result<en::expr> text(std::size_t i) override { return _t.to_text(_e.args[i]); }
    parse_result<std::vector<en::expr>> values(std::size_t first) override {
        std::vector<const expr*> vals;
        for (std::size_t i = first; i < _e.args.size(); ++i) {
            vals.push_back(&_e.args[i]);
        }
        return _t.values_of(vals, _hint);
    }
    std::optional<en::data_type> type_of(const en::expr& x) const override { return _t.type_of(x); }
    std::optional<en::data_type> expected() const override { return _hint; }
    error unsupported(std::size_t i, std::string_view what) const override {
        return i < _e.args.size() ? plan_detail::unsupported(_e.args[i], what) : plan_detail::unsupported(_e, what);
    }

private:
    translator& _t;
    const expr& _e;
    std::optional<en::data_type> _hint;
};

parse_result<en::expr> translator::call(const expr& e, std::optional<en::data_type> hint) {
    std::string u = text::to_upper(e.names.back());
    if (e.over) {
        if (is_ranking(u)) {
            return unsupported(
                e,
                fmt::format("{}() OVER outside a Top-N (SELECT … FROM (SELECT …, "
                            "ROW_NUMBER() OVER (PARTITION BY k … ORDER BY x DESC) AS rn FROM "
                            "…) WHERE rn <= N)",
                            u));
        }
        return unsupported(e, fmt::format("{}(…) OVER (an OVER aggregate)", u));
    }
    if (is_aggregate_name(u)) {
        return at(e, fmt::format("aggregate {} outside the SELECT list and HAVING of a "
                                 "grouped query",
                                 u));
    }
    if (is_group_window(u)) {
        return at(e, fmt::format("{}(…) belongs in GROUP BY", u));
    }
    if (!group_window_property(u).first.empty()) {
        return at(e, fmt::format("{} needs GROUP BY {}(…)", u, group_window_property(u).first));
    }
    const function_def* f = find_function(u);
    if (!f || !f->lower || !f->takes(e.args.size())) {
        return unsupported(e, fmt::format("the function {}", e.names.back()));
    }
    call_args args(*this, e, hint);
    return f->lower(args);
}

std::string describe(const en::schema& s) {
    std::vector<std::string> parts;
    for (const auto& f : s.fields()) {
        parts.push_back(fmt::format("{} {}", f.name, f.type.name()));
    }
    return join_names(parts);
}

std::string describe(const std::vector<en::named_expr>& cols) {
    std::vector<std::string> parts;
    for (const auto& c : cols) {
        const auto& n = c.e.node();
        if (n.op == en::expr_op::column && n.name == c.name) {
            parts.push_back(c.name);
        } else {
            parts.push_back(fmt::format("{} := {}", c.name, c.e.to_string()));
        }
    }
    return join_names(parts);
}

bool has_aggregate(const expr& e) {
    if (e.kind == expr_kind::call && !e.over && is_aggregate_name(text::to_upper(e.names.back()))) {
        return true;
    }
    for (const expr& a : e.args) {
        if (has_aggregate(a)) {
            return true;
        }
    }
    return false;
}

} // namespace runnel::sql::plan_detail
