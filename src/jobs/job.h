#pragma once

// Internal to `jobs`: one running job.

#include <atomic>

#include "jobs/jobs.h"

#include <optional>

namespace runnel::storage {
class flusher;
} // namespace runnel::storage

namespace runnel::jobs {

class job;

/// What the instances of one job share. A job with `parallelism` N runs as N instances on N
/// shards: instance i reads the input partitions p with p % N == i, and `exchanges` move rows
/// between them by key. Instance 0 leads the job's checkpoints (see `job`). Filled by the
/// manager and by the instances' builds (one after another, on the manager's thread) before
/// any instance begins; read-only afterwards.
struct job_group {
    uint32_t parallelism = 1;
    /// With more than one instance: the exchanges the instances' pipelines ask for
    /// (`job_context::exchange`; a SQL plan has one before each keyed operator).
    std::unique_ptr<engine::exchange_set> exchanges;
    std::vector<std::weak_ptr<job>> members;
    broker::group_coordinator* groups = nullptr; ///< the server's consumer groups, if any
    /// Most bytes one instance may hold in operator state and source and sink buffers, checked
    /// at every checkpoint (0: no limit). Over it, the job fails with the figures.
    std::size_t max_memory_bytes = 0;
    /// Set by the first instance found over `max_memory_bytes`, so the job is counted once in
    /// `runnel_pipelines_memory_budget_exceeded_total` however many instances are over it.
    std::atomic<bool> over_budget{false};
};

/// One instance of a job: its pipeline, log sources and sinks, and the loop that runs and
/// checkpoints them.
///
/// Built on a non-shard thread (`build`, then `load` of the last checkpoint, which reads
/// files), then handed to its shard with `begin`; from then on every method but `status` runs
/// on the shard's thread (`home`). Each `step` runs the pipeline for at most ~2 ms and posts
/// itself again while there is work; otherwise it parks until a source, a sink or the manager's
/// tick wakes it. Checkpoints: when the interval has passed (or a sink holds too much) the
/// sources pause, the pipeline drains to a quiescent point, the snapshot is taken, the sinks
/// seal their output, and the checkpoint is written on the checkpoint thread; at-least-once
/// sinks' appends are made durable before the write, exactly-once sinks' output is appended
/// after it. Kept alive by shared pointers in every callback, so stopping never races an answer.
///
/// The instances of a parallel job checkpoint together, led by instance 0 (for one instance it
/// leads itself): the leader asks every instance to pause its sources; once probes show every
/// pipeline quiescent and the exchange empty twice running with the same message counts (so
/// nothing moved in between), each instance snapshots its part and the leader writes one
/// checkpoint holding all parts; sources resume once every part is taken, exactly-once output
/// is released once the file is durable. All coordination is messages posted between the
/// instances' shards; no lock is shared.
class job : public std::enable_shared_from_this<job>, private job_context {
public:
    job(broker::broker& brk, executor& home, storage::flusher& writer, std::filesystem::path dir,
        job_definition def, std::shared_ptr<job_group> group = {}, uint32_t instance = 0);
    ~job() override;

    result<void> build(std::string& why);
    /// Reads the newest complete checkpoint (blocking).
    result<void> load();
    /// Starts on `home` (posts itself).
    void begin();
    /// On `home`: stops running; answers in flight are ignored.
    void stop();
    /// Wakes a parked job (any thread may call it only through `home.post`).
    void wake();
    /// On `home`: stops running and reports `why` as the job's error (state `failed`), in the
    /// log too unless the caller reports it itself (`logged` false).
    void fail(std::string why, bool logged = true);

    const job_definition& definition() const { return _def; }
    /// The topics of the job's side outputs (`job_context::side_output`); set by `build`,
    /// read-only afterwards.
    const std::vector<std::string>& side_topics() const { return _side_topics; }
    job_status status() const;

private:
    // job_context
    engine::pipeline& pipeline() override { return _pipeline; }
    engine::stream source(connect::log_source_options opts) override;
    void sink(engine::stream s, connect::log_sink_options opts, int32_t partitions) override;
    engine::stream source(std::unique_ptr<engine::checkpointed_source> src,
                          engine::schema_ptr schema) override;
    void sink(engine::stream s, std::unique_ptr<engine::checkpointed_sink> sink,
              int32_t partitions) override;
    executor& home() override { return _home; }
    std::function<void()> waker() override;
    const std::string& id() const override { return _def.id; }
    void append(const std::string& topic, std::string value) override;
    int32_t partitions_of(const std::string& topic) const override;
    uint32_t instance() const override { return _instance; }
    uint32_t parallelism() const override { return _group->parallelism; }
    engine::stream exchange(engine::stream s, std::vector<std::string> keys, engine::key_routing routing) override;
    broker::group_coordinator* groups() const override { return _group->groups; }

    void start_sinks(std::size_t i);
    void recover_sinks(std::size_t i);
    void step();
    // Every instance, on its own shard, at the leader's request.
    void begin_checkpoint();
    void probe(uint64_t round, int wave);
    void snapshot(uint64_t round);
    void resume();
    void release(uint64_t round);
    // The leader, on its shard.
    void start_round();
    void poked();
    void start_wave();
    void answered(uint64_t round, int wave, bool quiet, uint64_t sent, uint64_t taken);
    void parts_taken(uint64_t round, std::map<std::string, std::string> parts);
    void parts_durable(uint64_t round, result<void> r);
    void write_checkpoint();
    void released(uint64_t round, result<void> r);
    /// Runs `fn` on instance `i`'s shard (or leader: 0).
    void post_to(uint32_t i, std::function<void(job&)> fn);
    std::string part_prefix() const;

    void publish();

    broker::broker& _broker;
    executor& _home;
    storage::flusher& _writer;
    std::filesystem::path _dir;
    job_definition _def;
    engine::pipeline _pipeline;
    std::vector<std::unique_ptr<engine::checkpointed_source>> _sources;
    struct sink_entry {
        std::unique_ptr<engine::checkpointed_sink> sink;
        int32_t partitions;
    };
    std::vector<sink_entry> _sinks;
    std::vector<std::string> _side_topics;
    /// The key exchanges between instances: (the stage sending, the stage receiving, keys);
    /// the k-th through `_group->exchanges`' k-th.
    std::vector<job_status::edge> _exchanges;
    std::optional<engine::checkpoint> _restored;
    /// The sources' states in the checkpoint being taken, told to them once it is durable.
    std::vector<std::string> _source_states;

    enum class phase { starting, recovering, running, failed, stopped };
    phase _phase = phase::starting;
    bool _scheduled = false;
    bool _draining = false; ///< sources paused, waiting for a quiescent pipeline
    bool _poked = false;    ///< told the leader this instance went quiescent while draining
    bool _asked = false;    ///< asked the leader for a checkpoint (a sink holds too much)
    uint64_t _checkpoint_id = 0;
    std::shared_ptr<job_group> _group;
    uint32_t _instance = 0;

    /// The leader's checkpoint in progress.
    struct round_state {
        uint64_t id = 0;
        int wave = 0;              ///< the probe wave in flight (0: none)
        bool wave_pending = false; ///< an instance went quiescent while a wave was out
        uint32_t answers = 0;
        bool quiet = true;
        uint64_t sent = 0, taken = 0;
        bool last_ok = false; ///< the previous wave found every instance quiet and balanced
        uint64_t last_sent = 0, last_taken = 0;
        bool snapshotting = false;
        uint32_t parts = 0, durable = 0, released = 0;
        std::shared_ptr<engine::checkpoint> c;
    };
    std::optional<round_state> _round;
    bool _requested = false; ///< an instance asked for a checkpoint
    std::chrono::steady_clock::time_point _last_checkpoint = std::chrono::steady_clock::now();
    std::chrono::steady_clock::time_point _checkpoint_started;

    mutable std::mutex _status_mu;
    uint64_t _state_bytes = 0; ///< operator state at the last snapshot (under `_status_mu`)
    job_status _status; ///< published for other threads
};

} // namespace runnel::jobs
