#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "base/base.h"
#include "connect/format/row_format.h"
#include "engine/engine.h"

namespace runnel::broker {
class broker;
} // namespace runnel::broker

namespace runnel::connect {

enum class delivery : uint8_t {
    /// Output is held until the checkpoint that covers it is durable, then appended; after a
    /// crash the checkpoint's output is appended again unless the log already has it. Readers
    /// see each row once; latency is up to one checkpoint interval.
    exactly_once,
    /// Output is appended as it is produced; a checkpoint waits for those appends to be durable.
    /// After a crash, rows since the last checkpoint may be appended twice. Low latency.
    at_least_once,
};

struct log_sink_options {
    std::string topic;
    delivery mode = delivery::exactly_once;
    /// Columns whose values form the record key (joined with '|'); empty: no key, rows are
    /// spread over the partitions round-robin per checkpoint.
    std::vector<std::string> key_columns;
    /// Output held (exactly-once) or in flight (at-least-once) before `ready()` turns false.
    std::size_t max_pending_bytes = 8u << 20;
    /// At-least-once only: a missing topic is created when the first row comes, not at
    /// `start`, so a side output (dead letters, late rows) that never gets a row leaves no
    /// topic behind. Rows wait in memory (within `max_pending_bytes`) while it is created.
    bool create_on_first_row = false;
};

/// Writes engine rows to a topic of the embedded log as JSON objects (one record per row,
/// column names as fields, timestamps as epoch milliseconds), keyed by `key_columns` and placed
/// with Kafka's partitioner, so Kafka clients find keys where they expect them.
///
/// Exactly-once protocol, driven by the job at each checkpoint:
/// 1. `seal()` closes the output since the last checkpoint into one batch per partition,
///    stamped with this incarnation's producer id and the next sequence number, and returns it
///    as bytes that go into the checkpoint together with, per partition, the offset from which
///    those batches can appear (`scan_from`: the end of this sink's previous append).
/// 2. Once the checkpoint is durable, `release` appends the sealed batches (acks=all).
/// 3. After a crash, `recover(bytes)` with the last checkpoint's part reads each partition from
///    `scan_from` and appends only the sealed batches the log does not already hold (matched
///    by producer id and sequence), so a result is never lost and never doubled.
/// Each start takes a new producer id, so sequence numbers start at 0 and the broker's
/// idempotence never rejects the sink after a restart.
///
/// Lives on one shard (`home`): every call and every broker answer runs on its thread.
class log_sink final : public engine::checkpointed_sink {
public:
    log_sink(broker::broker& brk, executor& home, log_sink_options opts, std::function<void()> wake);
    ~log_sink() override;
    log_sink(const log_sink&) = delete;
    log_sink& operator=(const log_sink&) = delete;

    /// Creates the topic if it is missing (`partitions` for a new one), takes a producer id and
    /// learns where each partition ends. `done` runs on `home`.
    void start(int32_t partitions, done_fn done) override;

    /// The pipeline's sink function and readiness.
    void write(const engine::batch& b) override;
    bool ready() const override;
    /// While a checkpoint drains the pipeline, the sink takes rows past its limit.
    void set_draining(bool d) override { _draining = d; }
    /// Held or in-flight bytes are at the limit: the job should checkpoint now.
    bool wants_checkpoint() const override;

    /// Exactly-once step 1 (see the class comment); at-least-once sinks return "".
    std::string seal() override;
    /// Exactly-once step 2: appends what `seal` closed; `done` once all are durable.
    /// At-least-once: `done` once every append so far is durable.
    void release(done_fn done) override;
    /// Exactly-once step 3, before any `write`.
    void recover(std::string_view sealed, done_fn done) override;

    uint64_t rows_written() const;
    std::size_t pending_bytes() const override;
    const std::string& name() const override;
    bool exactly_once() const override;

    void stop() override;

private:
    struct impl;
    std::shared_ptr<impl> _impl;
    bool _draining = false;
};

} // namespace runnel::connect
