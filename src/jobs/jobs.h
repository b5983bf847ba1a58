#pragma once

// The public header of `jobs`: durable pipelines that run inside `runnel serve`.
//
// A job is a definition (a template name and its parameters, kept in
// `DATA_DIR/jobs/<id>/job.json`) turned into an engine pipeline over the embedded log. It runs
// on one shard (or as N instances on N shards), a bounded slice of work at a time, and
// checkpoints itself: at a quiescent point it snapshots its stages, its sources' offsets and
// its sinks' output into `DATA_DIR/jobs/<id>/checkpoints/`, and only then releases exactly-once
// output to the log. A restarted server resumes every job from its last complete checkpoint.

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "base/base.h"
#include "connect/log/log.h"
#include "engine/engine.h"
#include "jobs/views.h"

namespace runnel::broker {
class broker;
class group_coordinator;
} // namespace runnel::broker

namespace runnel::net {
class shard_group;
} // namespace runnel::net

namespace runnel::jobs {

/// What a job runs: a template and its parameters (all given as text, checked by the
/// template), plus how it checkpoints.
struct job_definition {
    std::string id;
    std::string template_name;
    std::map<std::string, std::string> params;
    std::chrono::milliseconds checkpoint_interval{1000};
    /// Instances of the job, each on its own shard (`job_context::instance`).
    uint32_t parallelism = 1;

    std::string to_json() const;
    static result<job_definition> from_json(std::string_view text, std::string& why);
};

/// A job's state as the gateway and `/metrics` report it. Plain value.
struct job_status {
    struct stage {
        std::string name;
        uint64_t rows_in = 0, rows_out = 0, late_rows = 0, dead_letters = 0;
    };
    /// Rows flowing from operator `from` to operator `to` (indexes into `stages`): `kind` is
    /// `forward` (a queue on one shard), `side` (dead letters or late rows), or `hash` (a key
    /// exchange between instances, by `keys`).
    struct edge {
        std::size_t from = 0, to = 0;
        std::string kind;
        std::vector<std::string> keys;
    };
    std::string id;
    std::string template_name;
    uint32_t parallelism = 1;
    std::string state; ///< starting, recovering, running, failed, stopped
    std::string error;
    std::vector<stage> stages;
    std::vector<edge> edges;
    int64_t watermark_ms = INT64_MIN;  ///< the sinks' watermark (event time)
    int64_t watermark_lag_ms = 0;      ///< processing time − watermark, when there is one
    uint64_t checkpoints = 0;
    uint64_t last_checkpoint_id = 0;
    double last_checkpoint_ms = 0;     ///< snapshot to durable, including the sinks' release
    uint64_t last_checkpoint_bytes = 0;
    /// The last completed checkpoints, oldest first (at most `max_recent_checkpoints`).
    struct checkpoint_record {
        uint64_t id = 0;
        int64_t completed_ms = 0; ///< epoch ms
        double duration_ms = 0;
        uint64_t bytes = 0;
    };
    static constexpr std::size_t max_recent_checkpoints = 20;
    std::vector<checkpoint_record> recent_checkpoints;
    std::size_t queued_messages = 0, queue_capacity = 0;
    std::size_t source_buffered_bytes = 0, sink_pending_bytes = 0;
    /// Operator state at the last checkpoint plus the buffers: what --pipeline-max-memory-bytes bounds.
    std::size_t memory_bytes = 0;
    uint64_t records_skipped = 0;      ///< removed by retention before the job read them
    std::string waiting_for;
    /// The job's last failure before the server's latest start (kept in
    /// `DATA_DIR/jobs/<id>/last_error`), and when it happened (epoch ms); empty when none.
    std::string last_error;
    int64_t last_error_ms = 0;
};

/// What a template builds a pipeline with: log sources and sinks that take part in the job's
/// checkpoints. Used on the thread that builds the job, before it starts.
class job_context {
public:
    virtual ~job_context() = default;
    virtual engine::pipeline& pipeline() = 0;
    /// A stream of the topic's records (see `connect::log_source::schema`).
    virtual engine::stream source(connect::log_source_options opts) = 0;
    /// Writes `s` to a topic, created with `partitions` when missing.
    virtual void sink(engine::stream s, connect::log_sink_options opts, int32_t partitions) = 0;
    /// Any other checkpointed source or sink (a Kafka cluster, a webhook). The context owns them.
    virtual engine::stream source(std::unique_ptr<engine::checkpointed_source> src, engine::schema_ptr schema) = 0;
    virtual void sink(engine::stream s, std::unique_ptr<engine::checkpointed_sink> sink, int32_t partitions) = 0;
    /// Where a source or sink should post its answers and call `wake` (the job's shard).
    virtual executor& home() = 0;
    /// Wakes the job when a source or sink has something for it (call on `home`).
    virtual std::function<void()> waker() = 0;
    /// The job's id (names sinks' idempotency keys).
    virtual const std::string& id() const = 0;
    /// Appends `value` to `topic` (created with one partition when missing), acks=all; for
    /// dead letters. Call on `home`.
    virtual void append(const std::string& topic, std::string value) = 0;
    /// Partitions of an existing topic, or 0.
    virtual int32_t partitions_of(const std::string& topic) const = 0;
    /// This instance of a parallel job (0 … parallelism − 1); a template builds the same
    /// pipeline in every instance, reading the input partitions p with p % parallelism ==
    /// instance (`log_source_options`, `watermark_options`).
    virtual uint32_t instance() const = 0;
    virtual uint32_t parallelism() const = 0;
    /// Brings every row of a key to one instance (`engine::exchange`, assigning keys by
    /// `routing`); with one instance, `s`. Every instance must ask for the same exchanges in
    /// the same order (it builds the same pipeline). A dataflow whose checkpoints were split
    /// by the old routing keeps `fnv1a` (decision 0021); new kinds of dataflow (SQL) ask for
    /// `columnar`.
    virtual engine::stream exchange(engine::stream s, std::vector<std::string> keys, engine::key_routing routing) = 0;
    engine::stream exchange(engine::stream s, std::vector<std::string> keys) {
        return exchange(std::move(s), std::move(keys), engine::key_routing::fnv1a);
    }
    /// The server's consumer groups (sources start from and commit to them), or null.
    virtual broker::group_coordinator* groups() const { return nullptr; }

    /// The fluent form: `ctx.from_topic("swipes").decode(…).key_by(…).window(…).aggregate(…)`,
    /// then `ctx.to_topic(result, "alerts", {"card"})`.
    engine::stream from_topic(std::string topic) {
        connect::log_source_options o;
        o.topic = std::move(topic);
        return source(std::move(o));
    }
    void to_topic(engine::stream s, std::string topic, std::vector<std::string> key_columns = {},
                  connect::delivery mode = connect::delivery::exactly_once, int32_t partitions = 1) {
        sink(std::move(s), connect::log_sink_options{std::move(topic), mode, std::move(key_columns)}, partitions);
    }
    /// A side output of the job (dead letters, late rows) into `topic`, at-least-once: the
    /// topic is created with its first row and belongs to the job, which deletes it when the
    /// job is removed (`manager::remove`).
    void side_output(engine::stream s, std::string topic) {
        connect::log_sink_options o{std::move(topic), connect::delivery::at_least_once, {}};
        o.create_on_first_row = true;
        sink(std::move(s), std::move(o), 1);
    }
};

/// Builds a job's pipeline from its parameters; errors name the parameter.
using template_fn = std::function<result<void>(job_context&, const job_definition&, std::string& why)>;

/// The built-in templates by name. `windowed_count`: JSON records of topic `input` counted per
/// `key` field in tumbling event-time windows of `window_ms` on the `time` field (epoch ms),
/// with `bound_ms` out-of-orderness, `lateness_ms` allowed lateness and `idle_ms` idle timeout;
/// rows {key, window_start, window_end, count} to topic `output` (`output_partitions`,
/// `delivery` = exactly_once | at_least_once), late rows to `<output>.late` and undecodable
/// records to `<output>.dead`; with `view`, also a materialized view of that name holding the
/// latest window of each key; with `webhook` (an http:// URL), windows counting at least
/// `min_count` are POSTed there (options `webhook.*` as `connect::webhook_options`), rows it
/// refuses going to `<output>.webhook-dead`.
const std::map<std::string, template_fn>& templates();

/// "unknown template 'x' (known: demo_bids_per_channel, sql, windowed_count)".
std::string unknown_template(std::string_view name);

/// Adds a template (a program embedding Runnel defines its own pipelines in C++). Call before
/// the manager starts; the name must be new.
void register_template(std::string name, template_fn fn);

class job;

/// Every job of a server: loads them at start, runs each on a shard, stores new ones, stops
/// them. `start` and `stop` from the main thread (they block); `submit`, `remove` and
/// `status` from any thread that is not a shard.
class manager {
public:
    /// `groups`, when given, lets SQL tables start from and commit to consumer groups
    /// (`scan.startup.mode` = group-offsets, `properties.group.id`); it must outlive the manager.
    manager(broker::broker& brk, net::shard_group& shards, std::filesystem::path dir,
            broker::group_coordinator* groups = nullptr);
    ~manager();
    manager(const manager&) = delete;
    manager& operator=(const manager&) = delete;

    /// Starts every job stored under the directory; a job that cannot start is reported failed.
    result<void> start();
    /// Stops every job (each finishes the step it is in); what is not checkpointed is redone
    /// after the next start.
    void stop();

    /// Stores and starts a new job; `why` explains a refusal (unknown template, bad parameter,
    /// id in use).
    result<void> submit(job_definition def, std::string& why);
    /// Puts `def` in the place of the job of its id (`submit` when there is none): the old job
    /// stops, its side outputs' topics and the views named in `views` (the rows of its query)
    /// are deleted, and `def` starts with no state. When `def` cannot start (`why`), the old
    /// job is put back and resumes from its last checkpoint.
    result<void> replace(job_definition def, std::string& why, const std::vector<std::string>& views);
    /// Stops a job and deletes its definition, its checkpoints and its side outputs' topics
    /// (`job_context::side_output`), except, with `keep_side_topics_with_records`, those that
    /// hold records.
    result<void> remove(const std::string& id, bool keep_side_topics_with_records = false);
    /// Stops a job but keeps its definition and checkpoints: it is listed as `stopped`, also
    /// after a server restart (a `stopped` file in its directory), until `restart`.
    result<void> pause(const std::string& id);
    /// Runs a job again from its last checkpoint: a stopped or failed one, or a running one
    /// (stopped first). `why` explains a failure to start.
    result<void> restart(const std::string& id, std::string& why);
    std::vector<job_status> status() const;
    /// Bounds each instance of every job launched from now on (`job_group::max_memory_bytes`;
    /// 0: no limit). Call before `start`.
    void set_max_memory_bytes(std::size_t bytes);

    /// `submit` and `remove` for callers on a shard (the gateway): the work runs on the
    /// manager's own thread and `done` is posted to `caller`.
    void submit_async(job_definition def, executor& caller, std::function<void(result<void>, std::string why)> done);
    void replace_async(job_definition def, std::vector<std::string> views, executor& caller,
                       std::function<void(result<void>, std::string why)> done);
    void remove_async(std::string id, executor& caller, std::function<void(result<void>)> done,
                      bool keep_side_topics_with_records = false);
    void pause_async(std::string id, executor& caller, std::function<void(result<void>)> done);
    void restart_async(std::string id, executor& caller, std::function<void(result<void>, std::string why)> done);

private:
    void delete_side_topics(const std::vector<std::string>& topics, bool keep_with_records);
    /// Stops the job's instances and, with `forget`, drops it from the list; answers its
    /// side-output topics, or ENOENT.
    result<std::vector<std::string>> stop_instances(const std::string& id, bool forget);
    /// Builds and starts the job's instances; `paused`: only lists it as stopped.
    result<void> launch(job_definition def, std::string& why, bool paused = false);

    broker::broker& _broker;
    net::shard_group& _shards;
    std::filesystem::path _dir;
    struct impl;
    std::unique_ptr<impl> _impl;
};

} // namespace runnel::jobs
