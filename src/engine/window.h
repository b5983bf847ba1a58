#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <queue>
#include <set>
#include <string>
#include <vector>

#include <boost/unordered/unordered_flat_map.hpp>

#include "engine/aggregate.h"
#include "engine/int_map.h"
#include "engine/stage.h"

namespace runnel::engine {

enum class window_kind : uint8_t { tumbling, hopping, session, cumulative };

/// Event times a window accepts: ±2^62 ms (146 million years) around the epoch, so window
/// arithmetic never overflows. Rows outside go to the late side output with the reason.
inline constexpr int64_t max_event_time = int64_t(1) << 62;

/// The shape of a window; build one with `tumble`, `hop`, `session` or `cumulate`.
/// All durations are event-time milliseconds; windows are aligned to the Unix epoch.
struct window_spec {
    window_kind kind = window_kind::tumbling;
    int64_t size = 0;  ///< tumbling, hopping: length; cumulative: max length
    int64_t slide = 0; ///< hopping: distance between starts; cumulative: step
    int64_t gap = 0;   ///< session: inactivity that closes a session (rows exactly `gap` apart share one)
};

window_spec tumble(std::chrono::milliseconds size);
window_spec hop(std::chrono::milliseconds size, std::chrono::milliseconds slide);
window_spec session(std::chrono::milliseconds gap);
/// Windows [k·max, k·max + j·step) for j = 1 … max/step: a running total reset every `max`.
window_spec cumulate(std::chrono::milliseconds step, std::chrono::milliseconds max_size);

struct window_options {
    /// A window is emitted once the watermark passes its end + this; rows arriving later than
    /// that for every window they belong to go to the late side output.
    std::chrono::milliseconds allowed_lateness{0};
    /// Early results: every `early_fire` of processing time, each open window whose panes
    /// received rows since the last update emits its current result as `update_after` rows
    /// (an upsert changelog keyed by window and key), and its final result when it closes is
    /// an `update_after` too. Zero (the default): one `insert` per window and key, when it
    /// closes. Tumbling, hopping and cumulative windows only.
    std::chrono::milliseconds early_fire{0};
    size_t max_batch_rows = 4096;
    /// Two-phase aggregation (tumbling, hopping and cumulative windows; COUNT, SUM, MIN, MAX
    /// and AVG; no early results). A `local` stage sorts rows into panes as a `single` one does
    /// (late rows go to its side output) but emits, per pane and key, the partial accumulators:
    /// rows (pane_start, keys…, `partial_fields`…). It sends a pane's partials as soon as the
    /// watermark closes a window that holds the pane, before it forwards that watermark, and
    /// every pane's partials once it holds more than `max_partial_groups` keys. A `global`
    /// stage with the same spec, keys and aggregates takes those rows (its time column
    /// `pane_start`), merges them per pane and fires windows exactly as a `single` stage over
    /// the rows would have; put an exchange by the keys between the two.
    agg_phase phase = agg_phase::single;
    size_t max_partial_groups = 65536;
};

/// The time column of a local window stage's partial rows: the start of their pane.
inline constexpr const char* pane_start_column = "pane_start";

/// Encoded key bytes (see `encode_key_part`) → dense slot numbers, with the aggregates' state
/// for each slot. One pane, one temporary window or the session store. One thread.
///
/// With `int_keys` (the key is one integral column) non-NULL keys are looked up by value in
/// `int_index` and kept in `ikeys`, one per slot; `keys` then holds encoded keys only as far as
/// the last slot whose key is not such a value (a NULL key), and is empty in the common case.
/// Without, `keys` has one encoded key per slot.
struct group_table {
    boost::unordered_flat_map<std::string, uint32_t, key_hash, key_equal> index;
    int_map int_index;
    std::vector<std::string> keys;
    std::vector<int64_t> ikeys;
    /// slot → the key's number in the stage's `key_ids`, for panes that windows are assembled
    /// from; empty otherwise.
    std::vector<uint32_t> ids;
    std::vector<agg_column> aggs;
    bool int_keys = false;

    group_table(const std::vector<bound_aggregate>& specs, bool int_keys);
    uint32_t size() const { return uint32_t(int_keys ? ikeys.size() : keys.size()); }
    /// True when slot `s`'s key is the integral value `ikeys[s]`.
    bool is_int_slot(uint32_t s) const { return int_keys && (s >= keys.size() || keys[s].empty()); }
    /// Room for `n` keys without rehashing or growing the aggregates.
    void reserve(size_t n);
    uint32_t find_or_add(const std::string& key);
    uint32_t find_or_add_int(int64_t v) {
        return int_index.find_or_add(v, [this](int64_t k) { return add_int_slot(k); });
    }
    /// out[i] = find_or_add_int(v[i]) for i in [0, n).
    void find_or_add_ints(const int64_t* v, size_t n, uint32_t* out) {
        int_index.find_or_add_all(v, n, out, [this](int64_t k) { return add_int_slot(k); });
    }
    /// Appends the keys of slots [from, to) to `out[0..key_columns)`, decoded.
    void append_keys(uint32_t from, uint32_t to, column* out, size_t key_columns) const;
    /// The encoded key of `slot`.
    std::string key_of(uint32_t slot) const {
        if (!is_int_slot(slot)) return keys[slot];
        std::string k(9, '\1');
        std::memcpy(k.data() + 1, &ikeys[slot], 8);
        return k;
    }
    void clear();

private:
    void add_slot(std::string key);
    uint32_t add_int_slot(int64_t v) {
        uint32_t s = size();
        ikeys.push_back(v);
        grow();
        return s;
    }
    void grow() {
        if (!aggs.empty() && size() > aggs[0].size()) grow_aggs();
    }
    void grow_aggs();
};

/// Numbers for the keys held by any pane of a window stage whose windows span several panes,
/// so that a window is assembled from its panes by key number (an array index) rather than by
/// a hash lookup per key and pane: a key is looked up once when a pane first holds it, instead
/// of once for every window the pane is part of. A number is freed, and may be reused, when the
/// last pane holding its key is dropped. One thread.
struct key_ids {
    struct entry {
        int64_t ikey;    ///< the key, when integral
        uint32_t refs;   ///< panes holding the key
        uint32_t integral;
    };
    int_map ints;
    boost::unordered_flat_map<std::string, uint32_t, key_hash, key_equal> others;
    std::vector<entry> entries;    ///< by id
    std::vector<std::string> keys; ///< by id: encoded keys that are not integral (grown on demand)
    std::vector<uint32_t> free;

    size_t capacity() const { return entries.size(); }
    bool is_int(uint32_t id) const { return entries[id].integral != 0; }
    /// out[i] = the id of integral key v[i], counting one more pane holding it.
    void acquire_ints(const int64_t* v, size_t n, uint32_t* out);
    uint32_t acquire(const std::string& key);
    /// Counts one pane fewer holding each of ids[0..n); a key no pane holds loses its id.
    void release(const uint32_t* ids, size_t n);

private:
    uint32_t take(bool is_int, int64_t ikey);
};

/// Window aggregation, keyed or global (no key columns), over event time.
///
/// Tumbling, hopping and cumulative windows keep state per *pane* (gcd(size, slide) for
/// hopping, the step for cumulative, the size for tumbling): each row updates exactly one
/// pane, and a window is assembled from its panes when it fires, so a row costs one state
/// update however many windows overlap it. Sessions are kept per key and merged when a row
/// bridges two of them. A window fires once, when the watermark reaches its end − 1 + allowed
/// lateness; its rows are (window_start, window_end, keys…, aggregates…). Rows whose windows
/// have all fired go to output 1 with a `reason` column, and are counted in
/// `metrics().late_rows`. `snapshot`/`restore` capture every pane and session.
/// Lives in one pipeline, run by one thread.
class window_stage final : public stage {
public:
    static result<std::unique_ptr<window_stage>> make(schema_ptr input, std::string time_column,
                                                      std::vector<std::string> keys, window_spec w,
                                                      std::vector<aggregate_spec> aggs,
                                                      window_options opts = {});

    const char* name() const override { return "window"; }
    size_t num_outputs() const override { return 2; }
    schema_ptr output_schema(size_t port) const override { return port == 0 ? _out : _late; }
    void on_batch(size_t input, batch b, stage_output& out) override;
    void on_watermark(model::event_time wm, stage_output& out) override;
    void on_tick(model::processing_time now, stage_output& out) override;
    std::string snapshot() const override;
    result<void> restore(std::string_view bytes) override;

    /// Panes (or open sessions) currently held.
    size_t state_units() const;

private:
    struct session_info {
        int64_t start;
        int64_t end;
        bool alive;
    };

    window_stage() = default;
    void route_late(const batch& b, const std::vector<uint8_t>& late, const int64_t* ts, stage_output& out);
    void on_batch_panes(const batch& b, const int64_t* ts, stage_output& out);
    void on_batch_sessions(const batch& b, const int64_t* ts);
    /// Numbers the keys of the slots of `t` from `from` on (windows of several panes).
    void number_keys(group_table& t, uint32_t from);
    /// Drops the oldest pane, releasing its key numbers.
    void drop_first_pane();
    void fire_panes(int64_t limit, stage_output& out);
    /// Every window ending at or before `limit` has now fired (or, in a local stage, had its
    /// panes' partials sent): moves `_fired_through` and the late bound.
    void advance_fired(int64_t limit);
    /// Emits the window ending at `e` assembled from its panes.
    void emit_assembled(int64_t e, stage_output& out);
    /// Rows built from now on carry kind `k` (what was built before is flushed).
    void set_kind(row_kind k, stage_output& out);
    void fire_sessions(int64_t limit, stage_output& out);
    void emit_row(int64_t start, int64_t end, const group_table& t, uint32_t slot, stage_output& out);
    /// Emits every slot of `t` as a row of window [start, end) (a local stage: as the partial
    /// rows of pane `start`).
    void emit_window(int64_t start, int64_t end, const group_table& t, stage_output& out);
    /// A local stage: emits and drops the panes a window ending at or before `limit` holds
    /// (every pane with INT64_MAX).
    void flush_partials(int64_t limit, stage_output& out);
    /// Emits the window assembled in `_acc` (the keys numbered in `_acc_list`), leaving the
    /// state of those keys in `_acc` empty.
    void emit_acc(int64_t start, int64_t end, stage_output& out);
    void flush(stage_output& out);
    int64_t pane_of(int64_t ts) const;
    int64_t window_start(int64_t end) const;
    int64_t last_end(int64_t pane) const;
    /// The first window end after `t`.
    int64_t next_end(int64_t t) const;
    uint32_t session_slot();
    uint32_t find(uint32_t slot);
    void write_header(state_writer& w) const;
    bool valid_key(std::string_view key) const;
    void update_late_bound();
    void encode_key(const batch& b, size_t row);

    schema_ptr _in, _out, _late;
    size_t _time = 0;
    std::vector<size_t> _keys;
    std::vector<data_type> _key_types;
    window_spec _w;
    window_options _opts;
    std::vector<bound_aggregate> _aggs;
    int64_t _pane = 0;      ///< pane length
    int64_t _end_step = 0;  ///< distance between consecutive window ends
    int64_t _end_phase = 0; ///< window ends are ≡ this modulo _end_step (size mod slide)
    int64_t _lateness = 0;

    int64_t _watermark = INT64_MIN;
    int64_t _fired_through = INT64_MIN; ///< every window ending at or before this has fired
    int64_t _late_before = INT64_MIN;   ///< rows with an event time below this are late
    bool _int_key = false;              ///< one integral key column: encoded without a loop
    size_t _key_at = 2;                 ///< output column of the first key (1 in a local stage's partials)
    std::vector<size_t> _agg_at;        ///< aggregate → its first output column (a local stage: partial)

    std::map<int64_t, group_table> _panes;
    // Early results: the panes changed since the last update, the windows that sent one.
    int64_t _dirty_lo = INT64_MAX, _dirty_hi = INT64_MIN;
    int64_t _next_early = INT64_MIN;
    std::set<int64_t> _early_ends;
    row_kind _building_kind = row_kind::insert;
    /// Keys a new pane is sized for: the size of the newest pane when it was created.
    size_t _pane_hint = 0;

    // Windows of several panes (hopping, cumulative) are assembled by key number: `_acc` holds
    // the window's state indexed by `_ids` number, `_acc_list` the numbers in it, first seen
    // first (with their keys when integral), and `_acc_seen` marks them.
    bool _multi_pane = false;
    key_ids _ids;
    std::vector<agg_column> _acc;
    std::vector<uint64_t> _acc_seen;
    std::vector<uint32_t> _acc_list;
    std::vector<int64_t> _acc_ikeys;
    std::vector<uint8_t> _acc_is_int;

    // Sessions: one slot per open session.
    std::unique_ptr<group_table> _sessions;
    std::vector<session_info> _session_info;
    std::vector<uint32_t> _free_slots;
    std::vector<uint32_t> _redirect;
    std::vector<uint32_t> _retired; ///< merged away in this batch; freed after it
    boost::unordered_flat_map<std::string, std::vector<uint32_t>, key_hash, key_equal> _open; ///< key → sessions
    /// (end, slot) of every session end ever set, soonest first; an entry whose slot no longer
    /// ends there is stale and skipped when it comes up.
    std::priority_queue<std::pair<int64_t, uint32_t>, std::vector<std::pair<int64_t, uint32_t>>,
                        std::greater<>>
      _timers;
    size_t _live_sessions = 0;

    std::vector<uint32_t> _slot_buf;
    std::vector<int64_t> _ts_buf;
    std::string _key_buf;
    std::unique_ptr<batch> _building;
};

/// Appends the value encoded at the front of `in` (by `encode_key_part`) to `out` and
/// advances `in`. Returns false on malformed bytes.
bool decode_key_part(std::string_view& in, column& out);

} // namespace runnel::engine
