#include "connect/datagen/datagen.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <limits>

#include <fmt/format.h>

namespace runnel::connect::datagen {
namespace {

namespace en = runnel::engine;

en::error bad(std::string why) { return en::error(en::errc::invalid_argument, std::move(why)); }

/// splitmix64's finaliser: a 64-bit mix good enough to make independent streams from counters.
uint64_t mix(uint64_t x) {
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

uint64_t name_hash(std::string_view s) {
    uint64_t h = 0xcbf29ce484222325ULL; // FNV-1a
    for (unsigned char c : s) h = (h ^ c) * 0x100000001b3ULL;
    return h;
}

/// A uniform double in [0, 1) from 53 random bits.
double unit(uint64_t r) { return double(r >> 11) * 0x1.0p-53; }

std::optional<int64_t> parse_int(std::string_view s) {
    int64_t v = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc() || p != s.data() + s.size() || s.empty()) return std::nullopt;
    return v;
}

std::optional<double> parse_double(std::string_view s) {
    if (s.empty()) return std::nullopt;
    std::string z(s);
    char* end = nullptr;
    double v = std::strtod(z.c_str(), &end);
    if (*end != '\0' || !std::isfinite(v)) return std::nullopt;
    return v;
}

const char* kind_name(column_kind k) {
    switch (k) {
    case column_kind::tinyint: return "TINYINT";
    case column_kind::smallint: return "SMALLINT";
    case column_kind::int_: return "INT";
    case column_kind::bigint: return "BIGINT";
    case column_kind::float_: return "FLOAT";
    case column_kind::double_: return "DOUBLE";
    case column_kind::decimal: return "DECIMAL";
    case column_kind::boolean: return "BOOLEAN";
    case column_kind::string: return "STRING";
    case column_kind::timestamp: return "TIMESTAMP";
    }
    return "?";
}

bool is_integer(column_kind k) {
    return k == column_kind::tinyint || k == column_kind::smallint || k == column_kind::int_ || k == column_kind::bigint;
}
bool is_number(column_kind k) {
    return is_integer(k) || k == column_kind::float_ || k == column_kind::double_ || k == column_kind::decimal;
}

std::pair<int64_t, int64_t> integer_range(column_kind k) {
    switch (k) {
    case column_kind::tinyint: return {-128, 127};
    case column_kind::smallint: return {-32768, 32767};
    case column_kind::int_: return {std::numeric_limits<int32_t>::min(), std::numeric_limits<int32_t>::max()};
    default: return {std::numeric_limits<int64_t>::min(), std::numeric_limits<int64_t>::max()};
    }
}

constexpr const char* field_options[] = {"kind", "min", "max", "length", "start", "end", "null-rate"};

} // namespace

en::result<generator> generator::make(const std::map<std::string, std::string>& options, std::vector<column> columns,
                                      en::schema_ptr schema) {
    generator g;
    g._schema = std::move(schema);
    uint64_t seed = 0;
    // Every option must be one we read: a typo is an error, not a silent default.
    for (const auto& [k, v] : options) {
        if (k == "rows-per-second") {
            auto n = parse_int(v);
            if (!n || *n < 0) return bad(fmt::format("option 'rows-per-second' must be a whole number >= 0, not '{}'", v));
            g._rate = *n;
        } else if (k == "number-of-rows") {
            auto n = parse_int(v);
            if (!n || *n < 0) return bad(fmt::format("option 'number-of-rows' must be a whole number >= 0, not '{}'", v));
            g._end = *n;
        } else if (k == "seed") {
            auto n = parse_int(v);
            if (!n) return bad(fmt::format("option 'seed' must be a whole number, not '{}'", v));
            seed = uint64_t(*n);
        } else if (k.starts_with("fields.")) {
            auto dot = k.rfind('.');
            auto col = k.substr(7, dot > 7 ? dot - 7 : 0);
            auto opt = k.substr(dot + 1);
            if (dot <= 7 || col.empty()) return bad(fmt::format("option '{}' is not fields.<column>.<option>", k));
            if (std::none_of(columns.begin(), columns.end(), [&](const column& c) { return c.name == col; })) {
                return bad(fmt::format("option '{}' names column '{}', which the table does not have", k, col));
            }
            if (std::find(std::begin(field_options), std::end(field_options), opt) == std::end(field_options)) {
                return bad(fmt::format("option '{}': '{}' is not a datagen field option (kind, min, max, length, start, "
                                       "end, null-rate)",
                                       k, opt));
            }
        } else {
            return bad(fmt::format("option '{}' is not a datagen option (number-of-rows, rows-per-second, seed, "
                                   "fields.<column>.<option>)",
                                   k));
        }
    }
    for (std::size_t i = 0; i < columns.size(); ++i) {
        field_gen f;
        f.col = columns[i];
        const auto& name = f.col.name;
        const auto kind = f.col.kind;
        f.salt = mix(seed ^ mix(name_hash(name)));
        auto opt = [&](const char* o) -> std::optional<std::string> {
            auto it = options.find(fmt::format("fields.{}.{}", name, o));
            return it == options.end() ? std::nullopt : std::optional<std::string>(it->second);
        };
        auto key = [&](const char* o) { return fmt::format("fields.{}.{}", name, o); };
        const auto k = opt("kind").value_or("random");
        if (k != "random" && k != "sequence") {
            return bad(fmt::format("option '{}' is random or sequence, not '{}'", key("kind"), k));
        }
        f.sequence = k == "sequence";
        if ((opt("min") || opt("max")) && (f.sequence || !is_number(kind))) {
            return bad(fmt::format("option '{}' applies to random numeric columns; column '{}' is {}{}",
                                   key(opt("min") ? "min" : "max"), name, f.sequence ? "a sequence of " : "",
                                   kind_name(kind)));
        }
        if ((opt("start") || opt("end")) && !f.sequence) {
            return bad(fmt::format("option '{}' applies to sequences; set '{}' = 'sequence'",
                                   key(opt("start") ? "start" : "end"), key("kind")));
        }
        if (opt("length") && (f.sequence || kind != column_kind::string)) {
            return bad(fmt::format("option '{}' applies to random string columns; column '{}' is {}{}", key("length"),
                                   name, f.sequence ? "a sequence of " : "", kind_name(kind)));
        }
        if (opt("null-rate") && f.sequence) {
            return bad(fmt::format("option '{}' applies to random columns, not sequences", key("null-rate")));
        }
        if (f.sequence) {
            if (kind == column_kind::boolean || kind == column_kind::timestamp) {
                return bad(fmt::format("column '{}' is {}: a sequence is of numbers or strings", name, kind_name(kind)));
            }
            auto s = opt("start"), e = opt("end");
            if (!s || !e) return bad(fmt::format("a sequence needs '{}' and '{}'", key("start"), key("end")));
            auto sv = parse_int(*s), ev = parse_int(*e);
            if (!sv) return bad(fmt::format("option '{}' must be a whole number, not '{}'", key("start"), *s));
            if (!ev) return bad(fmt::format("option '{}' must be a whole number, not '{}'", key("end"), *e));
            if (*sv > *ev) return bad(fmt::format("option '{}' ({}) is above '{}' ({})", key("start"), *sv, key("end"), *ev));
            if (is_integer(kind)) {
                auto [lo, hi] = integer_range(kind);
                if (*sv < lo || *ev > hi) {
                    return bad(fmt::format("sequence {}..{} of column '{}' does not fit {}", *sv, *ev, name, kind_name(kind)));
                }
            }
            f.start = *sv;
            f.end = *ev;
            // The rows end with the shortest sequence.
            const int64_t len = (f.end - f.start == std::numeric_limits<int64_t>::max()) ? f.end - f.start : f.end - f.start + 1;
            g._end = g._end ? std::min(*g._end, len) : len;
        } else if (is_integer(kind)) {
            auto [lo, hi] = integer_range(kind);
            f.imin = lo;
            f.imax = hi;
            if (auto m = opt("min")) {
                auto v = parse_int(*m);
                if (!v || *v < lo || *v > hi) {
                    return bad(fmt::format("option '{}' must be a whole number in {}'s range, not '{}'", key("min"),
                                           kind_name(kind), *m));
                }
                f.imin = *v;
            }
            if (auto m = opt("max")) {
                auto v = parse_int(*m);
                if (!v || *v < lo || *v > hi) {
                    return bad(fmt::format("option '{}' must be a whole number in {}'s range, not '{}'", key("max"),
                                           kind_name(kind), *m));
                }
                f.imax = *v;
            }
            if (f.imin > f.imax) return bad(fmt::format("option '{}' is above '{}'", key("min"), key("max")));
        } else if (is_number(kind)) {
            if (kind == column_kind::decimal) {
                // Values that fit DECIMAL(p, s): below 10^(p-s) in magnitude.
                const double top = std::pow(10.0, f.col.precision - f.col.scale) - std::pow(10.0, -f.col.scale);
                f.min = -top;
                f.max = top;
            } else {
                f.min = -std::numeric_limits<double>::max() / 2;
                f.max = std::numeric_limits<double>::max() / 2;
            }
            if (auto m = opt("min")) {
                auto v = parse_double(*m);
                if (!v) return bad(fmt::format("option '{}' must be a number, not '{}'", key("min"), *m));
                f.min = *v;
            }
            if (auto m = opt("max")) {
                auto v = parse_double(*m);
                if (!v) return bad(fmt::format("option '{}' must be a number, not '{}'", key("max"), *m));
                f.max = *v;
            }
            if (f.min > f.max) return bad(fmt::format("option '{}' is above '{}'", key("min"), key("max")));
        } else if (kind == column_kind::string) {
            if (auto l = opt("length")) {
                auto v = parse_int(*l);
                if (!v || *v < 0 || *v > (1 << 20)) {
                    return bad(fmt::format("option '{}' must be a whole number from 0 to 1048576, not '{}'", key("length"), *l));
                }
                f.length = *v;
            }
            if (f.col.precision > 0 && f.length > f.col.precision) {
                if (opt("length")) {
                    return bad(fmt::format("option '{}' ({}) is longer than column '{}' holds ({})", key("length"),
                                           f.length, name, f.col.precision));
                }
                f.length = f.col.precision;
            }
        }
        if (auto r = opt("null-rate")) {
            auto v = parse_double(*r);
            if (!v || *v < 0 || *v > 1) return bad(fmt::format("option '{}' must be from 0 to 1, not '{}'", key("null-rate"), *r));
            if (i < g._schema->size() && !g._schema->at(i).nullable && *v > 0) {
                return bad(fmt::format("option '{}': column '{}' is NOT NULL", key("null-rate"), name));
            }
            f.null_rate = *v;
        }
        g._fields.push_back(std::move(f));
    }
    return g;
}

void generator::slice(int64_t instance, int64_t instances) {
    if (instances <= 1) return;
    _first = instance;
    _stride = instances;
    if (_end) _end = *_end > instance ? (*_end - instance + instances - 1) / instances : 0;
    if (_rate > 0) _rate = std::max<int64_t>(1, (_rate + instances - 1) / instances);
}

std::optional<int64_t> generator::remaining() const {
    if (!_end) return std::nullopt;
    return std::max<int64_t>(0, *_end - _position);
}

void generator::fill(const field_gen& f, en::column& out, int64_t from, std::size_t n, model::processing_time now) const {
    const auto kind = f.col.kind;
    static constexpr char hex[] = "0123456789abcdef";
    for (std::size_t j = 0; j < n; ++j) {
        const int64_t row = _first + (from + int64_t(j)) * _stride;
        if (f.sequence) {
            const int64_t v = f.start + row;
            if (kind == column_kind::string) out.push_string(std::to_string(v));
            else if (is_integer(kind)) out.push_int64(v);
            else out.push_float64(double(v));
            continue;
        }
        // Each row has its own stream of random numbers: r(0), r(1), …
        const uint64_t base = mix(f.salt + uint64_t(row));
        uint64_t draws = 0;
        auto r = [&] { return mix(base + 0x632be59bd9b4e019ULL * ++draws); };
        if (f.null_rate > 0 && unit(r()) < f.null_rate) {
            out.push_null();
            continue;
        }
        switch (kind) {
        case column_kind::tinyint:
        case column_kind::smallint:
        case column_kind::int_:
        case column_kind::bigint: {
            const uint64_t span = uint64_t(f.imax) - uint64_t(f.imin) + 1; // 0: the whole int64 range
            const uint64_t x = r();
            const uint64_t off = span == 0 ? x : uint64_t((unsigned __int128)x * span >> 64);
            out.push_int64(int64_t(uint64_t(f.imin) + off));
            break;
        }
        case column_kind::float_:
        case column_kind::double_:
            out.push_float64(f.min + (f.max - f.min) * unit(r()));
            break;
        case column_kind::decimal: {
            const double scale = std::pow(10.0, f.col.scale);
            double v = std::round((f.min + (f.max - f.min) * unit(r())) * scale) / scale;
            out.push_float64(std::clamp(v, f.min, f.max));
            break;
        }
        case column_kind::boolean:
            out.push_bool((r() >> 63) != 0);
            break;
        case column_kind::string: {
            std::string s(std::size_t(f.length), '0');
            uint64_t bits = 0;
            for (std::size_t c = 0; c < s.size(); ++c) {
                if (c % 16 == 0) bits = r();
                s[c] = hex[bits & 15];
                bits >>= 4;
            }
            out.push_string(s);
            break;
        }
        case column_kind::timestamp: {
            const auto& t = out.type();
            out.push_int64(t.unit == en::time_unit::micros ? now() * 1000 : now());
            break;
        }
        }
    }
}

en::batch generator::next(std::size_t max_rows, model::processing_time now) {
    std::size_t n = max_rows;
    if (auto left = remaining()) n = std::size_t(std::min<int64_t>(int64_t(n), *left));
    en::batch b(_schema);
    auto& cols = b.columns();
    for (std::size_t i = 0; i < _fields.size() && i < cols.size(); ++i) {
        cols[i].reserve(n);
        fill(_fields[i], cols[i], _position, n, now);
    }
    b.seal();
    _position += int64_t(n);
    return b;
}

en::source_fn source::fn() {
    return [this]() -> en::source_poll {
        if (_paused) return en::source_poll::idle();
        if (_g.done()) return en::source_poll::end();
        const auto now = _clock();
        std::size_t n = 4096;
        if (_g.rows_per_second() > 0) {
            if (!_since) _since.emplace(now, _g.position());
            const int64_t elapsed = std::max<int64_t>(0, now() - _since->first());
            const int64_t allowed = _since->second + elapsed * _g.rows_per_second() / 1000 - _g.position();
            if (allowed <= 0) return en::source_poll::idle();
            n = std::size_t(std::min<int64_t>(allowed, int64_t(n)));
        }
        auto b = _g.next(n, now);
        if (b.num_rows() == 0) return _g.done() ? en::source_poll::end() : en::source_poll::idle();
        return en::source_poll::data(std::move(b));
    };
}

void source::pause(bool paused) {
    _paused = paused;
    // The pause is not held against the rate: counting starts again on resume.
    if (!paused) _since.reset();
}

runnel::result<void> source::restore(std::string_view state) {
    auto n = parse_int(state);
    if (!n || *n < 0) return std::error_code(EINVAL, std::generic_category());
    _g.seek(*n);
    _since.reset();
    return ok();
}

} // namespace runnel::connect::datagen
