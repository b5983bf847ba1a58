#pragma once

#include <string>
#include <vector>

#include <boost/unordered/unordered_flat_map.hpp>

#include "engine/stage.h"

namespace runnel::engine {

/// Which rows a Top-N keeps: the first `n` per partition key by `order_by` (SQL's
/// `ROW_NUMBER() OVER (PARTITION BY keys ORDER BY col DESC) … WHERE rn <= n`).
struct top_n_spec {
    std::vector<std::string> partition_keys;
    std::string order_by;      ///< a number or timestamp column; NULLs sort last
    bool descending = true;
    size_t n = 1;
    /// Window Top-N: the partition keys include a window, and this column (its end) tells when
    /// the window is complete; the stage then emits its rows once, with their rank, when the
    /// watermark passes end − 1. Empty: an unbounded Top-N, which emits a changelog.
    std::string window_end;
    /// Further columns (name, descending) that order rows equal on `order_by`, in turn.
    std::vector<std::pair<std::string, bool>> then_by;
    /// Unbounded Top-N: add a `rank` column (1…n) and keep it right (see `top_n_stage`).
    bool rank_column = false;
    /// Rows equal on every order column go to the later one (deduplication keeping the last
    /// row) instead of the earlier one.
    bool later_wins_ties = false;
};

/// Keeps the first `n` rows per partition key (ties: the earlier row first).
///
/// Window Top-N (`window_end` set) is append-only: each window's rows are emitted once, with a
/// `rank` column (1…n) added, when the watermark shows the window complete, and its state is
/// dropped. Unbounded Top-N emits a changelog. Without a rank column: a `delete_row` for the
/// row a newcomer pushes out of the top, then an `insert` of the newcomer (for n = 1, where
/// the newcomer replaces the key's only row, `update_before` and `update_after`). With
/// `rank_column`, the unique key of a row is (partition key, rank): a newcomer at rank p moves
/// the rows below it down, so each rank from p on emits `update_before` of its old row and
/// `update_after` of its new one (an `insert` for a rank filled for the first time), as Flink
/// does when `rn` is selected. The input must be append-only. State: at most `n` rows per key.
/// One thread.
class top_n_stage final : public stage {
public:
    static result<std::unique_ptr<top_n_stage>> make(schema_ptr input, top_n_spec spec);

    const char* name() const override { return "top-n"; }
    schema_ptr output_schema(size_t) const override { return _out; }
    void on_batch(size_t, batch b, stage_output& out) override;
    void on_watermark(model::event_time wm, stage_output& out) override;
    std::string snapshot() const override;
    result<void> restore(std::string_view bytes) override;

private:
    top_n_stage() = default;
    struct entry {
        double order;
        bool null_order;
        uint64_t arrival;
        std::vector<value> row;
        std::vector<std::pair<double, bool>> then; ///< the `then_by` values (value, is NULL)
    };
    struct group {
        std::vector<entry> top; ///< best first
        int64_t window_end = INT64_MAX;
    };
    bool better(const entry& a, const entry& b) const;

    schema_ptr _in, _out;
    top_n_spec _spec;
    std::vector<size_t> _keys;
    size_t _order = 0;
    std::vector<std::pair<size_t, bool>> _then; ///< then_by columns (index, descending)
    std::optional<size_t> _end;
    uint64_t _arrivals = 0;
    boost::unordered_flat_map<std::string, group> _groups;
};

} // namespace runnel::engine
