#pragma once

// Engine sources and sinks for an external Kafka-protocol cluster (Kafka, Redpanda, or another
// `runnel serve`), through librdkafka. librdkafka stays inside kafka.cc.

#include <chrono>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "base/base.h"
#include "engine/engine.h"

namespace runnel::connect {

/// One librdkafka property of a table on an external cluster, and the table option it comes
/// from (`properties.<key>`), which errors name.
struct kafka_property {
    std::string name;  ///< librdkafka's key
    std::string value;
    std::string option; ///< the table's option, such as "properties.sasl.jaas.config"
};

/// What a table's `properties.*` options give the Kafka client: every property in librdkafka's
/// terms, and the secret values among them (for `mask`).
struct kafka_client_config {
    std::vector<kafka_property> properties;
    std::vector<std::string> secrets;

    /// The value of librdkafka property `name`, or "".
    std::string get(std::string_view name) const;
    /// `message` with every secret value in it replaced by `******` (`text::masked`): for any
    /// text a client's error may echo.
    std::string mask(std::string message) const;
};

/// The username and password a JAAS configuration gives, in Flink's (and Kafka's) form
/// `<login module class> required username="u" password="p";`, as librdkafka properties:
/// `sasl.username`/`sasl.password` for the Plain and SCRAM login modules (`sasl.mechanism`
/// PLAIN for Plain), `sasl.oauthbearer.*` for the OAuthBearer one (its unsecured `sub` claim,
/// or an OIDC client id and secret). `mechanism` is the table's `sasl.mechanism` (upper case,
/// or ""). `why` says what is wrong without repeating any value of the text.
result<std::vector<std::pair<std::string, std::string>>> translate_jaas_config(std::string_view text,
                                                                               std::string_view mechanism,
                                                                               std::string& why);

/// The Kafka client configuration of table `table` from its options: every `properties.<key>`
/// option (but `group.id` and `auto.offset.reset`, which the job reads itself) becomes
/// librdkafka property `<key>` unchanged, except Flink's (Java
/// client's) names librdkafka does not have: `sasl.jaas.config` (see `translate_jaas_config`),
/// `ssl.truststore.location` (→ `ssl.ca.location`), a PEM `ssl.keystore.location` (→
/// `ssl.certificate.location` and `ssl.key.location`), `ssl.truststore.certificates`,
/// `ssl.keystore.certificate.chain`, `ssl.keystore.key` (inline PEM) and an empty
/// `ssl.endpoint.identification.algorithm` (→ none). Certificate and key files must be PEM:
/// a JKS or PKCS12 file is refused, naming the option. Then librdkafka checks every property
/// and makes a client of them without connecting (so a key it does not know, a value it refuses
/// or a file it cannot load is found here, when the pipeline is planned). `why` names the
/// table, the option and librdkafka's reason, with secrets masked. Blocks briefly (reads the
/// files, starts and stops a client): call where planning runs.
result<kafka_client_config> kafka_client_config_of(std::string_view table,
                                                   std::span<const std::pair<std::string, std::string>> options,
                                                   std::string& why);

/// The number of partitions of `topic` on the cluster at `bootstrap`, asked over the Kafka
/// protocol (blocks up to `timeout`; call from a thread that may block). `why` explains a
/// failure (unreachable, unknown topic).
result<int32_t> kafka_partitions(const std::string& bootstrap, const std::string& topic,
                                 std::chrono::milliseconds timeout, std::string& why);

struct kafka_source_options {
    std::string bootstrap; ///< host:port[,host:port…]
    /// The table's client properties (security, tuning); the source's own (group, offsets,
    /// read-ahead) are set after them.
    kafka_client_config client;
    std::string topic;
    std::string client_id = "runnel-job";
    std::size_t max_buffered_bytes = 4u << 20;
    /// Where a partition no checkpoint covers starts: its beginning (false) or its end (true).
    bool start_at_end = false;
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
    /// The table's client properties; the sink's own (idempotence, acks, partitioner,
    /// transactional.id) are set after them.
    kafka_client_config client;
    std::string topic;
    std::vector<std::string> key_columns;
    bool exactly_once = false;
    /// Exactly-once only: the producer's `transactional.id`. It must be the same for every
    /// incarnation of one sink of one job (a restart fences the previous one through it) and
    /// differ between sinks; the jobs module passes `runnel-<job id>-<topic>`.
    std::string transactional_id;
    /// At-least-once: rows in flight; exactly-once: rows held since the last checkpoint.
    std::size_t max_pending_rows = 100000;
    /// Exactly-once recovery reads at most this many records back from the end of each
    /// partition to find the newest committed generation (see the class comment).
    int64_t recover_scan_records = 10000;
    /// How long `init_transactions`, a commit or an abort may take before it fails.
    std::chrono::milliseconds transaction_timeout = std::chrono::seconds(30);
};

/// Writes rows as JSON records (as `log_sink` does) to a topic of an external cluster, keyed
/// by `key_columns` and placed with Kafka's murmur2 partitioner, so Java clients find keys
/// where they expect them. librdkafka's blocking calls and its callbacks run on a thread of the
/// sink's own ("the sink's thread"); every method is called on the job's thread (`home`), and
/// every completion is posted back to it.
///
/// At-least-once (`exactly_once` false): an idempotent producer (acks=all) sends rows as they
/// come, and `release` answers once every row written before it is acknowledged, so a
/// checkpoint never moves past output that could be lost.
///
/// Exactly-once: one Kafka transaction per checkpoint, with `transactional_id`.
/// - `start` runs `init_transactions` on the sink's thread. That fences every earlier
///   incarnation with the same id and aborts the transaction it left open, so output it sent
///   but never committed stays invisible to `read_committed` readers. A cluster without
///   transactions (such as `runnel serve`) fails here; `failure()` gives librdkafka's reason.
/// - `write` encodes rows and holds them (nothing is sent); `ready()` turns false at
///   `max_pending_rows` held rows unless the job is draining for a checkpoint, and
///   `wants_checkpoint()` asks for one at half that.
/// - `seal` closes what is held into generation g (a counter, one per seal) and returns it
///   whole as bytes for the checkpoint: g, then every record's partition, key and value, so
///   the checkpoint alone can re-create the output. Partitions are chosen at `write` (murmur2
///   of the key, round-robin without one) and kept, so a resend goes where the first send went.
/// - `release`, once that checkpoint is durable: begin a transaction, produce every record of
///   g with the header `runnel-seal` = "<g>" (and `runnel-sink` = the transactional id), commit.
///   A failure that needs an abort is aborted and the whole transaction tried once more; a
///   fatal one (fenced by a newer incarnation, transactions unsupported) fails the release
///   with librdkafka's message in `failure()`.
/// - `recover(sealed)` after a restart, with generation g of the last complete checkpoint:
///   a `read_committed` consumer (assigned, no group) reads the last `recover_scan_records`
///   records of every partition and takes the highest `runnel-seal` among records whose
///   `runnel-sink` is this transactional id. Transactions of one id commit in generation
///   order, so if that is ≥ g, g is in the topic and is skipped; otherwise g is sent again
///   (same generation) as in `release`. The counter continues after max(g, highest seen) —
///   also when there is no checkpoint yet, so that a restarted job never reuses a generation
///   an earlier run of it committed.
/// Limits: recovery must find g's records within the scanned tail, so other writers to the
/// topic must not add more than `recover_scan_records` records to a partition between a
/// commit and the next recovery; readers see the output only if they use `read_committed`.
class kafka_sink final : public engine::checkpointed_sink {
public:
    kafka_sink(kafka_sink_options opts, executor& home, std::function<void()> wake);
    ~kafka_sink() override;
    /// Creates the producer; exactly-once also runs `init_transactions` and learns the
    /// partition count (the topic must exist). `done` runs on `home`.
    void start(int32_t partitions, done_fn done) override;
    void write(const engine::batch& b) override;
    bool ready() const override;
    void set_draining(bool d) override { _draining = d; }
    bool wants_checkpoint() const override;
    bool exactly_once() const override { return _exactly_once; }
    /// Exactly-once: the held rows as the next generation (see the class comment); "" else.
    std::string seal() override;
    /// Exactly-once: commits the sealed generation in one transaction. At-least-once: `done`
    /// once every row written so far is acknowledged.
    void release(done_fn done) override;
    /// Exactly-once: makes sure the sealed generation is committed once; before any `write`.
    void recover(std::string_view sealed, done_fn done) override;
    std::size_t pending_bytes() const override;
    const std::string& name() const override;
    std::string failure() const override;
    void stop() override;

private:
    struct impl;
    std::shared_ptr<impl> _impl;
    bool _draining = false;
    bool _exactly_once = false;
};

} // namespace runnel::connect
