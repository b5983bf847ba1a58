#pragma once

#include "engine/engine.h"

#include <cstdint>
#include <ostream>
#include <string>
#include <unordered_map>
#include <vector>

namespace runnel::nexmark_check {

/// One value as a CSV field: RFC 4180 quoting; integers in decimal; timestamps as epoch
/// milliseconds; doubles in the shortest form that reads back to the same double; booleans as
/// 1/0; NULL as \N (unquoted; a string equal to \N is quoted).
std::string csv_value(const engine::value& v);
/// The values of a row as one CSV line, without the newline.
std::string csv_row(const std::vector<engine::value>& row);
/// int64, float64, string, timestamp or boolean.
const char* type_name(engine::data_type t);

/// The final contents of a sink table: the changelog it received, applied. With a primary key,
/// an insert or update_after replaces the row of its key and an update_before or delete removes
/// the key's row; without one, rows form a multiset and a retraction removes one equal row.
/// Rows are held as their CSV lines (equal rows, equal lines). A retraction of a row the table
/// does not hold is counted, not applied. A plain value; one thread.
class final_table {
public:
    /// `key`: indexes of the primary key columns in `columns` (empty: no key).
    final_table(engine::schema_ptr columns, std::vector<std::size_t> key)
        : _columns(std::move(columns))
        , _key(std::move(key)) {}

    /// Applies every row of `b` (whose columns are `columns`) in order.
    void apply(const engine::batch& b);

    /// A header line of `name:type` fields, then one line per row, in no particular order.
    void write(std::ostream& out) const;

    /// Rows held now.
    std::size_t size() const;

    /// Rows applied so far, of every kind.
    uint64_t changes = 0;
    /// Retractions of rows the table did not hold, and the first of them as `kind line`.
    uint64_t unmatched_retractions = 0;
    std::string first_unmatched;

private:
    void unmatched(engine::row_kind kind, const std::string& line);

    engine::schema_ptr _columns;
    std::vector<std::size_t> _key;
    std::unordered_map<std::string, int64_t> _counts;     ///< no key: line -> how many
    std::unordered_map<std::string, std::string> _by_key; ///< key: key's line -> row's line
};

} // namespace runnel::nexmark_check
