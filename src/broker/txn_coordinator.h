#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "base/base.h"
#include "broker/errc.h"
#include "broker/txn_state.h"
#include "model/model.h"

namespace runnel::storage {
class flusher;
}

namespace runnel::broker {

class broker;
class group_coordinator;

/// A transactional producer's id and epoch, as InitProducerId answers them.
struct txn_producer {
    int64_t id = -1;
    int16_t epoch = -1;
};

/// The state of one transactional id, as DescribeTransactions and `runnel txn` show it.
struct txn_description {
    errc error = errc::success;
    std::string id;
    std::string state;
    int32_t timeout_ms = 0;
    int64_t start_ms = -1;
    int64_t producer_id = -1;
    int16_t producer_epoch = -1;
    std::vector<model::topic_partition> partitions;
};

/// Kafka's transaction coordinator for every transactional id of this node.
///
/// Every operation runs, in arrival order, on the coordinator's own thread (a job queue):
/// it applies a transition of `txn_state.h` to a copy of the id's metadata, appends the
/// whole new metadata as one record to `DATA_DIR/transactions.log` and fdatasyncs it, and
/// only then adopts the copy, acts on partitions and answers on the caller's executor. The
/// thread may block on the shards (markers, partition registration, group commits), never
/// the reverse. EndTxn writes its COMMIT/ABORT markers into every partition of the
/// transaction with acks=all, applies its offsets to the groups on commit, and answers once
/// the transaction is complete; a marker that cannot be written leaves the transaction
/// prepared (decided and durable) and `tick` retries it. `start` replays the log (a torn
/// tail is cut), rewrites it with one record per id, lets the partitions of ongoing
/// transactions take their producers' batches again and queues the completion of prepared
/// ones; `tick` aborts transactions past their timeout.
class txn_coordinator {
public:
    txn_coordinator(broker& b, std::filesystem::path data_dir, std::chrono::milliseconds max_timeout);
    ~txn_coordinator();
    txn_coordinator(const txn_coordinator&) = delete;
    txn_coordinator& operator=(const txn_coordinator&) = delete;

    /// Loads the transaction log and recovers. Blocking; call once the broker and the group
    /// coordinator are started, before serving. Until then every call answers
    /// COORDINATOR_NOT_AVAILABLE.
    result<void> start(group_coordinator* groups);
    /// Finishes the queued work and stops taking more; blocking (not on a shard).
    void stop();
    bool started() const noexcept { return _started.load(); }

    /// Aborts transactions past their timeout and retries unfinished completions; any thread.
    void tick();

    using errc_fn = std::function<void(errc)>;
    using partition_errors = std::vector<std::pair<model::topic_partition, errc>>;

    /// InitProducerId for a transactional id: a new producer id, or the id's with the next
    /// epoch (an ongoing transaction is aborted first). `producer_id`/`epoch` -1 unless the
    /// client presents its current ones (KIP-360).
    void init_producer(std::string id, int32_t timeout_ms, int64_t producer_id, int16_t epoch, executor& caller,
                       std::function<void(result<txn_producer>)> done);
    /// AddPartitionsToTxn (`verify_only`: only check that each partition is in the transaction).
    void add_partitions(std::string id, int64_t producer_id, int16_t epoch, std::vector<model::topic_partition> tps,
                        bool verify_only, executor& caller, std::function<void(partition_errors)> done);
    void add_offsets(std::string id, int64_t producer_id, int16_t epoch, std::string group, executor& caller,
                     errc_fn done);
    /// TxnOffsetCommit: offsets kept with the transaction, applied to the group if it commits.
    void commit_offsets(std::string id, std::string group, int64_t producer_id, int16_t epoch,
                        std::vector<txn_pending_offset> offsets, executor& caller,
                        std::function<void(partition_errors)> done);
    void end(std::string id, int64_t producer_id, int16_t epoch, bool commit, executor& caller, errc_fn done);

    void describe(std::vector<std::string> ids, executor& caller, std::function<void(std::vector<txn_description>)> done);
    /// Every id, filtered by state names (empty: all), producer ids (empty: all) and a
    /// minimum running time (-1: none). `unknown` gets the state names that mean nothing.
    struct listing {
        std::vector<txn_description> transactions;
        std::vector<std::string> unknown_states;
    };
    void list(std::vector<std::string> states, std::vector<int64_t> producer_ids, int64_t min_duration_ms,
              executor& caller, std::function<void(listing)> done);

    std::chrono::milliseconds max_timeout() const noexcept { return _max_timeout; }

private:
    /// The metadata of `id` when the producer is its current one; else null and `error`.
    txn_metadata* current(const std::string& id, int64_t producer_id, int16_t epoch, errc& error);
    /// Runs `job` on the coordinator's thread.
    void run(std::function<void()> job);
    result<void> persist(const txn_metadata& m);
    result<void> compact();
    /// Writes markers (and applies offsets) for a prepared transaction, then completes it.
    void finish(txn_metadata& m);
    void abort_expired();
    void update_gauges();
    int64_t now_ms() const;

    broker& _broker;
    group_coordinator* _groups = nullptr;
    std::filesystem::path _path;
    std::chrono::milliseconds _max_timeout;
    std::mutex _worker_mu; ///< guards `_worker` against `stop` (ticks come from a shard)
    std::unique_ptr<storage::flusher> _worker;
    std::atomic<bool> _started{false};
    std::atomic<bool> _tick_queued{false};

    // On the coordinator's thread only.
    std::map<std::string, txn_metadata, std::less<>> _txns;
    std::unique_ptr<file_handle> _log;
    uint64_t _log_size = 0;
    uint64_t _records_since_compaction = 0;
};

} // namespace runnel::broker
