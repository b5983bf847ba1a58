#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "base/base.h"
#include "broker/consumer_group.h"
#include "broker/errc.h"
#include "model/model.h"

namespace runnel::broker {

class broker;
struct group_effects;
struct group_entry;

/// The name of the internal compacted topic holding committed offsets and group metadata.
inline constexpr std::string_view offsets_topic = "__consumer_offsets";

struct group_config {
    /// group.initial.rebalance.delay.ms: how long a new group waits for more members.
    std::chrono::milliseconds initial_rebalance_delay{3000};
    /// group.min/max.session.timeout.ms: the session timeouts members may ask for.
    std::chrono::milliseconds min_session_timeout{6000};
    std::chrono::milliseconds max_session_timeout{1800000};
    /// offsets.topic.num.partitions: fixed when the offsets topic is created.
    int32_t offsets_partitions = 16;
    /// segment.bytes of the offsets topic, fixed when it is created.
    int64_t offsets_segment_bytes = 8ll << 20;
    /// A partition of the offsets topic is compacted once it holds this many more records
    /// than twice its live keys.
    uint64_t compaction_slack_records = 20000;
    /// offset.metadata.max.bytes
    std::size_t max_metadata_bytes = 4096;
    /// Groups of the consumer protocol (KIP-848).
    consumer_group_config consumer;
};

using coordinator_clock = std::chrono::steady_clock;

struct join_request {
    std::string group_id;
    int32_t session_timeout_ms = 0;
    int32_t rebalance_timeout_ms = -1; ///< -1: the session timeout (JoinGroup v0)
    std::string member_id;
    std::optional<std::string> instance_id;
    std::string protocol_type;
    std::vector<std::pair<std::string, std::string>> protocols; ///< name, metadata bytes
    std::string client_id;
    std::string client_host;
    bool require_known_member = false; ///< JoinGroup v4+: a new member first gets MEMBER_ID_REQUIRED
};

struct join_result {
    errc error = errc::success;
    int32_t generation = -1;
    std::string protocol_type;
    std::optional<std::string> protocol_name;
    std::string leader;
    std::string member_id;
    bool skip_assignment = false;
    struct member {
        std::string member_id;
        std::optional<std::string> instance_id;
        std::string metadata;
    };
    std::vector<member> members; ///< for the leader only
};

struct sync_request {
    std::string group_id;
    int32_t generation = -1;
    std::string member_id;
    std::optional<std::string> instance_id;
    std::optional<std::string> protocol_type;
    std::optional<std::string> protocol_name;
    std::vector<std::pair<std::string, std::string>> assignments; ///< member id, assignment bytes
};

struct sync_result {
    errc error = errc::success;
    std::optional<std::string> protocol_type;
    std::optional<std::string> protocol_name;
    std::string assignment;
};

struct member_identity {
    std::string member_id;
    std::optional<std::string> instance_id;
};

struct committed_offset {
    int64_t offset = -1;
    int32_t leader_epoch = -1;
    std::optional<std::string> metadata;
    int64_t commit_time_ms = 0;
};

struct commit_request {
    std::string group_id;
    int32_t generation = -1;
    std::string member_id;
    std::optional<std::string> instance_id;
    /// Offsets of a committed transaction (TxnOffsetCommit): applied whatever the group's
    /// membership now is, as Kafka applies them when the commit marker is written.
    bool from_transaction = false;
    struct partition {
        model::topic_partition tp;
        committed_offset value;
    };
    std::vector<partition> partitions;
};

struct partition_error {
    model::topic_partition tp;
    errc error = errc::success;
};

struct fetched_offset {
    model::topic_partition tp;
    committed_offset value;
    errc error = errc::success;
};

struct offsets_fetch_result {
    errc error = errc::success;
    std::vector<fetched_offset> partitions;
};

struct group_listing {
    std::string group_id;
    std::string protocol_type;
    std::string state;
    std::string type = "classic"; ///< "consumer" for groups of the consumer protocol (KIP-848)
};

/// A consumer-protocol group as ConsumerGroupDescribe shows it.
struct consumer_group_description {
    errc error = errc::success;
    std::string error_message;
    std::string group_id;
    consumer_group_view group;
};

struct group_description {
    errc error = errc::success;
    std::string group_id;
    std::string state;
    std::string protocol_type;
    std::string protocol;
    int32_t generation = 0;
    struct member {
        std::string member_id;
        std::optional<std::string> instance_id;
        std::string client_id;
        std::string client_host;
        std::string metadata;
        std::string assignment;
    };
    std::vector<member> members;
};

/// A group's committed offsets, for lag: what the gateway exports as consumer-group lag.
struct group_offsets {
    std::string group_id;
    std::vector<std::pair<model::topic_partition, int64_t>> offsets;
};

/// Kafka's group coordinator: membership and rebalances of the classic protocol, groups of
/// the consumer protocol (KIP-848, `consumer_group.h`), and committed offsets for both.
///
/// Four parts: this class is the router (which shard owns a group; each call is posted
/// there and answered on the caller's executor, `group_coordinator.cc`); each classic group
/// is the pure state machine `classic_group` (`classic_group.h`); the records it stores are
/// `group_records.h`; recovery, durable writes and compaction of the offsets topic are
/// `group_log.cc`.
///
/// Each group lives on one shard: the owner of its partition of `__consumer_offsets` (a
/// hash of the group id), so its state and its writes stay on one thread. Calls come from any
/// shard and answer on the caller's executor, like the broker's. Commits and the group's
/// metadata after each rebalance are appended to `__consumer_offsets` and synced before they
/// are answered; `start` replays that topic, partition by partition, and a group answers
/// COORDINATOR_LOAD_IN_PROGRESS until its partition is loaded. The coordinator compacts the
/// offsets topic itself (see `maybe_rewrite`), since it holds every live key in memory. Timeouts (sessions,
/// rebalances, the initial delay) are checked by `tick`, which the server calls on each shard.
class group_coordinator {
public:
    group_coordinator(broker& b, group_config config, std::vector<executor*> shards);
    ~group_coordinator();
    group_coordinator(const group_coordinator&) = delete;
    group_coordinator& operator=(const group_coordinator&) = delete;

    /// Creates the offsets topic when missing (blocking; not on a shard), then starts loading
    /// it on the shards, returning at once.
    result<void> start();
    /// True once every partition of the offsets topic is loaded (tests, readiness).
    bool loaded() const noexcept;
    /// True once `group_id`'s partition of the offsets topic is loaded; any thread.
    bool ready(std::string_view group_id) const noexcept;

    /// Expires sessions, ends rebalances; call periodically on shard `s`'s thread.
    void tick(unsigned s, coordinator_clock::time_point now);

    void join(join_request req, executor& caller, std::function<void(join_result)> done);
    void sync(sync_request req, executor& caller, std::function<void(sync_result)> done);
    void heartbeat(std::string group_id, int32_t generation, member_identity member, executor& caller,
                   std::function<void(errc)> done);
    /// Removes members; answers one error per member (the first is the top-level one for v0–2).
    void leave(std::string group_id, std::vector<member_identity> members, executor& caller,
               std::function<void(errc, std::vector<errc>)> done);
    void commit(commit_request req, executor& caller, std::function<void(errc, std::vector<partition_error>)> done);
    /// `partitions` nullopt: every committed partition of the group.
    void fetch_offsets(std::string group_id, std::optional<std::vector<model::topic_partition>> partitions,
                       executor& caller, std::function<void(offsets_fetch_result)> done);
    void list(executor& caller, std::function<void(std::vector<group_listing>)> done);
    void describe(std::string group_id, executor& caller, std::function<void(group_description)> done);
    void delete_group(std::string group_id, executor& caller, std::function<void(errc)> done);
    void delete_offsets(std::string group_id, std::vector<model::topic_partition> partitions, executor& caller,
                        std::function<void(errc, std::vector<partition_error>)> done);
    /// ConsumerGroupHeartbeat (KIP-848): joins, keeps alive, reconciles or removes a member of
    /// a consumer-protocol group. A group is of one protocol while it has members.
    void consumer_heartbeat(std::string group_id, consumer_heartbeat_request req, executor& caller,
                            std::function<void(consumer_heartbeat_result)> done);
    void consumer_describe(std::string group_id, executor& caller,
                           std::function<void(consumer_group_description)> done);
    /// Every group's committed offsets (lag metrics).
    void all_offsets(executor& caller, std::function<void(std::vector<group_offsets>)> done);

    /// Forgets committed offsets of a deleted topic in every group (durably).
    void on_topic_deleted(const std::string& topic);

    struct shard_state;

private:
    using record_list = std::vector<std::pair<std::string, std::optional<std::string>>>;

    // The router (group_coordinator.cc): which shard owns a group, and requests to it.
    int32_t partition_of(std::string_view group_id) const noexcept;
    unsigned shard_of_group(std::string_view group_id) const noexcept;
    /// Carries out what a transition of `group_id`'s classic state machine asked for.
    void apply(unsigned s, int32_t p, const std::string& group_id, group_effects fx);
    /// Ends `g`'s sessions and rebalances whose deadlines passed by `now`: `tick` does it
    /// for every group, and a request that reads a group's state (describe, list, delete)
    /// does it first for that group, so the answer does not depend on when the last tick ran.
    void expire_due(unsigned s, group_entry& g, coordinator_clock::time_point now);

    // The log (group_log.cc): recovery, durable writes and compaction of the offsets topic.
    void load_partition(int32_t p, model::offset from);
    void apply_records(unsigned s, int32_t p, std::span<const std::byte> batches);
    void finish_load(int32_t p);
    /// Appends records to partition `p` (owned by shard `s`) and calls `done` once synced.
    void persist(unsigned s, int32_t p, record_list records, std::function<void(result<void>)> done);
    void maybe_rewrite(unsigned s, int32_t p);

    broker& _broker;
    group_config _config;
    std::vector<executor*> _shards;
    std::vector<std::unique_ptr<shard_state>> _state;
    int32_t _partitions = 0;
    std::atomic<int32_t> _loading{0};
    std::vector<std::atomic<bool>> _partition_ready;
    bool _started = false;
};

} // namespace runnel::broker
