#include "engine/expr.h"

#include <cmath>
#include <map>
#include <optional>
#include <cstdio>
#include <limits>
#include <unordered_map>

#include <boost/regex.hpp>
#include <boost/unordered/unordered_flat_map.hpp>
#include "model/fundamental.h"
#include <fmt/format.h>

namespace runnel::engine {

struct bound_node {
    expr_op op;
    data_type type;
    size_t index = 0;
    value literal;
    std::vector<std::shared_ptr<const bound_node>> args;
    /// The expression reaches this node along more than one path (`LOWER(c)` in every WHEN of
    /// a CASE): one evaluation computes it once and reads it wherever it appears.
    bool shared = false;
};

namespace {

using node_ptr = std::shared_ptr<const bound_node>;

expr make(expr_op op, std::vector<expr> args) {
    auto n = std::make_shared<expr_node>();
    n->op = op;
    n->args = std::move(args);
    return expr(std::move(n));
}

const char* op_text(expr_op op) {
    switch (op) {
    case expr_op::add: return "+";
    case expr_op::sub: return "-";
    case expr_op::mul: return "*";
    case expr_op::div: return "/";
    case expr_op::mod: return "%";
    case expr_op::neg: return "-";
    case expr_op::eq: return "=";
    case expr_op::ne: return "<>";
    case expr_op::lt: return "<";
    case expr_op::le: return "<=";
    case expr_op::gt: return ">";
    case expr_op::ge: return ">=";
    case expr_op::and_: return "AND";
    case expr_op::or_: return "OR";
    case expr_op::not_: return "NOT";
    case expr_op::is_null: return "IS NULL";
    case expr_op::is_not_null: return "IS NOT NULL";
    case expr_op::case_when: return "CASE";
    case expr_op::cast: return "CAST";
    case expr_op::lower: return "LOWER";
    case expr_op::upper: return "UPPER";
    case expr_op::concat: return "CONCAT";
    case expr_op::substring: return "SUBSTRING";
    case expr_op::char_length: return "CHAR_LENGTH";
    case expr_op::like: return "LIKE";
    case expr_op::hour: return "HOUR";
    case expr_op::date_format: return "DATE_FORMAT";
    case expr_op::regexp_extract: return "REGEXP_EXTRACT";
    case expr_op::split_index: return "SPLIT_INDEX";
    case expr_op::replace: return "REPLACE";
    case expr_op::proctime: return "PROCTIME";
    case expr_op::column: return "column";
    case expr_op::literal: return "literal";
    }
    return "?";
}

/// "column 'price' (string)" or "'(a + 1)' (bigint)": names the operand at fault.
std::string describe(const expr& e, data_type t) {
    if (e.node().op == expr_op::column) {
        return fmt::format("column '{}' is {}", e.node().name, t.name());
    }
    return fmt::format("'{}' is {}", e.to_string(), t.name());
}

// ---- evaluation helpers ----

/// What evaluating a node gives: a new column, or a column of the batch itself (a plain
/// column reference), read in place rather than copied.
class colref {
public:
    colref(column c)
      : _own(std::move(c)) {}
    static colref borrow(const column& c) {
        colref r{column()};
        r._borrowed = &c;
        return r;
    }
    const column& operator*() const { return _borrowed ? *_borrowed : _own; }
    const column* operator->() const { return &**this; }
    /// The column as a value: moved out when owned, copied when borrowed.
    column take() && { return _borrowed ? *_borrowed : std::move(_own); }

private:
    column _own;
    const column* _borrowed = nullptr;
};

colref eval(const bound_node& n, const batch& b);

column broadcast(const value& v, data_type t, size_t rows) {
    if (!v.is_null()) {
        if (auto* i = std::get_if<int64_t>(&v.v); i && t.is_integral()) {
            return column::of_int64(t, std::vector<int64_t>(rows, *i));
        }
        if (t.id == type_id::float64) {
            auto* i = std::get_if<int64_t>(&v.v);
            return column::of_float64(std::vector<double>(rows, i ? double(*i) : std::get<double>(v.v)));
        }
        if (auto* b = std::get_if<bool>(&v.v)) {
            return column::of_bool(std::vector<uint8_t>(rows, *b ? 1 : 0));
        }
        if (auto* s = std::get_if<std::string>(&v.v); s && t.id == type_id::string) {
            return column::of_repeated_string(*s, rows);
        }
    }
    column c(t);
    c.reserve(rows);
    for (size_t i = 0; i < rows; ++i) {
        c.push_value(v);
    }
    return c;
}

int64_t scale_to(int64_t v, time_unit from, time_unit to) {
    if (from == to) {
        return v;
    }
    return from == time_unit::millis ? v * 1000 : (v >= 0 ? v / 1000 : -((-v + 999) / 1000));
}

template <typename F>
column binary_int(const column& a, const column& b, data_type out, F f) {
    column c(out);
    size_t n = a.size();
    c.reserve(n);
    const int64_t* x = a.int64_data();
    const int64_t* y = b.int64_data();
    for (size_t i = 0; i < n; ++i) {
        int64_t r;
        if (a.is_null(i) || b.is_null(i) || !f(x[i], y[i], r)) {
            c.push_null();
        } else {
            c.push_int64(r);
        }
    }
    return c;
}

template <typename F>
column binary_double(const column& a, const column& b, F f) {
    column c(data_type::float64());
    size_t n = a.size();
    c.reserve(n);
    for (size_t i = 0; i < n; ++i) {
        double r;
        if (a.is_null(i) || b.is_null(i) || !f(a.number_at(i), b.number_at(i), r)) {
            c.push_null();
        } else {
            c.push_float64(r);
        }
    }
    return c;
}

column arithmetic(const bound_node& n, const column& a, const column& b) {
    if (n.type.id == type_id::float64 && a.null_count() == 0 && b.null_count() == 0 &&
        (n.op == expr_op::add || n.op == expr_op::sub || n.op == expr_op::mul)) {
        size_t rows = a.size();
        std::vector<double> x(rows), y(rows), r(rows);
        for (size_t i = 0; i < rows; ++i) {
            x[i] = a.number_at(i);
            y[i] = b.number_at(i);
        }
        if (n.op == expr_op::add) for (size_t i = 0; i < rows; ++i) r[i] = x[i] + y[i];
        else if (n.op == expr_op::sub) for (size_t i = 0; i < rows; ++i) r[i] = x[i] - y[i];
        else for (size_t i = 0; i < rows; ++i) r[i] = x[i] * y[i];
        return column::of_float64(std::move(r));
    }
    if (n.type.id == type_id::float64) {
        switch (n.op) {
        case expr_op::add: return binary_double(a, b, [](double x, double y, double& r) { r = x + y; return true; });
        case expr_op::sub: return binary_double(a, b, [](double x, double y, double& r) { r = x - y; return true; });
        case expr_op::mul: return binary_double(a, b, [](double x, double y, double& r) { r = x * y; return true; });
        case expr_op::div: return binary_double(a, b, [](double x, double y, double& r) { r = x / y; return y != 0; });
        default: return binary_double(a, b, [](double x, double y, double& r) { r = std::fmod(x, y); return y != 0; });
        }
    }
    // Integral: bigint op bigint, timestamp ± bigint, timestamp - timestamp.
    int64_t sa = 1, sb = 1;
    if (a.type().id == type_id::timestamp && b.type().id == type_id::timestamp &&
        a.type().unit != b.type().unit) {
        (a.type().unit == time_unit::millis ? sa : sb) = 1000;
    }
    auto scaled = [](int64_t v, int64_t s, int64_t& r) {
        return s == 1 ? (r = v, true) : !__builtin_mul_overflow(v, s, &r);
    };
    switch (n.op) {
    case expr_op::add:
        return binary_int(a, b, n.type, [&](int64_t x, int64_t y, int64_t& r) {
            return !__builtin_add_overflow(x, y, &r);
        });
    case expr_op::sub:
        return binary_int(a, b, n.type, [&](int64_t x, int64_t y, int64_t& r) {
            int64_t xs, ys;
            return scaled(x, sa, xs) && scaled(y, sb, ys) && !__builtin_sub_overflow(xs, ys, &r);
        });
    case expr_op::mul:
        return binary_int(a, b, n.type, [](int64_t x, int64_t y, int64_t& r) {
            return !__builtin_mul_overflow(x, y, &r);
        });
    case expr_op::div:
        return binary_int(a, b, n.type, [](int64_t x, int64_t y, int64_t& r) {
            if (y == 0 || (y == -1 && x == std::numeric_limits<int64_t>::min())) {
                return false;
            }
            r = x / y;
            return true;
        });
    default:
        return binary_int(a, b, n.type, [](int64_t x, int64_t y, int64_t& r) {
            if (y == 0) {
                return false;
            }
            r = y == -1 ? 0 : x % y;
            return true;
        });
    }
}

/// -1, 0, 1 comparing row i of a and b (neither NULL); types were checked compatible.
int compare_at(const column& a, const column& b, size_t i) {
    auto ta = a.type(), tb = b.type();
    if (ta.is_integral() && tb.is_integral()) {
        int64_t x = a.int64_at(i), y = b.int64_at(i);
        if (ta.id == type_id::timestamp && tb.id == type_id::timestamp && ta.unit != tb.unit) {
            x = scale_to(x, ta.unit, time_unit::micros);
            y = scale_to(y, tb.unit, time_unit::micros);
        }
        return (x > y) - (x < y);
    }
    if (ta.is_numeric() && tb.is_numeric()) {
        double x = a.number_at(i), y = b.number_at(i);
        return (x > y) - (x < y);
    }
    if (ta.id == type_id::string) {
        int c = a.string_at(i).compare(b.string_at(i));
        return (c > 0) - (c < 0);
    }
    int x = a.bool_at(i), y = b.bool_at(i);
    return (x > y) - (x < y);
}

template <typename T, typename Get>
column compare_loop(expr_op op, size_t n, Get get) {
    std::vector<uint8_t> r(n);
    for (size_t i = 0; i < n; ++i) {
        auto [x, y] = get(i);
        r[i] = op == expr_op::eq   ? x == y
               : op == expr_op::ne ? x != y
               : op == expr_op::lt ? x < y
               : op == expr_op::le ? x <= y
               : op == expr_op::gt ? x > y
                                   : x >= y;
    }
    return column::of_bool(std::move(r));
}

column comparison(expr_op op, const column& a, const column& b) {
    size_t n = a.size();
    bool no_nulls = a.null_count() == 0 && b.null_count() == 0;
    auto ta = a.type(), tb = b.type();
    if (no_nulls && ta.is_integral() && tb.is_integral() &&
        !(ta.id == type_id::timestamp && tb.id == type_id::timestamp && ta.unit != tb.unit)) {
        const int64_t* x = a.int64_data();
        const int64_t* y = b.int64_data();
        return compare_loop<int64_t>(op, n, [&](size_t i) { return std::pair(x[i], y[i]); });
    }
    if (no_nulls && ta.id == type_id::float64 && tb.id == type_id::float64) {
        const double* x = a.float64_data();
        const double* y = b.float64_data();
        return compare_loop<double>(op, n, [&](size_t i) { return std::pair(x[i], y[i]); });
    }
    if (no_nulls && ta.is_numeric() && tb.is_numeric()) {
        return compare_loop<double>(op, n, [&](size_t i) { return std::pair(a.number_at(i), b.number_at(i)); });
    }
    column c(data_type::boolean());
    c.reserve(n);
    for (size_t i = 0; i < n; ++i) {
        if (a.is_null(i) || b.is_null(i)) {
            c.push_null();
            continue;
        }
        int r = compare_at(a, b, i);
        bool v = op == expr_op::eq   ? r == 0
                 : op == expr_op::ne ? r != 0
                 : op == expr_op::lt ? r < 0
                 : op == expr_op::le ? r <= 0
                 : op == expr_op::gt ? r > 0
                                     : r >= 0;
        c.push_bool(v);
    }
    return c;
}

size_t utf8_len(std::string_view s) {
    size_t n = 0;
    for (unsigned char ch : s) {
        n += (ch & 0xC0) != 0x80;
    }
    return n;
}

/// Byte position of the character with 0-based index `k` (or s.size()).
size_t utf8_pos(std::string_view s, int64_t k) {
    size_t i = 0;
    for (; i < s.size() && k > 0; ++i) {
        if (i + 1 >= s.size() || (static_cast<unsigned char>(s[i + 1]) & 0xC0) != 0x80) {
            --k;
        }
    }
    return i;
}

size_t utf8_step(std::string_view s, size_t i) {
    ++i;
    while (i < s.size() && (static_cast<unsigned char>(s[i]) & 0xC0) == 0x80) {
        ++i;
    }
    return i;
}

bool like_match(std::string_view s, std::string_view p) {
    // Iterative matcher with one backtrack point for the last '%'.
    size_t si = 0, pi = 0, star_p = std::string_view::npos, star_s = 0;
    while (si < s.size()) {
        if (pi < p.size() && p[pi] == '%') {
            star_p = ++pi;
            star_s = si;
            continue;
        }
        if (pi < p.size() && p[pi] == '_') {
            si = utf8_step(s, si);
            ++pi;
            continue;
        }
        if (pi < p.size()) {
            size_t q = pi;
            if (p[q] == '\\' && q + 1 < p.size()) {
                ++q;
            }
            if (p[q] == s[si]) {
                pi = q + 1;
                ++si;
                continue;
            }
        }
        if (star_p == std::string_view::npos) {
            return false;
        }
        star_s = utf8_step(s, star_s);
        si = star_s;
        pi = star_p;
    }
    while (pi < p.size() && p[pi] == '%') {
        ++pi;
    }
    return pi == p.size();
}

int64_t days_from_civil(int64_t y, unsigned m, unsigned d) {
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = unsigned(y - era * 400);
    unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + int64_t(doe) - 719468;
}

void civil_from_days(int64_t z, int64_t& y, unsigned& m, unsigned& d) {
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = unsigned(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    y = int64_t(yoe) + era * 400;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    d = doy - (153 * mp + 2) / 5 + 1;
    m = mp < 10 ? mp + 3 : mp - 9;
    y += m <= 2;
}

int64_t floor_mod(int64_t a, int64_t b) {
    int64_t r = a % b;
    return r < 0 ? r + b : r;
}

/// Appends `v` in decimal, zero-padded to `width` characters (a minus sign counts).
void append_padded(std::string& out, int64_t v, int width) {
    char digits[24];
    int n = 0;
    uint64_t u = v < 0 ? uint64_t(0) - uint64_t(v) : uint64_t(v);
    do {
        digits[n++] = char('0' + u % 10);
        u /= 10;
    } while (u != 0);
    if (v < 0) {
        out += '-';
        --width;
    }
    for (int i = n; i < width; ++i) out += '0';
    while (n > 0) out += digits[--n];
}

/// Appends `t` formatted by a Java-style date pattern (the letters DATE_FORMAT users write), in UTC.
void format_with_pattern(int64_t t, time_unit unit, std::string_view pattern, std::string& out) {
    int64_t per = unit == time_unit::millis ? 1000 : 1000000;
    int64_t secs = t >= 0 ? t / per : -((-t + per - 1) / per);
    int64_t frac_ms = (t - secs * per) * 1000 / per;
    int64_t days = secs >= 0 ? secs / 86400 : -((-secs + 86399) / 86400);
    int64_t rem = secs - days * 86400;
    int64_t y;
    unsigned m, d;
    civil_from_days(days, y, m, d);
    for (size_t i = 0; i < pattern.size();) {
        char ch = pattern[i];
        if (ch == '\'') { // quoted text; '' is a quote
            size_t j = i + 1;
            while (j < pattern.size() && pattern[j] != '\'') out += pattern[j++];
            if (j == i + 1 && j < pattern.size()) out += '\'';
            i = j + 1;
            continue;
        }
        size_t j = i;
        while (j < pattern.size() && pattern[j] == ch) ++j;
        size_t run = j - i;
        int width = run >= 2 ? 2 : 1;
        switch (ch) {
        case 'y':
            if (run == 2) append_padded(out, floor_mod(y, 100), 2);
            else append_padded(out, y, 4);
            break;
        case 'M': append_padded(out, m, width); break;
        case 'd': append_padded(out, d, width); break;
        case 'H': append_padded(out, rem / 3600, width); break;
        case 'm': append_padded(out, rem / 60 % 60, width); break;
        case 's': append_padded(out, rem % 60, width); break;
        case 'S': {
            std::string ms;
            append_padded(ms, frac_ms, 3);
            out.append(ms, 0, std::max<size_t>(run, 1));
            break;
        }
        default: out.append(pattern.substr(i, run)); break;
        }
        i = j;
    }
}

/// The string of a non-NULL string literal node, or nullptr.
const std::string* string_literal(const bound_node& n) {
    return n.op == expr_op::literal ? std::get_if<std::string>(&n.literal.v) : nullptr;
}

std::optional<int64_t> parse_int(std::string_view s) {
    while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
    while (!s.empty() && s.back() == ' ') s.remove_suffix(1);
    if (s.empty()) {
        return std::nullopt;
    }
    bool neg = s[0] == '-';
    size_t i = (s[0] == '-' || s[0] == '+') ? 1 : 0;
    if (i == s.size()) {
        return std::nullopt;
    }
    int64_t v = 0;
    for (; i < s.size(); ++i) {
        if (s[i] < '0' || s[i] > '9') {
            return std::nullopt;
        }
        if (__builtin_mul_overflow(v, 10, &v) || __builtin_add_overflow(v, neg ? -(s[i] - '0') : (s[i] - '0'), &v)) {
            return std::nullopt;
        }
    }
    return v;
}

std::optional<double> parse_double(std::string_view s) {
    std::string z(s);
    char* end = nullptr;
    double d = std::strtod(z.c_str(), &end);
    while (end && *end == ' ') ++end;
    if (z.empty() || end == z.c_str() || *end != '\0') {
        return std::nullopt;
    }
    return d;
}

std::string format_double(double d) {
    if (std::isnan(d)) return "NaN";
    if (std::isinf(d)) return d > 0 ? "Infinity" : "-Infinity";
    return fmt::format("{}", d);
}

column cast_column(const column& a, data_type to) {
    column c(to);
    size_t n = a.size();
    c.reserve(n);
    data_type from = a.type();
    for (size_t i = 0; i < n; ++i) {
        if (a.is_null(i)) {
            c.push_null();
            continue;
        }
        switch (to.id) {
        case type_id::boolean:
            if (from.id == type_id::boolean) c.push_bool(a.bool_at(i));
            else if (from.is_integral()) c.push_bool(a.int64_at(i) != 0);
            else if (from.id == type_id::float64) c.push_bool(a.float64_at(i) != 0);
            else {
                auto s = a.string_at(i);
                if (s == "true" || s == "TRUE" || s == "1") c.push_bool(true);
                else if (s == "false" || s == "FALSE" || s == "0") c.push_bool(false);
                else c.push_null();
            }
            break;
        case type_id::int64:
        case type_id::timestamp:
            if (from.id == type_id::boolean) c.push_int64(a.bool_at(i));
            else if (from.id == type_id::timestamp && to.id == type_id::timestamp) c.push_int64(scale_to(a.int64_at(i), from.unit, to.unit));
            else if (from.is_integral()) c.push_int64(a.int64_at(i));
            else if (from.id == type_id::float64) {
                double d = std::trunc(a.float64_at(i));
                if (std::isnan(d) || d < -9.2233720368547758e18 || d >= 9.2233720368547758e18) c.push_null();
                else c.push_int64(int64_t(d));
            } else {
                auto s = a.string_at(i);
                auto v = parse_int(s);
                if (!v && to.id == type_id::timestamp) v = parse_timestamp(s, to.unit);
                if (v) c.push_int64(*v); else c.push_null();
            }
            break;
        case type_id::float64:
            if (from.id == type_id::boolean) c.push_float64(a.bool_at(i));
            else if (from.is_integral()) c.push_float64(double(a.int64_at(i)));
            else if (from.id == type_id::float64) c.push_float64(a.float64_at(i));
            else if (auto v = parse_double(a.string_at(i))) c.push_float64(*v);
            else c.push_null();
            break;
        case type_id::string:
            switch (from.id) {
            case type_id::boolean: c.push_string(a.bool_at(i) ? "true" : "false"); break;
            case type_id::int64: c.push_string(fmt::format("{}", a.int64_at(i))); break;
            case type_id::float64: c.push_string(format_double(a.float64_at(i))); break;
            case type_id::timestamp: c.push_string(format_timestamp(a.int64_at(i), from.unit)); break;
            case type_id::string: c.push_string(a.string_at(i)); break;
            }
            break;
        }
    }
    return c;
}

template <typename F>
column map_string(const column& a, data_type out, F f) {
    column c(out);
    c.reserve(a.size());
    for (size_t i = 0; i < a.size(); ++i) {
        if (a.is_null(i)) c.push_null();
        else f(a.string_at(i), c);
    }
    return c;
}

/// The columns of shared nodes computed so far by the evaluation under way on this thread
/// (one `evaluate` or `select_true` call, over one batch).
struct eval_memo {
    const batch* b = nullptr;
    std::unordered_map<const bound_node*, column> done; // node-based: references stay valid
};
thread_local eval_memo* current_memo = nullptr;

/// Opens the memo for one evaluation over `b`, unless one is open already.
class memo_scope {
public:
    explicit memo_scope(const batch& b) {
        if (current_memo == nullptr) {
            _memo.b = &b;
            current_memo = &_memo;
            _owner = true;
        }
    }
    ~memo_scope() {
        if (_owner) current_memo = nullptr;
    }
    memo_scope(const memo_scope&) = delete;
    memo_scope& operator=(const memo_scope&) = delete;

private:
    eval_memo _memo;
    bool _owner = false;
};

/// REGEXP_EXTRACT's compiled patterns and results, per thread. Streams repeat their strings (a
/// channel's URL, a user's agent), so each distinct (pattern, group, input) is matched once and
/// later rows read the answer. Bounded: the answers kept take at most `max_bytes` (counting the
/// input, the answer and a fixed overhead each) and at most `max_patterns` patterns are kept;
/// past either limit the cache starts again empty.
class regex_cache {
public:
    static constexpr size_t max_patterns = 64;
    static constexpr size_t max_bytes = 16 << 20;
    static constexpr size_t entry_overhead = 64;

    struct pattern {
        regex_cache* owner = nullptr;
        std::string text;
        std::optional<boost::regex> re; ///< empty: the pattern does not compile (every answer NULL)
        /// Input → the group's text, or nullopt for no match; one map per group asked for.
        std::map<int64_t, boost::unordered_flat_map<std::string, std::optional<std::string>, key_hash, key_equal>>
          results;

        /// The text of group `group` of the first match in `input`, or nullptr (NULL). Valid
        /// until the next call.
        const std::string* extract(std::string_view input, int64_t group) {
            if (auto a = results.find(group); a != results.end()) {
                if (auto it = a->second.find(input); it != a->second.end()) return it->second ? &*it->second : nullptr;
            }
            std::optional<std::string> answer;
            if (re && group >= 0) {
                boost::match_results<std::string_view::const_iterator> m;
                bool found = false;
                try {
                    found = boost::regex_search(input.begin(), input.end(), m, *re);
                } catch (const std::runtime_error&) { // a pattern too complex for this input: no match
                }
                if (found && size_t(group) < m.size() && m[size_t(group)].matched) {
                    answer.emplace(input.substr(size_t(m[size_t(group)].first - input.begin()),
                                                size_t(m[size_t(group)].length())));
                }
            }
            owner->charge(input.size() + (answer ? answer->size() : 0) + entry_overhead);
            auto& slot = results[group].emplace(std::string(input), std::move(answer)).first->second;
            return slot ? &*slot : nullptr;
        }
    };

    pattern& of(std::string_view text) {
        if (auto it = _patterns.find(text); it != _patterns.end()) return it->second;
        if (_patterns.size() >= max_patterns) {
            _patterns.clear();
            _bytes = 0;
        }
        pattern p;
        p.owner = this;
        p.text = std::string(text);
        // Boost.Regex's Perl syntax is Java's (Flink's) for what queries use, and it is several
        // times faster than std::regex.
        try {
            p.re.emplace(p.text, boost::regex::perl);
        } catch (const boost::regex_error&) {
        }
        return _patterns.emplace(p.text, std::move(p)).first->second;
    }

private:
    /// Makes room for an answer of `bytes`: over budget, every pattern forgets its answers.
    void charge(size_t bytes) {
        if (_bytes + bytes > max_bytes) {
            for (auto& [_, p] : _patterns) p.results.clear();
            _bytes = 0;
        }
        _bytes += bytes;
    }

    std::map<std::string, pattern, std::less<>> _patterns;
    size_t _bytes = 0;
};
thread_local regex_cache regex_results;

colref compute(const bound_node& n, const batch& b);

colref eval(const bound_node& n, const batch& b) {
    if (!n.shared || current_memo == nullptr || current_memo->b != &b) return compute(n, b);
    auto& done = current_memo->done;
    if (auto it = done.find(&n); it != done.end()) return colref::borrow(it->second);
    column c = compute(n, b).take();
    return colref::borrow(done.emplace(&n, std::move(c)).first->second);
}

colref compute(const bound_node& n, const batch& b) {
    size_t rows = b.num_rows();
    switch (n.op) {
    case expr_op::column: return colref::borrow(b.col(n.index));
    case expr_op::literal: return broadcast(n.literal, n.type, rows);
    case expr_op::add:
    case expr_op::sub:
    case expr_op::mul:
    case expr_op::div:
    case expr_op::mod: {
        colref a_ref = eval(*n.args[0], b);
        const column& a = *a_ref;
        const bound_node& rhs = *n.args[1];
        // Column op constant on doubles without NULLs: one loop, no constant column.
        if (rhs.op == expr_op::literal && !rhs.literal.is_null() && n.type.id == type_id::float64 &&
            a.type().id == type_id::float64 && a.null_count() == 0 &&
            (n.op == expr_op::add || n.op == expr_op::sub || n.op == expr_op::mul)) {
            auto* li = std::get_if<int64_t>(&rhs.literal.v);
            double c = li ? double(*li) : std::get<double>(rhs.literal.v);
            const double* x = a.float64_data();
            std::vector<double> r(rows);
            if (n.op == expr_op::add) for (size_t i = 0; i < rows; ++i) r[i] = x[i] + c;
            else if (n.op == expr_op::sub) for (size_t i = 0; i < rows; ++i) r[i] = x[i] - c;
            else for (size_t i = 0; i < rows; ++i) r[i] = x[i] * c;
            return column::of_float64(std::move(r));
        }
        return arithmetic(n, a, *eval(rhs, b));
    }
    case expr_op::neg: {
        colref a_ref = eval(*n.args[0], b);
        const column& a = *a_ref;
        column zero = broadcast(n.type.id == type_id::float64 ? value::of(0.0) : value::of(int64_t(0)), n.type, rows);
        bound_node sub{expr_op::sub, n.type, 0, {}, {}};
        return arithmetic(sub, zero, a);
    }
    case expr_op::eq:
    case expr_op::ne:
    case expr_op::lt:
    case expr_op::le:
    case expr_op::gt:
    case expr_op::ge: {
        colref a_ref = eval(*n.args[0], b);
        const column& a = *a_ref;
        const bound_node& rhs = *n.args[1];
        // Number column against a number constant without NULLs: compare in one loop.
        if (rhs.op == expr_op::literal && !rhs.literal.is_null() && a.null_count() == 0 && a.type().is_numeric() &&
            rhs.type.is_numeric()) {
            auto* li = std::get_if<int64_t>(&rhs.literal.v);
            if (a.type().id == type_id::int64 && li) {
                const int64_t* x = a.int64_data();
                int64_t c = *li;
                return compare_loop<int64_t>(n.op, rows, [&](size_t i) { return std::pair(x[i], c); });
            }
            double c = li ? double(*li) : std::get<double>(rhs.literal.v);
            if (a.type().id == type_id::float64) {
                const double* x = a.float64_data();
                return compare_loop<double>(n.op, rows, [&](size_t i) { return std::pair(x[i], c); });
            }
            return compare_loop<double>(n.op, rows, [&](size_t i) { return std::pair(a.number_at(i), c); });
        }
        // String column against a string constant: compare in place, no column of copies.
        if (const std::string* lit = string_literal(rhs); lit && a.type().id == type_id::string) {
            std::string_view c = *lit;
            if (a.null_count() == 0) {
                return compare_loop<std::string_view>(n.op, rows, [&](size_t i) { return std::pair(a.string_at(i), c); });
            }
            column r(data_type::boolean());
            r.reserve(rows);
            for (size_t i = 0; i < rows; ++i) {
                if (a.is_null(i)) {
                    r.push_null();
                    continue;
                }
                int x = a.string_at(i).compare(c);
                r.push_bool(n.op == expr_op::eq   ? x == 0
                            : n.op == expr_op::ne ? x != 0
                            : n.op == expr_op::lt ? x < 0
                            : n.op == expr_op::le ? x <= 0
                            : n.op == expr_op::gt ? x > 0
                                                  : x >= 0);
            }
            return r;
        }
        return comparison(n.op, a, *eval(rhs, b));
    }
    case expr_op::and_:
    case expr_op::or_: {
        colref x_ref = eval(*n.args[0], b), y_ref = eval(*n.args[1], b);
        const column& x = *x_ref;
        const column& y = *y_ref;
        column c(data_type::boolean());
        c.reserve(rows);
        bool is_and = n.op == expr_op::and_;
        for (size_t i = 0; i < rows; ++i) {
            bool xn = x.is_null(i), yn = y.is_null(i);
            bool xv = !xn && x.bool_at(i), yv = !yn && y.bool_at(i);
            if (is_and) {
                if ((!xn && !xv) || (!yn && !yv)) c.push_bool(false);
                else if (xn || yn) c.push_null();
                else c.push_bool(true);
            } else {
                if (xv || yv) c.push_bool(true);
                else if (xn || yn) c.push_null();
                else c.push_bool(false);
            }
        }
        return c;
    }
    case expr_op::not_: {
        colref x_ref = eval(*n.args[0], b);
        const column& x = *x_ref;
        column c(data_type::boolean());
        for (size_t i = 0; i < rows; ++i) {
            if (x.is_null(i)) c.push_null(); else c.push_bool(!x.bool_at(i));
        }
        return c;
    }
    case expr_op::is_null:
    case expr_op::is_not_null: {
        colref x_ref = eval(*n.args[0], b);
        const column& x = *x_ref;
        column c(data_type::boolean());
        for (size_t i = 0; i < rows; ++i) {
            c.push_bool(x.is_null(i) == (n.op == expr_op::is_null));
        }
        return c;
    }
    case expr_op::case_when: {
        // Results that are constants (`THEN 'day'`, `ELSE NULL`) are pushed as they are rather
        // than first broadcast into a column each.
        std::vector<std::optional<colref>> parts(n.args.size());
        std::vector<const value*> constant(n.args.size(), nullptr);
        bool has_else = n.args.size() % 2 == 1;
        for (size_t k = 0; k < n.args.size(); ++k) {
            bool is_result = k % 2 == 1 || (has_else && k + 1 == n.args.size());
            const bound_node& arg = *n.args[k];
            if (is_result && arg.op == expr_op::literal && (arg.literal.is_null() || arg.type == n.type)) {
                constant[k] = &arg.literal;
            } else {
                parts[k].emplace(eval(arg, b));
            }
        }
        column c(n.type);
        c.reserve(rows);
        for (size_t i = 0; i < rows; ++i) {
            size_t pick = SIZE_MAX;
            for (size_t k = 0; k + 1 < parts.size(); k += 2) {
                const column& cond = **parts[k];
                if (!cond.is_null(i) && cond.bool_at(i)) {
                    pick = k + 1;
                    break;
                }
            }
            if (pick == SIZE_MAX && has_else) pick = parts.size() - 1;
            if (pick == SIZE_MAX) {
                c.push_null();
                continue;
            }
            if (constant[pick]) {
                c.push_value(*constant[pick]);
                continue;
            }
            const column& v = **parts[pick];
            if (v.is_null(i)) c.push_null();
            else if (n.type.id == type_id::float64) c.push_float64(v.number_at(i));
            else c.push_from(v, i);
        }
        return c;
    }
    case expr_op::cast: return cast_column(*eval(*n.args[0], b), n.type);
    case expr_op::lower:
    case expr_op::upper: {
        bool up = n.op == expr_op::upper;
        std::string t;
        return map_string(*eval(*n.args[0], b), n.type, [up, &t](std::string_view s, column& c) {
            t.assign(s);
            for (auto& ch : t) {
                if (up && ch >= 'a' && ch <= 'z') ch = char(ch - 32);
                if (!up && ch >= 'A' && ch <= 'Z') ch = char(ch + 32);
            }
            c.push_string(t);
        });
    }
    case expr_op::char_length:
        return map_string(*eval(*n.args[0], b), n.type, [](std::string_view s, column& c) {
            c.push_int64(int64_t(utf8_len(s)));
        });
    case expr_op::concat: {
        std::vector<column> parts;
        for (const auto& a : n.args) parts.push_back(eval(*a, b).take());
        column c(n.type);
        std::string t;
        for (size_t i = 0; i < rows; ++i) {
            t.clear();
            bool null = false;
            for (const auto& p : parts) {
                if (p.is_null(i)) { null = true; break; }
                t.append(p.string_at(i));
            }
            if (null) c.push_null(); else c.push_string(t);
        }
        return c;
    }
    case expr_op::substring: {
        colref s_ref = eval(*n.args[0], b), st_ref = eval(*n.args[1], b);
        const column& s = *s_ref;
        const column& st = *st_ref;
        std::optional<column> len;
        if (n.args.size() > 2) len = eval(*n.args[2], b).take();
        column c(n.type);
        for (size_t i = 0; i < rows; ++i) {
            if (s.is_null(i) || st.is_null(i) || (len && len->is_null(i))) { c.push_null(); continue; }
            // SQL: characters from position `start` (1-based) for `len`; positions before 1
            // count against the length.
            int64_t from = st.int64_at(i) - 1;
            int64_t to = len ? (len->int64_at(i) < 0 ? -1 : from + len->int64_at(i)) : std::numeric_limits<int64_t>::max();
            if (len && len->int64_at(i) < 0) { c.push_null(); continue; }
            (void)to;
            auto str = s.string_at(i);
            int64_t a0 = std::max<int64_t>(from, 0);
            int64_t a1 = len ? std::max<int64_t>(from + len->int64_at(i), 0) : int64_t(str.size()) + 1;
            if (a1 <= a0) { c.push_string(""); continue; }
            size_t p0 = utf8_pos(str, a0);
            size_t p1 = len ? utf8_pos(str, a1) : str.size();
            c.push_string(str.substr(p0, p1 - p0));
        }
        return c;
    }
    case expr_op::like: {
        colref s_ref = eval(*n.args[0], b), p_ref = eval(*n.args[1], b);
        const column& s = *s_ref;
        const column& p = *p_ref;
        column c(data_type::boolean());
        for (size_t i = 0; i < rows; ++i) {
            if (s.is_null(i) || p.is_null(i)) c.push_null();
            else c.push_bool(like_match(s.string_at(i), p.string_at(i)));
        }
        return c;
    }
    case expr_op::hour: {
        colref t_ref = eval(*n.args[0], b);
        const column& t = *t_ref;
        int64_t per_hour = t.type().unit == time_unit::millis ? 3'600'000 : 3'600'000'000;
        column c(data_type::int64());
        c.reserve(rows);
        for (size_t i = 0; i < rows; ++i) {
            if (t.is_null(i)) c.push_null();
            else c.push_int64(floor_mod(t.int64_at(i), 24 * per_hour) / per_hour);
        }
        return c;
    }
    case expr_op::date_format: {
        colref t_ref = eval(*n.args[0], b);
        const column& t = *t_ref;
        // A constant pattern (the usual case) is read as it is, not as a column of copies.
        const std::string* lit = string_literal(*n.args[1]);
        std::optional<colref> p_ref;
        if (!lit) p_ref.emplace(eval(*n.args[1], b));
        column c(data_type::string());
        c.reserve(rows);
        // Rows of a stream often share their timestamp: format each run of equal ones once.
        std::string text;
        std::string_view last_pattern;
        int64_t last_t = 0;
        bool have_last = false;
        for (size_t i = 0; i < rows; ++i) {
            if (t.is_null(i) || (p_ref && (*p_ref)->is_null(i))) {
                c.push_null();
                continue;
            }
            std::string_view pattern = lit ? std::string_view(*lit) : (*p_ref)->string_at(i);
            int64_t v = t.int64_at(i);
            if (!have_last || v != last_t || pattern != last_pattern) {
                text.clear();
                format_with_pattern(v, t.type().unit, pattern, text);
                last_t = v;
                last_pattern = pattern;
                have_last = true;
            }
            c.push_string(text);
        }
        return c;
    }
    case expr_op::regexp_extract: {
        colref s_ref = eval(*n.args[0], b);
        const column& s = *s_ref;
        const std::string* lit = string_literal(*n.args[1]);
        std::optional<colref> re_ref;
        if (!lit) re_ref.emplace(eval(*n.args[1], b));
        std::optional<colref> g;
        if (n.args.size() > 2) g.emplace(eval(*n.args[2], b));
        column c(data_type::string());
        c.reserve(rows);
        regex_cache::pattern* p = nullptr; // the current row's pattern, kept while it repeats
        for (size_t i = 0; i < rows; ++i) {
            if (s.is_null(i) || (re_ref && (*re_ref)->is_null(i)) || (g && (*g)->is_null(i))) {
                c.push_null();
                continue;
            }
            std::string_view pattern = lit ? std::string_view(*lit) : (*re_ref)->string_at(i);
            if (p == nullptr || p->text != pattern) p = &regex_results.of(pattern);
            int64_t group = g ? (*g)->int64_at(i) : 1;
            if (const auto* r = p->extract(s.string_at(i), group)) c.push_string(*r);
            else c.push_null();
        }
        return c;
    }
    case expr_op::proctime: {
        const int64_t now = model::processing_now().value();
        column c(data_type::timestamp());
        c.reserve(rows);
        for (size_t i = 0; i < rows; ++i) c.push_int64(now);
        return c;
    }
    case expr_op::replace: {
        colref s_ref = eval(*n.args[0], b), f_ref = eval(*n.args[1], b), r_ref = eval(*n.args[2], b);
        const column& s = *s_ref;
        const column& f = *f_ref;
        const column& r = *r_ref;
        column c(data_type::string());
        std::string out;
        for (size_t i = 0; i < rows; ++i) {
            if (s.is_null(i) || f.is_null(i) || r.is_null(i)) {
                c.push_null();
                continue;
            }
            auto str = s.string_at(i), from = f.string_at(i), to = r.string_at(i);
            if (from.empty()) {
                c.push_string(str);
                continue;
            }
            out.clear();
            size_t pos = 0;
            for (size_t at; (at = str.find(from, pos)) != std::string_view::npos; pos = at + from.size()) {
                out.append(str.substr(pos, at - pos));
                out.append(to);
            }
            out.append(str.substr(pos));
            c.push_string(out);
        }
        return c;
    }
    case expr_op::split_index: {
        colref s_ref = eval(*n.args[0], b), d_ref = eval(*n.args[1], b), x_ref = eval(*n.args[2], b);
        const column& s = *s_ref;
        const column& d = *d_ref;
        const column& x = *x_ref;
        column c(data_type::string());
        for (size_t i = 0; i < rows; ++i) {
            if (s.is_null(i) || d.is_null(i) || x.is_null(i) || x.int64_at(i) < 0 || d.string_at(i).empty()) {
                c.push_null();
                continue;
            }
            auto str = s.string_at(i), delim = d.string_at(i);
            int64_t want = x.int64_at(i);
            size_t from = 0;
            bool found = false;
            for (int64_t k = 0;; ++k) {
                size_t at = str.find(delim, from);
                if (k == want) {
                    c.push_string(str.substr(from, at == std::string_view::npos ? std::string_view::npos : at - from));
                    found = true;
                    break;
                }
                if (at == std::string_view::npos) break;
                from = at + delim.size();
            }
            if (!found) c.push_null();
        }
        return c;
    }
    }
    RUNNEL_ASSERT(false, "every expression op is evaluated");
    return column();
}

// ---- binding ----

#define CHECK_TYPE(x)                                                                          \
    do {                                                                                       \
        if (auto r_ = (x); !r_) {                                                              \
            return outcome::failure(r_.error());                                               \
        }                                                                                      \
    } while (0)


struct binder {
    const schema& s;

    result<node_ptr> bind_node(const expr& e) {
        const expr_node& n = e.node();
        auto out = std::make_shared<bound_node>();
        out->op = n.op;
        std::vector<data_type> t;
        for (const auto& a : n.args) {
            if (a.empty()) {
                return fail(errc::invalid_argument, fmt::format("{}: missing operand", op_text(n.op)));
            }
            RUNNEL_TRY(auto child, bind_node(a));
            t.push_back(child->type);
            out->args.push_back(std::move(child));
        }
        auto need = [&](size_t k, bool ok, const char* what) -> result<void> {
            if (ok) return outcome::success();
            return fail(errc::type_mismatch,
                        fmt::format("{} needs {}, but {}", op_text(n.op), what, describe(n.args[k], t[k])));
        };
        switch (n.op) {
        case expr_op::column: {
            auto idx = s.index_of(n.name);
            if (!idx) {
                return fail(errc::unknown_column,
                            fmt::format("unknown column '{}' in {}", n.name, s.to_string()));
            }
            out->index = *idx;
            out->type = s.at(*idx).type;
            break;
        }
        case expr_op::literal:
            out->literal = n.literal;
            out->type = n.literal.type;
            break;
        case expr_op::add:
        case expr_op::sub:
        case expr_op::mul:
        case expr_op::div:
        case expr_op::mod: {
            bool ts0 = t[0].id == type_id::timestamp, ts1 = t[1].id == type_id::timestamp;
            bool additive = n.op == expr_op::add || n.op == expr_op::sub;
            if (additive && ts0 && t[1].id == type_id::int64) {
                out->type = t[0]; // timestamp ± count of its units
            } else if (n.op == expr_op::sub && ts0 && ts1) {
                out->type = data_type::int64();
            } else {
                CHECK_TYPE(need(0, t[0].is_numeric(), "numbers"));
                CHECK_TYPE(need(1, t[1].is_numeric(), "numbers"));
                out->type = (t[0].id == type_id::float64 || t[1].id == type_id::float64) ? data_type::float64() : data_type::int64();
            }
            break;
        }
        case expr_op::neg:
            CHECK_TYPE(need(0, t[0].is_numeric(), "a number"));
            out->type = t[0];
            break;
        case expr_op::eq:
        case expr_op::ne:
        case expr_op::lt:
        case expr_op::le:
        case expr_op::gt:
        case expr_op::ge: {
            bool ok = (t[0].is_numeric() && t[1].is_numeric()) || t[0].id == t[1].id;
            if (!ok) {
                return fail(errc::type_mismatch,
                            fmt::format("cannot compare with {}: {} and {}", op_text(n.op),
                                        describe(n.args[0], t[0]), describe(n.args[1], t[1])));
            }
            out->type = data_type::boolean();
            break;
        }
        case expr_op::and_:
        case expr_op::or_:
            CHECK_TYPE(need(0, t[0].id == type_id::boolean, "booleans"));
            CHECK_TYPE(need(1, t[1].id == type_id::boolean, "booleans"));
            out->type = data_type::boolean();
            break;
        case expr_op::not_:
            CHECK_TYPE(need(0, t[0].id == type_id::boolean, "a boolean"));
            out->type = data_type::boolean();
            break;
        case expr_op::is_null:
        case expr_op::is_not_null: out->type = data_type::boolean(); break;
        case expr_op::case_when: {
            if (t.size() < 2) {
                return fail(errc::invalid_argument, "CASE needs at least one WHEN … THEN");
            }
            std::optional<data_type> rt;
            for (size_t k = 0; k < t.size(); ++k) {
                bool is_cond = k % 2 == 0 && k + 1 < t.size();
                if (is_cond) {
                    CHECK_TYPE(need(k, t[k].id == type_id::boolean, "a boolean WHEN condition"));
                    continue;
                }
                if (!rt) {
                    rt = t[k];
                } else if (rt->is_numeric() && t[k].is_numeric()) {
                    if (t[k].id == type_id::float64) rt = t[k];
                } else if (!(*rt == t[k])) {
                    return fail(errc::type_mismatch,
                                fmt::format("CASE branches must have one type: {} but the first branch is {}",
                                            describe(n.args[k], t[k]), rt->name()));
                }
            }
            out->type = *rt;
            break;
        }
        case expr_op::cast: out->type = n.target; break;
        case expr_op::lower:
        case expr_op::upper:
            CHECK_TYPE(need(0, t[0].id == type_id::string, "a string"));
            out->type = data_type::string();
            break;
        case expr_op::char_length:
            CHECK_TYPE(need(0, t[0].id == type_id::string, "a string"));
            out->type = data_type::int64();
            break;
        case expr_op::concat:
            if (t.empty()) {
                return fail(errc::invalid_argument, "CONCAT needs at least one argument");
            }
            for (size_t k = 0; k < t.size(); ++k) {
                CHECK_TYPE(need(k, t[k].id == type_id::string, "strings"));
            }
            out->type = data_type::string();
            break;
        case expr_op::substring:
            CHECK_TYPE(need(0, t[0].id == type_id::string, "a string"));
            for (size_t k = 1; k < t.size(); ++k) {
                CHECK_TYPE(need(k, t[k].id == type_id::int64, "integer positions"));
            }
            out->type = data_type::string();
            break;
        case expr_op::like:
            CHECK_TYPE(need(0, t[0].id == type_id::string, "a string"));
            CHECK_TYPE(need(1, t[1].id == type_id::string, "a string pattern"));
            out->type = data_type::boolean();
            break;
        case expr_op::hour:
            CHECK_TYPE(need(0, t[0].id == type_id::timestamp, "a timestamp"));
            out->type = data_type::int64();
            break;
        case expr_op::date_format:
            CHECK_TYPE(need(0, t[0].id == type_id::timestamp, "a timestamp"));
            CHECK_TYPE(need(1, t[1].id == type_id::string, "a string pattern"));
            out->type = data_type::string();
            break;
        case expr_op::regexp_extract:
            CHECK_TYPE(need(0, t[0].id == type_id::string, "a string"));
            CHECK_TYPE(need(1, t[1].id == type_id::string, "a string regular expression"));
            if (t.size() > 2) CHECK_TYPE(need(2, t[2].id == type_id::int64, "an integer group"));
            out->type = data_type::string();
            break;
        case expr_op::proctime: out->type = data_type::timestamp(); break;
        case expr_op::replace:
            for (size_t k = 0; k < 3; ++k) CHECK_TYPE(need(k, t[k].id == type_id::string, "strings"));
            out->type = data_type::string();
            break;
        case expr_op::split_index:
            CHECK_TYPE(need(0, t[0].id == type_id::string, "a string"));
            CHECK_TYPE(need(1, t[1].id == type_id::string, "a string delimiter"));
            CHECK_TYPE(need(2, t[2].id == type_id::int64, "an integer index"));
            out->type = data_type::string();
            break;
        }
        return node_ptr(std::move(out));
    }
};

} // namespace

expr::expr(int v)
  : expr(lit(int64_t(v))) {}
expr::expr(int64_t v)
  : expr(lit(v)) {}
expr::expr(double v)
  : expr(lit(v)) {}

std::string expr::to_string() const {
    if (!_node) return "<empty>";
    const auto& n = *_node;
    auto arg = [&](size_t i) { return n.args[i].to_string(); };
    switch (n.op) {
    case expr_op::column: return n.name;
    case expr_op::literal: return n.literal.to_string();
    case expr_op::neg: return "-" + arg(0);
    case expr_op::not_: return "NOT " + arg(0);
    case expr_op::is_null:
    case expr_op::is_not_null: return fmt::format("{} {}", arg(0), op_text(n.op));
    case expr_op::cast: return fmt::format("CAST({} AS {})", arg(0), n.target.name());
    case expr_op::case_when: return "CASE …";
    default: break;
    }
    if (n.args.size() == 2 && n.op <= expr_op::or_) {
        return fmt::format("({} {} {})", arg(0), op_text(n.op), arg(1));
    }
    std::string s = std::string(op_text(n.op)) + "(";
    for (size_t i = 0; i < n.args.size(); ++i) s += (i ? ", " : "") + arg(i);
    return s + ")";
}

expr col(std::string name) {
    auto n = std::make_shared<expr_node>();
    n->op = expr_op::column;
    n->name = std::move(name);
    return expr(std::move(n));
}
expr lit(value v) {
    auto n = std::make_shared<expr_node>();
    n->op = expr_op::literal;
    n->literal = std::move(v);
    return expr(std::move(n));
}
expr lit(const char* s) { return lit(value::of(s)); }
expr lit(std::string s) { return lit(value::of(std::move(s))); }
expr lit(bool b) { return lit(value::of(b)); }
expr lit(int v) { return lit(value::of(int64_t(v))); }
expr lit(int64_t v) { return lit(value::of(v)); }
expr lit(double v) { return lit(value::of(v)); }
expr null_of(data_type t) { return lit(value::null(t)); }

expr operator+(expr a, expr b) { return make(expr_op::add, {a, b}); }
expr operator-(expr a, expr b) { return make(expr_op::sub, {a, b}); }
expr operator*(expr a, expr b) { return make(expr_op::mul, {a, b}); }
expr operator/(expr a, expr b) { return make(expr_op::div, {a, b}); }
expr operator%(expr a, expr b) { return make(expr_op::mod, {a, b}); }
expr operator-(expr a) { return make(expr_op::neg, {a}); }
expr operator==(expr a, expr b) { return make(expr_op::eq, {a, b}); }
expr operator!=(expr a, expr b) { return make(expr_op::ne, {a, b}); }
expr operator<(expr a, expr b) { return make(expr_op::lt, {a, b}); }
expr operator<=(expr a, expr b) { return make(expr_op::le, {a, b}); }
expr operator>(expr a, expr b) { return make(expr_op::gt, {a, b}); }
expr operator>=(expr a, expr b) { return make(expr_op::ge, {a, b}); }
expr operator&&(expr a, expr b) { return make(expr_op::and_, {a, b}); }
expr operator||(expr a, expr b) { return make(expr_op::or_, {a, b}); }
expr operator!(expr a) { return make(expr_op::not_, {a}); }
expr is_null(expr a) { return make(expr_op::is_null, {a}); }
expr is_not_null(expr a) { return make(expr_op::is_not_null, {a}); }
expr case_when(std::vector<std::pair<expr, expr>> branches, expr otherwise) {
    std::vector<expr> args;
    for (auto& [c, v] : branches) {
        args.push_back(c);
        args.push_back(v);
    }
    if (!otherwise.empty()) args.push_back(otherwise);
    return make(expr_op::case_when, std::move(args));
}
expr cast(expr a, data_type to) {
    auto n = std::make_shared<expr_node>();
    n->op = expr_op::cast;
    n->target = to;
    n->args = {a};
    return expr(std::move(n));
}
expr lower(expr a) { return make(expr_op::lower, {a}); }
expr upper(expr a) { return make(expr_op::upper, {a}); }
expr concat(std::vector<expr> parts) { return make(expr_op::concat, std::move(parts)); }
expr substring(expr s, expr start, expr len) {
    std::vector<expr> args{s, start};
    if (!len.empty()) args.push_back(len);
    return make(expr_op::substring, std::move(args));
}
expr char_length(expr s) { return make(expr_op::char_length, {s}); }
expr hour(expr ts) { return make(expr_op::hour, {std::move(ts)}); }
expr date_format(expr ts, expr pattern) { return make(expr_op::date_format, {std::move(ts), std::move(pattern)}); }
expr regexp_extract(expr s, expr regex, expr group) {
    std::vector<expr> args{std::move(s), std::move(regex)};
    if (!group.empty()) args.push_back(std::move(group));
    return make(expr_op::regexp_extract, std::move(args));
}
expr proctime() { return make(expr_op::proctime, {}); }
expr replace(expr s, expr from, expr to) { return make(expr_op::replace, {std::move(s), std::move(from), std::move(to)}); }
expr split_index(expr s, expr delimiter, expr index) {
    return make(expr_op::split_index, {std::move(s), std::move(delimiter), std::move(index)});
}
expr like(expr s, expr pattern) { return make(expr_op::like, {s, pattern}); }

data_type bound_expr::type() const { return _node->type; }

std::optional<size_t> bound_expr::column_index() const {
    if (_node->op == expr_op::column) return _node->index;
    return std::nullopt;
}

column bound_expr::evaluate(const batch& b) const {
    memo_scope scope(b);
    return eval(*_node, b).take();
}

namespace {

/// Keeps those of the rows `in[0..count)` (rows 0..count when `in` is null) for which `keep(i)`
/// holds, writing them to `out` (which may be `in`); branch-free, so a predicate that is true
/// for a random half of the rows costs no mispredictions.
template <typename Keep>
size_t compact(const uint32_t* in, size_t count, uint32_t* out, Keep keep) {
    size_t k = 0;
    if (in == nullptr) {
        for (size_t i = 0; i < count; ++i) {
            out[k] = uint32_t(i);
            k += keep(i) ? 1 : 0;
        }
    } else {
        for (size_t j = 0; j < count; ++j) {
            uint32_t i = in[j];
            out[k] = i;
            k += keep(i) ? 1 : 0;
        }
    }
    return k;
}

template <typename Get>
size_t compact_compare(expr_op op, const uint32_t* in, size_t count, uint32_t* out, Get get) {
    switch (op) {
    case expr_op::eq: return compact(in, count, out, [&](size_t i) { auto [x, y] = get(i); return x == y; });
    case expr_op::ne: return compact(in, count, out, [&](size_t i) { auto [x, y] = get(i); return x != y; });
    case expr_op::lt: return compact(in, count, out, [&](size_t i) { auto [x, y] = get(i); return x < y; });
    case expr_op::le: return compact(in, count, out, [&](size_t i) { auto [x, y] = get(i); return x <= y; });
    case expr_op::gt: return compact(in, count, out, [&](size_t i) { auto [x, y] = get(i); return x > y; });
    default: return compact(in, count, out, [&](size_t i) { auto [x, y] = get(i); return x >= y; });
    }
}

/// The rows of `in` (all `count` rows of `b` when null) where `n` is TRUE, written to `out`.
size_t refine(const bound_node& n, const batch& b, const uint32_t* in, size_t count, uint32_t* out) {
    switch (n.op) {
    case expr_op::and_: {
        size_t k = refine(*n.args[0], b, in, count, out);
        return k == 0 ? 0 : refine(*n.args[1], b, out, k, out);
    }
    case expr_op::eq:
    case expr_op::ne:
    case expr_op::lt:
    case expr_op::le:
    case expr_op::gt:
    case expr_op::ge: {
        // The same cases, and the same arithmetic, as eval's constant comparison.
        const bound_node& lhs = *n.args[0];
        const bound_node& rhs = *n.args[1];
        if (lhs.op != expr_op::column || rhs.op != expr_op::literal || rhs.literal.is_null()) break;
        const column& a = b.col(lhs.index);
        if (a.null_count() != 0 || !a.type().is_numeric() || !rhs.type.is_numeric()) break;
        auto* li = std::get_if<int64_t>(&rhs.literal.v);
        if (a.type().id == type_id::int64 && li) {
            const int64_t* x = a.int64_data();
            int64_t c = *li;
            return compact_compare(n.op, in, count, out, [&](size_t i) { return std::pair(x[i], c); });
        }
        double c = li ? double(*li) : std::get<double>(rhs.literal.v);
        if (a.type().id == type_id::float64) {
            const double* x = a.float64_data();
            return compact_compare(n.op, in, count, out, [&](size_t i) { return std::pair(x[i], c); });
        }
        const int64_t* x = a.int64_data();
        return compact_compare(n.op, in, count, out, [&](size_t i) { return std::pair(double(x[i]), c); });
    }
    default: break;
    }
    colref m = eval(n, b);
    const uint8_t* v = m->bool_data();
    if (m->null_count() == 0) return compact(in, count, out, [&](size_t i) { return v[i] != 0; });
    return compact(in, count, out, [&](size_t i) { return v[i] != 0 && m->valid(i); });
}

void collect_columns(const bound_node& n, std::vector<size_t>& out) {
    if (n.op == expr_op::column) out.push_back(n.index);
    for (const auto& a : n.args) collect_columns(*a, out);
}

/// Copies the tree with its column indexes mapped through `to`, keeping shared nodes shared.
node_ptr remap(const node_ptr& n, const std::vector<size_t>& to, std::unordered_map<const bound_node*, node_ptr>& copies) {
    if (auto it = copies.find(n.get()); it != copies.end()) return it->second;
    auto c = std::make_shared<bound_node>(*n);
    if (c->op == expr_op::column) c->index = to[c->index];
    for (auto& a : c->args) a = remap(a, to, copies);
    copies.emplace(n.get(), c);
    return c;
}

/// Structural identity of a node whose operands are already interned (compared by address).
struct node_key {
    expr_op op;
    std::string type;
    size_t index;
    value literal;
    std::vector<const bound_node*> args;
    bool operator==(const node_key& o) const {
        return op == o.op && type == o.type && index == o.index && literal.type.name() == o.literal.type.name()
            && literal == o.literal && args == o.args;
    }
};

struct node_key_hash {
    size_t operator()(const node_key& k) const noexcept {
        size_t h = std::hash<std::string>()(k.type) ^ (size_t(k.op) * 0x9e3779b97f4a7c15ULL) ^ (k.index << 17);
        if (!k.literal.is_null()) h ^= std::hash<std::string>()(k.literal.to_string()) + 0x9e3779b9 + (h << 6) + (h >> 2);
        for (const auto* a : k.args) h ^= std::hash<const void*>()(a) + 0x9e3779b9 + (h << 6) + (h >> 2);
        return h;
    }
};

/// Turns the tree into a graph in which equal subexpressions are one node, and marks the
/// nodes reached along more than one path (`shared`), so evaluation computes each once.
class interner {
public:
    node_ptr intern(const node_ptr& n) {
        auto c = std::make_shared<bound_node>(*n);
        node_key key{c->op, c->type.name(), c->op == expr_op::column ? c->index : 0,
                     c->op == expr_op::literal ? c->literal : value{}, {}};
        for (auto& a : c->args) {
            a = intern(a);
            key.args.push_back(a.get());
        }
        auto [it, fresh] = _nodes.try_emplace(std::move(key), c);
        if (!fresh && it->second->op != expr_op::column && it->second->op != expr_op::literal) {
            _mutable.at(it->second.get())->shared = true;
        }
        if (fresh) _mutable.emplace(c.get(), c);
        return it->second;
    }

private:
    std::unordered_map<node_key, node_ptr, node_key_hash> _nodes;
    std::unordered_map<const bound_node*, std::shared_ptr<bound_node>> _mutable;
};

} // namespace

size_t bound_expr::select_true(const batch& b, uint32_t* rows) const {
    memo_scope scope(b);
    return refine(*_node, b, nullptr, b.num_rows(), rows);
}

void bound_expr::columns_read(std::vector<size_t>& out) const { collect_columns(*_node, out); }

bound_expr bound_expr::remap_columns(const std::vector<size_t>& to) const {
    std::unordered_map<const bound_node*, node_ptr> copies;
    return bound_expr(remap(_node, to, copies));
}

result<bound_expr> bind(const expr& e, const schema& s) {
    if (e.empty()) {
        return fail(errc::invalid_argument, "empty expression");
    }
    binder bd{s};
    RUNNEL_TRY(auto n, bd.bind_node(e));
    return bound_expr(interner().intern(n));
}

std::optional<int64_t> parse_timestamp(std::string_view s, time_unit unit) {
    int y, mo, d, h = 0, mi = 0, sec = 0;
    char frac[16] = {0};
    std::string z(s);
    int got = std::sscanf(z.c_str(), "%d-%d-%d%*c%d:%d:%d.%15[0-9]", &y, &mo, &d, &h, &mi, &sec, frac);
    if (got < 3 || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60 || h < 0 || mi < 0 || sec < 0) {
        return std::nullopt;
    }
    if (got == 3 && z.size() > 10) return std::nullopt;
    int64_t days = days_from_civil(y, unsigned(mo), unsigned(d));
    int64_t secs = days * 86400 + h * 3600 + mi * 60 + sec;
    int64_t micros = 0;
    if (got == 7) {
        std::string f(frac);
        f.resize(6, '0');
        micros = std::stoll(f);
    }
    return unit == time_unit::millis ? secs * 1000 + micros / 1000 : secs * 1000000 + micros;
}

std::string format_timestamp(int64_t t, time_unit unit) {
    int64_t per = unit == time_unit::millis ? 1000 : 1000000;
    int64_t secs = t >= 0 ? t / per : -((-t + per - 1) / per);
    int64_t frac = t - secs * per;
    int64_t days = secs >= 0 ? secs / 86400 : -((-secs + 86399) / 86400);
    int64_t rem = secs - days * 86400;
    int64_t y;
    unsigned m, d;
    civil_from_days(days, y, m, d);
    return fmt::format("{:04}-{:02}-{:02} {:02}:{:02}:{:02}.{:0{}}", y, m, d, rem / 3600, rem / 60 % 60,
                       rem % 60, frac, unit == time_unit::millis ? 3 : 6);
}

} // namespace runnel::engine
