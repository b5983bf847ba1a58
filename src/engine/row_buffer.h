#pragma once

#include <utility>
#include <vector>

#include "engine/batch.h"

namespace runnel::engine {

/// Output rows a stage gathers column by column until they make a batch (the joins, which
/// build each output row from parts of two inputs). Rows are inserts unless `add_row` says
/// otherwise; the kinds are kept only once one differs. One thread.
class row_buffer {
public:
    row_buffer() = default;
    explicit row_buffer(schema_ptr s)
      : _schema(std::move(s)) {
        reset();
    }

    /// The columns to push the next row's values to, in the schema's order.
    std::vector<column>& cols() { return _cols; }
    /// Counts the row whose values were just pushed.
    void add_row(row_kind k = row_kind::insert) {
        if (k != row_kind::insert || !_kinds.empty()) {
            _kinds.resize(_rows, row_kind::insert);
            _kinds.push_back(k);
        }
        ++_rows;
    }
    size_t rows() const { return _rows; }
    bool empty() const { return _rows == 0; }

    /// The gathered rows as one batch; the buffer starts again empty.
    batch take() {
        batch b(_schema, std::move(_cols), std::move(_kinds));
        reset();
        return b;
    }

private:
    void reset() {
        _cols.clear();
        _kinds.clear();
        for (const auto& f : _schema->fields()) _cols.emplace_back(f.type);
        _rows = 0;
    }

    schema_ptr _schema;
    std::vector<column> _cols;
    std::vector<row_kind> _kinds; ///< empty while every row is an insert
    size_t _rows = 0;
};

} // namespace runnel::engine
