#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "engine/expr.h"
#include "engine/row_buffer.h"
#include "engine/stage.h"
#include "engine/window.h"

namespace runnel::engine {

enum class window_join_type : uint8_t { inner, left, right, full };

/// One input of a window join. Either its rows carry their window in two timestamp columns
/// (`window_start`, `window_end`: the output of a window aggregation), or, with `assign`, the
/// join puts each row into the windows of `assign` by its event-time column `time` (a window
/// table function read directly) and the side gains the columns `window_start`, `window_end`
/// and `window_time` (= window_end − 1 ms).
struct window_join_input {
    std::vector<std::string> keys;
    std::string window_start, window_end;
    std::string time;
    std::optional<window_spec> assign; ///< tumbling, hopping or cumulative
};

/// How two windowed streams join: per window, rows of the same window (equal window_start and
/// window_end) and equal keys (no keys: every pair of the window) match when `condition` (over
/// the joined schema; empty: always) is TRUE. Outer types add, at window close, each row of
/// the kept side(s) that matched nothing, with NULLs for the other side.
struct window_join_spec {
    window_join_input left, right;
    window_join_type type = window_join_type::inner;
    expr condition;
    /// A window closes once the watermark reaches window_end − 1 + this (as the window
    /// aggregation that may feed the join).
    std::chrono::milliseconds allowed_lateness{0};
};

/// The columns a side contributes: its input's, plus the window columns when it assigns them.
schema_ptr window_join_side_schema(const schema& in, const window_join_input& side);
/// The joined schema: the left side's columns, then the right side's (renamed with a digit
/// when taken, as `joined_schema`), nullable where an outer join may leave them NULL.
schema_ptr window_join_schema(const schema& left, const schema& right, const window_join_spec& spec);

/// Joins two streams window by window (input 0 = left, input 1 = right), as Flink's window
/// join: see `window_join_spec`.
///
/// - Rows are held per window until the watermark (the minimum of both inputs') reaches the
///   window's end − 1 + allowed lateness; then the window's joined rows come out (left rows in
///   arrival order, each with its matches in arrival order, or alone with NULLs for a LEFT or
///   FULL join; then the unmatched right rows of a RIGHT or FULL join) and its state is
///   dropped. Output is append-only and leaves before the watermark that closed its window.
/// - A row whose window has already closed (for a row the join assigns to several windows:
///   all of them) is late: it is counted in `metrics().late_rows` and sent to output 1, in the
///   joined schema (all nullable, the other side NULL) plus a `reason` column.
///
/// `snapshot`/`restore` capture the open windows. One thread.
class window_join_stage final : public stage {
public:
    static result<std::unique_ptr<window_join_stage>> make(schema_ptr left, schema_ptr right,
                                                           window_join_spec spec);

    const char* name() const override { return "window-join"; }
    size_t num_outputs() const override { return 2; }
    schema_ptr output_schema(size_t port) const override { return port == 0 ? _out : _late; }
    void on_batch(size_t input, batch b, stage_output& out) override;
    void on_watermark(model::event_time wm, stage_output& out) override;
    std::string snapshot() const override;
    result<void> restore(std::string_view bytes) override;

    /// Windows open and rows held in them (both sides), for tests and metrics.
    size_t open_windows() const { return _windows.size(); }
    size_t held_rows() const;

private:
    /// What the stage knows of one input.
    struct side_info {
        schema_ptr in, out;
        std::vector<size_t> keys;
        size_t start = 0, end = 0, time = 0;
        bool start_micros = false, end_micros = false, time_micros = false;
        std::optional<window_spec> assign;
    };
    /// The rows of one side in one window, in its input schema.
    struct rows {
        std::vector<column> cols;
        size_t n = 0;
    };
    struct window_rows {
        rows side[2];
    };
    using window_id = std::pair<int64_t, int64_t>; ///< (end, start), so windows close in order

    window_join_stage() = default;
    rows empty_rows(int s) const;
    /// Appends the columns of side `s` for row `i` of `r` (or NULLs when `r` is null) to
    /// `out` from column `c` on.
    void append_side(std::vector<column>& out, size_t& c, int s, const rows* r, uint32_t i,
                     const window_id& w) const;
    void emit_row(const window_rows& wr, const window_id& w, const uint32_t* li, const uint32_t* ri,
                  stage_output& out);
    void close(const window_id& w, window_rows& wr, stage_output& out);
    void flush(stage_output& out);

    side_info _side[2];
    window_join_type _type = window_join_type::inner;
    std::optional<bound_expr> _condition;
    int64_t _lateness = 0;
    schema_ptr _out, _late;
    int64_t _wm = INT64_MIN;
    std::map<window_id, window_rows> _windows;
    row_buffer _pending;
};

} // namespace runnel::engine
