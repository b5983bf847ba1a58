#pragma once

// Internal to `jobs`: one running job.

#include <optional>

#include "jobs/jobs.h"

namespace runnel::storage {
class flusher;
} // namespace runnel::storage

namespace runnel::jobs {

/// One job: its pipeline, log sources and sinks, and the loop that runs and checkpoints them.
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
class job : public std::enable_shared_from_this<job>, private job_context {
public:
    job(broker::broker& brk, executor& home, storage::flusher& writer, std::filesystem::path dir, job_definition def);
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

    const job_definition& definition() const { return _def; }
    job_status status() const;

private:
    // job_context
    engine::pipeline& pipeline() override { return _pipeline; }
    engine::stream source(connect::log_source_options opts) override;
    void sink(engine::stream s, connect::log_sink_options opts, int32_t partitions) override;
    engine::stream source(std::unique_ptr<engine::checkpointed_source> src, engine::schema_ptr schema) override;
    void sink(engine::stream s, std::unique_ptr<engine::checkpointed_sink> sink, int32_t partitions) override;
    executor& home() override { return _home; }
    std::function<void()> waker() override;
    const std::string& id() const override { return _def.id; }
    void append(const std::string& topic, std::string value) override;
    int32_t partitions_of(const std::string& topic) const override;

    void start_sinks(std::size_t i);
    void recover_sinks(std::size_t i);
    void step();
    void begin_checkpoint();
    void take_checkpoint();
    void written(result<void> r, uint64_t bytes);
    void fail(std::string why);
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
    std::optional<engine::checkpoint> _restored;

    enum class phase { starting, recovering, running, failed, stopped };
    phase _phase = phase::starting;
    bool _scheduled = false;
    bool _draining = false;    ///< sources paused, waiting for a quiescent pipeline
    bool _checkpointing = false; ///< a checkpoint is being written or released
    uint64_t _checkpoint_id = 0;
    std::chrono::steady_clock::time_point _last_checkpoint = std::chrono::steady_clock::now();
    std::chrono::steady_clock::time_point _checkpoint_started;

    mutable std::mutex _status_mu;
    job_status _status; ///< published for other threads
};

} // namespace runnel::jobs
