#pragma once

#include <array>
#include <atomic>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "base/base.h"
#include "broker/errc.h"
#include "broker/partition_txns.h"
#include "broker/producer_state.h"
#include "broker/topic_config.h"
#include "model/model.h"
#include "storage/storage.h"

namespace runnel::broker {

/// A topic as the broker knows it. Immutable once published; changes publish a new one.
struct topic_info {
    std::string name;
    std::array<uint8_t, 16> id{}; ///< Kafka's topic id (a random UUID made at creation)
    topic_config config;

    bool has_partition(int32_t p) const noexcept { return p >= 0 && p < config.partitions; }
};

/// Topics the broker itself writes (`__consumer_offsets`): clients may read them but not
/// produce to or delete them.
inline bool is_internal_topic(std::string_view name) noexcept { return name == "__consumer_offsets"; }

/// Every topic, by name. Published as an immutable snapshot that any thread may read.
using topic_map = std::map<std::string, std::shared_ptr<const topic_info>, std::less<>>;

struct broker_config {
    std::filesystem::path data_dir;
    bool auto_create_topics = true;
    int32_t default_partitions = 1;
    /// The most bytes the records of one compressed produced batch may inflate to while they
    /// are checked (`--kafka-max-inflated-batch-bytes`); larger ones are refused.
    std::size_t max_inflated_batch_bytes = model::max_inflated_bytes;
    /// Sealed segment files kept open at once, over all shards (`--max-open-segment-files`);
    /// 0 keeps every segment open.
    std::size_t max_open_segment_files = 1024;
    /// The longest transaction.timeout.ms a transactional producer may ask for
    /// (`--kafka-transaction-max-timeout-ms`, Kafka's transaction.max.timeout.ms).
    int64_t transaction_max_timeout_ms = 900000;
};

struct produce_result {
    model::offset base;
    model::offset log_start;
};

/// Why a produce was refused before it reached the log, for the client: Kafka's
/// error_message, and the records at fault (record_errors, KIP-467: a compacted topic's
/// records without a key), by their index in the batch.
struct produce_refusal {
    std::string message;
    std::vector<int32_t> records;
};

struct fetch_result {
    storage::read_result data;
    model::offset high_watermark;
    model::offset log_start;
    /// The first offset of the oldest open transaction, else the high watermark.
    model::offset last_stable;
    /// read_committed only: the aborted transactions overlapping the data returned.
    std::vector<partition_txns::aborted_txn> aborted;
};

struct offsets_result {
    model::offset log_start;
    model::offset high_watermark;
    model::offset last_stable;
};

/// One producer of a partition, as DescribeProducers shows it.
struct producer_description {
    int64_t producer_id = -1;
    int16_t epoch = -1;
    int32_t last_sequence = -1;
    int64_t last_timestamp = -1;
    int64_t open_txn_first_offset = -1;
};

class txn_coordinator;

/// Topics and partitions, and the produce and fetch paths over them.
///
/// Each partition is owned by one shard (a hash of topic and partition); its log and its
/// waiting fetches live there and are touched only on that shard's thread. Calls may come
/// from any shard: the work is posted to the owner and `done` is posted back to the
/// `caller`'s executor, so no lock guards the data path. Topic metadata changes (create,
/// delete, alter) are rare; they run in order on one metadata thread, take `_meta_mu`, write
/// `topic.conf` and publish a new immutable `topic_map`, which readers load atomically.
class broker {
public:
    broker(broker_config config, std::vector<executor*> shards, std::vector<storage::flusher*> flushers);
    ~broker();
    broker(const broker&) = delete;
    broker& operator=(const broker&) = delete;

    /// Loads every topic under the data directory and opens its partitions on their shards.
    /// Blocking; call from a thread that is not a shard, before serving.
    result<void> start();
    /// Closes (flushes) every partition; blocking, from a thread that is not a shard.
    result<void> stop();

    const broker_config& config() const noexcept { return _config; }

    /// Applies retention to the partitions of `shard`; call on that shard's thread.
    std::size_t apply_retention(unsigned shard, model::processing_time now);
    /// Rolls active segments past segment.ms and queues the compacted logs of `shard` that are
    /// due for cleaning on `cleaner`. Call on that shard.
    void schedule_cleaning(unsigned shard, storage::log_cleaner& cleaner, model::processing_time now);
    /// Number of partitions across all topics.
    std::size_t partition_count() const;
    unsigned shard_count() const noexcept { return static_cast<unsigned>(_shards.size()); }
    unsigned shard_of(const model::topic_partition& tp) const noexcept;

    std::shared_ptr<const topic_map> topics() const;
    std::shared_ptr<const topic_info> topic(std::string_view name) const;
    /// The topic with Kafka topic id `id`, or null.
    std::shared_ptr<const topic_info> topic_by_id(const std::array<uint8_t, 16>& id) const;

    using done_fn = std::function<void(result<void>)>;

    /// Creates a topic and its partitions. `why` explains a refusal.
    void create_topic(std::string name, topic_config config, executor& caller,
                      std::function<void(result<void>, std::string why)> done);
    void delete_topic(std::string name, executor& caller, done_fn done);
    /// Grows a topic to `count` partitions (never shrinks).
    void create_partitions(std::string name, int32_t count, executor& caller,
                           std::function<void(result<void>, std::string why)> done);
    /// Applies config changes (set or reset) atomically: all or none.
    void alter_config(std::string name, std::vector<std::pair<std::string, std::optional<std::string>>> changes,
                      executor& caller, std::function<void(result<void>, std::string why)> done);

    /// This broker's dynamic configs (Kafka's DYNAMIC_BROKER_CONFIG: AlterConfigs and
    /// IncrementalAlterConfigs on a BROKER resource), by Kafka name. Kept in
    /// `<data>/broker.conf`; Runnel's own settings are command-line flags, so none of them
    /// changes how this broker runs. Any thread.
    std::map<std::string, std::string> dynamic_configs() const;
    /// Sets (a value) or removes (nothing) dynamic configs, all or none, after removing every
    /// one first when `replace` (AlterConfigs), and writes the file.
    void alter_dynamic_configs(std::vector<std::pair<std::string, std::optional<std::string>>> changes, bool replace,
                               executor& caller, std::function<void(result<void>, std::string why)> done);

    /// Appends the RecordBatch bytes of one produce partition (one or more batches).
    /// `acks == -1` answers after the batches are durable.
    /// A batch that fails validation fills `refusal` (when given) before `done` is called.
    void produce(model::topic_partition tp, std::span<const std::byte> records, int16_t acks,
                 executor& caller, std::function<void(result<produce_result>)> done,
                 produce_refusal* refusal = nullptr);

    /// Whole batches from `offset`, up to `max_bytes` (with `at_least_one`, at least one batch
    /// when there is data, however large; without it, never more than `max_bytes`).
    /// With `read_committed`, nothing at or past the last stable offset is returned, and the
    /// aborted transactions overlapping what is come with it (Kafka's isolation level 1).
    void fetch(model::topic_partition tp, model::offset offset, std::size_t max_bytes, executor& caller,
               std::function<void(result<fetch_result>)> done, bool at_least_one = true,
               bool read_committed = false);

    void offsets(model::topic_partition tp, executor& caller, std::function<void(result<offsets_result>)> done);

    /// Deletes the partition's whole segments before `o` (their live records having been
    /// written again past `o` by the topic's owner); answers the new log start.
    void remove_segments_before(model::topic_partition tp, model::offset o, executor& caller,
                                std::function<void(result<model::offset>)> done);

    /// Moves the partition's log start to `o` (Kafka's DeleteRecords; -1 means the high
    /// watermark) and answers the new log start once it is durable. Past the high watermark
    /// is `offset_out_of_range`; at or before the current start changes nothing.
    void delete_records(model::topic_partition tp, model::offset o, executor& caller,
                        std::function<void(result<model::offset>)> done);

    struct producer_identity {
        int64_t id;
        int16_t epoch;
    };
    /// A new idempotent producer id with epoch 0, every time. An id and epoch a client
    /// presents without a transactional id are never trusted (two producers presenting the
    /// same pair would share one sequence space), as in Kafka. Ids are reserved in blocks
    /// recorded durably in `<data>/producer_ids`, so none is handed out twice.
    void init_producer_id(executor& caller, std::function<void(result<producer_identity>)> done);
    /// Lets `producer_id` at `epoch` write transactional batches to `tp` (AddPartitionsToTxn).
    void txn_allow(model::topic_partition tp, int64_t producer_id, int16_t epoch, executor& caller,
                   std::function<void(errc)> done);
    /// Appends a COMMIT or ABORT marker (a control batch) for `producer_id`'s transaction to
    /// `tp` and answers once it is durable. `coordinator_epoch` goes into the marker's value.
    void write_txn_marker(model::topic_partition tp, int64_t producer_id, int16_t epoch, bool commit,
                          int32_t coordinator_epoch, executor& caller, std::function<void(result<void>)> done);
    /// The producers the partition remembers (DescribeProducers).
    void describe_producers(model::topic_partition tp, executor& caller,
                            std::function<void(result<std::vector<producer_description>>)> done);
    /// The transaction coordinator of this node (started by the caller of `start`).
    txn_coordinator& transactions() noexcept { return *_txns; }
    using time_match = storage::partition_log::time_match;
    /// The first record whose timestamp is >= `t`, with its timestamp (nullopt: none).
    void offset_for_time(model::topic_partition tp, model::event_time t, executor& caller,
                         std::function<void(result<std::optional<time_match>>)> done);

    // ---- Shard-local forms: call on the partition's owner, `owner_of(tp)`'s thread. ----
    // Each callback form above that has one is that function run on the owner, its result
    // posted back to the caller. Coroutines hop with `net::invoke_on(owner_of(tp), …)`.

    /// The executor of the shard that owns `tp`.
    executor& owner_of(const model::topic_partition& tp) const noexcept { return *_shards[shard_of(tp)]; }
    result<fetch_result> fetch_local(const model::topic_partition& tp, model::offset offset, std::size_t max_bytes,
                                     bool at_least_one = true, bool read_committed = false);
    result<offsets_result> offsets_local(const model::topic_partition& tp);
    result<std::optional<time_match>> offset_for_time_local(const model::topic_partition& tp, model::event_time t);
    /// The first record holding the partition's largest timestamp (ListOffsets MAX_TIMESTAMP,
    /// KIP-734), or nothing for an empty partition. On the partition's owner.
    result<std::optional<time_match>> max_timestamp_local(const model::topic_partition& tp);
    errc txn_allow_local(const model::topic_partition& tp, int64_t producer_id, int16_t epoch);
    result<std::vector<producer_description>> describe_producers_local(const model::topic_partition& tp);

    /// A long-polling fetch's interest in new data. `wake` runs once on `caller` when any
    /// watched partition grows past the offset given, or never if `cancel` comes first.
    class watch {
    public:
        void cancel() noexcept { _state->fired.store(true); }
        bool fired() const noexcept { return _state->fired.load(); }

    private:
        friend class broker;
        struct state {
            std::atomic<bool> fired{false};
            std::function<void()> wake;
            executor* caller = nullptr;
        };
        std::shared_ptr<state> _state = std::make_shared<state>();
    };
    watch watch_for_data(executor& caller, std::function<void()> wake);

    /// Calls `listener(topic)` on the metadata thread after each topic deletion. Register
    /// before `start`.
    void on_topic_deleted(std::function<void(const std::string&)> listener) {
        _deletion_listeners.push_back(std::move(listener));
    }
    /// Adds a partition to `w`: wakes it if the partition's end is already past `offset`.
    void add_to_watch(const watch& w, model::topic_partition tp, model::offset offset);

private:
    struct shard_state;

    /// Runs `fn` on shard `s` and waits (start-up and shutdown only).
    void run_on(unsigned s, std::function<void()> fn);
    result<void> open_partitions(const topic_info& t, int32_t from, int32_t to);
    result<void> write_topic_conf(const topic_info& t);
    void publish(topic_map m);
    /// Runs blocking metadata work (files, syncs, waiting on shards) off the shards, in order.
    void on_meta_thread(std::function<void()> fn);
    static void fire(const std::shared_ptr<watch::state>& st);

    broker_config _config;
    std::vector<executor*> _shards;
    std::vector<std::unique_ptr<shard_state>> _state;
    result<int64_t> allocate_producer_id();

    std::unique_ptr<storage::flusher> _meta_worker;
    int64_t _next_producer_id = 0;    ///< on the metadata thread
    int64_t _producer_id_limit = 0;   ///< end of the reserved block
    std::mutex _meta_mu;
    std::shared_ptr<const topic_map> _topics; ///< written through std::atomic_store on changes
    /// Bumped after each publish; readers keep a per-thread copy of the map and reload it
    /// (std::atomic_load, which locks) only when this moves, so the data path takes no lock.
    std::atomic<uint64_t> _topics_version{0};
    const uint64_t _instance; ///< tells apart brokers in one process (tests) for those copies
    std::vector<std::function<void(const std::string&)>> _deletion_listeners;
    std::unique_ptr<txn_coordinator> _txns;
    mutable std::mutex _dynamic_mu;
    std::map<std::string, std::string> _dynamic; ///< under `_dynamic_mu`
};

} // namespace runnel::broker

#include "broker/group_coordinator.h"
#include "broker/txn_coordinator.h"
