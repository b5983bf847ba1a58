#pragma once

// Engine sources and sinks for an external Kafka-protocol cluster (Kafka, Redpanda, or another
// `runnel serve`), through librdkafka. librdkafka stays inside kafka.cc.

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "base/base.h"
#include "engine/engine.h"

namespace runnel::connect {

/// The number of partitions of `topic` on the cluster at `bootstrap`, asked over the Kafka
/// protocol (blocks up to `timeout`; call from a thread that may block). `why` explains a
/// failure (unreachable, unknown topic).
result<int32_t> kafka_partitions(const std::string& bootstrap, const std::string& topic,
                                 std::chrono::milliseconds timeout, std::string& why);

struct kafka_source_options {
    std::string bootstrap; ///< host:port[,host:port…]
    std::string topic;
    std::string client_id = "runnel-job";
    std::size_t max_buffered_bytes = 4u << 20;
};

/// Reads every partition of a topic of an external cluster into batches of the same schema as
/// `log_source` (key, value, partition, offset, timestamp), one partition per batch. The
/// partitions are assigned directly (no consumer-group rebalancing): the job's checkpoint owns
/// the offsets (`state`/`restore`, the next offset handed to the pipeline per partition), so
/// a restored job rewinds exactly. Set-up (metadata, assignment) runs on a thread of its own;
/// polling never blocks: librdkafka's threads fetch (read-ahead bounded by
/// `max_buffered_bytes`), and when its queue turns non-empty it wakes the job. Lives on the
/// job's thread.
class kafka_source final : public engine::checkpointed_source {
public:
    kafka_source(kafka_source_options opts, executor& home, std::function<void()> wake);
    ~kafka_source() override;
    engine::source_fn fn() override;
    void pause(bool paused) override { _paused = paused; }
    std::string state() const override;
    result<void> restore(std::string_view state) override;
    std::size_t buffered_bytes() const override;
    std::string waiting_for() const override;
    void stop() override;

private:
    struct impl;
    std::shared_ptr<impl> _impl;
    bool _paused = false;
};

struct kafka_sink_options {
    std::string bootstrap;
    std::string topic;
    std::vector<std::string> key_columns;
    bool exactly_once = false;
    std::size_t max_pending_rows = 100000;
};

/// Writes rows as JSON records (as `log_sink` does) to a topic of an external cluster with an
/// idempotent librdkafka producer (acks=all), keyed by `key_columns` (librdkafka's murmur2
/// partitioner, as Java clients place keys). At-least-once: rows go out as they come, and
/// `release` answers once every one written before it is acknowledged, so a checkpoint never
/// moves past output that could be lost. Exactly-once output to an external cluster needs
/// Kafka transactions per checkpoint; that is not built yet, and `start` refuses it with that
/// reason. Delivery reports are served by a thread of the sink's own.
class kafka_sink final : public engine::checkpointed_sink {
public:
    kafka_sink(kafka_sink_options opts, executor& home, std::function<void()> wake);
    ~kafka_sink() override;
    void start(int32_t partitions, done_fn done) override;
    void write(const engine::batch& b) override;
    bool ready() const override;
    void set_draining(bool d) override { _draining = d; }
    bool wants_checkpoint() const override { return false; }
    bool exactly_once() const override { return false; }
    std::string seal() override { return {}; }
    void release(done_fn done) override;
    void recover(std::string_view, done_fn done) override { done(ok()); }
    std::size_t pending_bytes() const override;
    const std::string& name() const override;
    void stop() override;

private:
    struct impl;
    std::shared_ptr<impl> _impl;
    bool _draining = false;
};

} // namespace runnel::connect
