#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace runnel::sql {

/// The logical types of Flink SQL that Runnel knows. `string` is Flink's STRING, an unbounded
/// VARCHAR; it stays a kind of its own so a printed table reads as it was written.
enum class type_kind {
    boolean,
    tinyint,
    smallint,
    int_,
    bigint,
    float_,
    double_,
    decimal,
    char_,
    varchar,
    string,
    bytes,
    date,
    time,
    timestamp,
    timestamp_ltz,
    interval_day_time,
    interval_year_month,
    array,
    map,
    row, ///< ROW<name type, …>: named fields, possibly nested
    null, ///< the type of an untyped NULL literal
};

/// A SQL type: a kind, its parameters and nullability. A value type compared field by field.
///
/// `precision` is VARCHAR/CHAR length, DECIMAL precision, or the fractional-second digits of
/// TIME/TIMESTAMP/TIMESTAMP_LTZ; `scale` is DECIMAL's scale. Absent parameters keep the
/// dialect's defaults (see `effective_precision`) and are not printed.
struct data_type {
    type_kind kind = type_kind::null;
    std::optional<int32_t> precision;
    std::optional<int32_t> scale;
    bool nullable = true;
    /// ARRAY: one element type; MAP: key then value type; ROW: the fields' types.
    std::vector<data_type> children;
    /// ROW: the fields' names, one per child.
    std::vector<std::string> field_names;

    bool operator==(const data_type&) const = default;

    static data_type of(type_kind k) {
        data_type t;
        t.kind = k;
        return t;
    }
};

/// Upper bound of VARCHAR/CHAR lengths and DECIMAL/TIMESTAMP parameters, as in Flink.
inline constexpr int32_t max_varchar_length = 2147483647;
inline constexpr int32_t max_decimal_precision = 38;
inline constexpr int32_t max_timestamp_precision = 9;

/// The precision a type has when none was written: DECIMAL 10, TIMESTAMP 6, TIME 0, CHAR 1,
/// VARCHAR and STRING the maximum. Other kinds: 0.
int32_t effective_precision(const data_type& t) noexcept;

/// DECIMAL's scale when none was written: 0.
int32_t effective_scale(const data_type& t) noexcept;

bool is_integer(type_kind k) noexcept;
bool is_numeric(type_kind k) noexcept;
bool is_character(type_kind k) noexcept;
bool is_temporal(type_kind k) noexcept;
bool is_interval(type_kind k) noexcept;

/// The type both operands of an arithmetic operator or comparison are widened to, or nothing
/// when the two cannot meet (e.g. BOOLEAN and BIGINT). The result is nullable when either is.
std::optional<data_type> common_type(const data_type& a, const data_type& b);

/// The index of ROW field `name` in `t` (names compare exactly), or nothing.
std::optional<std::size_t> find_field(const data_type& t, std::string_view name);

/// The type as Flink SQL writes it, e.g. `DECIMAL(10, 2)`, `TIMESTAMP_LTZ(3) NOT NULL`.
std::string to_string(const data_type& t);

} // namespace runnel::sql
