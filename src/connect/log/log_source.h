#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "base/base.h"
#include "engine/engine.h"

namespace runnel::broker {
class broker;
class group_coordinator;
} // namespace runnel::broker

namespace runnel::connect {

struct log_source_options {
    std::string topic;
    /// Where each partition starts when no checkpoint says: its log start, its end, the first
    /// offset whose timestamp is >= `start_timestamp_ms` (the end when there is none), or the
    /// offset `group_id` committed (`group_fallback` when the group has none for it).
    enum class start_at : uint8_t { earliest, latest, timestamp, group_offsets } start = start_at::earliest;
    int64_t start_timestamp_ms = 0;
    /// A consumer group in `groups`: with `group_offsets` the source starts from its committed
    /// offsets; with any start, every durable checkpoint commits the offsets it holds to it
    /// (`checkpoint_durable`), so a later job in the group continues where this one stopped.
    std::string group_id;
    broker::group_coordinator* groups = nullptr;
    start_at group_fallback = start_at::earliest; ///< earliest or latest
    /// Bytes of fetched records held for the pipeline; fetching pauses at this mark, so a slow
    /// pipeline leaves the records in the log, not in memory.
    std::size_t max_buffered_bytes = 4u << 20;
    std::size_t fetch_bytes = 1u << 20;
    /// In a parallel job: this instance reads partitions p with p % instances == instance.
    int32_t instances = 1;
    int32_t instance = 0;
};

/// Reads every partition of one topic of the embedded log into engine batches of
/// (key STRING, value STRING, partition BIGINT, offset BIGINT, timestamp TIMESTAMP(3)); each
/// batch holds records of one partition and carries it as its `source_partition`.
///
/// Fetches run ahead of the pipeline up to `max_buffered_bytes`; when every partition has
/// caught up the source waits on the broker's data watch (no polling) and calls `wake` when
/// records arrive. `state()` is the next offset of each partition *handed to the pipeline*
/// (records still buffered are not counted), which is what a checkpoint taken at a quiescent
/// point must record; `restore` rewinds to such a state. Records a retention pass removed
/// before they were read are skipped to the log start and counted in `skipped_records`.
/// Compressed batches are inflated; a batch that cannot be decoded is skipped with a warning
/// and counted.
///
/// Lives on one shard (`home`): every call, and every broker answer, runs on its thread.
class log_source final : public engine::checkpointed_source {
public:
    log_source(broker::broker& brk, executor& home, log_source_options opts, std::function<void()> wake);
    ~log_source() override;
    log_source(const log_source&) = delete;
    log_source& operator=(const log_source&) = delete;

    static engine::schema_ptr schema();
    /// The function the pipeline polls.
    engine::source_fn fn() override;
    /// Stops handing out batches (a checkpoint is draining the pipeline) or resumes.
    void pause(bool paused) override { _paused = paused; }

    /// Partitions of the topic (0 until the topic exists).
    int32_t partitions() const;
    std::string state() const override;
    result<void> restore(std::string_view state) override;
    /// Commits the offsets of `state` to `group_id`, when the options name one.
    void checkpoint_durable(std::string_view state) override;

    std::size_t buffered_bytes() const override;
    uint64_t skipped_records() const override;
    /// Why the source is waiting, if it is not simply caught up ("topic 'x' does not exist").
    std::string waiting_for() const override;

    /// Cancels the watch and ignores answers still in flight.
    void stop() override;

private:
    struct impl;
    std::shared_ptr<impl> _impl;
    bool _paused = false;
};

} // namespace runnel::connect
