// The scalar functions SQL knows: one entry each, with the engine expression a call lowers to.
//
// The front-end build (the SQL fuzz target, RUNNEL_SQL_FRONT_END_ONLY) has no engine: its
// entries carry no lowering, since only the binder reads them there.

#include "sql/functions.h"

#include <fmt/format.h>

namespace runnel::sql {

namespace {

#ifndef RUNNEL_SQL_FRONT_END_ONLY
namespace en = runnel::engine;

using result = parse_result<en::expr>;

/// Lowers argument by argument: `f` of the arguments, each translated as `hint`.
template <typename F>
result each(function_args& a, std::initializer_list<std::optional<en::data_type>> hints, F f) {
    std::vector<en::expr> xs;
    std::size_t i = 0;
    for (const auto& h : hints) {
        if (i >= a.size()) {
            break;
        }
        auto x = a.arg(i++, h);
        if (!x) {
            return x;
        }
        xs.push_back(std::move(x).value());
    }
    return f(xs);
}

const auto text_type = en::data_type::string();
const auto int_type = en::data_type::int64();

result lower_lower(function_args& a) {
    return each(a, {text_type}, [](auto& x) { return en::lower(x[0]); });
}
result lower_upper(function_args& a) {
    return each(a, {text_type}, [](auto& x) { return en::upper(x[0]); });
}
result lower_char_length(function_args& a) {
    return each(a, {text_type}, [](auto& x) { return en::char_length(x[0]); });
}
result lower_hour(function_args& a) {
    return each(a, {std::nullopt}, [](auto& x) { return en::hour(x[0]); });
}
result lower_date_format(function_args& a) {
    return each(a, {std::nullopt, text_type}, [](auto& x) { return en::date_format(x[0], x[1]); });
}
result lower_regexp_extract(function_args& a) {
    return each(a, {text_type, text_type, int_type}, [](auto& x) {
        return x.size() == 2 ? en::regexp_extract(x[0], x[1]) : en::regexp_extract(x[0], x[1], x[2]);
    });
}
result lower_replace(function_args& a) {
    return each(a, {text_type, text_type, text_type}, [](auto& x) { return en::replace(x[0], x[1], x[2]); });
}
result lower_split_index(function_args& a) {
    return each(a, {text_type, text_type, int_type}, [](auto& x) { return en::split_index(x[0], x[1], x[2]); });
}
result lower_substring(function_args& a) {
    return each(a, {text_type, int_type, int_type}, [](auto& x) {
        return x.size() == 2 ? en::substring(x[0], x[1]) : en::substring(x[0], x[1], x[2]);
    });
}
result lower_mod(function_args& a) {
    return each(a, {std::nullopt, std::nullopt}, [](auto& x) { return x[0] % x[1]; });
}
result lower_abs(function_args& a) {
    auto x = a.arg(0);
    if (!x) {
        return x;
    }
    auto t = a.type_of(x.value()).value_or(int_type);
    en::expr zero = t.id == en::type_id::float64 ? en::lit(0.0) : en::lit(int64_t(0));
    return en::case_when({{x.value() < zero, -x.value()}}, x.value());
}
result lower_concat(function_args& a) {
    std::vector<en::expr> parts;
    for (std::size_t i = 0; i < a.size(); ++i) {
        auto x = a.text(i);
        if (!x) {
            return x;
        }
        parts.push_back(std::move(x).value());
    }
    return en::concat(std::move(parts));
}
/// COALESCE and IFNULL: the first argument that is not NULL.
result lower_coalesce(function_args& a) {
    auto v = a.values(0);
    if (!v) {
        return v.error();
    }
    auto& xs = v.value();
    if (xs.size() == 1) {
        return xs[0];
    }
    std::vector<std::pair<en::expr, en::expr>> branches;
    for (std::size_t i = 0; i + 1 < xs.size(); ++i) {
        branches.emplace_back(en::is_not_null(xs[i]), xs[i]);
    }
    return en::case_when(std::move(branches), xs.back());
}
result lower_nullif(function_args& a) {
    auto x = a.arg(0, a.expected());
    if (!x) {
        return x;
    }
    auto t = a.type_of(x.value());
    auto y = a.arg(1, t);
    if (!y) {
        return y;
    }
    return en::case_when({{x.value() == y.value(), en::null_of(t.value_or(int_type))}}, x.value());
}
result lower_if(function_args& a) {
    auto c = a.arg(0, en::data_type::boolean());
    if (!c) {
        return c;
    }
    auto v = a.values(1);
    if (!v) {
        return v.error();
    }
    return en::case_when({{c.value(), v.value()[0]}}, v.value()[1]);
}
/// TO_TIMESTAMP_LTZ(epoch, precision): epoch seconds (precision 0) or milliseconds (3).
result lower_to_timestamp_ltz(function_args& a) {
    const expr& prec = a.call().args[1];
    if (prec.kind != expr_kind::literal || (prec.text != "0" && prec.text != "3")) {
        return a.unsupported(1, "TO_TIMESTAMP_LTZ with a precision other than 0 or 3");
    }
    auto x = a.arg(0, int_type);
    if (!x) {
        return x;
    }
    en::expr ms = prec.text == "0" ? x.value() * en::lit(int64_t(1000)) : x.value();
    return en::cast(ms, en::data_type::timestamp());
}
/// TO_TIMESTAMP(text): 'yyyy-MM-dd HH:mm:ss[.SSS]'; a format argument is not run yet.
result lower_to_timestamp(function_args& a) {
    if (a.size() != 1) {
        return a.unsupported(1, "TO_TIMESTAMP with a format");
    }
    return each(a, {text_type}, [](auto& x) { return en::cast(x[0], en::data_type::timestamp()); });
}
result lower_proctime(function_args&) { return en::proctime(); }

#define RUNNEL_LOWER(f) &f
#else
#define RUNNEL_LOWER(f) nullptr
#endif

using d = function_def;
constexpr auto handles = d::handles;

// By name. Columns: name, arguments (least, most), kinds, result rule, result type,
// precision, never NULL, NULL handling, deterministic, lowering.
constexpr function_def all[] = {
  {"ABS", 1, 1, "n", d::first, type_kind::null, {}, false, d::strict, true, RUNNEL_LOWER(lower_abs)},
  {"CARDINALITY", 1, 1, "a", d::fixed, type_kind::int_},
  {"CEIL", 1, 1, "n", d::first},
  {"CEILING", 1, 1, "n", d::first},
  {"CHARACTER_LENGTH", 1, 1, "s", d::fixed, type_kind::int_, {}, false, d::strict, true,
   RUNNEL_LOWER(lower_char_length)},
  {"CHAR_LENGTH", 1, 1, "s", d::fixed, type_kind::int_, {}, false, d::strict, true, RUNNEL_LOWER(lower_char_length)},
  {"COALESCE", 1, variadic, "a", d::common, type_kind::null, {}, false, handles, true, RUNNEL_LOWER(lower_coalesce)},
  {"CONCAT", 1, variadic, "a", d::fixed, type_kind::string, {}, false, d::strict, true, RUNNEL_LOWER(lower_concat)},
  {"CONCAT_WS", 2, variadic, "sa", d::fixed, type_kind::string, {}, false, handles},
  {"CURRENT_DATE", 0, 0, "", d::fixed, type_kind::date, {}, true, d::strict, false},
  {"CURRENT_TIME", 0, 0, "", d::fixed, type_kind::time, {}, true, d::strict, false},
  {"CURRENT_TIMESTAMP", 0, 0, "", d::fixed, type_kind::timestamp_ltz, 3, true, d::strict, false},
  {"CURRENT_WATERMARK", 1, 1, "t", d::first, type_kind::null, {}, false, d::strict, false},
  {"DATE_FORMAT", 2, 2, "as", d::fixed, type_kind::string, {}, false, d::strict, true, RUNNEL_LOWER(lower_date_format)},
  {"DAYOFMONTH", 1, 1, "t", d::fixed, type_kind::bigint},
  {"DAYOFWEEK", 1, 1, "t", d::fixed, type_kind::bigint},
  {"DAYOFYEAR", 1, 1, "t", d::fixed, type_kind::bigint},
  {"EXP", 1, 1, "n", d::fixed, type_kind::double_},
  {"FLOOR", 1, 1, "n", d::first},
  {"FROM_UNIXTIME", 1, 2, "is", d::fixed, type_kind::string},
  {"GREATEST", 1, variadic, "a", d::common},
  {"HOUR", 1, 1, "t", d::fixed, type_kind::bigint, {}, false, d::strict, true, RUNNEL_LOWER(lower_hour)},
  {"IF", 3, 3, "baa", d::common, type_kind::null, {}, false, handles, true, RUNNEL_LOWER(lower_if)},
  {"IFNULL", 2, 2, "a", d::common, type_kind::null, {}, false, handles, true, RUNNEL_LOWER(lower_coalesce)},
  {"INITCAP", 1, 1, "s", d::fixed, type_kind::string},
  {"JSON_VALUE", 2, 2, "s", d::fixed, type_kind::string},
  {"LEAST", 1, variadic, "a", d::common},
  {"LEFT", 2, 2, "si", d::fixed, type_kind::string},
  {"LN", 1, 1, "n", d::fixed, type_kind::double_},
  {"LOCALTIME", 0, 0, "", d::fixed, type_kind::time, {}, true, d::strict, false},
  {"LOCALTIMESTAMP", 0, 0, "", d::fixed, type_kind::timestamp, 3, true, d::strict, false},
  {"LOCATE", 2, 3, "ssi", d::fixed, type_kind::int_},
  {"LOG", 1, 2, "n", d::fixed, type_kind::double_},
  {"LOG10", 1, 1, "n", d::fixed, type_kind::double_},
  {"LOWER", 1, 1, "s", d::fixed, type_kind::string, {}, false, d::strict, true, RUNNEL_LOWER(lower_lower)},
  {"LPAD", 3, 3, "sis", d::fixed, type_kind::string},
  {"LTRIM", 1, 1, "s", d::fixed, type_kind::string},
  {"MD5", 1, 1, "s", d::fixed, type_kind::string},
  {"MINUTE", 1, 1, "t", d::fixed, type_kind::bigint},
  {"MOD", 2, 2, "i", d::common, type_kind::null, {}, false, d::strict, true, RUNNEL_LOWER(lower_mod)},
  {"MONTH", 1, 1, "t", d::fixed, type_kind::bigint},
  {"NOW", 0, 0, "", d::fixed, type_kind::timestamp_ltz, 3, true, d::strict, false},
  {"NULLIF", 2, 2, "a", d::first, type_kind::null, {}, false, handles, true, RUNNEL_LOWER(lower_nullif)},
  {"POWER", 2, 2, "n", d::fixed, type_kind::double_},
  {"PROCTIME", 0, 0, "", d::fixed, type_kind::timestamp_ltz, 3, true, d::strict, false, RUNNEL_LOWER(lower_proctime)},
  {"QUARTER", 1, 1, "t", d::fixed, type_kind::bigint},
  {"RAND", 0, 1, "i", d::fixed, type_kind::double_, {}, false, d::strict, false},
  {"REGEXP", 2, 2, "s", d::fixed, type_kind::boolean},
  {"REGEXP_EXTRACT", 2, 3, "ssi", d::fixed, type_kind::string, {}, false, d::strict, true,
   RUNNEL_LOWER(lower_regexp_extract)},
  {"REGEXP_REPLACE", 3, 3, "s", d::fixed, type_kind::string},
  {"REPEAT", 2, 2, "si", d::fixed, type_kind::string},
  {"REPLACE", 3, 3, "s", d::fixed, type_kind::string, {}, false, d::strict, true, RUNNEL_LOWER(lower_replace)},
  {"REVERSE", 1, 1, "s", d::fixed, type_kind::string},
  {"RIGHT", 2, 2, "si", d::fixed, type_kind::string},
  {"ROUND", 1, 2, "ni", d::first},
  {"RPAD", 3, 3, "sis", d::fixed, type_kind::string},
  {"RTRIM", 1, 1, "s", d::fixed, type_kind::string},
  {"SECOND", 1, 1, "t", d::fixed, type_kind::bigint},
  {"SHA1", 1, 1, "s", d::fixed, type_kind::string},
  {"SHA256", 1, 1, "s", d::fixed, type_kind::string},
  {"SPLIT_INDEX", 3, 3, "ssi", d::fixed, type_kind::string, {}, false, d::strict, true,
   RUNNEL_LOWER(lower_split_index)},
  {"SQRT", 1, 1, "n", d::fixed, type_kind::double_},
  {"SUBSTR", 2, 3, "sii", d::fixed, type_kind::string, {}, false, d::strict, true, RUNNEL_LOWER(lower_substring)},
  {"SUBSTRING", 2, 3, "sii", d::fixed, type_kind::string, {}, false, d::strict, true, RUNNEL_LOWER(lower_substring)},
  {"TIMESTAMPADD", 3, 3, "ait", d::third},
  {"TIMESTAMPDIFF", 3, 3, "att", d::fixed, type_kind::int_},
  {"TO_DATE", 1, 2, "s", d::fixed, type_kind::date},
  {"TO_TIMESTAMP", 1, 2, "s", d::fixed, type_kind::timestamp, 3, false, d::strict, true,
   RUNNEL_LOWER(lower_to_timestamp)},
  {"TO_TIMESTAMP_LTZ", 2, 2, "ni", d::fixed, type_kind::timestamp_ltz, 3, false, d::strict, true,
   RUNNEL_LOWER(lower_to_timestamp_ltz)},
  {"TRIM", 1, 1, "s", d::fixed, type_kind::string},
  {"TRUNCATE", 1, 2, "ni", d::first},
  {"UNIX_TIMESTAMP", 0, 2, "s", d::fixed, type_kind::bigint, {}, false, d::strict, false},
  {"UPPER", 1, 1, "s", d::fixed, type_kind::string, {}, false, d::strict, true, RUNNEL_LOWER(lower_upper)},
  {"WEEK", 1, 1, "t", d::fixed, type_kind::bigint},
  {"YEAR", 1, 1, "t", d::fixed, type_kind::bigint},
};

#undef RUNNEL_LOWER

constexpr bool sorted_by_name() {
    for (std::size_t i = 1; i < std::size(all); ++i) {
        if (!(all[i - 1].name < all[i].name)) {
            return false;
        }
    }
    return true;
}
static_assert(sorted_by_name(), "functions are listed by name, each once");

} // namespace

#ifndef RUNNEL_SQL_FRONT_END_ONLY
parse_result<engine::expr> function_args::arg(std::size_t i) { return arg(i, std::nullopt); }
#endif

const function_def* find_function(std::string_view name) {
    auto it = std::lower_bound(std::begin(all), std::end(all), name,
                               [](const function_def& f, std::string_view n) { return f.name < n; });
    return it != std::end(all) && it->name == name ? &*it : nullptr;
}

std::span<const function_def> functions() { return all; }

const char* kind_name(char k) {
    switch (k) {
    case 'n':
        return "a number";
    case 'i':
        return "an integer";
    case 's':
        return "text";
    case 't':
        return "a date or time";
    case 'b':
        return "a BOOLEAN";
    case 'v':
        return "an INTERVAL";
    default:
        return "a value";
    }
}

std::string function_def::signature() const {
    auto word = [](char k) -> std::string_view {
        switch (k) {
        case 'n': return "number";
        case 'i': return "integer";
        case 's': return "text";
        case 't': return "time";
        case 'b': return "boolean";
        case 'v': return "interval";
        default: return "any";
        }
    };
    std::string out = fmt::format("{}(", name);
    const int shown = max_args == variadic ? std::max(min_args, 1) : max_args;
    for (int i = 0; i < shown; ++i) {
        if (i == min_args && min_args > 0) {
            out += "[";
        }
        if (i > 0) {
            out += ", ";
        }
        out += word(kind_of(static_cast<std::size_t>(i)));
    }
    if (max_args == variadic) {
        out += ", …";
    } else if (max_args > min_args && min_args > 0) {
        out += "]";
    } else if (max_args > min_args) {
        out = fmt::format("{}(", name);
        for (int i = 0; i < max_args; ++i) {
            out += i == 0 ? "[" : ", ";
            out += word(kind_of(static_cast<std::size_t>(i)));
        }
        out += "]";
    }
    out += ")";
    return out;
}

} // namespace runnel::sql
