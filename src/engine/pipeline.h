#pragma once

#include <chrono>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "engine/group.h"
#include "engine/join.h"
#include "engine/operators.h"
#include "engine/topn.h"
#include "engine/window.h"
#include "engine/window_join.h"

namespace runnel::engine {

class exchange;
class pipeline;
class keyed_stream;
class windowed_stream;

/// A handle on one output of one stage while a pipeline is being built. Each call adds a
/// stage after it and returns the handle of the new stage's output. A mistake (unknown
/// column, type error) is recorded in the pipeline, later calls become no-ops, and
/// `pipeline::check()` / `run()` report the first mistake with its message.
class stream {
public:
    stream() = default;

    /// Bounded out-of-orderness watermarks on `time_column`, which becomes the event time.
    stream watermark(std::string time_column, std::chrono::milliseconds bound, watermark_options opts = {});
    /// Decodes records in string column `value_column` into `output` rows; `dead_letters()`
    /// of the result is the stream of records that failed, with the reason.
    stream decode(decode_format f, schema_ptr output, std::string value_column = "value");
    stream filter(const expr& predicate);
    stream project(const std::vector<named_expr>& columns);
    keyed_stream key_by(std::vector<std::string> keys);
    /// Sends each row to the instance of a parallel dataflow its `keys` hash to, and returns
    /// the rows every instance sent to `instance` (see `engine::exchange`).
    stream exchange(engine::exchange& x, uint32_t instance, std::vector<std::string> keys);
    /// A window over the whole stream (no key).
    windowed_stream window(window_spec w, window_options opts = {});
    /// Keeps the first row per key (the keys seen are held as `state` says: in memory, or in
    /// RocksDB when they may outgrow it).
    stream deduplicate(std::vector<std::string> keys, state_options state = {});
    stream union_with(const std::vector<stream>& others);
    /// Joins this stream (left) with `right`: a regular, interval or window join (`join_spec`).
    stream join(const stream& right, join_spec spec);
    /// Joins this stream (left) with `right` window by window (`window_join_stage`); its
    /// `late_rows()` are the rows that came after their window closed. `time_column`, when
    /// set, names the output column that carries event time on (a `window_time`).
    stream window_join(const stream& right, window_join_spec spec, std::string time_column = "");
    /// The first `n` rows per key by a column (`top_n_spec`): a window Top-N or a changelog.
    stream top_n(top_n_spec spec);
    /// Aggregates per key without a window (`group_stage`): a changelog of each key's result.
    /// No keys: one result for the whole stream. With `opts.phase` `local`, the partials of
    /// each batch (`group_local_stage`); `global` merges them (`group_options::phase`).
    stream group_aggregate(std::vector<std::string> keys, std::vector<aggregate_spec> aggs,
                           group_options opts = {});
    /// A changelog made ready for a sink that upserts by `keys` (`upsert_stage`).
    stream upsert(std::vector<std::string> keys);
    /// Joins each row with the current row of `table` for its key (a lookup join); with
    /// `table_first`, after reading the whole (bounded) table (`lookup_join_stage`).
    stream lookup_join(const stream& table, std::vector<std::string> keys, std::vector<std::string> table_keys,
                       join_type type = join_type::inner, bool table_first = false);
    /// Joins each row with the version of `table`'s row for its key valid at the row's event
    /// time (an event-time temporal join, `temporal_join_stage`). Both streams need event time.
    stream temporal_join(const stream& table, std::vector<std::string> keys, std::vector<std::string> table_keys,
                         join_type type = join_type::inner);
    /// Output 1 of this stream's stage: dead letters of `decode`, late rows of a window.
    stream side_output() const;
    stream dead_letters() const { return side_output(); }
    stream late_rows() const { return side_output(); }
    void sink(sink_fn fn, watermark_fn on_watermark = {}, ready_fn ready = {});

    /// The schema of the rows on this stream (null when the pipeline has an error).
    schema_ptr schema_of() const;
    const std::string& time_column() const { return _time; }
    /// The stage producing this stream (for metrics, snapshots).
    size_t stage_id() const { return _node; }

private:
    friend class pipeline;
    friend class keyed_stream;
    friend class windowed_stream;
    stream(pipeline* p, size_t node, size_t port, std::string time)
      : _p(p)
      , _node(node)
      , _port(port)
      , _time(std::move(time)) {}

    pipeline* _p = nullptr;
    size_t _node = 0;
    size_t _port = 0;
    std::string _time; ///< the event-time column, once `watermark` named one
};

/// A stream partitioned by key columns. In this single-threaded runner the partitioning is
/// logical (windows and dedup group by the key); across shards the exchange routes rows with
/// `hash_partition`.
class keyed_stream {
public:
    windowed_stream window(window_spec w, window_options opts = {});
    stream deduplicate(state_options state = {});
    /// Aggregates per key without a window: `stream::group_aggregate`.
    stream aggregate(std::vector<aggregate_spec> aggs, group_options opts = {});

private:
    friend class stream;
    keyed_stream(stream s, std::vector<std::string> keys)
      : _s(std::move(s))
      , _keys(std::move(keys)) {}
    stream _s;
    std::vector<std::string> _keys;
};

/// A keyed or global stream with a window chosen, waiting for its aggregates.
class windowed_stream {
public:
    /// The window stage; `late_rows()` of the result is its late side output. With the
    /// window options' `phase` `local`, the result is the partial rows, whose event time is
    /// `pane_start_column`; a `global` window over them (after an exchange) gives the results:
    ///
    ///     s.key_by(k).window(w, {.phase = agg_phase::local}).aggregate(aggs)
    ///       .exchange(x, i, k).key_by(k).window(w, {.phase = agg_phase::global}).aggregate(aggs)
    stream aggregate(std::vector<aggregate_spec> aggs);

private:
    friend class stream;
    friend class keyed_stream;
    windowed_stream(stream s, std::vector<std::string> keys, window_spec w, window_options o)
      : _s(std::move(s))
      , _keys(std::move(keys))
      , _w(w)
      , _opts(o) {}
    stream _s;
    std::vector<std::string> _keys;
    window_spec _w;
    window_options _opts;
};

struct pipeline_options {
    /// Messages (batches or watermarks) an edge holds before its producer stops being run.
    size_t queue_capacity = 8;
    std::function<model::processing_time()> clock = model::processing_now;
};

/// A dataflow of stages with bounded queues between them, built with the fluent API:
///
///     pipeline p;
///     p.source(schema, from_batches(bids)).watermark("ts", 5s).filter(col("price") > 10)
///       .key_by({"auction"}).window(tumble(10s)).aggregate({count(), sum("price")}).sink(cb);
///     RUNNEL_TRY(p.run());
///
/// The runner is single-threaded in this phase: `run()` drives every stage on the calling
/// thread, always preferring the stage furthest downstream, and polls a source only while the
/// queue after it has room, so memory is bounded by the queue capacities whatever the sources
/// hold. Watermarks travel in the queues between batches; a stage with several inputs sees the
/// minimum. When every source has ended, a final watermark fires every open window.
/// Not thread-safe; build and run on one thread.
class pipeline {
public:
    explicit pipeline(pipeline_options opts = {});
    pipeline(const pipeline&) = delete;
    pipeline& operator=(const pipeline&) = delete;

    stream source(schema_ptr s, source_fn fn);

    /// The first mistake made while building, if any.
    result<void> check() const;
    /// The first stage that cannot go on (`stage::failure`), if any: checked by every
    /// `run_once`, and by a job after it took a snapshot.
    result<void> check_stages() const;
    /// Runs until every source has ended and every queue is empty. A source that answers
    /// `idle` is polled again at once, so `run` suits bounded inputs; a long-running job calls
    /// `run_once` from its shard's loop instead and yields between calls.
    result<void> run();
    /// One pass over the stages, downstream first: each stage handles what its queue holds
    /// (while its output has room), each source is polled at most once, then time-driven work
    /// runs. Returns true once every source has ended and everything has drained.
    result<bool> run_once();

    /// True when no message waits in any queue or output: every row taken from the sources
    /// has reached the stages' state or the sinks. A checkpoint taken now is a consistent cut.
    bool quiescent() const;
    /// True when the last `run_once` moved or produced anything (false: it found nothing to do).
    bool made_progress() const { return _progress; }
    /// Messages waiting in the queues between stages, and how many the queues may hold.
    size_t queued_messages() const;
    size_t queue_capacity() const { return _opts.queue_capacity * _edges; }

    size_t num_stages() const { return _nodes.size(); }
    stage& stage_at(size_t id) { return *_nodes[id].st; }
    /// A queue between two stages: `from`'s output `port` (0: its rows; 1: a side output such
    /// as dead letters or late rows) feeds `to`.
    struct link {
        size_t from = 0;
        size_t port = 0;
        size_t to = 0;
    };
    /// Every queue between stages, by producing stage id, then port.
    std::vector<link> links() const;
    /// Each stage's state, by stage id (empty for stateless stages).
    std::vector<std::string> snapshot() const;
    result<void> restore(const std::vector<std::string>& states);

private:
    friend class stream;
    friend class keyed_stream;
    friend class windowed_stream;

    struct edge {
        size_t node;
        size_t input;
    };
    struct node {
        std::unique_ptr<stage> st;
        std::vector<std::vector<edge>> outs; ///< per output port
        std::vector<std::deque<message>> inputs;
        std::vector<int64_t> input_wm;
        std::vector<bool> input_ended;
        std::vector<bool> input_idle; ///< the input's `watermark_status` is idle
        std::vector<std::pair<size_t, message>> pending;
        size_t pending_pos = 0;
        int64_t wm = INT64_MIN;
        bool ended = false;
        bool idle = false; ///< the stage's output status is idle
        bool is_source = false;
        bool source_done = false;
    };

    stream add(std::unique_ptr<stage> st, const std::vector<const stream*>& inputs, std::string time);
    bool ok_to_build(const stream& s);
    void fail_build(error e);
    bool flush(node& n);
    void deliver(size_t id, size_t input, message m);
    void process(size_t id, size_t input, message m);
    /// Moves `n`'s watermark to the minimum over its active inputs, and its status to idle
    /// when none is active and one is idle, telling the stage of each change.
    void advance(node& n);
    void finish_input(size_t id, size_t input);
    /// True while input `input` of `n` waits for another input to end (`stage::waits_for_end_of`).
    bool waits_for_other_input(const node& n, size_t input) const;

    pipeline_options _opts;
    std::vector<node> _nodes;
    std::optional<error> _error;
    stage_output _out;
    bool _moved = false; ///< a pass moved a message between stages
    size_t _edges = 0;   ///< queues between stages
    bool _progress = false;
};

} // namespace runnel::engine
