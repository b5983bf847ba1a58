#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "base/base.h"
#include "engine/engine.h"

namespace runnel::connect {

struct webhook_options {
    std::string host;            ///< from the URL (http:// only)
    uint16_t port = 80;
    std::string target = "/";    ///< path and query
    std::string url;             ///< as given, for messages and dead letters
    std::map<std::string, std::string> headers; ///< extra request headers (Authorization, …)
    std::chrono::milliseconds timeout{5000};          ///< per request
    std::chrono::milliseconds backoff_initial{100};
    std::chrono::milliseconds backoff_max{5000};
    int max_attempts = 0;        ///< 0: retry for ever, never lose a row
    std::size_t max_queued_bytes = 4u << 20;

    /// Parses `url` and `webhook.*` options: `webhook.timeout`, `webhook.backoff.initial`,
    /// `webhook.backoff.max` (e.g. "100ms", "5s"), `webhook.max-attempts`,
    /// `webhook.header.NAME`. Unknown keys and bad values are refused with the reason.
    static result<webhook_options> parse(const std::map<std::string, std::string>& opts, std::string& why);
};

/// A sink that POSTs each row, as a JSON object, to an HTTP endpoint: alerts and
/// notifications from a pipeline.
///
/// Rows wait in a queue bounded in bytes (`ready()` turns false when it is full, so a receiver
/// that is down stops the pipeline instead of growing memory). One worker thread sends them in
/// order, one request per row, over a kept-alive connection, each with an `Idempotency-Key`
/// header (`<name>-<sequence>`; the sequence is part of the job's checkpoint, so a row sent
/// again after a crash carries the same key). A 2xx answer delivers the row. Connection
/// failures, timeouts, 408, 429 and 5xx are retried with exponential backoff and jitter, in
/// order; other 4xx answers are permanent. A permanent failure, or running out of
/// `max_attempts`, hands the row to `dead_letter` with the reason. At a checkpoint `release`
/// answers once every row written before it is delivered or dead-lettered: at-least-once.
///
/// `write`, `ready`, `release` run on the job's thread; `dead_letter` and completions are
/// posted to `home`.
class webhook_sink final : public engine::checkpointed_sink {
public:
    using dead_letter_fn = std::function<void(std::string row, std::string reason, int attempts)>;
    webhook_sink(std::string name, webhook_options opts, executor& home, std::function<void()> wake,
                 dead_letter_fn dead_letter);
    ~webhook_sink() override;

    void start(int32_t, done_fn done) override;
    void write(const engine::batch& b) override;
    bool ready() const override;
    void set_draining(bool d) override;
    bool wants_checkpoint() const override { return false; }
    bool exactly_once() const override { return false; }
    std::string seal() override;
    void release(done_fn done) override;
    void recover(std::string_view sealed, done_fn done) override;
    std::size_t pending_bytes() const override;
    const std::string& name() const override { return _name; }
    void stop() override;

    struct stats {
        uint64_t delivered = 0, retries = 0, dead = 0;
    };
    stats counts() const;

private:
    struct impl;
    std::string _name;
    std::shared_ptr<impl> _impl;
};

} // namespace runnel::connect
