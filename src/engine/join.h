#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include <boost/unordered/unordered_flat_map.hpp>

#include "engine/stage.h"

namespace runnel::engine {

enum class join_type : uint8_t { inner, left };

/// How two streams join. Rows match when their key columns are equal (NULL keys never match)
/// and, for a time-bounded join, when `right_time − left_time` is within [lower, upper].
///
/// - **Regular join** (no `interval`): every row is kept; each arriving row joins every match
///   the other side has seen. State grows with the input (bound it with a TTL upstream).
///   Only inner joins. Either input may be a changelog: an `update_before` or `delete_row`
///   row removes the equal held row and emits a `delete_row` for each pair it had joined;
///   other rows join as inserts.
/// - **Interval join** (`interval`): a row is kept until the combined watermark shows that no
///   row it could match can still come (left: left_time + upper; right: right_time − lower),
///   then dropped; a left row of a left join that never matched is emitted then, with NULLs.
///   The output watermark is held back by max(|lower|, |upper|) so joined rows are not late.
/// - **Window join**: an interval join on the windows' `window_end` columns with
///   lower = upper = 0, keyed by the window key as well.
struct join_spec {
    std::vector<std::string> left_keys, right_keys;
    join_type type = join_type::inner;
    struct bounds {
        std::string left_time, right_time;
        std::chrono::milliseconds lower{0}, upper{0};
    };
    std::optional<bounds> interval;
};

/// The state of one side of a join: its rows in columnar form, their expiry times, and an
/// index from the encoded key to the rows. Dead rows are skipped, and compacted away once they
/// are the majority. One thread.
struct join_side {
    schema_ptr schema;
    std::vector<size_t> keys;
    std::optional<size_t> time; ///< interval joins
    bool micros = false;
    std::vector<column> cols;
    std::vector<int64_t> expiry;
    std::vector<uint8_t> alive, matched;
    size_t live = 0;
    boost::unordered_flat_map<std::string, std::vector<uint32_t>> index;

    void reset();
    uint32_t append(const batch& b, size_t row, int64_t exp);
    void compact();
    size_t size() const { return expiry.size(); }
};

/// Joins two streams (input 0 = left, input 1 = right); see `join_spec`. Output rows are the
/// left columns then the right ones (a right name already used gets a digit, as in Flink:
/// `id0`). Rows that arrive after the watermark has passed every row they could match are
/// counted as late (`metrics().late_rows`) and do not join. `snapshot`/`restore` capture both
/// sides. One thread.
class join_stage final : public stage {
public:
    static result<std::unique_ptr<join_stage>> make(schema_ptr left, schema_ptr right, join_spec spec);

    const char* name() const override { return _spec.interval ? "interval-join" : "join"; }
    schema_ptr output_schema(size_t) const override { return _out; }
    void on_batch(size_t input, batch b, stage_output& out) override;
    void on_watermark(model::event_time wm, stage_output& out) override;
    std::string snapshot() const override;
    result<void> restore(std::string_view bytes) override;

    /// Rows held in state (both sides), for tests and metrics.
    size_t held_rows() const { return _left.live + _right.live; }

private:
    join_stage() = default;
    void emit_pair(const join_side& l, uint32_t li, const join_side* r, uint32_t ri,
                   row_kind k = row_kind::insert);
    /// Regular join: row `i` of `b` (with encoded key `key`) takes back its held equal.
    void retract(bool is_left, const batch& b, size_t i, const std::string& key);
    void flush(stage_output& out);

    join_spec _spec;
    join_side _left, _right;
    schema_ptr _out;
    int64_t _delay = 0;
    int64_t _wm = INT64_MIN;
    std::vector<column> _pending;
    std::vector<row_kind> _pending_kinds; ///< empty while every pending row is an insert
    size_t _pending_rows = 0;
};

/// Joins each row of a stream (input 0) with the current row of a table (input 1) for its key:
/// a lookup join, as Flink's `JOIN t FOR SYSTEM_TIME AS OF s.proctime`. The table input is a
/// changelog or an upsert stream (e.g. a compacted topic read from the start): each row
/// replaces the row of its key, delete and update-before rows remove it. A stream row joins the
/// table as it is when the row arrives; with `join_type::left`, a row without a match gets
/// NULLs. State is the table. One thread.
class lookup_join_stage final : public stage {
public:
    static result<std::unique_ptr<lookup_join_stage>> make(schema_ptr stream, schema_ptr table,
                                                           std::vector<std::string> stream_keys,
                                                           std::vector<std::string> table_keys, join_type type);

    const char* name() const override { return "lookup-join"; }
    bool ignores_watermark_of(size_t input) const override { return input == 1; }
    schema_ptr output_schema(size_t) const override { return _out; }
    void on_batch(size_t input, batch b, stage_output& out) override;
    std::string snapshot() const override;
    result<void> restore(std::string_view bytes) override;
    size_t table_rows() const { return _table.size(); }

private:
    lookup_join_stage() = default;
    schema_ptr _stream, _tschema, _out;
    std::vector<size_t> _skeys, _tkeys;
    join_type _type = join_type::inner;
    boost::unordered_flat_map<std::string, std::vector<value>> _table;
};

/// The joined schema: left fields, then right fields renamed with a digit when taken.
schema_ptr joined_schema(const schema& left, const schema& right, bool right_nullable);

} // namespace runnel::engine
