#pragma once

#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <boost/unordered/unordered_flat_set.hpp>

#include "engine/expr.h"
#include "engine/stage.h"
#include "engine/state_store.h"

namespace runnel::engine {

/// What a source callback returns: a batch, "nothing right now", "finished", or a watermark
/// or a change of watermark status (a source that receives event time from elsewhere: the
/// exchange between instances).
struct source_poll {
    enum class status : uint8_t { data, idle, end, watermark, mark };
    status st = status::end;
    batch rows;
    model::event_time wm{};
    watermark_status mark = watermark_status::active;

    static source_poll data(batch b) { return {status::data, std::move(b), {}}; }
    static source_poll idle() { return {status::idle, {}, {}}; }
    static source_poll end() { return {status::end, {}, {}}; }
    static source_poll watermark(model::event_time w) { return {status::watermark, {}, w}; }
    static source_poll marked(watermark_status s) { return {status::mark, {}, {}, s}; }
};

using source_fn = std::function<source_poll()>;

/// Where rows enter a pipeline. The runner polls it only while the queue after it has room
/// (credit-based backpressure). A batch's `source_partition` tells the watermark generator
/// which partition it came from. Built by the pipeline; the runner's thread calls it.
class source_stage final : public stage {
public:
    source_stage(schema_ptr s, source_fn fn)
      : _schema(std::move(s))
      , _fn(std::move(fn)) {}

    const char* name() const override { return "source"; }
    schema_ptr output_schema(size_t) const override { return _schema; }
    void on_batch(size_t, batch, stage_output&) override {}
    source_poll poll() { return _fn(); }

private:
    schema_ptr _schema;
    source_fn _fn;
};

/// A source over batches held in memory, in order.
source_fn from_batches(std::vector<batch> batches);

/// Where a stage keeps keyed state: in memory (the default), or in RocksDB in `rocksdb_dir`
/// when it may outgrow memory (see `state_store`).
struct state_options {
    std::filesystem::path rocksdb_dir;
};

struct watermark_options {
    /// A partition that sent nothing for this long (processing time) stops holding the
    /// watermark back until it sends again; zero means never.
    std::chrono::milliseconds idle_timeout{0};
    /// Partitions known up front: each holds the watermark back until it sends or goes idle.
    int32_t partitions = 1;
    /// In a parallel job, this instance reads only partitions p with p % instances == instance;
    /// the others never hold its watermark back.
    int32_t instances = 1;
    int32_t instance = 0;
    /// Processing-time clock; empty means the pipeline's (tests pass a fake one).
    std::function<model::processing_time()> clock;
    /// The time column holds processing time (SQL's PROCTIME()): partitions do not matter,
    /// watermarks from upstream (event time) are not passed on, and every tick moves the
    /// watermark to the clock, so windows close on time even when no rows come.
    bool processing_time = false;
    /// Names the input in `waiting_for` ("partition <input>/1: …"), usually its topic.
    std::string input;
};

/// Generates watermarks with bounded out-of-orderness, per source partition: partition p's
/// watermark is (largest event time seen on p) − bound − 1; the stage emits the minimum over
/// partitions that are not idle, after the batch that advanced it, and never goes back. A
/// partition is idle once it sent nothing for `idle_timeout`, whether or not it ever sent; when
/// every partition is idle, the most advanced one's watermark holds (the input has reached
/// it everywhere it has data, as far as anyone can know), and the stage's output turns idle
/// (`watermark_status`), so it holds back no other input it meets; an instance of a parallel
/// job that reads no partition is idle from its first tick. Rows pass through unchanged, an idle
/// output turning active before the first of them. One thread.
class watermark_stage final : public stage {
public:
    watermark_stage(schema_ptr s, size_t time_column, int64_t bound_ms, watermark_options opts);

    const char* name() const override { return "watermark"; }
    schema_ptr output_schema(size_t) const override { return _schema; }
    void on_batch(size_t, batch b, stage_output& out) override;
    void on_watermark(model::event_time wm, stage_output& out) override;
    void on_tick(model::processing_time now, stage_output& out) override;
    /// The stage makes its own status from its partitions: its input's is not passed on.
    void on_watermark_status(watermark_status, stage_output&) override {}
    /// Each partition's largest event time and idleness, and the last watermark emitted, so a
    /// restored job neither moves time back nor waits for partitions it already heard from.
    std::string snapshot() const override;
    result<void> restore(std::string_view bytes) override;
    /// A partition that never sent a row while others did, and holds the watermark back.
    std::string waiting_for() const override;

private:
    struct partition_state {
        int64_t max_ts = INT64_MIN;
        model::processing_time last_active{0};
        bool idle = false;
    };
    partition_state& part(int32_t p, model::processing_time now);
    void advance(stage_output& out);
    /// Turns the output idle when every partition is, and says so once.
    void mark_idle(stage_output& out);

    schema_ptr _schema;
    size_t _time;
    bool _micros;
    int64_t _bound;
    watermark_options _opts;
    std::vector<partition_state> _parts;
    bool _started = false;
    int64_t _emitted = INT64_MIN;
    bool _idle = false; ///< the output's status is idle
};

enum class decode_format : uint8_t { json, csv, raw };

/// Turns raw records (a string column of bytes, one record per row) into typed rows.
/// JSON: one object per record, fields matched by name (simdjson On Demand); unknown fields
/// are skipped. CSV: fields in schema order, RFC 4180 quoting, an empty unquoted field is
/// NULL. Raw: the bytes become the single string column. A record that cannot be decoded
/// goes to output 1 as (payload, reason) and is counted in `metrics().dead_letters`. Timestamps
/// decode from integers (epoch in the column's unit) or "YYYY-MM-DD HH:MM:SS[.ffffff]".
/// One thread (it owns its parser).
class decode_stage final : public stage {
public:
    static result<std::unique_ptr<decode_stage>> make(schema_ptr input, std::string value_column,
                                                      decode_format f, schema_ptr output);
    ~decode_stage() override;

    const char* name() const override { return "decode"; }
    size_t num_outputs() const override { return 2; }
    schema_ptr output_schema(size_t port) const override { return port == 0 ? _out : _dead; }
    void on_batch(size_t, batch b, stage_output& out) override;

    /// The schema of dead letters: (payload string, reason string).
    static schema_ptr dead_letter_schema();

private:
    decode_stage() = default;
    struct parser;

    size_t _value = 0;
    decode_format _format = decode_format::json;
    schema_ptr _out, _dead;
    std::unique_ptr<parser> _parser;
};

class project_stage;

/// Keeps the rows for which a boolean expression is TRUE (not FALSE, not NULL). The predicate
/// yields the list of kept rows (a selection vector), and only those rows are copied. A
/// projection that directly follows is fused in (`fuse`): it runs on the kept rows of just the
/// columns it reads, so columns it drops are never copied and its expressions are computed
/// only for rows that survive. One thread.
class filter_stage final : public stage {
public:
    static result<std::unique_ptr<filter_stage>> make(schema_ptr input, const expr& predicate);
    ~filter_stage() override;
    const char* name() const override { return _then ? "filter+project" : "filter"; }
    schema_ptr output_schema(size_t) const override;
    void on_batch(size_t, batch b, stage_output& out) override;
    bool fused() const { return _then != nullptr; }
    void fuse(std::unique_ptr<project_stage> then);

private:
    filter_stage(schema_ptr s, bound_expr p);
    schema_ptr _schema;
    bound_expr _pred;
    std::unique_ptr<project_stage> _then;
    std::vector<uint32_t> _rows; ///< scratch: the kept rows of the current batch
};

/// An output column of a projection: an expression and its name.
struct named_expr {
    expr e;
    std::string name;
};

inline named_expr as(expr e, std::string name) { return {std::move(e), std::move(name)}; }

/// Computes new columns from each batch (SELECT e1 AS a, e2 AS b). One thread.
class project_stage final : public stage {
public:
    static result<std::unique_ptr<project_stage>> make(schema_ptr input, const std::vector<named_expr>& cols);
    const char* name() const override { return "project"; }
    schema_ptr output_schema(size_t) const override { return _out; }
    void on_batch(size_t, batch b, stage_output& out) override;
    batch apply(batch b);
    /// `apply` on rows `rows[0..n)` of `b` only: the columns the projection reads are gathered
    /// for those rows, the rest is never touched.
    batch apply_rows(const batch& b, const uint32_t* rows, size_t n);

private:
    project_stage() = default;
    /// The projection over one input layout: the whole input, or only the columns it reads.
    struct plan {
        std::vector<bound_expr> exprs;
        std::vector<uint32_t> uses; ///< input column → how many outputs are that plain column
    };
    batch run(const plan& p, batch b) const;

    schema_ptr _out;
    plan _whole;
    plan _narrow;               ///< over `_read` only, in that order
    std::vector<size_t> _read;  ///< input columns the projection reads, ascending
    schema_ptr _narrow_schema;
};

/// Keeps the first row of each key and drops later ones with the same key. State is every
/// key seen (exact, unbounded by design; a TTL comes with checkpointed state). One thread.
class dedup_stage final : public stage {
public:
    /// With a `store`, the keys seen live there (RocksDB: more keys than memory holds);
    /// without, in a hash set.
    static result<std::unique_ptr<dedup_stage>> make(schema_ptr input, const std::vector<std::string>& keys,
                                                     std::unique_ptr<state_store> store = {});
    const char* name() const override { return "deduplicate"; }
    schema_ptr output_schema(size_t) const override { return _schema; }
    void on_batch(size_t, batch b, stage_output& out) override;
    std::string snapshot() const override;
    result<void> restore(std::string_view bytes) override;
    std::string failure() const override { return _store ? _store->failure() : std::string(); }

private:
    dedup_stage() = default;
    schema_ptr _schema;
    std::vector<size_t> _keys;
    boost::unordered_flat_set<std::string, key_hash, key_equal> _seen;
    std::unique_ptr<state_store> _store;
    std::string _value; ///< scratch for lookups in `_store`
};

/// Merges streams of one schema; its watermark is the minimum over its inputs (the runner
/// computes it). One thread.
class union_stage final : public stage {
public:
    explicit union_stage(schema_ptr s)
      : _schema(std::move(s)) {}
    const char* name() const override { return "union"; }
    schema_ptr output_schema(size_t) const override { return _schema; }
    void on_batch(size_t, batch b, stage_output& out) override {
        metrics().rows_in += b.num_rows();
        metrics().rows_out += b.num_rows();
        out.emit(std::move(b));
    }

private:
    schema_ptr _schema;
};

using sink_fn = std::function<void(const batch&)>;
using watermark_fn = std::function<void(model::event_time)>;

/// Tells whether a sink can take another batch now; false holds the batch in the queue before
/// the sink, which fills and stops the stages (and finally the sources) upstream.
using ready_fn = std::function<bool()>;

/// Hands every batch to a callback; the pipeline blocks while it runs (a slow sink slows the
/// sources). A sink with a `ready` callback is given a batch only while it answers true. One
/// thread.
class sink_stage final : public stage {
public:
    sink_stage(schema_ptr s, sink_fn fn, watermark_fn wfn, ready_fn ready = {})
      : _schema(std::move(s))
      , _fn(std::move(fn))
      , _wfn(std::move(wfn))
      , _ready(std::move(ready)) {}
    bool ready() const override { return !_ready || _ready(); }
    const char* name() const override { return "sink"; }
    size_t num_outputs() const override { return 0; }
    schema_ptr output_schema(size_t) const override { return _schema; }
    void on_batch(size_t, batch b, stage_output&) override {
        metrics().rows_in += b.num_rows();
        _fn(b);
    }
    void on_watermark(model::event_time wm, stage_output&) override {
        metrics().watermark = wm.value();
        if (_wfn) _wfn(wm);
    }

private:
    schema_ptr _schema;
    sink_fn _fn;
    watermark_fn _wfn;
    ready_fn _ready;
};

} // namespace runnel::engine
