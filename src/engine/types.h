#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace runnel::engine {

enum class type_id : uint8_t { boolean, int64, float64, string, timestamp };

/// Precision of a timestamp column: milliseconds or microseconds since the Unix epoch.
enum class time_unit : uint8_t { millis, micros };

/// The type of a column or expression. Timestamps record their precision.
struct data_type {
    type_id id = type_id::int64;
    time_unit unit = time_unit::millis;

    static constexpr data_type boolean() { return {type_id::boolean}; }
    static constexpr data_type int64() { return {type_id::int64}; }
    static constexpr data_type float64() { return {type_id::float64}; }
    static constexpr data_type string() { return {type_id::string}; }
    static constexpr data_type timestamp(time_unit u = time_unit::millis) {
        return {type_id::timestamp, u};
    }

    bool is_numeric() const { return id == type_id::int64 || id == type_id::float64; }
    /// Stored as int64 values (int64 and timestamps).
    bool is_integral() const { return id == type_id::int64 || id == type_id::timestamp; }

    friend bool operator==(data_type a, data_type b) {
        return a.id == b.id && (a.id != type_id::timestamp || a.unit == b.unit);
    }
    std::string name() const;
};

/// One column of a schema.
struct field {
    std::string name;
    data_type type;
    bool nullable = true;
};

/// Names, types and nullability of a batch's columns. Immutable once built and shared by
/// every batch of a stream (`schema_ptr`); any thread may read it.
class schema {
public:
    schema() = default;
    explicit schema(std::vector<field> fields)
      : _fields(std::move(fields)) {}

    const std::vector<field>& fields() const { return _fields; }
    size_t size() const { return _fields.size(); }
    const field& at(size_t i) const { return _fields[i]; }
    /// The index of the column named `name` (exact match), if there is one.
    std::optional<size_t> index_of(std::string_view name) const;
    std::string to_string() const;

    friend bool operator==(const schema& a, const schema& b);

private:
    std::vector<field> _fields;
};

using schema_ptr = std::shared_ptr<const schema>;

/// How a flat schema holds nested rows (SQL's ROW): a ROW column is a BOOLEAN field, NULL
/// when the ROW is, followed by its fields as fields named `row.field` (a nested ROW the same
/// way, `row.inner.x`). For each field, the index of the ROW it belongs to (-1 at the top)
/// and its name inside it; `is_row` marks the ROW fields. Formats read and write nested
/// objects through it (JSON in `decode_stage` and the sinks). `nested` is false when the
/// schema has no ROW: every field is at the top under its own name.
struct row_layout {
    std::vector<int> parent;
    std::vector<std::string> key;
    std::vector<uint8_t> is_row;
    bool nested = false;

    static row_layout of(const schema& s);
};

inline schema_ptr make_schema(std::vector<field> fields) {
    return std::make_shared<const schema>(std::move(fields));
}

/// The kind of a row in a changelog stream. Append-only streams are all `insert`;
/// unwindowed aggregates retract a previous result with `update_before` and emit the new one
/// with `update_after`.
enum class row_kind : uint8_t { insert, update_before, update_after, delete_row };

const char* row_kind_name(row_kind k);

} // namespace runnel::engine
