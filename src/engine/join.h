#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include <boost/unordered/unordered_flat_map.hpp>
#include <boost/unordered/unordered_flat_set.hpp>

#include "engine/row_buffer.h"
#include "engine/stage.h"

namespace runnel::engine {

/// Checks that the key columns of two join inputs pair up by type: key `k` of `a` (column
/// `a_keys[k]`, named `a_names[k]`) must have the type of key `k` of `b`. The error reads
/// "`what`: key 'x' is T but 'y' is U".
result<void> check_key_types(const schema& a, const std::vector<size_t>& a_keys, const std::vector<std::string>& a_names,
                             const schema& b, const std::vector<size_t>& b_keys, const std::vector<std::string>& b_names,
                             const char* what);

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
/// Window joins (rows held per window, outer joins at window close) are `window_join_stage`.
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
    row_buffer _pending;
};

/// Joins each row of a stream (input 0) with the current row of a table (input 1) for its key:
/// a lookup join, as Flink's `JOIN t FOR SYSTEM_TIME AS OF s.proctime`. The table input is a
/// changelog or an upsert stream (e.g. a compacted topic read from the start): each row
/// replaces the row of its key, delete and update-before rows remove it. A stream row joins the
/// table as it is when the row arrives; with `join_type::left`, a row without a match gets
/// NULLs. With `table_first` (a bounded table, such as a file), the stage takes no stream row
/// before the table input has ended: every stream row sees the whole table, as Flink's lookup
/// of a bounded table that it loads at once; the stream's queue fills meanwhile and holds its
/// source back. Precondition then: the table does not depend on the stream. State is the
/// table. One thread.
class lookup_join_stage final : public stage {
public:
    static result<std::unique_ptr<lookup_join_stage>> make(schema_ptr stream, schema_ptr table,
                                                           std::vector<std::string> stream_keys,
                                                           std::vector<std::string> table_keys, join_type type,
                                                           bool table_first = false);

    const char* name() const override { return "lookup-join"; }
    bool ignores_watermark_of(size_t input) const override { return input == 1; }
    bool waits_for_end_of(size_t input) const override { return _table_first && input == 1; }
    schema_ptr output_schema(size_t) const override { return _out; }
    void on_batch(size_t input, batch b, stage_output& out) override;
    std::string snapshot() const override;
    result<void> restore(std::string_view bytes) override;
    size_t table_rows() const { return _index.size(); }

private:
    lookup_join_stage() = default;
    /// Drops the replaced and deleted rows of `_rows` once they are the majority.
    void compact();

    schema_ptr _stream, _tschema, _out;
    std::vector<size_t> _skeys, _tkeys;
    join_type _type = join_type::inner;
    bool _table_first = false;
    /// The table: rows in columnar form (replaced ones stay until `compact`), and the current
    /// row of each encoded key.
    std::vector<column> _rows;
    boost::unordered_flat_map<std::string, uint32_t> _index;
};

/// Joins each row of a stream (input 0) with the version of a table's row (input 1) that was
/// valid at the stream row's event time: an event-time temporal join, as Flink's
/// `JOIN t FOR SYSTEM_TIME AS OF s.rowtime` over a versioned table (a PRIMARY KEY and a
/// WATERMARK). Both inputs carry event time (`stream_time`, `table_time`).
///
/// - Each table row is a version of its key from its time on; a delete row ends the key at its
///   time; update-before rows are skipped (the update-after that follows is the new version).
/// - A stream row waits until the watermark (the minimum of both inputs') reaches its time,
///   then joins the latest version of its key at or before that time, or, with
///   `join_type::left`, gets NULLs when there is none or it was deleted. Released rows come out
///   in time order (ties in arrival order), then the watermark, so none is late downstream.
/// - Versions no waiting or future stream row can reach (older than the latest at or before the
///   watermark) are dropped, and a key whose last such version is a delete goes.
/// - A stream row that arrives behind the watermark joins at once with the versions still held;
///   a table row behind it still becomes a version; both count in `metrics().late_rows`.
///
/// Output is append-only: the stream's columns, then the table's (renamed as `joined_schema`
/// says), and the stream's event time. `snapshot`/`restore` keep the waiting rows and the
/// versions. One thread.
class temporal_join_stage final : public stage {
public:
    static result<std::unique_ptr<temporal_join_stage>> make(schema_ptr stream, schema_ptr table,
                                                             std::vector<std::string> stream_keys,
                                                             std::vector<std::string> table_keys,
                                                             const std::string& stream_time,
                                                             const std::string& table_time, join_type type);

    const char* name() const override { return "temporal-join"; }
    schema_ptr output_schema(size_t) const override { return _out; }
    void on_batch(size_t input, batch b, stage_output& out) override;
    void on_watermark(model::event_time wm, stage_output& out) override;
    std::string snapshot() const override;
    result<void> restore(std::string_view bytes) override;

    /// Stream rows waiting for the watermark, and table versions held (for tests and metrics).
    size_t waiting_rows() const { return _waiting.size(); }
    size_t versions_held() const { return _nversions; }

private:
    struct version {
        int64_t time = 0;
        bool deleted = false;
        std::vector<value> row; ///< the table row (for a delete: the row it deleted)
    };
    using versions = std::vector<version>; ///< one key's, by time

    temporal_join_stage() = default;
    /// Adds a version at its place (after versions of equal time: the later arrival wins).
    void add_version(std::string key, version v);
    /// Emits stream row `i` of `_rows` joined with the version valid at time `t`.
    void emit(uint32_t i, int64_t t);
    void flush(stage_output& out);
    /// Drops versions the watermark made unreachable, for the keys that may hold some.
    void prune();
    /// Drops released rows from `_rows` once they are the majority.
    void compact_rows();

    schema_ptr _stream, _tschema, _out;
    std::vector<size_t> _skeys, _tkeys;
    size_t _stime = 0, _ttime = 0;
    bool _smicros = false, _tmicros = false;
    join_type _type = join_type::inner;
    int64_t _wm = INT64_MIN;
    /// Stream rows not yet released, in arrival order, and a min-heap of (time, index) over them.
    std::vector<column> _rows;
    std::vector<std::pair<int64_t, uint32_t>> _waiting;
    boost::unordered_flat_map<std::string, versions> _versions;
    /// Keys with more than one version or a delete: the ones `prune` looks at.
    boost::unordered_flat_set<std::string> _prunable;
    size_t _nversions = 0;
    row_buffer _pending;
};

/// The joined schema: left fields, then right fields renamed with a digit when taken.
schema_ptr joined_schema(const schema& left, const schema& right, bool right_nullable);

} // namespace runnel::engine
