#include "sql/types.h"

#include <algorithm>

#include <fmt/format.h>

#include "sql/parser.h"

namespace runnel::sql {

int32_t effective_precision(const data_type& t) noexcept {
    if (t.precision) {
        return *t.precision;
    }
    switch (t.kind) {
    case type_kind::decimal:
        return 10;
    case type_kind::timestamp:
    case type_kind::timestamp_ltz:
        return 6;
    case type_kind::char_:
        return 1;
    case type_kind::varchar:
    case type_kind::string:
        return max_varchar_length;
    default:
        return 0;
    }
}

int32_t effective_scale(const data_type& t) noexcept { return t.scale.value_or(0); }

bool is_integer(type_kind k) noexcept {
    return k == type_kind::tinyint || k == type_kind::smallint || k == type_kind::int_ ||
           k == type_kind::bigint;
}

bool is_numeric(type_kind k) noexcept {
    return is_integer(k) || k == type_kind::float_ || k == type_kind::double_ ||
           k == type_kind::decimal;
}

bool is_character(type_kind k) noexcept {
    return k == type_kind::char_ || k == type_kind::varchar || k == type_kind::string;
}

bool is_temporal(type_kind k) noexcept {
    return k == type_kind::date || k == type_kind::time || k == type_kind::timestamp ||
           k == type_kind::timestamp_ltz;
}

bool is_interval(type_kind k) noexcept {
    return k == type_kind::interval_day_time || k == type_kind::interval_year_month;
}

namespace {

int integer_rank(type_kind k) {
    switch (k) {
    case type_kind::tinyint:
        return 1;
    case type_kind::smallint:
        return 2;
    case type_kind::int_:
        return 3;
    case type_kind::bigint:
        return 4;
    default:
        return 0;
    }
}

/// Digits an integer kind needs as a DECIMAL.
int32_t integer_digits(type_kind k) {
    switch (k) {
    case type_kind::tinyint:
        return 3;
    case type_kind::smallint:
        return 5;
    case type_kind::int_:
        return 10;
    default:
        return 19;
    }
}

std::optional<data_type> widen(const data_type& a, const data_type& b) {
    if (a.kind == type_kind::null) {
        return b;
    }
    if (b.kind == type_kind::null) {
        return a;
    }
    if (a.kind == b.kind && a.kind != type_kind::decimal && !is_character(a.kind)) {
        data_type t = a;
        if (a.precision || b.precision) {
            t.precision = std::max(effective_precision(a), effective_precision(b));
        }
        return t;
    }
    if (is_numeric(a.kind) && is_numeric(b.kind)) {
        if (a.kind == type_kind::double_ || b.kind == type_kind::double_ ||
            a.kind == type_kind::float_ || b.kind == type_kind::float_) {
            bool both_float = (a.kind == type_kind::float_ || is_integer(a.kind)) &&
                              (b.kind == type_kind::float_ || is_integer(b.kind));
            return data_type::of(both_float ? type_kind::float_ : type_kind::double_);
        }
        if (a.kind == type_kind::decimal || b.kind == type_kind::decimal) {
            auto digits = [](const data_type& t) {
                return t.kind == type_kind::decimal ? effective_precision(t) - effective_scale(t)
                                                    : integer_digits(t.kind);
            };
            int32_t scale = std::max(effective_scale(a), effective_scale(b));
            int32_t prec = std::min(max_decimal_precision, std::max(digits(a), digits(b)) + scale);
            data_type t = data_type::of(type_kind::decimal);
            t.precision = prec;
            t.scale = scale;
            return t;
        }
        return integer_rank(a.kind) >= integer_rank(b.kind) ? a : b;
    }
    if (is_character(a.kind) && is_character(b.kind)) {
        if (a.kind == type_kind::string || b.kind == type_kind::string) {
            return data_type::of(type_kind::string);
        }
        data_type t = data_type::of(type_kind::varchar);
        t.precision = std::max(effective_precision(a), effective_precision(b));
        return t;
    }
    if ((a.kind == type_kind::timestamp && b.kind == type_kind::timestamp_ltz) ||
        (a.kind == type_kind::timestamp_ltz && b.kind == type_kind::timestamp)) {
        data_type t = data_type::of(type_kind::timestamp_ltz);
        t.precision = std::max(effective_precision(a), effective_precision(b));
        return t;
    }
    if ((a.kind == type_kind::date && b.kind == type_kind::timestamp) ||
        (a.kind == type_kind::timestamp && b.kind == type_kind::date)) {
        return a.kind == type_kind::timestamp ? a : b;
    }
    return std::nullopt;
}

} // namespace

std::optional<data_type> common_type(const data_type& a, const data_type& b) {
    auto t = widen(a, b);
    if (t) {
        t->nullable = a.nullable || b.nullable;
    }
    return t;
}

std::optional<std::size_t> find_field(const data_type& t, std::string_view name) {
    if (t.kind != type_kind::row) {
        return std::nullopt;
    }
    for (std::size_t i = 0; i < t.field_names.size(); ++i) {
        if (t.field_names[i] == name) {
            return i;
        }
    }
    return std::nullopt;
}

std::string to_string(const data_type& t) {
    std::string s;
    auto with_precision = [&](const char* name) {
        s = t.precision ? fmt::format("{}({})", name, *t.precision) : std::string(name);
    };
    switch (t.kind) {
    case type_kind::boolean:
        s = "BOOLEAN";
        break;
    case type_kind::tinyint:
        s = "TINYINT";
        break;
    case type_kind::smallint:
        s = "SMALLINT";
        break;
    case type_kind::int_:
        s = "INT";
        break;
    case type_kind::bigint:
        s = "BIGINT";
        break;
    case type_kind::float_:
        s = "FLOAT";
        break;
    case type_kind::double_:
        s = "DOUBLE";
        break;
    case type_kind::decimal:
        if (t.precision && t.scale) {
            s = fmt::format("DECIMAL({}, {})", *t.precision, *t.scale);
        } else {
            with_precision("DECIMAL");
        }
        break;
    case type_kind::char_:
        with_precision("CHAR");
        break;
    case type_kind::varchar:
        with_precision("VARCHAR");
        break;
    case type_kind::string:
        s = "STRING";
        break;
    case type_kind::bytes:
        s = "BYTES";
        break;
    case type_kind::date:
        s = "DATE";
        break;
    case type_kind::time:
        with_precision("TIME");
        break;
    case type_kind::timestamp:
        with_precision("TIMESTAMP");
        break;
    case type_kind::timestamp_ltz:
        with_precision("TIMESTAMP_LTZ");
        break;
    case type_kind::interval_day_time:
        s = "INTERVAL DAY TO SECOND";
        break;
    case type_kind::interval_year_month:
        s = "INTERVAL YEAR TO MONTH";
        break;
    case type_kind::array:
        s = fmt::format("ARRAY<{}>", t.children.empty() ? "?" : to_string(t.children[0]));
        break;
    case type_kind::map:
        s = fmt::format("MAP<{}, {}>", t.children.size() < 2 ? "?" : to_string(t.children[0]),
                        t.children.size() < 2 ? "?" : to_string(t.children[1]));
        break;
    case type_kind::row:
        s = "ROW<";
        for (std::size_t i = 0; i < t.children.size(); ++i) {
            s += i ? ", " : "";
            s += quote_identifier(i < t.field_names.size() ? t.field_names[i] : std::string("?"));
            s += ' ' + to_string(t.children[i]);
        }
        s += '>';
        break;
    case type_kind::null:
        s = "NULL";
        break;
    }
    if (!t.nullable) {
        s += " NOT NULL";
    }
    return s;
}

} // namespace runnel::sql
