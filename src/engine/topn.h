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
};

/// Keeps the first `n` rows per partition key (ties: the earlier row first).
///
/// Window Top-N (`window_end` set) is append-only: each window's rows are emitted once, with a
/// `rank` column (1…n) added, when the watermark shows the window complete, and its state is
/// dropped. Unbounded Top-N emits a changelog: an insert row when a row enters the top, a
/// delete row for the row it pushes out (no rank column: ranks of the others would change,
/// which Flink likewise avoids when `rn` is not selected). State: at most `n` rows per key.
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
    std::optional<size_t> _end;
    uint64_t _arrivals = 0;
    boost::unordered_flat_map<std::string, group> _groups;
};

} // namespace runnel::engine
