#include "sql/planner.h"
#include "base/text.h"
#include "sql/functions.h"

#include "sql/parser.h"
#include "sql/physical.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <deque>
#include <functional>
#include <map>
#include <set>

namespace runnel::sql {

connector_factory::~connector_factory() = default;

engine::result<engine::stream> connector_factory::constant(engine::pipeline& p, engine::batch rows) {
    auto schema = rows.schema_of();
    std::vector<engine::batch> batches;
    batches.push_back(std::move(rows));
    return p.source(std::move(schema), engine::from_batches(std::move(batches)));
}

namespace {

namespace en = runnel::engine;

error at(source_pos pos, uint32_t length, std::string message) {
    return error_at(pos, length, "planner: " + std::move(message));
}

error at(const expr& e, std::string message) {
    return at(e.pos, head_length(e), std::move(message));
}

/// "planner: <what> is not supported yet", pointing at `e`.
error unsupported(const expr& e, std::string_view what) {
    return at(e, fmt::format("{} is not supported yet", what));
}

error unsupported(source_pos pos, std::string_view what) {
    return at(pos, 1, fmt::format("{} is not supported yet", what));
}

/// Refuses a HOP or CUMULATE (`call`) that would copy each row into more windows than
/// `opts.max_windows_per_row`: size 1 day and slide 1 ms make 86,400,000 rows of each one.
std::optional<error> check_windows_per_row(const expr& call, std::string_view fn, std::string_view step_name,
                                           int64_t size_ms, int64_t step_ms, const plan_options& opts) {
    if (size_ms <= 0 || step_ms <= 0) {
        return at(call, fmt::format("{} needs a positive size and {}", fn, step_name));
    }
    const int64_t per_row = size_ms / step_ms + (size_ms % step_ms ? 1 : 0);
    if (per_row <= opts.max_windows_per_row) {
        return std::nullopt;
    }
    return at(call, fmt::format("{} puts each row into {} windows (size {} ms / {} {} ms), more than the limit of {}; "
                                "use a larger {} or raise SET '{}'",
                                fn, per_row, size_ms, step_name, step_ms, opts.max_windows_per_row, step_name,
                                max_windows_per_row_key));
}

std::string join_names(const std::vector<std::string>& names, std::string_view sep = ", ") {
    std::string s;
    for (std::size_t i = 0; i < names.size(); ++i) {
        s += (i ? std::string(sep) : "") + names[i];
    }
    return s;
}

/// `n[from..]` joined with dots: the path of a ROW field.
std::string join_dotted(const qualified_name& n, std::size_t from) {
    std::string s;
    for (std::size_t i = from; i < n.size(); ++i) {
        s += (i > from ? "." : "") + n[i];
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

bool is_ranking(std::string_view u) {
    return u == "ROW_NUMBER" || u == "RANK" || u == "DENSE_RANK" || u == "PERCENT_RANK" ||
           u == "CUME_DIST" || u == "NTILE" || u == "LAG" || u == "LEAD";
}

bool is_group_window(std::string_view u) {
    return u == "TUMBLE" || u == "HOP" || u == "SESSION";
}

/// "TUMBLE" of "TUMBLE_START", with "START"; empty when `u` is no window property.
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

/// An INTERVAL literal of days to milliseconds, in milliseconds.
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

// ---- relations -------------------------------------------------------------------------

/// A column of the relation a query block reads: the SQL name, the qualifier that may name
/// it, and the column of the engine stream that holds it. Window TVF columns (window_start,
/// window_end, window_time) exist only once the window aggregation has run: `window_only`.
struct rel_column {
    std::string name;
    std::string qualifier;
    std::string engine;
    bool window_only = false;
    bool hidden = false; ///< not part of `*` (the rank of a Top-N)
    /// A ROW column: `engine` is its null flag (a BOOLEAN, NULL when the ROW is), and its
    /// fields follow it as columns named `name.field` (recursively): see `flatten`.
    bool row = false;
};

/// Marks the columns of a query's output that are ROWs: those whose fields follow under
/// `name.field` (a ROW selected whole leaves its flag and fields so).
void mark_rows(std::vector<rel_column>& cols) {
    for (auto& c : cols) {
        std::string prefix = c.name + ".";
        c.row = std::any_of(cols.begin(), cols.end(), [&](const rel_column& o) {
            return o.qualifier == c.qualifier && o.name.starts_with(prefix);
        });
    }
}

/// The columns after `row` in `cols` that hold its fields (named `row.name` + "." …).
std::vector<const rel_column*> row_fields(const std::vector<rel_column>& cols, const rel_column& row) {
    std::vector<const rel_column*> out;
    std::string prefix = row.name + ".";
    for (const auto& c : cols) {
        if (c.qualifier == row.qualifier && c.name.starts_with(prefix)) {
            out.push_back(&c);
        }
    }
    return out;
}

/// A window table function in FROM, waiting for its GROUP BY.
struct window_info {
    en::window_spec spec;
    std::string label;                  ///< "tumble(size 10000 ms)" for EXPLAIN
    std::string time;                   ///< the event-time column (engine name)
    std::vector<std::string> partition; ///< SESSION PARTITION BY columns (engine names)
    const expr* call = nullptr;
};

/// Where the rows of a window aggregation's output say which window they belong to: the
/// columns holding window_start and window_end (engine names), and the window's shape. Carried
/// through projections, derived tables, views and WITH queries that keep both columns, so a
/// join of two such relations on equal bounds is a window join.
struct window_bounds {
    en::window_spec spec;
    std::string label;
    std::string start, end;
};

/// What a query block reads: a stream and how SQL names map onto its columns.
struct relation {
    en::stream s;
    std::vector<rel_column> cols;
    std::optional<window_info> window;
    /// What makes the stream a changelog (rows that update or retract earlier ones), e.g.
    /// "GROUP BY without a window"; empty for an append-only stream.
    std::string updating;
    /// The stream's time column (`s.time_column()`) follows the wall clock: PROCTIME().
    bool proctime = false;
    std::optional<window_bounds> bounds;
};

/// The columns `*` (or `t.*`) stands for in `rel`, in order.
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

/// The output of a planned query: its stream and output names (the engine columns are named
/// the same).
struct query_out {
    en::stream s;
    std::vector<std::string> names;
    std::string updating; ///< as `relation::updating`
    bool proctime = false; ///< as `relation::proctime`
    std::optional<window_bounds> bounds; ///< as `relation::bounds`
};

/// Turns SQL expressions into engine expressions over one relation. A hook sees every node
/// first and may answer for it (group keys and aggregates in a grouped SELECT).
class translator {
public:
    using hook_fn = std::function<parse_result<std::optional<en::expr>>(const expr&)>;

    translator(const relation& rel, en::schema_ptr schema)
        : schema(std::move(schema))
        , _rel(rel) {}

    hook_fn hook;
    /// What engine expressions are typed against (for the type of a bare NULL).
    en::schema_ptr schema;

    /// The relation column `e` (a column reference) names.
    parse_result<const rel_column*> resolve(const expr& e) const {
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

    std::optional<en::data_type> type_of(const en::expr& e) const {
        if (!schema) {
            return std::nullopt;
        }
        auto b = en::bind(e, *schema);
        if (!b) {
            return std::nullopt;
        }
        return b.value().type();
    }

    parse_result<en::expr> tr(const expr& e, std::optional<en::data_type> hint = std::nullopt) {
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

private:
    parse_result<en::expr> literal(const expr& e, std::optional<en::data_type> hint) {
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

    parse_result<en::expr> binary(const expr& e, std::optional<en::data_type> hint) {
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
        bool l_null = l.kind == expr_kind::literal && l.literal == literal_kind::null;
        std::optional<en::expr> a, b;
        if (l_null) {
            auto y = tr(r, hint);
            if (!y) {
                return y;
            }
            b = y.value();
            auto x = tr(l, type_of(*b));
            if (!x) {
                return x;
            }
            a = x.value();
        } else {
            auto x = tr(l, hint);
            if (!x) {
                return x;
            }
            a = x.value();
            auto y = tr(r, type_of(*a));
            if (!y) {
                return y;
            }
            b = y.value();
        }
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

    /// An operand of CONCAT or `||`: strings as they are, other types cast to STRING.
    parse_result<en::expr> to_text(const expr& e) {
        auto a = tr(e, en::data_type::string());
        if (!a) {
            return a;
        }
        if (auto t = type_of(a.value()); t && t->id != en::type_id::string) {
            return en::cast(a.value(), en::data_type::string());
        }
        return a;
    }

    /// Translates `branches` (values) so that NULLs take the type of the first typed one.
    parse_result<std::vector<en::expr>> values_of(const std::vector<const expr*>& vals,
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

    parse_result<en::expr> case_when(const expr& e, std::optional<en::data_type> hint) {
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

    parse_result<en::expr> call(const expr& e, std::optional<en::data_type> hint) {
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

    /// A call's arguments as the function registry's lowerings read them.
    class call_args final : public function_args {
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
            return i < _e.args.size() ? runnel::sql::unsupported(_e.args[i], what) : runnel::sql::unsupported(_e, what);
        }

    private:
        translator& _t;
        const expr& _e;
        std::optional<en::data_type> _hint;
    };

    const relation& _rel;
};

/// The ROW column a SELECT item names on its own (`SELECT person`), or null.
const rel_column* row_item(const select_item& item, const relation& rel) {
    if (item.value.kind != expr_kind::column) {
        return nullptr;
    }
    auto c = translator(rel, nullptr).resolve(item.value);
    return c && c.value()->row ? c.value() : nullptr;
}

/// The engine type of a column for messages and EXPLAIN.
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

std::string window_label(const en::window_spec& w) {
    switch (w.kind) {
    case en::window_kind::tumbling:
        return fmt::format("tumble(size {} ms)", w.size);
    case en::window_kind::hopping:
        return fmt::format("hop(size {} ms, slide {} ms)", w.size, w.slide);
    case en::window_kind::cumulative:
        return fmt::format("cumulate(max {} ms, step {} ms)", w.size, w.slide);
    case en::window_kind::session:
        return fmt::format("session(gap {} ms)", w.gap);
    }
    return "?";
}

/// One aggregate of a grouped query: what the window computes and under which column.
struct agg_item {
    const expr* ast = nullptr;
    en::aggregate_spec spec;
    en::expr input;         ///< the aggregate's argument; empty for COUNT(*)
    std::string input_name; ///< its column before the window; shared by equal arguments
    en::data_type output;
    /// The argument and FILTER as written, to share the input column of equal ones.
    const expr* arg_ast = nullptr;
    const expr* filter_ast = nullptr;
};

/// One group key (not window_start/window_end).
struct key_item {
    const expr* ast = nullptr;
    std::string name;   ///< the window output column
    en::expr value;     ///< over the input relation
    std::string source; ///< the engine column when the key is a plain column
};

/// Why `column` cannot be the time of a window over `rel` (empty when it can): windows run on
/// the event-time column the table's WATERMARK names, which the stream carries.
std::string not_event_time(const relation& rel, const std::string& column,
                           const std::string& table) {
    std::string t = rel.s.time_column();
    if (t == column) {
        return {};
    }
    if (t.empty() && !table.empty()) {
        return fmt::format("a window needs event time: declare WATERMARK FOR {} AS {} - INTERVAL "
                           "'n' SECOND on table {}",
                           column, column, table);
    }
    if (t.empty()) {
        return fmt::format("a window needs event time, and {} carries none here: a table's "
                           "WATERMARK column carries it through views, WITH queries, derived "
                           "tables and interval joins that keep it under its name",
                           column);
    }
    return fmt::format("a window over {} is not supported yet: windows run on {}, the event-time "
                       "column of {} (the column a WATERMARK names)",
                       column, t, table.empty() ? "its input" : "table " + table);
}

/// An error found in a table's definition (its CREATE TABLE text), moved to where the
/// statement being planned names the table, with `what` saying where it came from.
error moved(error e, source_pos pos, const std::string& what) {
    std::string m = e.message;
    if (m.starts_with("planner: ")) {
        m = m.substr(9);
    }
    return at(pos, 1, fmt::format("{}: {}", what, m));
}

/// The names of the columns a statement may read (lower case), gathered from its syntax, to
/// leave unread columns out of a source. `all` when that cannot be told from the names alone:
/// a `*`, a view (its query reads more), or a table renamed column by column. A table whose
/// name or alias qualifies a star (`a.*`) keeps all its columns.
struct read_names {
    std::set<std::string> names;
    std::set<std::string> star_qualifiers;
    bool all = false;

    void add(std::string_view n) { names.insert(text::to_lower(n)); }
    void of(const expr& e, const catalog& cat) {
        switch (e.kind) {
        case expr_kind::star:
            if (e.names.empty()) all = true;
            else star_qualifiers.insert(text::to_lower(e.names.back()));
            return;
        case expr_kind::column:
        case expr_kind::descriptor:
            for (const auto& n : e.names) add(n);
            break;
        default: break;
        }
        for (const auto& a : e.args) {
            if (e.kind == expr_kind::call && a.kind == expr_kind::star) {
                continue; // COUNT(*) reads no column
            }
            of(a, cat);
        }
        if (e.filter) of(*e.filter, cat);
        if (e.over) {
            for (const auto& a : e.over->partition_by) of(a, cat);
            for (const auto& o : e.over->order_by) of(o.value, cat);
        }
        if (e.subquery) of(*e.subquery, cat);
    }
    void of(const table_ref& t, const catalog& cat) {
        if (!t.column_aliases.empty()) all = true;
        for (const auto& n : t.using_columns) add(n);
        if (t.kind == table_ref_kind::named) {
            const table_schema* ts = cat.find_table(t.names);
            if (ts && ts->kind != relation_kind::table) all = true;
        }
        if (t.system_time) of(*t.system_time, cat);
        if (t.subquery) of(*t.subquery, cat);
        if (t.function) of(*t.function, cat);
        if (t.left) of(*t.left, cat);
        if (t.right) of(*t.right, cat);
        if (t.condition) of(*t.condition, cat);
    }
    void of(const query& q, const catalog& cat) {
        for (const auto& w : q.with) {
            if (w.body) of(*w.body, cat);
        }
        for (const auto& i : q.select.items) of(i.value, cat);
        for (const auto& f : q.select.from) of(f, cat);
        if (q.select.where) of(*q.select.where, cat);
        for (const auto& g : q.select.group_by) of(g, cat);
        if (q.select.having) of(*q.select.having, cat);
        if (q.left) of(*q.left, cat);
        if (q.right) of(*q.right, cat);
        for (const auto& row : q.rows) {
            for (const auto& v : row) of(v, cat);
        }
        for (const auto& o : q.order_by) of(o.value, cat);
        if (q.limit) of(*q.limit, cat);
    }
};

/// `b` after a projection to `cols`: the columns that now hold its window_start and
/// window_end, or nothing when the projection drops either.
std::optional<window_bounds> kept_bounds(const std::optional<window_bounds>& b,
                                         const std::vector<en::named_expr>& cols) {
    if (!b) {
        return std::nullopt;
    }
    window_bounds out = *b;
    bool start = false, end = false;
    for (const auto& c : cols) {
        const auto& n = c.e.node();
        if (n.op != en::expr_op::column) {
            continue;
        }
        if (!start && n.name == b->start) {
            out.start = c.name;
            start = true;
        } else if (!end && n.name == b->end) {
            out.end = c.name;
            end = true;
        }
    }
    if (!start || !end) {
        return std::nullopt;
    }
    return out;
}

/// Plans one statement into a pipeline.
class builder {
public:
    builder(const catalog& cat, connector_factory& conn, plan_options opts, en::pipeline& p,
            planned_statement& out)
        : _catalog(cat)
        , _conn(conn)
        , _opts(opts)
        , _p(p)
        , _out(out)
        , _phys(conn, _opts, out.stages) {}

    parse_result<query_out> query_(const query& q);
    parse_result<bool> insert(const insert_stmt& s, source_pos pos);
    /// The statement about to be planned reads only these names (see `read_names`).
    void reads(const query& q) {
        _reads = read_names{};
        _reads.of(q, _catalog);
    }

private:
    parse_result<bool> check(source_pos pos, uint32_t len = 1) {
        auto c = _p.check();
        if (!c) {
            return at(pos, len, c.error().message);
        }
        return true;
    }
    void step(std::string line) { _out.stages.push_back(std::move(line)); }
    /// Brings `s`'s rows to the instance of their `keys` before a keyed operator, when the
    /// plan runs as several instances (`physical_planner`); `why` names what needs every row
    /// in one instance when there are no keys.
    parse_result<bool> exchange(en::stream& s, const std::vector<std::string>& keys, source_pos pos,
                                std::string_view why = {}) {
        auto moved = _phys.by_keys(_p, s, keys, why);
        if (!moved) {
            return at(pos, 1, moved.error().message);
        }
        s = moved.value();
        return check(pos);
    }
    /// `exchange` for one side of a join (the other side is exchanged by its own keys).
    parse_result<bool> exchange_side(en::stream& s, const std::vector<std::string>& keys, source_pos pos) {
        auto moved = _phys.by_join_keys(_p, s, keys);
        if (!moved) {
            return at(pos, 1, moved.error().message);
        }
        s = moved.value();
        return check(pos);
    }
    /// `to` derives from `from` row by row (see `physical_planner::carry`).
    void carry(const en::stream& from, const en::stream& to, const std::vector<en::named_expr>& cols = {}) {
        _phys.carry(from, to, cols);
    }
    /// Makes `column`, computed by PROCTIME(), the stream's time: its watermark follows the
    /// wall clock, so windows over it close on time (event-time watermarks stop here).
    parse_result<bool> processing_time(relation& rel, const std::string& column, source_pos pos) {
        en::watermark_options o;
        o.processing_time = true;
        rel.s = rel.s.watermark(column, std::chrono::milliseconds(0), o);
        rel.proctime = true;
        step(fmt::format("watermark {} (processing time)", column));
        return check(pos);
    }
    static bool is_proctime(const expr& e) {
        return e.kind == expr_kind::call && e.names.size() == 1 && text::to_upper(e.names[0]) == "PROCTIME" &&
               e.args.empty();
    }

    parse_result<relation> from_item(const table_ref& t);
    parse_result<relation> constant_row(const query& q);
    parse_result<relation> named(const qualified_name& name, source_pos pos,
                                 const std::string& alias);
    parse_result<relation> table(const table_schema& t, source_pos pos,
                                 const std::string& qualifier);
    parse_result<relation> window_tvf(const expr& call, const std::string& alias);
    parse_result<relation> join(const table_ref& t);
    /// A JOIN of two windowed relations ON equal window_start and window_end: a window join
    /// (nothing when `l` and `r` are no such pair and the ON does not ask for one).
    parse_result<std::optional<relation>> window_join(const table_ref& t, const relation& l,
                                                      const relation& r);
    /// `JOIN t FOR SYSTEM_TIME AS OF left.time ON …`: a lookup join (processing time) or an
    /// event-time temporal join of a versioned table.
    parse_result<relation> temporal_join(const table_ref& t);
    parse_result<relation> joined(relation out, const relation& l, const relation& r,
                                  const std::vector<expr>& residual, source_pos pos);
    parse_result<query_out> query_body(const query& q);
    parse_result<query_out> select_(const query& q);
    /// FROM of `sc`: one item, or two (a comma join: their inner join ON the WHERE condition,
    /// which `where_used` then reports as applied).
    parse_result<relation> from_clause(const select_core& sc, bool& where_used);
    /// WHERE (unless `with_where` is false), then the SELECT list, grouped or not, over `rel`.
    parse_result<query_out> select_from(const query& q, relation rel, bool with_where);
    /// `SELECT … FROM (SELECT …, ROW_NUMBER() OVER (…) AS rn FROM …) WHERE rn <= N`.
    parse_result<query_out> top_n(const query& outer, const select_item& rn);
    parse_result<query_out> grouped(const query& q, relation rel,
                                    const std::vector<std::string>& names);
    parse_result<std::vector<std::string>> output_names(const query& q, const relation& rel);

    const catalog& _catalog;
    connector_factory& _conn;
    plan_options _opts;
    en::pipeline& _p;
    planned_statement& _out;
    physical_planner _phys;
    int _depth = 0;
    /// WITH queries in scope, outermost first; a reference plans the query again (each use
    /// reads its sources anew). Planning one sees only those defined before it.
    std::vector<const common_table*> _ctes;
    /// Syntax made up while planning (the JOIN a comma join stands for); kept as long as the
    /// plan may point into it.
    std::deque<table_ref> _synthetic;
    read_names _reads{{}, {}, true};
};

parse_result<relation> builder::table(const table_schema& t, source_pos pos,
                                      const std::string& qualifier) {
    std::string tname = dotted(t.name);
    for (const auto& c : t.columns) {
        if (c.metadata) {
            return unsupported(pos, fmt::format("metadata column {} of table {}", c.name, tname));
        }
    }
    auto phys = physical_schema(t);
    if (!phys) {
        error e = phys.error();
        e.line = pos.line;
        e.column = pos.column;
        e.offset = pos.offset;
        return e;
    }
    // The Nexmark source generates only the columns it is given: leave out those the statement
    // never names (a table with computed columns keeps all; they may read any).
    // A ROW column's flag and fields stay together: a table with one keeps all.
    bool computed = std::any_of(t.columns.begin(), t.columns.end(), [](const auto& c) {
        return bool(c.computed) || c.type.kind == type_kind::row;
    });
    auto connector = t.option("connector");
    if (!_reads.all && !computed && connector && text::iequals(*connector, "nexmark") &&
        !_reads.star_qualifiers.contains(text::to_lower(qualifier))) {
        std::vector<en::field> kept;
        for (const auto& f : phys.value()->fields()) {
            if (_reads.names.contains(text::to_lower(f.name)) || text::iequals(f.name, t.event_time_column)) {
                kept.push_back(f);
            }
        }
        if (kept.empty()) {
            kept.push_back(phys.value()->at(0));
        }
        if (kept.size() < phys.value()->size()) {
            phys = en::make_schema(std::move(kept));
        }
    }
    auto src = _conn.source(_p, t, phys.value());
    if (!src) {
        // A connector's message usually names the table already.
        const auto& why = src.error().message;
        if (why.starts_with(fmt::format("table {}:", tname))) return at(pos, 1, why);
        return at(pos, 1, fmt::format("table {}: {}", tname, why));
    }
    relation rel;
    rel.s = src.value();
    step(fmt::format("source {} ({})", tname, describe(*phys.value())));
    if (auto c = check(pos); !c) {
        return c.error();
    }
    // A ROW's flag column is followed by its fields' (a nested ROW's flag among them).
    auto is_row = [&](const std::string& name) {
        const auto& fs = phys.value()->fields();
        return std::any_of(fs.begin(), fs.end(),
                           [&](const auto& g) { return g.name.starts_with(name + "."); });
    };
    for (const auto& f : phys.value()->fields()) {
        rel.cols.push_back({f.name, qualifier, f.name, false});
        rel.cols.back().row = is_row(f.name);
    }
    // Computed columns: one projection that keeps the physical ones and adds them.
    bool any_computed = std::any_of(t.columns.begin(), t.columns.end(),
                                    [](const auto& c) { return bool(c.computed); });
    if (any_computed) {
        translator tr(rel, phys.value());
        std::vector<en::named_expr> cols;
        for (const auto& f : phys.value()->fields()) {
            cols.push_back(en::as(en::col(f.name), f.name));
        }
        for (const auto& c : t.columns) {
            if (!c.computed) {
                continue;
            }
            auto v = tr.tr(*c.computed);
            if (!v) {
                return moved(v.error(), pos,
                             fmt::format("computed column {} of table {}", c.name, tname));
            }
            cols.push_back(en::as(v.value(), c.name));
        }
        rel.s = rel.s.project(cols);
        if (auto c = check(pos); !c) {
            return c.error();
        }
        step(fmt::format("project {}", describe(cols)));
        std::vector<rel_column> physical = std::move(rel.cols);
        rel.cols.clear();
        for (const auto& c : t.columns) {
            if (c.computed) {
                rel.cols.push_back({c.name, qualifier, c.name, false});
                continue;
            }
            for (const auto& pc : physical) {
                if (pc.name == c.name || pc.name.starts_with(c.name + ".")) {
                    rel.cols.push_back(pc);
                }
            }
        }
    }
    if (!t.event_time_column.empty() && t.watermark) {
        const expr& w = *t.watermark;
        int64_t delay = 0;
        auto is_time = [&](const expr& x) {
            return x.kind == expr_kind::column && x.names.size() == 1 &&
                   x.names[0] == t.event_time_column;
        };
        if (is_time(w)) {
            delay = 0;
        } else if (w.kind == expr_kind::binary && w.text == "-" && is_time(w.args[0]) &&
                   w.args[1].kind == expr_kind::interval) {
            auto ms = interval_ms(w.args[1]);
            if (!ms) {
                return moved(ms.error(), pos, fmt::format("the WATERMARK of table {}", tname));
            }
            delay = ms.value();
        } else {
            return unsupported(
                pos, fmt::format("the WATERMARK of table {} ({}); write WATERMARK FOR {} AS {} - "
                                 "INTERVAL 'n' SECOND",
                                 tname, to_string(w), t.event_time_column, t.event_time_column));
        }
        rel.s = rel.s.watermark(t.event_time_column, std::chrono::milliseconds(delay),
                                _conn.watermarks(t));
        if (auto c = check(pos); !c) {
            return c.error();
        }
        step(fmt::format("watermark {} - {} ms", t.event_time_column, delay));
    } else {
        for (const auto& c : t.columns) {
            if (c.computed && is_proctime(*c.computed)) {
                if (auto r = processing_time(rel, c.name, pos); !r) {
                    return r.error();
                }
                break;
            }
        }
    }
    return rel;
}

parse_result<relation> builder::named(const qualified_name& name, source_pos pos,
                                      const std::string& alias) {
    for (std::size_t i = _ctes.size(); name.size() == 1 && i-- > 0;) {
        const common_table& ct = *_ctes[i];
        if (ct.name != name[0]) {
            continue;
        }
        if (++_depth > 32) {
            return at(pos, 1, "WITH queries nest too deeply");
        }
        std::vector<const common_table*> saved = _ctes;
        _ctes.resize(i);
        auto q = query_(*ct.body);
        _ctes = std::move(saved);
        --_depth;
        if (!q) {
            return q.error();
        }
        const auto& names = q.value().names;
        if (!ct.columns.empty() && ct.columns.size() != names.size()) {
            return at(pos, 1,
                      fmt::format("WITH {} names {} columns for {}", ct.name, ct.columns.size(),
                                  names.size()));
        }
        relation rel;
        rel.s = q.value().s;
        rel.updating = q.value().updating;
        rel.proctime = q.value().proctime;
        rel.bounds = q.value().bounds;
        std::string qualifier = alias.empty() ? ct.name : alias;
        for (std::size_t c = 0; c < names.size(); ++c) {
            rel.cols.push_back(
                {ct.columns.empty() ? names[c] : ct.columns[c], qualifier, names[c], false});
        }
        return rel;
    }
    const table_schema* t = _catalog.find_table(name);
    if (!t) {
        return at(pos, 1, fmt::format("table or view {} does not exist", dotted(name)));
    }
    std::string qualifier = alias.empty() ? name.back() : alias;
    if (t->kind == relation_kind::table) {
        return table(*t, pos, qualifier);
    }
    if (!t->definition) {
        return unsupported(pos, fmt::format("view {} without a definition", dotted(name)));
    }
    if (++_depth > 32) {
        return at(pos, 1, "views nest too deeply");
    }
    // A view's query sees the catalog, not the WITH queries of the statement that reads it.
    std::vector<const common_table*> saved = std::move(_ctes);
    _ctes.clear();
    auto q = query_(*t->definition);
    _ctes = std::move(saved);
    --_depth;
    if (!q) {
        return q.error();
    }
    relation rel;
    rel.s = q.value().s;
    rel.updating = q.value().updating;
    rel.proctime = q.value().proctime;
    rel.bounds = q.value().bounds;
    for (const auto& n : q.value().names) {
        rel.cols.push_back({n, qualifier, n, false});
    }
    mark_rows(rel.cols);
    return rel;
}

parse_result<relation> builder::window_tvf(const expr& call, const std::string& alias) {
    std::string u = text::to_upper(call.names.back());
    // Arguments by role: named ones by name, positional ones in the function's order.
    std::map<std::string, const expr*> args;
    bool named_args = !call.args.empty() && call.args[0].kind == expr_kind::named_arg;
    if (named_args) {
        for (const expr& a : call.args) {
            if (a.kind != expr_kind::named_arg || a.names.empty() || a.args.empty()) {
                return at(a, fmt::format("{} takes either all arguments by name or none", u));
            }
            args[text::to_upper(a.names[0])] = &a.args[0];
        }
    } else {
        std::vector<std::string> roles;
        if (u == "TUMBLE") {
            roles = {"DATA", "TIMECOL", "SIZE", "OFFSET"};
        } else if (u == "HOP") {
            roles = {"DATA", "TIMECOL", "SLIDE", "SIZE", "OFFSET"};
        } else if (u == "CUMULATE") {
            roles = {"DATA", "TIMECOL", "STEP", "SIZE", "OFFSET"};
        } else if (u == "SESSION") {
            roles = {"DATA", "TIMECOL", "GAP"};
        } else {
            return unsupported(call, fmt::format("the table function {}", call.names.back()));
        }
        for (std::size_t i = 0; i < call.args.size() && i < roles.size(); ++i) {
            args[roles[i]] = &call.args[i];
        }
    }
    if (args.count("OFFSET")) {
        return unsupported(*args["OFFSET"], fmt::format("the offset of {}", u));
    }
    const expr* data = args["DATA"];
    const expr* timecol = args["TIMECOL"];
    if (!data || !timecol || data->kind != expr_kind::table_arg ||
        timecol->kind != expr_kind::descriptor) {
        return at(call, fmt::format("{} takes TABLE t and DESCRIPTOR(time column)", u));
    }
    auto rel = named(data->names, data->pos, alias.empty() ? data->names.back() : alias);
    if (!rel) {
        return rel.error();
    }
    relation r = std::move(rel).value();
    if (!r.updating.empty()) {
        return unsupported(call, fmt::format("a window over an updating input (the changelog of {})",
                                             r.updating));
    }
    window_info w;
    w.call = &call;
    translator tr(r, r.s.schema_of());
    auto tc = tr.resolve(*timecol);
    if (!tc) {
        return tc.error();
    }
    w.time = tc.value()->engine;
    const table_schema* ts = _catalog.find_table(data->names);
    bool is_table = ts && ts->kind == relation_kind::table &&
                    std::none_of(_ctes.begin(), _ctes.end(), [&](const common_table* c) {
                        return data->names.size() == 1 && c->name == data->names[0];
                    });
    if (auto why = not_event_time(r, w.time, is_table ? dotted(data->names) : ""); !why.empty()) {
        return at(*timecol, why);
    }
    auto size_of = [&](const char* role) -> parse_result<int64_t> {
        auto it = args.find(role);
        if (it == args.end()) {
            return at(call, fmt::format("{} needs its {} argument", u, role));
        }
        return interval_ms(*it->second);
    };
    if (u == "TUMBLE") {
        auto s = size_of("SIZE");
        if (!s) {
            return s.error();
        }
        w.spec = en::tumble(std::chrono::milliseconds(s.value()));
    } else if (u == "HOP") {
        auto s = size_of("SIZE");
        if (!s) {
            return s.error();
        }
        auto sl = size_of("SLIDE");
        if (!sl) {
            return sl.error();
        }
        if (auto e = check_windows_per_row(call, "HOP", "slide", s.value(), sl.value(), _opts)) {
            return *e;
        }
        w.spec =
            en::hop(std::chrono::milliseconds(s.value()), std::chrono::milliseconds(sl.value()));
    } else if (u == "CUMULATE") {
        auto s = size_of("SIZE");
        if (!s) {
            return s.error();
        }
        auto st = size_of("STEP");
        if (!st) {
            return st.error();
        }
        if (auto e = check_windows_per_row(call, "CUMULATE", "step", s.value(), st.value(), _opts)) {
            return *e;
        }
        w.spec = en::cumulate(std::chrono::milliseconds(st.value()),
                              std::chrono::milliseconds(s.value()));
    } else {
        auto g = size_of("GAP");
        if (!g) {
            return g.error();
        }
        w.spec = en::session(std::chrono::milliseconds(g.value()));
        for (const expr& k : data->args) {
            auto c = tr.resolve(k);
            if (!c) {
                return c.error();
            }
            w.partition.push_back(c.value()->engine);
        }
    }
    w.label = window_label(w.spec);
    std::string q = alias.empty() ? data->names.back() : alias;
    for (const char* n : {"window_start", "window_end", "window_time"}) {
        r.cols.push_back({n, q, n, true});
    }
    r.window = std::move(w);
    return r;
}

parse_result<relation> builder::from_item(const table_ref& t) {
    switch (t.kind) {
    case table_ref_kind::named:
        if (t.system_time) {
            return unsupported(*t.system_time,
                               "FOR SYSTEM_TIME AS OF other than on the right side of a JOIN");
        }
        {
            auto r = named(t.names, t.pos, t.alias);
            if (!r) {
                return r;
            }
            if (!t.column_aliases.empty()) {
                return unsupported(t.pos, "column aliases on a table");
            }
            return r;
        }
    case table_ref_kind::subquery: {
        auto q = query_(*t.subquery);
        if (!q) {
            return q.error();
        }
        relation rel;
        rel.s = q.value().s;
        rel.updating = q.value().updating;
        rel.proctime = q.value().proctime;
        rel.bounds = q.value().bounds;
        const auto& names = q.value().names;
        if (!t.column_aliases.empty() && t.column_aliases.size() != names.size()) {
            return at(t.pos, 1,
                      fmt::format("{} column aliases for {} columns", t.column_aliases.size(),
                                  names.size()));
        }
        for (std::size_t i = 0; i < names.size(); ++i) {
            rel.cols.push_back({t.column_aliases.empty() ? names[i] : t.column_aliases[i], t.alias,
                                names[i], false});
        }
        mark_rows(rel.cols);
        return rel;
    }
    case table_ref_kind::function:
        return window_tvf(*t.function, t.alias);
    case table_ref_kind::join:
        return join(t);
    }
    return unsupported(t.pos, "this FROM item");
}

/// The conjuncts of `e` (a AND b AND c → a, b, c), BETWEEN split into its two comparisons.
void conjuncts(const expr& e, std::vector<expr>& out) {
    if (e.kind == expr_kind::binary && e.text == "AND") {
        conjuncts(e.args[0], out);
        conjuncts(e.args[1], out);
        return;
    }
    if (e.kind == expr_kind::between && !e.negated) {
        expr lo;
        lo.kind = expr_kind::binary;
        lo.pos = e.pos;
        lo.text = ">=";
        lo.args = {e.args[0], e.args[1]};
        expr hi = lo;
        hi.text = "<=";
        hi.args = {e.args[0], e.args[2]};
        out.push_back(std::move(lo));
        out.push_back(std::move(hi));
        return;
    }
    out.push_back(e);
}

parse_result<relation> builder::join(const table_ref& t) {
    if (t.join == join_kind::cross) {
        return unsupported(t.pos, "CROSS JOIN");
    }
    if (!t.using_columns.empty()) {
        return unsupported(t.pos, "JOIN … USING; write ON a.k = b.k");
    }
    if (!t.condition) {
        return unsupported(t.pos, "a JOIN without ON");
    }
    if (t.right->kind == table_ref_kind::named && t.right->system_time) {
        return temporal_join(t);
    }
    auto lr = from_item(*t.left);
    if (!lr) {
        return lr;
    }
    auto rr = from_item(*t.right);
    if (!rr) {
        return rr;
    }
    relation l = std::move(lr).value(), r = std::move(rr).value();
    auto wj = window_join(t, l, r);
    if (!wj) {
        return wj.error();
    }
    if (wj.value()) {
        return std::move(*wj.value());
    }
    if (t.join == join_kind::right || t.join == join_kind::full) {
        return unsupported(t.pos, fmt::format("{} JOIN other than a window join (ON L.window_start = "
                                              "R.window_start AND L.window_end = R.window_end "
                                              "over two windowed inputs)",
                                              t.join == join_kind::right ? "RIGHT" : "FULL"));
    }
    const std::string& updating = !l.updating.empty() ? l.updating : r.updating;
    translator lt(l, l.s.schema_of()), rt(r, r.s.schema_of());
    // Which side a plain column reference belongs to (0 left, 1 right), and its engine name.
    auto side_of = [&](const expr& e) -> std::optional<std::pair<int, std::string>> {
        if (e.kind != expr_kind::column) {
            return std::nullopt;
        }
        auto a = lt.resolve(e), b = rt.resolve(e);
        if (a && !b) {
            return std::pair<int, std::string>{0, a.value()->engine};
        }
        if (b && !a) {
            return std::pair<int, std::string>{1, b.value()->engine};
        }
        return std::nullopt;
    };
    // An event-time column of one side plus an optional interval: (side, offset in ms).
    auto time_term = [&](const expr& e) -> std::optional<std::pair<int, int64_t>> {
        const expr* c = &e;
        int64_t off = 0;
        if (e.kind == expr_kind::binary && (e.text == "+" || e.text == "-") &&
            e.args[1].kind == expr_kind::interval) {
            auto ms = interval_ms(e.args[1]);
            if (!ms) {
                return std::nullopt;
            }
            off = e.text == "+" ? ms.value() : -ms.value();
            c = &e.args[0];
        }
        auto s = side_of(*c);
        if (!s) {
            return std::nullopt;
        }
        const std::string& time = s->first == 0 ? l.s.time_column() : r.s.time_column();
        if (time.empty() || s->second != time) {
            return std::nullopt;
        }
        return std::pair<int, int64_t>{s->first, off};
    };
    en::join_spec spec;
    spec.type = t.join == join_kind::left ? en::join_type::left : en::join_type::inner;
    std::optional<int64_t> lower, upper;
    std::vector<expr> parts, residual, time_bounds;
    conjuncts(*t.condition, parts);
    for (auto& c : parts) {
        if (c.kind == expr_kind::binary && c.args.size() == 2) {
            const std::string& op = c.text;
            auto a = side_of(c.args[0]), b = side_of(c.args[1]);
            if (op == "=" && a && b && a->first != b->first) {
                spec.left_keys.push_back(a->first == 0 ? a->second : b->second);
                spec.right_keys.push_back(a->first == 0 ? b->second : a->second);
                continue;
            }
            auto x = time_term(c.args[0]), y = time_term(c.args[1]);
            bool cmp = op == "<" || op == "<=" || op == ">" || op == ">=" || op == "=";
            if (cmp && x && y && x->first != y->first) {
                // Normalise to right_time - left_time `op` k.
                std::string o = op;
                int64_t k = 0;
                if (x->first == 1) {
                    k = y->second - x->second; // R + ox op L + oy
                } else {
                    k = x->second - y->second; // L + ox op R + oy  ⇔  R - L op' ox - oy
                    o = op == "<"    ? ">"
                        : op == "<=" ? ">="
                        : op == ">"  ? "<"
                        : op == ">=" ? "<="
                                     : op;
                }
                auto raise = [&](std::optional<int64_t>& b, int64_t v, bool up) {
                    b = !b ? v : up ? std::min(*b, v) : std::max(*b, v);
                };
                if (o == ">=" || o == "=") {
                    raise(lower, k, false);
                }
                if (o == ">") {
                    raise(lower, k + 1, false);
                }
                if (o == "<=" || o == "=") {
                    raise(upper, k, true);
                }
                if (o == "<") {
                    raise(upper, k - 1, true);
                }
                time_bounds.push_back(std::move(c));
                continue;
            }
        }
        residual.push_back(std::move(c));
    }
    if (spec.left_keys.empty()) {
        return unsupported(*t.condition,
                           "a JOIN without an equality between columns of its two sides");
    }
    if (lower && upper) {
        en::join_spec::bounds b;
        b.left_time = l.s.time_column();
        b.right_time = r.s.time_column();
        b.lower = std::chrono::milliseconds(*lower);
        b.upper = std::chrono::milliseconds(*upper);
        spec.interval = b;
    } else {
        // One bound alone does not bound the join's state: a regular join, then the bound as
        // a filter.
        for (auto& c : time_bounds) {
            residual.push_back(std::move(c));
        }
    }
    if (spec.interval && !updating.empty()) {
        return unsupported(t.pos, fmt::format("an interval JOIN of an updating input (the changelog "
                                              "of {})",
                                              updating));
    }
    if (spec.type == en::join_type::left && (!spec.interval || !residual.empty())) {
        return unsupported(
            t.pos, "LEFT JOIN other than an interval join on keys (ON a.k = b.k AND b.ts BETWEEN "
                   "a.ts - INTERVAL … AND a.ts + INTERVAL …)");
    }
    std::string label =
        fmt::format("{}join on {} = {}", spec.type == en::join_type::left ? "left " : "",
                    join_names(spec.left_keys), join_names(spec.right_keys));
    if (spec.interval) {
        label += fmt::format(" and right {} - left {} in [{} ms, {} ms]", spec.interval->right_time,
                             spec.interval->left_time, spec.interval->lower.count(),
                             spec.interval->upper.count());
    }
    relation out;
    out.updating = updating;
    en::stream left = l.s, right = r.s;
    if (auto x = exchange_side(left, spec.left_keys, t.condition->pos); !x) {
        return x.error();
    }
    if (auto x = exchange_side(right, spec.right_keys, t.condition->pos); !x) {
        return x.error();
    }
    out.s = left.join(right, spec);
    carry(left, out.s); // the left side's key columns keep their names
    if (auto c = check(t.condition->pos); !c) {
        return c.error();
    }
    step(label);
    return joined(std::move(out), l, r, residual, t.condition->pos);
}

/// The columns of a join's output (the left side's, then the right side's under the names the
/// engine gave them) and the filter of the ON conditions the join itself did not apply.
parse_result<relation> builder::joined(relation out, const relation& l, const relation& r,
                                       const std::vector<expr>& residual, source_pos pos) {
    auto ls = l.s.schema_of(), rs = r.s.schema_of();
    auto js = out.s.schema_of();
    out.cols = l.cols;
    for (const auto& c : r.cols) {
        rel_column rc = c;
        rc.engine = js->at(ls->size() + *rs->index_of(c.engine)).name;
        out.cols.push_back(std::move(rc));
    }
    if (!residual.empty()) {
        translator tr(out, js);
        en::expr pred;
        for (const auto& c : residual) {
            auto v = tr.tr(c, en::data_type::boolean());
            if (!v) {
                return v.error();
            }
            pred = pred.empty() ? v.value() : (pred && v.value());
        }
        const en::stream unfiltered = out.s;
        out.s = out.s.filter(pred);
        carry(unfiltered, out.s);
        if (auto c = check(pos); !c) {
            return c.error();
        }
        step(fmt::format("filter {}", pred.to_string()));
    }
    return out;
}

/// The window join: both sides windowed by the same TUMBLE, HOP or CUMULATE (a window table
/// function read directly, or a window aggregation's output that keeps window_start and
/// window_end) and ON setting both bounds equal. Like Flink, ON with only one of the two bound
/// equalities, or equal bounds of differently windowed sides, is an error rather than a
/// regular join; two window aggregations joined on other columns only stay a regular join.
parse_result<std::optional<relation>> builder::window_join(const table_ref& t, const relation& l,
                                                           const relation& r) {
    // A side's window: the bounds' engine columns, the spec, and the TVF call if it is one.
    struct side_window {
        window_bounds b;
        const expr* call = nullptr;
    };
    auto window_of = [](const relation& x) -> std::optional<side_window> {
        if (x.window) {
            return side_window{
                {x.window->spec, x.window->label, "window_start", "window_end"}, x.window->call};
        }
        if (x.bounds) {
            return side_window{*x.bounds, nullptr};
        }
        return std::nullopt;
    };
    const auto lw = window_of(l), rw = window_of(r);
    if (!lw && !rw) {
        return std::optional<relation>();
    }
    translator lt(l, l.s.schema_of()), rt(r, r.s.schema_of());
    auto side_of = [&](const expr& e) -> std::optional<std::pair<int, const rel_column*>> {
        if (e.kind != expr_kind::column) {
            return std::nullopt;
        }
        auto a = lt.resolve(e), b = rt.resolve(e);
        if (a && !b) {
            return std::pair<int, const rel_column*>{0, a.value()};
        }
        if (b && !a) {
            return std::pair<int, const rel_column*>{1, b.value()};
        }
        return std::nullopt;
    };
    std::vector<expr> parts, residual;
    conjuncts(*t.condition, parts);
    const expr* start_eq = nullptr;
    const expr* end_eq = nullptr;
    en::window_join_spec spec;
    for (auto& c : parts) {
        if (c.kind == expr_kind::binary && c.text == "=" && c.args.size() == 2) {
            auto a = side_of(c.args[0]), b = side_of(c.args[1]);
            if (a && b && a->first != b->first) {
                const rel_column* lc = a->first == 0 ? a->second : b->second;
                const rel_column* rc = a->first == 0 ? b->second : a->second;
                if (lw && rw && lc->engine == lw->b.start && rc->engine == rw->b.start) {
                    start_eq = &c;
                    continue;
                }
                if (lw && rw && lc->engine == lw->b.end && rc->engine == rw->b.end) {
                    end_eq = &c;
                    continue;
                }
                if (!lc->window_only && !rc->window_only) {
                    spec.left.keys.push_back(lc->engine);
                    spec.right.keys.push_back(rc->engine);
                    continue;
                }
            }
        }
        residual.push_back(std::move(c));
    }
    const expr* tvf = lw && lw->call ? lw->call : rw && rw->call ? rw->call : nullptr;
    const std::string shape =
        "ON L.window_start = R.window_start AND L.window_end = R.window_end over two window "
        "table functions or window aggregations";
    if (!start_eq && !end_eq) {
        if (tvf) {
            return at(*tvf, fmt::format("a window table function in a JOIN makes a window join, "
                                        "which needs {}",
                                        shape));
        }
        return std::optional<relation>(); // a regular join of window aggregations' results
    }
    if (!start_eq || !end_eq) {
        const expr& one = start_eq ? *start_eq : *end_eq;
        return at(one, fmt::format("a window join needs both window bounds equal, and ON sets "
                                   "only {} equal: add the equality of {} too",
                                   start_eq ? "window_start" : "window_end",
                                   start_eq ? "window_end" : "window_start"));
    }
    if (lw->b.spec.kind != rw->b.spec.kind || lw->b.spec.size != rw->b.spec.size ||
        lw->b.spec.slide != rw->b.spec.slide) {
        return at(*start_eq, fmt::format("a window join needs both sides windowed alike, and the "
                                         "left side is windowed by {}, the right side by {}",
                                         lw->b.label, rw->b.label));
    }
    for (const auto* w : {&*lw, &*rw}) {
        if (w->b.spec.kind == en::window_kind::session) {
            return unsupported(w->call ? *w->call : *start_eq, "a window join of SESSION windows");
        }
    }
    const std::string& updating = !l.updating.empty() ? l.updating : r.updating;
    if (!updating.empty()) {
        return unsupported(t.pos, fmt::format("a window join of an updating input (the changelog "
                                              "of {})",
                                              updating));
    }
    spec.type = t.join == join_kind::left    ? en::window_join_type::left
                : t.join == join_kind::right ? en::window_join_type::right
                : t.join == join_kind::full  ? en::window_join_type::full
                                             : en::window_join_type::inner;
    spec.allowed_lateness = _opts.allowed_lateness;
    for (int k = 0; k < 2; ++k) {
        const side_window& w = k == 0 ? *lw : *rw;
        const relation& x = k == 0 ? l : r;
        auto& in = k == 0 ? spec.left : spec.right;
        if (w.call) {
            in.time = x.window->time;
            in.assign = w.b.spec;
        } else {
            in.window_start = w.b.start;
            in.window_end = w.b.end;
        }
    }
    // The joined relation: each side's columns (a window table function's window columns are
    // real ones now), the right side's under the names the engine gives them.
    auto ls = en::window_join_side_schema(*l.s.schema_of(), spec.left);
    auto rs = en::window_join_side_schema(*r.s.schema_of(), spec.right);
    auto js = en::window_join_schema(*l.s.schema_of(), *r.s.schema_of(), spec);
    relation out;
    for (const auto& c : l.cols) {
        rel_column lc = c;
        lc.window_only = false;
        out.cols.push_back(std::move(lc));
    }
    for (const auto& c : r.cols) {
        rel_column rc = c;
        rc.window_only = false;
        rc.engine = js->at(ls->size() + *rs->index_of(c.engine)).name;
        out.cols.push_back(std::move(rc));
    }
    std::string cond_text;
    if (!residual.empty()) {
        translator tr(out, js);
        for (const auto& c : residual) {
            auto v = tr.tr(c, en::data_type::boolean());
            if (!v) {
                return v.error();
            }
            spec.condition = spec.condition.empty() ? v.value() : (spec.condition && v.value());
        }
        cond_text = spec.condition.to_string();
    }
    // The output keeps event time: the left window's window_time, or the left side's own time
    // column (a window aggregation that selected window_time), else the right side's.
    std::string time;
    if (lw->call) {
        time = "window_time";
    } else if (!l.s.time_column().empty()) {
        time = l.s.time_column();
    } else if (rw->call) {
        time = js->at(ls->size() + *rs->index_of("window_time")).name;
    } else if (!r.s.time_column().empty()) {
        time = js->at(ls->size() + *rs->index_of(r.s.time_column())).name;
    }
    en::stream left = l.s, right = r.s;
    if (auto x = exchange_side(left, spec.left.keys, t.condition->pos); !x) {
        return x.error();
    }
    if (auto x = exchange_side(right, spec.right.keys, t.condition->pos); !x) {
        return x.error();
    }
    out.s = left.window_join(right, spec, time);
    // A RIGHT or FULL join's rows of the right side alone have NULL left keys, wherever their
    // right key put them: only an inner or LEFT join keeps the left side's partitioning.
    if (spec.type == en::window_join_type::inner || spec.type == en::window_join_type::left) {
        carry(left, out.s);
    }
    if (auto c = check(t.condition->pos); !c) {
        return c.error();
    }
    out.bounds = window_bounds{lw->b.spec, lw->b.label, lw->call ? "window_start" : lw->b.start,
                               lw->call ? "window_end" : lw->b.end};
    static constexpr const char* type_names[] = {"", "left ", "right ", "full "};
    auto side_text = [](const side_window& w, const en::window_join_input& in) {
        return w.call ? fmt::format("by {}", in.time)
                      : fmt::format("in {}, {}", in.window_start, in.window_end);
    };
    std::string label = fmt::format(
        "{}window join per {}{}{} (left windows {}, right windows {})", type_names[int(spec.type)],
        lw->b.label,
        spec.left.keys.empty() ? ""
                               : fmt::format(" on {} = {}", join_names(spec.left.keys),
                                             join_names(spec.right.keys)),
        cond_text.empty() ? "" : " if " + cond_text, side_text(*lw, spec.left),
        side_text(*rw, spec.right));
    step(label);
    _out.late.push_back(out.s.late_rows());
    if (auto c = check(t.condition->pos); !c) {
        return c.error();
    }
    return std::optional<relation>(std::move(out));
}

parse_result<relation> builder::temporal_join(const table_ref& t) {
    const table_ref& right = *t.right;
    const expr& as_of = *right.system_time;
    auto lr = from_item(*t.left);
    if (!lr) {
        return lr;
    }
    relation l = std::move(lr).value();
    if (l.window) {
        return unsupported(*l.window->call, "a window table function in a JOIN");
    }
    if (!l.updating.empty()) {
        return unsupported(t.pos, fmt::format("FOR SYSTEM_TIME AS OF joined to an updating input "
                                              "(the changelog of {})",
                                              l.updating));
    }
    // AS OF names the left side's time attribute: its event time or its PROCTIME() column.
    translator lt(l, l.s.schema_of());
    const std::string& ltime = l.s.time_column();
    std::string ltime_name;
    for (const auto& c : l.cols) {
        if (!ltime.empty() && c.engine == ltime) {
            ltime_name = c.name;
            break;
        }
    }
    auto as_of_col = as_of.kind == expr_kind::column ? lt.resolve(as_of)
                                                     : parse_result<const rel_column*>(nullptr);
    if (!as_of_col || !as_of_col.value() || as_of_col.value()->engine != ltime) {
        std::string what =
            ltime.empty()
                ? "the left side has none here (no WATERMARK column and no PROCTIME() column)"
                : fmt::format("the left side's is {} ({})", ltime_name,
                              l.proctime ? "PROCTIME()" : "its event time");
        return at(as_of,
                  fmt::format("FOR SYSTEM_TIME AS OF takes the time attribute of the left side "
                              "of the JOIN, and {} is not it: {}",
                              to_string(as_of), what));
    }
    const bool proctime = l.proctime;
    // The right side: a table (or view) by name, read in full.
    const bool is_cte = right.names.size() == 1 &&
                        std::any_of(_ctes.begin(), _ctes.end(), [&](const common_table* c) {
                            return c->name == right.names[0];
                        });
    const table_schema* ts = is_cte ? nullptr : _catalog.find_table(right.names);
    if (ts && ts->kind != relation_kind::table) {
        ts = nullptr;
    }
    const std::string tname = dotted(right.names);
    if (!proctime) {
        if (!ts || ts->primary_key.empty() || ts->event_time_column.empty()) {
            return at(right.pos, 1,
                      fmt::format("an event-time temporal join (FOR SYSTEM_TIME AS OF {}) needs a "
                                  "versioned table: declare {} with a PRIMARY KEY and a WATERMARK",
                                  to_string(as_of), ts ? "table " + tname : tname + " as a table"));
        }
    }
    if (!right.column_aliases.empty()) {
        return unsupported(right.pos, "column aliases on a table");
    }
    auto rr = named(right.names, right.pos, right.alias);
    if (!rr) {
        return rr;
    }
    relation r = std::move(rr).value();
    if (r.window) {
        return unsupported(*r.window->call, "a window table function in a JOIN");
    }
    if (!proctime && (r.s.time_column().empty() || r.proctime)) {
        return at(right.pos, 1,
                  fmt::format("an event-time temporal join needs the event time of "
                              "table {}: its WATERMARK column",
                              tname));
    }
    // ON: equalities of a right column with an expression of the left side are the lookup key;
    // the rest filters the joined rows.
    translator rt(r, r.s.schema_of());
    struct key_part {
        en::expr left;
        const rel_column* right = nullptr;
        std::size_t part = 0; ///< the conjunct of ON it comes from
    };
    std::vector<key_part> keys;
    std::vector<expr> parts, residual;
    conjuncts(*t.condition, parts);
    for (std::size_t i = 0; i < parts.size(); ++i) {
        const expr& c = parts[i];
        if (c.kind != expr_kind::binary || c.text != "=" || c.args.size() != 2) {
            continue;
        }
        for (int side = 0; side < 2; ++side) {
            const expr& rc = c.args[side];
            if (rc.kind != expr_kind::column || lt.resolve(rc)) {
                continue;
            }
            auto rcol = rt.resolve(rc);
            auto lv = rcol ? lt.tr(c.args[1 - side]) : parse_result<en::expr>(en::expr());
            if (rcol && lv) {
                keys.push_back({lv.value(), rcol.value(), i});
                break;
            }
        }
    }
    // With a PRIMARY KEY, the key is exactly it (a row replaces, or versions, the row of its
    // key); other equalities filter.
    const std::vector<std::string> pk = ts ? ts->primary_key : std::vector<std::string>{};
    if (!pk.empty()) {
        std::vector<key_part> by_pk;
        std::vector<std::string> missing;
        for (const auto& k : pk) {
            auto it = std::find_if(keys.begin(), keys.end(),
                                   [&](const key_part& p) { return text::iequals(p.right->name, k); });
            if (it == keys.end()) {
                missing.push_back(k);
            } else {
                by_pk.push_back(*it);
            }
        }
        if (!missing.empty()) {
            return at(
                *t.condition,
                fmt::format("{} of table {} needs ON to set its PRIMARY KEY ({}) equal to the "
                            "left side; nothing sets {}",
                            proctime ? "a lookup join" : "an event-time temporal join", tname,
                            join_names(pk), join_names(missing, " and ")));
        }
        keys = std::move(by_pk);
    }
    for (std::size_t i = 0; i < parts.size(); ++i) {
        if (std::none_of(keys.begin(), keys.end(),
                         [&](const key_part& k) { return k.part == i; })) {
            residual.push_back(std::move(parts[i]));
        }
    }
    if (keys.empty()) {
        return at(*t.condition,
                  fmt::format("a lookup join of table {} needs ON to set a column of {} equal to "
                              "an expression of the left side (its lookup key)",
                              tname, tname));
    }
    const auto type = t.join == join_kind::left ? en::join_type::left : en::join_type::inner;
    if (type == en::join_type::left && !residual.empty()) {
        return unsupported(*t.condition, "LEFT JOIN … FOR SYSTEM_TIME AS OF with conditions "
                                         "besides the key equalities");
    }
    // Left keys that are not plain columns of the right type are computed into hidden columns.
    auto ls = l.s.schema_of(), rs = r.s.schema_of();
    std::vector<std::string> lkeys, rkeys;
    std::vector<en::named_expr> proj;
    for (const auto& f : ls->fields()) {
        proj.push_back(en::as(en::col(f.name), f.name));
    }
    bool computed = false;
    for (std::size_t i = 0; i < keys.size(); ++i) {
        en::expr e = keys[i].left;
        auto want = rs->at(*rs->index_of(keys[i].right->engine)).type;
        auto have = lt.type_of(e);
        if (have && !(*have == want)) {
            e = en::cast(e, want);
        }
        rkeys.push_back(keys[i].right->engine);
        if (e.node().op == en::expr_op::column) {
            lkeys.push_back(e.node().name);
            continue;
        }
        std::string name = fmt::format("$key{}", i);
        while (ls->index_of(name)) {
            name += "_";
        }
        proj.push_back(en::as(e, name));
        lkeys.push_back(name);
        computed = true;
    }
    if (computed) {
        l.s = l.s.project(proj);
        if (auto c = check(t.condition->pos); !c) {
            return c.error();
        }
        step(fmt::format("project {}", describe(proj)));
        ls = l.s.schema_of();
    }
    // Both sides by the key: each instance holds the table's rows of its keys (a table read
    // by one instance, a file, reaches every key's instance this way).
    if (auto x = exchange_side(l.s, lkeys, t.condition->pos); !x) {
        return x.error();
    }
    if (auto x = exchange_side(r.s, rkeys, t.condition->pos); !x) {
        return x.error();
    }
    const en::stream keyed_left = l.s;
    relation out;
    out.proctime = proctime;
    std::string label;
    if (proctime) {
        const bool whole = ts && _conn.bounded(*ts);
        out.s = l.s.lookup_join(r.s, lkeys, rkeys, type, whole);
        label = fmt::format("{}lookup join on {} = {} (processing time{})",
                            type == en::join_type::left ? "left " : "", join_names(lkeys),
                            join_names(rkeys), whole ? ", the whole table first" : "");
    } else {
        out.s = l.s.temporal_join(r.s, lkeys, rkeys, type);
        label = fmt::format("{}temporal join on {} = {} as of {} (versions by {})",
                            type == en::join_type::left ? "left " : "", join_names(lkeys),
                            join_names(rkeys), ltime, r.s.time_column());
    }
    carry(keyed_left, out.s);
    if (auto c = check(t.condition->pos); !c) {
        return c.error();
    }
    step(label);
    return joined(std::move(out), l, r, residual, t.condition->pos);
}

/// True when `e` reads column `name`, or is or holds `*` (which reads every column).
bool reads_column(const expr& e, const std::string& name) {
    if (e.kind == expr_kind::star) {
        return true;
    }
    if (e.kind == expr_kind::column && text::iequals(e.names.back(), name)) {
        return true;
    }
    if (e.filter && reads_column(*e.filter, name)) {
        return true;
    }
    return std::any_of(e.args.begin(), e.args.end(),
                       [&](const expr& a) { return reads_column(a, name); });
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

parse_result<std::vector<std::string>> builder::output_names(const query& q, const relation& rel) {
    std::vector<std::string> names;
    std::size_t index = 0;
    for (const auto& item : q.select.items) {
        if (item.value.kind == expr_kind::star) {
            for (const auto* c : star_columns(item.value, rel)) {
                names.push_back(c->name);
            }
        } else if (const rel_column* row = row_item(item, rel)) {
            // A ROW column is its null flag and its fields: the output names them by path.
            std::string base = item.alias.empty() ? item.value.names.back() : item.alias;
            names.push_back(base);
            for (const auto* f : row_fields(rel.cols, *row)) {
                names.push_back(base + f->name.substr(row->name.size()));
            }
        } else if (!item.alias.empty()) {
            names.push_back(item.alias);
        } else if (item.value.kind == expr_kind::column) {
            names.push_back(item.value.names.back());
        } else {
            names.push_back(fmt::format("EXPR${}", index));
        }
        ++index;
    }
    // A name taken by an earlier column gets a digit, as in Flink: id, id0, id1.
    for (std::size_t i = 0; i < names.size(); ++i) {
        auto taken = [&](const std::string& n) {
            return std::find(names.begin(), names.begin() + long(i), n) != names.begin() + long(i);
        };
        if (!taken(names[i])) {
            continue;
        }
        for (int k = 0;; ++k) {
            std::string n = fmt::format("{}{}", names[i], k);
            if (!taken(n) &&
                std::find(names.begin() + long(i) + 1, names.end(), n) == names.end()) {
                names[i] = n;
                break;
            }
        }
    }
    return names;
}

parse_result<query_out> builder::query_(const query& q) {
    std::size_t ctes_before = _ctes.size();
    for (const auto& ct : q.with) {
        _ctes.push_back(&ct);
    }
    auto out = query_body(q);
    _ctes.resize(ctes_before);
    return out;
}

parse_result<query_out> builder::query_body(const query& q) {
    if (!q.order_by.empty()) {
        return unsupported(q.order_by[0].value, "ORDER BY on a stream");
    }
    if (q.limit) {
        return unsupported(*q.limit, "LIMIT on a stream");
    }
    switch (q.kind) {
    case query_kind::values:
        return unsupported(q.pos, "VALUES as a source");
    case query_kind::select:
        return select_(q);
    case query_kind::union_: {
        auto l = query_(*q.left);
        if (!l) {
            return l;
        }
        auto r = query_(*q.right);
        if (!r) {
            return r;
        }
        auto ls = l.value().s.schema_of();
        auto rs = r.value().s.schema_of();
        if (!ls || !rs) {
            return check(q.pos).error();
        }
        if (ls->size() != rs->size()) {
            return at(q.pos, 1,
                      fmt::format("UNION branches have {} and {} columns", ls->size(), rs->size()));
        }
        // Both sides get the left side's names and a common type.
        std::vector<en::named_expr> lcols, rcols;
        bool lsame = true, rsame = true;
        for (std::size_t i = 0; i < ls->size(); ++i) {
            auto lt = ls->at(i).type, rt = rs->at(i).type;
            en::data_type t = lt;
            if (!(lt == rt) && lt.is_numeric() && rt.is_numeric()) {
                t = en::data_type::float64();
            }
            en::expr le = en::col(ls->at(i).name), re = en::col(rs->at(i).name);
            if (!(lt == t)) {
                le = en::cast(le, t);
                lsame = false;
            }
            if (!(rt == t)) {
                re = en::cast(re, t);
                rsame = false;
            }
            if (rs->at(i).name != ls->at(i).name) {
                rsame = false;
            }
            lcols.push_back(en::as(le, ls->at(i).name));
            rcols.push_back(en::as(re, ls->at(i).name));
        }
        en::stream left = l.value().s, right = r.value().s;
        if (!lsame) {
            left = left.project(lcols);
            step(fmt::format("project {}", describe(lcols)));
        }
        if (!rsame) {
            right = right.project(rcols);
            step(fmt::format("project {}", describe(rcols)));
        }
        auto u = left.union_with({right});
        step("union all");
        if (auto c = check(q.pos); !c) {
            return c.error();
        }
        std::string updating =
            !l.value().updating.empty() ? l.value().updating : r.value().updating;
        if (!q.union_all && !updating.empty()) {
            return unsupported(q.pos, fmt::format("UNION (without ALL) of an updating input (the "
                                                  "changelog of {}); write UNION ALL",
                                                  updating));
        }
        if (!q.union_all) {
            if (auto x = exchange(u, l.value().names, q.pos); !x) {
                return x.error();
            }
            u = u.deduplicate(l.value().names);
            step(fmt::format("deduplicate {}", join_names(l.value().names)));
            if (auto c = check(q.pos); !c) {
                return c.error();
            }
        }
        return query_out{u, l.value().names, updating, l.value().proctime && r.value().proctime,
                         std::nullopt};
    }
    }
    return unsupported(q.pos, "this query");
}

/// The ROW_NUMBER() OVER item of `q`'s SELECT list, if it has one at the top of an item.
const select_item* row_number_item(const query& q) {
    if (q.kind != query_kind::select) {
        return nullptr;
    }
    for (const auto& item : q.select.items) {
        const expr& e = item.value;
        if (e.kind == expr_kind::call && e.over && text::to_upper(e.names.back()) == "ROW_NUMBER") {
            return &item;
        }
    }
    return nullptr;
}

parse_result<query_out> builder::select_(const query& q) {
    const select_core& sc = q.select;
    if (sc.from.empty()) {
        auto one = constant_row(q);
        if (!one) {
            return one.error();
        }
        return select_from(q, std::move(one).value(), true);
    }
    if (sc.from.size() == 1 && sc.from[0].kind == table_ref_kind::subquery) {
        if (const select_item* rn = row_number_item(*sc.from[0].subquery)) {
            return top_n(q, *rn);
        }
    }
    bool where_used = false;
    auto rel_r = from_clause(sc, where_used);
    if (!rel_r) {
        return rel_r.error();
    }
    return select_from(q, std::move(rel_r).value(), !where_used);
}

/// What a SELECT without FROM reads: one row with no column the query can name, so that its
/// items are evaluated once (`SELECT 1 + 2 AS x`), as in Flink. (The binder refuses `*` there.)
parse_result<relation> builder::constant_row(const query& q) {
    auto schema = en::make_schema({en::field{"$one", en::data_type::int64(), false}});
    en::batch row(schema);
    row.append_row({en::value::of(int64_t(1))});
    auto src = _conn.constant(_p, std::move(row));
    if (!src) {
        return at(q.pos, 1, src.error().message);
    }
    relation rel;
    rel.s = src.value();
    step("one constant row");
    if (auto c = check(q.pos); !c) {
        return c.error();
    }
    rel.cols.push_back({"$one", "", "$one", false, true});
    return rel;
}

parse_result<relation> builder::from_clause(const select_core& sc, bool& where_used) {
    where_used = false;
    if (sc.from.size() == 1) {
        return from_item(sc.from[0]);
    }
    if (sc.from.size() > 2) {
        return unsupported(sc.from[2].pos, "a comma join of more than two FROM items");
    }
    if (!sc.where) {
        return at(sc.from[1].pos, 1,
                  "a comma join without WHERE is a cross join, which is not supported yet; join "
                  "the two on equal keys in WHERE");
    }
    // FROM a, b WHERE c is the inner join of a and b ON c.
    table_ref& j = _synthetic.emplace_back();
    j.kind = table_ref_kind::join;
    j.pos = sc.from[1].pos;
    j.join = join_kind::inner;
    j.left = sc.from[0];
    j.right = sc.from[1];
    j.condition = *sc.where;
    where_used = true;
    return join(j);
}

parse_result<query_out> builder::select_from(const query& q, relation rel, bool with_where) {
    const select_core& sc = q.select;
    if (sc.where && with_where) {
        translator tr(rel, rel.s.schema_of());
        auto pred = tr.tr(*sc.where, en::data_type::boolean());
        if (!pred) {
            return pred.error();
        }
        rel.s = rel.s.filter(pred.value());
        if (auto c = check(sc.where->pos); !c) {
            return c.error();
        }
        step(fmt::format("filter {}", pred.value().to_string()));
    }
    auto names = output_names(q, rel);
    if (!names) {
        return names.error();
    }

    bool is_grouped = !sc.group_by.empty() || bool(sc.having);
    for (const auto& item : sc.items) {
        is_grouped = is_grouped || has_aggregate(item.value);
    }
    if (is_grouped) {
        auto out = this->grouped(q, std::move(rel), names.value());
        if (!out) {
            return out;
        }
        if (sc.distinct && !out.value().updating.empty()) {
            return unsupported(q.pos, fmt::format("SELECT DISTINCT over the changelog of {}",
                                                  out.value().updating));
        }
        if (sc.distinct) {
            if (auto x = exchange(out.value().s, out.value().names, q.pos); !x) {
                return x.error();
            }
            auto s = out.value().s.deduplicate(out.value().names);
            step(fmt::format("deduplicate {}", join_names(out.value().names)));
            if (auto c = check(q.pos); !c) {
                return c.error();
            }
            out.value().s = s;
        }
        return out;
    }
    if (rel.window) {
        return unsupported(*rel.window->call,
                           fmt::format("{} without GROUP BY window_start, window_end",
                                       text::to_upper(rel.window->call->names.back())));
    }
    translator tr(rel, rel.s.schema_of());
    std::vector<en::named_expr> cols;
    std::size_t n = 0;
    const select_item* proctime = nullptr; // the first PROCTIME() item, and its column
    std::size_t proctime_col = 0;
    for (const auto& item : sc.items) {
        if (item.value.kind == expr_kind::star) {
            for (const auto* c : star_columns(item.value, rel)) {
                cols.push_back(en::as(en::col(c->engine), names.value()[n++]));
            }
            continue;
        }
        if (const rel_column* row = row_item(item, rel)) {
            cols.push_back(en::as(en::col(row->engine), names.value()[n++]));
            for (const auto* f : row_fields(rel.cols, *row)) {
                cols.push_back(en::as(en::col(f->engine), names.value()[n++]));
            }
            continue;
        }
        auto v = tr.tr(item.value);
        if (!v) {
            return v.error();
        }
        if (!proctime && is_proctime(item.value)) {
            proctime = &item;
            proctime_col = cols.size();
        }
        cols.push_back(en::as(v.value(), names.value()[n++]));
    }
    {
        const en::stream input = rel.s;
        rel.s = rel.s.project(cols);
        carry(input, rel.s, cols);
    }
    if (auto c = check(sc.items.empty() ? q.pos : sc.items[0].value.pos); !c) {
        return c.error();
    }
    step(fmt::format("project {}", describe(cols)));
    if (proctime && rel.updating.empty()) {
        if (auto r = processing_time(rel, cols[proctime_col].name, proctime->value.pos); !r) {
            return r.error();
        }
    }
    if (sc.distinct && !rel.updating.empty()) {
        return unsupported(q.pos,
                           fmt::format("SELECT DISTINCT over the changelog of {}", rel.updating));
    }
    if (sc.distinct) {
        if (auto x = exchange(rel.s, names.value(), q.pos); !x) {
            return x.error();
        }
        rel.s = rel.s.deduplicate(names.value());
        step(fmt::format("deduplicate {}", join_names(names.value())));
        if (auto c = check(q.pos); !c) {
            return c.error();
        }
    }
    return query_out{rel.s, names.value(), rel.updating, rel.proctime,
                     sc.distinct ? std::nullopt : kept_bounds(rel.bounds, cols)};
}

parse_result<query_out> builder::top_n(const query& outer, const select_item& rn) {
    const table_ref& from = outer.select.from[0];
    const query& inner = *from.subquery;
    const select_core& ic = inner.select;
    const expr& call = rn.value;
    const window_spec& over = *call.over;
    if (!inner.with.empty() || !inner.order_by.empty() || inner.limit || ic.distinct ||
        !ic.group_by.empty() || ic.having) {
        return unsupported(
            call, "ROW_NUMBER() OVER in a query with WITH, ORDER BY, LIMIT, DISTINCT or GROUP BY "
                  "(aggregate in a subquery below it)");
    }
    if (over.has_frame) {
        return unsupported(call, "ROW_NUMBER() OVER with a frame");
    }
    if (rn.alias.empty()) {
        return at(call, "name the ROW_NUMBER() column (AS rn) and filter on it: WHERE rn <= N");
    }
    // N from the outer WHERE, which must be exactly `rn <= N`, `rn < N` or `rn = 1`.
    const expr* w = outer.select.where.get();
    std::optional<int64_t> n;
    auto is_rn = [&](const expr& e) {
        return e.kind == expr_kind::column && e.names.back() == rn.alias;
    };
    auto int_of = [](const expr& e) -> std::optional<int64_t> {
        if (e.kind != expr_kind::literal || e.literal != literal_kind::integer) {
            return std::nullopt;
        }
        int64_t v = 0;
        auto [p, ec] = std::from_chars(e.text.data(), e.text.data() + e.text.size(), v);
        if (ec != std::errc() || p != e.text.data() + e.text.size()) {
            return std::nullopt;
        }
        return v;
    };
    if (w && w->kind == expr_kind::binary && w->args.size() == 2) {
        std::string op = w->text;
        const expr* l = &w->args[0];
        const expr* r = &w->args[1];
        if (is_rn(*r) && !is_rn(*l)) {
            std::swap(l, r);
            op = op == "<=" ? ">=" : op == ">=" ? "<=" : op == "<" ? ">" : op == ">" ? "<" : op;
        }
        auto v = int_of(*r);
        if (is_rn(*l) && v) {
            if (op == "<=") {
                n = *v;
            } else if (op == "<") {
                n = *v - 1;
            } else if (op == "=" && *v == 1) {
                n = 1;
            }
        }
    }
    if (!n || *n < 1) {
        return unsupported(
            w ? *w : call,
            fmt::format("a ROW_NUMBER() query other than a Top-N filtered by WHERE {} "
                        "<= N",
                        rn.alias));
    }
    bool where_used = false;
    auto rel_r = from_clause(ic, where_used);
    if (!rel_r) {
        return rel_r.error();
    }
    relation rel = std::move(rel_r).value();
    if (rel.window) {
        return unsupported(*rel.window->call,
                           "a Top-N straight over a window table function (aggregate per "
                           "window first, then rank the aggregated rows)");
    }
    if (ic.where && !where_used) {
        translator tr(rel, rel.s.schema_of());
        auto pred = tr.tr(*ic.where, en::data_type::boolean());
        if (!pred) {
            return pred.error();
        }
        rel.s = rel.s.filter(pred.value());
        if (auto c = check(ic.where->pos); !c) {
            return c.error();
        }
        step(fmt::format("filter {}", pred.value().to_string()));
    }
    translator tr(rel, rel.s.schema_of());
    en::top_n_spec spec;
    spec.n = static_cast<size_t>(*n);
    bool has_start = false;
    for (const expr& k : over.partition_by) {
        if (k.kind != expr_kind::column) {
            return unsupported(k, "PARTITION BY an expression in a Top-N");
        }
        auto c = tr.resolve(k);
        if (!c) {
            return c.error();
        }
        spec.partition_keys.push_back(c.value()->engine);
        if (c.value()->name == "window_start") {
            has_start = true;
        }
        if (c.value()->name == "window_end") {
            spec.window_end = c.value()->engine;
        }
    }
    if (has_start != !spec.window_end.empty()) {
        return at(call, "a window Top-N partitions by both window_start and window_end");
    }
    const bool windowed = has_start;
    if (!windowed && !rel.updating.empty()) {
        return unsupported(
            call, fmt::format("a Top-N over an updating input (the changelog of {})", rel.updating));
    }
    if (over.order_by.empty()) {
        return unsupported(call, "ROW_NUMBER() OVER without ORDER BY");
    }
    std::vector<std::pair<std::string, bool>> order;
    std::vector<std::string> order_text;
    for (const order_item& o : over.order_by) {
        if (o.value.kind != expr_kind::column) {
            return unsupported(o.value, "a Top-N ordered by an expression (order by a column)");
        }
        if (o.nulls_first && *o.nulls_first) {
            return unsupported(o.value, "NULLS FIRST in a Top-N (NULLs rank last)");
        }
        auto oc = tr.resolve(o.value);
        if (!oc) {
            return oc.error();
        }
        order.emplace_back(oc.value()->engine, o.descending);
        order_text.push_back(
            fmt::format("{} {}", oc.value()->engine, o.descending ? "desc" : "asc"));
    }
    spec.order_by = order[0].first;
    spec.descending = order[0].second;
    spec.then_by.assign(order.begin() + 1, order.end());

    // Unbounded forms: ORDER BY the event time with rn = 1 is a deduplication (ASC keeps each
    // key's first row, an append-only stream; DESC its last, a changelog); anything else is a
    // Top-N changelog, with a rank column only when the outer query reads rn.
    bool rank_read = false;
    for (const auto& item : outer.select.items) {
        rank_read = rank_read || reads_column(item.value, rn.alias);
    }
    for (const expr& g : outer.select.group_by) {
        rank_read = rank_read || reads_column(g, rn.alias);
    }
    if (outer.select.having) {
        rank_read = rank_read || reads_column(*outer.select.having, rn.alias);
    }
    const std::string& time = rel.s.time_column();
    const bool dedup = !windowed && spec.n == 1 && order.size() == 1 && !time.empty() &&
                       spec.order_by == time;
    std::string updating;
    std::optional<en::expr> rank; // what rn is, when the outer query reads it
    if (auto x = exchange(rel.s, spec.partition_keys, call.pos, "a Top-N without PARTITION BY"); !x) {
        return x.error();
    }
    if (dedup && !spec.descending) {
        rel.s = rel.s.deduplicate(spec.partition_keys);
        if (auto c = check(call.pos, head_length(call)); !c) {
            return c.error();
        }
        step(fmt::format("deduplicate {} (keep the first row)", join_names(spec.partition_keys)));
        rank = en::lit(int64_t(1));
    } else {
        std::string label = fmt::format("top-n {} by {} per {}", spec.n, join_names(order_text),
                                        join_names(spec.partition_keys));
        if (windowed) {
            rank = en::col("rank");
        } else if (spec.n == 1) {
            rank = en::lit(int64_t(1));
        } else if (rank_read) {
            spec.rank_column = true;
            rank = en::col("rank");
        }
        if (dedup) {
            spec.later_wins_ties = true;
            updating = "deduplication keeping the last row";
            label = fmt::format("deduplicate {} (keep the last row by {}, a changelog)",
                                join_names(spec.partition_keys), time);
        } else if (!windowed) {
            updating = "a Top-N without a window";
            label += spec.rank_column ? " (a changelog with ranks)" : " (a changelog)";
        }
        rel.s = rel.s.top_n(spec);
        if (auto c = check(call.pos, head_length(call)); !c) {
            return c.error();
        }
        step(label);
    }
    // The inner SELECT list over the ranked rows (the ROW_NUMBER column is `rank`).
    if (rank && rank->node().op == en::expr_op::column) {
        rel.cols.push_back({"$rank", "", "rank", false, true});
    }
    translator ranked(rel, rel.s.schema_of());
    auto names = output_names(inner, rel);
    if (!names) {
        return names.error();
    }
    std::vector<en::named_expr> cols;
    std::vector<std::string> kept;
    std::size_t i = 0;
    for (const auto& item : ic.items) {
        if (&item == &rn) {
            if (rank) { // else the outer query does not read it
                cols.push_back(en::as(*rank, names.value()[i]));
                kept.push_back(names.value()[i]);
            }
            ++i;
            continue;
        }
        if (item.value.kind == expr_kind::star) {
            for (const auto* c : star_columns(item.value, rel)) {
                cols.push_back(en::as(en::col(c->engine), names.value()[i]));
                kept.push_back(names.value()[i++]);
            }
            continue;
        }
        auto v = ranked.tr(item.value);
        if (!v) {
            return v.error();
        }
        cols.push_back(en::as(v.value(), names.value()[i]));
        kept.push_back(names.value()[i++]);
    }
    rel.s = rel.s.project(cols);
    if (auto c = check(ic.items[0].value.pos); !c) {
        return c.error();
    }
    step(fmt::format("project {}", describe(cols)));
    // The outer query over it; its WHERE became the Top-N's N.
    relation ranked_rel;
    ranked_rel.s = rel.s;
    ranked_rel.updating = updating;
    ranked_rel.proctime = rel.proctime;
    for (const auto& nm : kept) {
        ranked_rel.cols.push_back({nm, from.alias, nm, false});
    }
    return select_from(outer, std::move(ranked_rel), false);
}

parse_result<query_out> builder::grouped(const query& q, relation rel,
                                         const std::vector<std::string>& names) {
    const select_core& sc = q.select;
    translator in(rel, rel.s.schema_of());
    // The window: from FROM (a window TVF) or from GROUP BY (TUMBLE/HOP/SESSION(ts, …)).
    std::optional<window_info> win = rel.window;
    std::string legacy; // "TUMBLE" when GROUP BY names a group window
    bool has_start = false, has_end = false;
    std::vector<key_item> keys;
    for (const expr& g : sc.group_by) {
        if (g.kind == expr_kind::column) {
            auto c = in.resolve(g);
            if (!c) {
                return c.error();
            }
            if (c.value()->window_only) {
                if (c.value()->engine == "window_start") {
                    has_start = true;
                } else if (c.value()->engine == "window_end") {
                    has_end = true;
                }
                continue; // window_time follows from window_end
            }
            bool again = std::any_of(keys.begin(), keys.end(), [&](const key_item& k) {
                return k.source == c.value()->engine;
            });
            if (again) {
                continue;
            }
            key_item k;
            k.ast = &g;
            k.source = c.value()->engine;
            k.name = c.value()->engine;
            k.value = en::col(k.source);
            keys.push_back(std::move(k));
            continue;
        }
        if (g.kind == expr_kind::call && is_group_window(text::to_upper(g.names.back()))) {
            std::string u = text::to_upper(g.names.back());
            if (win) {
                return at(g, rel.window
                                 ? fmt::format("GROUP BY {}(…) over a window table function", u)
                                 : "two group windows in one GROUP BY");
            }
            if (g.args.empty() || g.args[0].kind != expr_kind::column) {
                return at(g, fmt::format("{}(…) in GROUP BY takes the event-time column first", u));
            }
            if (!rel.updating.empty()) {
                return unsupported(g, fmt::format("a window over an updating input (the changelog "
                                                  "of {})",
                                                  rel.updating));
            }
            auto tc = in.resolve(g.args[0]);
            if (!tc) {
                return tc.error();
            }
            std::string table;
            if (sc.from[0].kind == table_ref_kind::named) {
                const table_schema* ts = _catalog.find_table(sc.from[0].names);
                bool cte = std::any_of(_ctes.begin(), _ctes.end(), [&](const common_table* c) {
                    return sc.from[0].names.size() == 1 && c->name == sc.from[0].names[0];
                });
                if (ts && ts->kind == relation_kind::table && !cte) {
                    table = dotted(sc.from[0].names);
                }
            }
            if (auto why = not_event_time(rel, tc.value()->engine, table); !why.empty()) {
                return at(g.args[0], why);
            }
            window_info w;
            w.call = &g;
            w.time = tc.value()->engine;
            if (u == "TUMBLE") {
                if (g.args.size() != 2) {
                    return unsupported(g, "TUMBLE with an offset");
                }
                auto s = interval_ms(g.args[1]);
                if (!s) {
                    return s.error();
                }
                w.spec = en::tumble(std::chrono::milliseconds(s.value()));
            } else if (u == "HOP") {
                auto sl = interval_ms(g.args[1]);
                if (!sl) {
                    return sl.error();
                }
                auto s = interval_ms(g.args[2]);
                if (!s) {
                    return s.error();
                }
                if (auto e = check_windows_per_row(g, "HOP", "slide", s.value(), sl.value(), _opts)) {
                    return *e;
                }
                w.spec = en::hop(std::chrono::milliseconds(s.value()),
                                 std::chrono::milliseconds(sl.value()));
            } else {
                auto gap = interval_ms(g.args[1]);
                if (!gap) {
                    return gap.error();
                }
                w.spec = en::session(std::chrono::milliseconds(gap.value()));
            }
            w.label = window_label(w.spec);
            win = std::move(w);
            legacy = u;
            continue;
        }
        if (has_aggregate(g)) {
            return at(g, "an aggregate in GROUP BY");
        }
        if (std::any_of(keys.begin(), keys.end(),
                        [&](const key_item& k) { return k.source.empty() && *k.ast == g; })) {
            continue;
        }
        key_item k;
        k.ast = &g;
        k.name = fmt::format("$k{}", keys.size());
        auto v = in.tr(g);
        if (!v) {
            return v.error();
        }
        k.value = v.value();
        keys.push_back(std::move(k));
    }
    source_pos gpos = sc.group_by.empty() ? q.pos : sc.group_by[0].pos;
    if (rel.window && !(has_start && has_end)) {
        return at(gpos, 1, "a window aggregation groups by both window_start and window_end");
    }
    if (win && win->spec.kind == en::window_kind::session && rel.window) {
        std::vector<std::string> plain;
        for (const auto& k : keys) {
            plain.push_back(k.source.empty() ? k.name : k.source);
        }
        auto sorted = [](std::vector<std::string> v) {
            std::sort(v.begin(), v.end());
            return v;
        };
        if (sorted(plain) != sorted(win->partition)) {
            if (win->partition.empty()) {
                return at(
                    *win->call,
                    fmt::format("SESSION without PARTITION BY keeps one session for all rows; "
                                "grouping it by {} is not supported yet; partition the sessions: "
                                "SESSION(TABLE t PARTITION BY {}, …)",
                                join_names(plain), join_names(plain)));
            }
            return at(
                *win->call,
                fmt::format("SESSION partitioned by ({}) but grouped by ({}): the GROUP BY keys "
                            "must be the PARTITION BY columns",
                            join_names(win->partition), join_names(plain)));
        }
    }

    // Types of the window's output, grown as aggregates are found: NULLs in the final
    // projection take their types from it.
    std::vector<en::field> out_fields;
    if (win) {
        out_fields = {{"window_start", en::data_type::timestamp(), false},
                      {"window_end", en::data_type::timestamp(), false}};
    }
    for (const auto& k : keys) {
        out_fields.push_back({k.name, in.type_of(k.value).value_or(en::data_type::int64()), true});
    }
    std::vector<agg_item> aggs;
    translator fin(rel, en::make_schema(out_fields));
    auto add_agg = [&](const expr& e) -> parse_result<en::expr> {
        std::string u = text::to_upper(e.names.back());
        for (const auto& a : aggs) {
            if (*a.ast == e) {
                en::expr c = en::col(a.spec.name);
                return c;
            }
        }
        agg_item a;
        a.ast = &e;
        bool star = e.args.empty() || (e.args.size() == 1 && e.args[0].kind == expr_kind::star);
        if (e.args.size() > 1) {
            return unsupported(e, fmt::format("{} with {} arguments", u, e.args.size()));
        }
        if (e.distinct && u != "COUNT") {
            return unsupported(e, fmt::format("{}(DISTINCT …)", u));
        }
        if (!win && (u == "FIRST_VALUE" || u == "LAST_VALUE")) {
            return unsupported(e, fmt::format("{} without a window", u));
        }
        std::optional<en::expr> arg;
        if (!star) {
            auto v = in.tr(e.args[0]);
            if (!v) {
                return v.error();
            }
            arg = v.value();
        } else if (u != "COUNT") {
            return at(e, fmt::format("{}(*)", u));
        }
        if (e.filter) {
            // FILTER (WHERE c): the aggregate sees NULL where c is not TRUE, and every
            // aggregate here skips NULLs (COUNT(*) becomes a count of a constant).
            auto c = in.tr(*e.filter, en::data_type::boolean());
            if (!c) {
                return c.error();
            }
            en::expr v = arg ? *arg : en::lit(int64_t(1));
            auto t = in.type_of(v).value_or(en::data_type::int64());
            arg = en::case_when({{c.value(), v}}, en::null_of(t));
            star = false;
        }
        std::string name = fmt::format("$a{}", aggs.size());
        std::string input = fmt::format("$in{}", aggs.size());
        bool star_arg = e.args.empty() || e.args[0].kind == expr_kind::star;
        a.arg_ast = star_arg ? nullptr : &e.args[0];
        a.filter_ast = e.filter.get();
        for (const auto& other : aggs) {
            bool same_arg = a.arg_ast && other.arg_ast ? *a.arg_ast == *other.arg_ast
                                                       : a.arg_ast == other.arg_ast;
            bool same_filter = a.filter_ast && other.filter_ast ? *a.filter_ast == *other.filter_ast
                                                                : a.filter_ast == other.filter_ast;
            if (!other.input_name.empty() && same_arg && same_filter) {
                input = other.input_name;
            }
        }
        if (!star) {
            a.input_name = input;
        }
        if (u == "COUNT") {
            a.spec = star ? en::count() : e.distinct ? en::count_distinct(input) : en::count(input);
        } else if (u == "SUM") {
            a.spec = en::sum(input);
        } else if (u == "MIN") {
            a.spec = en::min(input);
        } else if (u == "MAX") {
            a.spec = en::max(input);
        } else if (u == "AVG") {
            a.spec = en::avg(input);
        } else if (u == "FIRST_VALUE") {
            a.spec = en::first_value(input);
        } else if (u == "LAST_VALUE") {
            a.spec = en::last_value(input);
        } else {
            return unsupported(e, fmt::format("the aggregate {}", u));
        }
        a.spec = a.spec.as(name);
        std::optional<en::data_type> in_type;
        if (arg) {
            a.input = *arg;
            in_type = in.type_of(*arg);
            if (!in_type) {
                auto b = en::bind(*arg, *rel.s.schema_of());
                return at(e, b ? std::string("cannot type the argument") : b.error().message);
            }
            auto b = en::bind_aggregate(
                a.spec, en::schema(std::vector<en::field>{{input, *in_type, true}}));
            if (!b) {
                return at(e, b.error().message);
            }
            a.output = b.value().output_type;
        } else {
            a.output = en::data_type::int64();
        }
        out_fields.push_back({name, a.output, true});
        fin.schema = en::make_schema(out_fields);
        aggs.push_back(std::move(a));
        en::expr c = en::col(name);
        // AVG of integers is an integer, as in Flink SQL (truncated toward zero).
        if (u == "AVG" && in_type && in_type->id == en::type_id::int64) {
            c = en::cast(c, en::data_type::int64());
        }
        return c;
    };
    auto window_property = [&](const expr& e,
                               std::string_view prop) -> parse_result<std::optional<en::expr>> {
        if (prop == "START") {
            return std::optional<en::expr>(en::col("window_start"));
        }
        if (prop == "END") {
            return std::optional<en::expr>(en::col("window_end"));
        }
        if (prop == "ROWTIME") {
            return std::optional<en::expr>(en::col("window_end") - en::lit(int64_t(1)));
        }
        return unsupported(e, fmt::format("{} (processing time)", text::to_upper(e.names.back())));
    };
    fin.hook = [&](const expr& e) -> parse_result<std::optional<en::expr>> {
        if (e.kind == expr_kind::call && !e.over && is_aggregate_name(text::to_upper(e.names.back()))) {
            auto c = add_agg(e);
            if (!c) {
                return c.error();
            }
            return std::optional<en::expr>(c.value());
        }
        if (e.kind == expr_kind::call) {
            auto [w, prop] = group_window_property(text::to_upper(e.names.back()));
            if (!w.empty()) {
                if (legacy.empty()) {
                    return at(e, fmt::format("{} needs GROUP BY {}(…)", text::to_upper(e.names.back()), w));
                }
                if (w != legacy) {
                    return at(e,
                              fmt::format("{} with GROUP BY {}(…)", text::to_upper(e.names.back()), legacy));
                }
                return window_property(e, prop);
            }
        }
        if (e.kind == expr_kind::column) {
            auto c = fin.resolve(e);
            if (!c) {
                return c.error();
            }
            if (c.value()->window_only) {
                if (c.value()->engine == "window_time") {
                    return std::optional<en::expr>(en::col("window_end") - en::lit(int64_t(1)));
                }
                return std::optional<en::expr>(en::col(c.value()->engine));
            }
            for (const auto& k : keys) {
                if (k.source == c.value()->engine) {
                    return std::optional<en::expr>(en::col(k.name));
                }
            }
        }
        for (const auto& k : keys) {
            if (k.source.empty() && *k.ast == e) {
                return std::optional<en::expr>(en::col(k.name));
            }
        }
        if (e.kind == expr_kind::column) {
            return at(e, fmt::format("column {} is neither a group key nor inside an aggregate",
                                     dotted(e.names)));
        }
        return std::optional<en::expr>();
    };

    std::vector<en::named_expr> final_cols;
    for (std::size_t i = 0; i < sc.items.size(); ++i) {
        const auto& item = sc.items[i];
        if (item.value.kind == expr_kind::star) {
            return unsupported(item.value, "SELECT * with GROUP BY");
        }
        auto v = fin.tr(item.value);
        if (!v) {
            return v.error();
        }
        final_cols.push_back(en::as(v.value(), names[i]));
    }
    std::optional<en::expr> having;
    if (sc.having) {
        auto h = fin.tr(*sc.having, en::data_type::boolean());
        if (!h) {
            return h.error();
        }
        having = h.value();
    }
    if (aggs.empty()) {
        // A window needs an aggregate; grouping alone (SELECT DISTINCT-like) counts rows.
        agg_item a;
        a.spec = en::count().as("$a0");
        a.output = en::data_type::int64();
        static const expr none;
        a.ast = &none;
        aggs.push_back(std::move(a));
    }

    // Before the window: the event time, the keys and the aggregates' inputs.
    std::vector<en::named_expr> pre;
    if (win) {
        pre.push_back(en::as(en::col(win->time), win->time));
    }
    std::vector<std::string> key_names;
    for (const auto& k : keys) {
        if (!win || k.name != win->time) {
            pre.push_back(en::as(k.value, k.name));
        }
        key_names.push_back(k.name);
    }
    for (std::size_t i = 0; i < aggs.size(); ++i) {
        if (aggs[i].input_name == fmt::format("$in{}", i)) {
            pre.push_back(en::as(aggs[i].input, aggs[i].input_name));
        }
    }
    source_pos wpos = win ? win->call->pos : gpos;
    uint32_t wlen = win ? head_length(*win->call) : 1;
    if (!pre.empty()) { // COUNT(*) alone needs no column
        const en::stream input = rel.s;
        rel.s = rel.s.project(pre);
        carry(input, rel.s, pre);
        if (auto c = check(wpos, wlen); !c) {
            return c.error();
        }
        step(fmt::format("project {}", describe(pre)));
    }
    en::window_options wo;
    wo.allowed_lateness = _opts.allowed_lateness;
    std::vector<en::aggregate_spec> specs;
    std::vector<std::string> agg_text;
    for (std::size_t i = 0; i < aggs.size(); ++i) {
        specs.push_back(aggs[i].spec);
        const char* kind = "?";
        switch (aggs[i].spec.kind) {
        case en::agg_kind::count_star:
            kind = "count(*)";
            break;
        case en::agg_kind::count:
            kind = "count";
            break;
        case en::agg_kind::count_distinct:
            kind = "count distinct";
            break;
        case en::agg_kind::sum:
            kind = "sum";
            break;
        case en::agg_kind::min:
            kind = "min";
            break;
        case en::agg_kind::max:
            kind = "max";
            break;
        case en::agg_kind::avg:
            kind = "avg";
            break;
        case en::agg_kind::first_value:
            kind = "first_value";
            break;
        case en::agg_kind::last_value:
            kind = "last_value";
            break;
        case en::agg_kind::percentile:
            kind = "percentile";
            break;
        }
        agg_text.push_back(
            aggs[i].spec.kind == en::agg_kind::count_star
                ? fmt::format("{} := {}", aggs[i].spec.name, kind)
                : fmt::format("{} := {}({})", aggs[i].spec.name, kind, aggs[i].spec.column));
    }
    std::string updating;
    en::stream w;
    if (auto x = exchange(rel.s, key_names, wpos, win ? "a window aggregate without GROUP BY keys" : "an aggregate without GROUP BY");
        !x) {
        return x.error();
    }
    if (!win) {
        // No window: one updating result per key (a changelog).
        en::group_options go;
        go.retractions = !rel.updating.empty();
        w = rel.s.group_aggregate(key_names, specs, go);
        carry(rel.s, w);
        if (auto c = check(wpos, wlen); !c) {
            return c.error();
        }
        step(fmt::format("group-aggregate{}{}{}: {}", keys.empty() ? "" : " by ",
                         join_names(key_names), go.retractions ? " (retracting)" : "",
                         join_names(agg_text)));
        updating = keys.empty() ? "an aggregate without a window" : "GROUP BY without a window";
    } else {
        w = keys.empty() ? rel.s.window(win->spec, wo).aggregate(specs)
                         : rel.s.key_by(key_names).window(win->spec, wo).aggregate(specs);
        carry(rel.s, w);
        if (auto c = check(wpos, wlen); !c) {
            return c.error();
        }
        step(fmt::format("window {} on {}{}{}: {}", win->label, win->time,
                         keys.empty() ? "" : " by ", join_names(key_names), join_names(agg_text)));
        _out.late.push_back(w.late_rows());
        if (auto c = check(wpos, wlen); !c) {
            return c.error();
        }
    }
    if (having) {
        const en::stream unfiltered = w;
        w = w.filter(*having);
        carry(unfiltered, w);
        if (auto c = check(sc.having->pos); !c) {
            return c.error();
        }
        step(fmt::format("filter {}", having->to_string()));
    }
    {
        const en::stream aggregated = w;
        w = w.project(final_cols);
        carry(aggregated, w, final_cols);
    }
    if (auto c = check(sc.items[0].value.pos); !c) {
        return c.error();
    }
    step(fmt::format("project {}", describe(final_cols)));
    // A selected window_time (or *_ROWTIME) is the event time of the window's rows, as in
    // Flink: windows further down (over a view or WITH query of this one) run on it. The
    // rows leave the window in window-end order, so a watermark right behind them is exact.
    for (std::size_t i = 0; i < sc.items.size(); ++i) {
        const expr& e = sc.items[i].value;
        bool rowtime = false;
        if (e.kind == expr_kind::column) {
            auto c = fin.resolve(e);
            rowtime = c && c.value()->window_only && c.value()->engine == "window_time";
        } else if (e.kind == expr_kind::call && !e.over) {
            rowtime = group_window_property(text::to_upper(e.names.back())).second == "ROWTIME";
        }
        if (rowtime && win) {
            w = w.watermark(names[i], std::chrono::milliseconds(0));
            if (auto c = check(e.pos, head_length(e)); !c) {
                return c.error();
            }
            step(fmt::format("watermark {} - 0 ms", names[i]));
            break;
        }
    }
    std::optional<window_bounds> bounds;
    if (win && win->spec.kind != en::window_kind::session) {
        bounds = kept_bounds(window_bounds{win->spec, win->label, "window_start", "window_end"},
                             final_cols);
    }
    return query_out{w, names, updating, false, bounds};
}

parse_result<bool> builder::insert(const insert_stmt& s, source_pos pos) {
    if (s.overwrite) {
        return unsupported(pos, "INSERT OVERWRITE");
    }
    const table_schema* t = _catalog.find_table(s.table);
    if (!t) {
        return at(pos, 1, fmt::format("table {} does not exist", dotted(s.table)));
    }
    if (t->kind != relation_kind::table) {
        return at(pos, 1, fmt::format("{} is a view; INSERT needs a table", dotted(s.table)));
    }
    auto phys = physical_schema(*t);
    if (!phys) {
        return phys.error();
    }
    auto q = query_(s.body);
    if (!q) {
        return q.error();
    }
    auto qs = q.value().s.schema_of();
    if (!qs) {
        return check(pos).error();
    }
    // The query's columns in the order INSERT lists them (or the sink's physical order).
    std::vector<std::string> targets = s.columns;
    if (targets.empty()) {
        for (const auto& f : phys.value()->fields()) {
            targets.push_back(f.name);
        }
    }
    if (targets.size() != qs->size()) {
        return at(s.body.pos, 1,
                  fmt::format("the query has {} columns, the sink {} takes {}", qs->size(),
                              dotted(s.table), targets.size()));
    }
    std::vector<en::named_expr> cols;
    for (const auto& f : phys.value()->fields()) {
        auto it = std::find(targets.begin(), targets.end(), f.name);
        if (it == targets.end()) {
            cols.push_back(en::as(en::null_of(f.type), f.name));
            continue;
        }
        const auto& from = qs->at(std::size_t(it - targets.begin()));
        en::expr v = en::col(from.name);
        if (!(from.type == f.type)) {
            v = en::cast(v, f.type);
        }
        cols.push_back(en::as(v, f.name));
    }
    auto out = q.value().s.project(cols);
    if (auto c = check(pos); !c) {
        return c.error();
    }
    step(fmt::format("project {}", describe(cols)));
    // A changelog goes to a sink that upserts by its PRIMARY KEY (update_before rows are
    // dropped, deletes delete the key); a sink without one would take every change as a new
    // row, so only a blackhole may take it.
    const std::string& updating = q.value().updating;
    if (!updating.empty() && !t->primary_key.empty()) {
        out = out.upsert(t->primary_key);
        if (auto c = check(pos); !c) {
            return c.error();
        }
        step(fmt::format("upsert by {}", join_names(t->primary_key)));
    } else if (!updating.empty() && !text::iequals(t->option("connector").value_or(""), "blackhole")) {
        return at(pos, 1,
                  fmt::format("table sink {} doesn't support consuming update changes, which {} "
                              "produces; declare its PRIMARY KEY (…) NOT ENFORCED (the query's "
                              "unique key, e.g. the GROUP BY columns) to write them as upserts",
                              dotted(s.table), updating));
    }
    _out.updating = updating;
    auto r = _conn.sink(out, *t);
    if (!r) {
        const auto& why = r.error().message;
        if (why.starts_with(fmt::format("table {}:", dotted(s.table)))) return at(pos, 1, why);
        return at(pos, 1, fmt::format("sink {}: {}", dotted(s.table), why));
    }
    if (auto c = check(pos); !c) {
        return c.error();
    }
    step(fmt::format("sink {}", dotted(s.table)));
    _out.columns.clear();
    for (const auto& f : phys.value()->fields()) {
        _out.columns.push_back(f.name);
    }
    return true;
}

/// A connector that yields no rows and drops what it is given: for EXPLAIN.
class null_connector final : public connector_factory {
public:
    en::result<en::stream> source(en::pipeline& p, const table_schema&,
                                  const en::schema_ptr& columns) override {
        return p.source(columns, en::from_batches({}));
    }
    en::result<void> sink(en::stream rows, const table_schema&) override {
        rows.sink([](const en::batch&) {});
        return outcome::success();
    }
};

} // namespace

std::optional<engine::data_type> engine_type(const data_type& t) {
    switch (t.kind) {
    case type_kind::boolean:
        return en::data_type::boolean();
    case type_kind::tinyint:
    case type_kind::smallint:
    case type_kind::int_:
    case type_kind::bigint:
        return en::data_type::int64();
    case type_kind::float_:
    case type_kind::double_:
    case type_kind::decimal:
        return en::data_type::float64();
    case type_kind::char_:
    case type_kind::varchar:
    case type_kind::string:
        return en::data_type::string();
    case type_kind::timestamp:
    case type_kind::timestamp_ltz:
        return en::data_type::timestamp(en::time_unit::millis);
    case type_kind::row:
        return en::data_type::boolean(); // its null flag; the fields are columns of their own
    default:
        return std::nullopt;
    }
}

/// Appends the engine fields holding column `name` of type `t` of table `table`: one, or for
/// a ROW its flag and then its fields' (`engine::row_layout`).
parse_result<bool> flatten(const std::string& name, const data_type& t, bool nullable,
                           const std::string& table, std::vector<engine::field>& out) {
    auto et = engine_type(t);
    if (!et) {
        return unsupported(source_pos{},
                           fmt::format("column {} of table {}: type {}", name, table, to_string(t)));
    }
    out.push_back({name, *et, nullable && t.nullable});
    if (t.kind == type_kind::row) {
        for (std::size_t i = 0; i < t.children.size() && i < t.field_names.size(); ++i) {
            // A field of a ROW that may be NULL may be NULL.
            auto r = flatten(name + "." + t.field_names[i], t.children[i],
                             nullable && t.nullable, table, out);
            if (!r) {
                return r;
            }
        }
    }
    return true;
}

parse_result<engine::schema_ptr> physical_schema(const table_schema& t) {
    std::vector<en::field> fields;
    for (const auto& c : t.columns) {
        if (c.computed || c.metadata) {
            continue;
        }
        if (auto r = flatten(c.name, c.type, true, dotted(t.name), fields); !r) {
            return r.error();
        }
    }
    return en::make_schema(std::move(fields));
}

parse_result<planned_statement> planner::plan(const statement& s, engine::pipeline& p) {
    const statement* target = &s;
    while (auto* ex = std::get_if<explain_stmt>(&target->node)) {
        if (!ex->target) {
            return at(s.pos, 1, "EXPLAIN without a statement");
        }
        target = ex->target.get();
    }
    binder b(_catalog);
    auto bound = b.bind(*target);
    if (!bound) {
        return bound.error();
    }
    planned_statement out;
    if (_opts.parallelism > 1) {
        out.stages.push_back(fmt::format("parallelism {}: every instance runs the stages below on its share of "
                                         "the sources",
                                         _opts.parallelism));
    }
    builder bld(_catalog, _connectors, _opts, p, out);
    if (auto* ins = std::get_if<insert_stmt>(&target->node)) {
        bld.reads(ins->body);
        auto r = bld.insert(*ins, target->pos);
        if (!r) {
            return r.error();
        }
        return out;
    }
    if (auto* q = std::get_if<query_stmt>(&target->node)) {
        bld.reads(q->body);
        auto r = bld.query_(q->body);
        if (!r) {
            return r.error();
        }
        out.output = r.value().s;
        out.columns = r.value().names;
        out.updating = r.value().updating;
        out.stages.push_back("output");
        return out;
    }
    return at(target->pos, 1,
              "only INSERT INTO … SELECT and queries become pipelines; this statement changes the "
              "catalog");
}

parse_result<bool> apply_setting(const set_stmt& s, source_pos pos, plan_options& opts) {
    if (!s.reset && text::iequals(s.key, parallelism_key)) {
        uint32_t n = 0;
        auto [end, ec] = std::from_chars(s.value.data(), s.value.data() + s.value.size(), n);
        if (ec != std::errc() || end != s.value.data() + s.value.size() || n < 1 || n > max_parallelism) {
            return error_at(pos, 3, fmt::format("'{}' is a number of instances from 1 to {}, not '{}'",
                                                parallelism_key, max_parallelism, s.value));
        }
        opts.parallelism = n;
        return true;
    }
    if (s.reset || !text::iequals(s.key, max_windows_per_row_key)) {
        return false;
    }
    int64_t n = 0;
    auto [end, ec] = std::from_chars(s.value.data(), s.value.data() + s.value.size(), n);
    if (ec != std::errc() || end != s.value.data() + s.value.size() || n < 1 || n > 100000000) {
        return error_at(pos, 3, fmt::format("'{}' is a number of windows from 1 to 100000000, not '{}'",
                                            max_windows_per_row_key, s.value));
    }
    opts.max_windows_per_row = n;
    return true;
}

parse_result<std::string> explain(const statement& s, const catalog& cat, plan_options opts) {
    null_connector conn;
    en::pipeline p;
    planner pl(cat, conn, opts);
    auto r = pl.plan(s, p);
    if (!r) {
        return r.error();
    }
    std::string text;
    for (const auto& line : r.value().stages) {
        text += line + "\n";
    }
    return text;
}

} // namespace runnel::sql
