#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "broker/errc.h"

namespace runnel::broker {

/// Partitions by topic name: what a member owns, is assigned or must give up.
using topic_assignment = std::map<std::string, std::set<int32_t>, std::less<>>;

/// What the group needs to know of a topic it subscribes to. A change of either (partitions
/// added, the topic deleted and created again) bumps the group epoch.
struct consumer_topic_meta {
    std::array<uint8_t, 16> id{};
    int32_t partitions = 0;
    bool operator==(const consumer_topic_meta&) const = default;
};

/// The topics of the broker by name, as the coordinator sees them at a heartbeat.
using consumer_topic_lookup = std::map<std::string, consumer_topic_meta, std::less<>>;

/// The server-side assignors of KIP-848. Both are pure functions of the members'
/// subscriptions, the topics and (for `uniform`) the previous target assignment.
struct assignor_member {
    std::string id;
    std::set<std::string, std::less<>> topics;
    topic_assignment previous; ///< the member's previous target (stickiness)
};

/// `uniform`: every member gets as many partitions of the topics it subscribes to as the
/// others (within one), keeping as much of its previous target as that allows.
std::map<std::string, topic_assignment> assign_uniform(const std::vector<assignor_member>& members,
                                                      const consumer_topic_lookup& topics);
/// `range`: per topic, the members subscribed to it (by member id) get contiguous ranges of
/// its partitions, the first ones one more when they do not divide evenly.
std::map<std::string, topic_assignment> assign_range(const std::vector<assignor_member>& members,
                                                    const consumer_topic_lookup& topics);

/// The names `ServerAssignor` may take; the first is the default.
inline constexpr std::array<std::string_view, 2> consumer_assignors{"uniform", "range"};

struct consumer_group_config {
    /// group.consumer.heartbeat.interval.ms (`--group-consumer-heartbeat-interval-ms`)
    std::chrono::milliseconds heartbeat_interval{5000};
    /// group.consumer.session.timeout.ms (`--group-consumer-session-timeout-ms`)
    std::chrono::milliseconds session_timeout{45000};
    /// group.consumer.max.size (`--group-consumer-max-size`): members per group.
    std::size_t max_size = 1000;
    /// Topics one member may subscribe to by name.
    std::size_t max_subscribed_topics = 10000;
};

/// One ConsumerGroupHeartbeat, with topics already resolved to names.
struct consumer_heartbeat_request {
    std::string member_id;
    int32_t member_epoch = 0;
    std::optional<std::string> instance_id;
    std::optional<std::string> rack_id;
    int32_t rebalance_timeout_ms = -1;
    std::optional<std::vector<std::string>> subscribed_topic_names;
    std::optional<std::string> subscribed_topic_regex;
    std::optional<std::string> server_assignor;
    std::optional<topic_assignment> owned; ///< null: unchanged since the last heartbeat
    std::string client_id;
    std::string client_host;
    bool client_generates_member_id = false; ///< version 1+: an empty member id is an error
};

struct consumer_heartbeat_result {
    errc error = errc::success;
    std::string error_message;
    std::string member_id;
    int32_t member_epoch = 0;
    int32_t heartbeat_interval_ms = 0;
    std::optional<topic_assignment> assignment; ///< set when the member must (re)apply it
};

/// A member as ConsumerGroupDescribe shows it.
struct consumer_member_view {
    std::string member_id;
    std::optional<std::string> instance_id;
    std::optional<std::string> rack_id;
    int32_t member_epoch = 0;
    std::string client_id;
    std::string client_host;
    std::vector<std::string> subscribed_topic_names;
    topic_assignment assignment;
    topic_assignment target_assignment;
};

struct consumer_group_view {
    std::string state;
    int32_t group_epoch = 0;
    int32_t assignment_epoch = 0;
    std::string assignor;
    std::vector<consumer_member_view> members;
};

/// The state of one KIP-848 consumer group: its members, the group epoch (bumped by every
/// change of membership, subscriptions or subscribed topics), the target assignment computed
/// by the server assignor at the assignment epoch, and each member's reconciliation towards
/// its target. A member gives up partitions before anyone else gets them: it keeps its epoch
/// while it still owns partitions that are no longer its own (`unrevoked`), and it is given a
/// partition of its target only once no other member owns it (`unreleased`).
///
/// Pure: no I/O, no clock of its own (callers pass `now`). Owned by the group coordinator on
/// the shard of the group; not thread-safe.
class consumer_group {
public:
    using clock = std::chrono::steady_clock;

    explicit consumer_group(const consumer_group_config& config) : _config(&config) {}

    /// Answers one heartbeat: join (epoch 0), stay (the current epoch), leave (-1, or -2 for a
    /// static member that will come back). `topics` is the broker's view of the topics.
    consumer_heartbeat_result heartbeat(consumer_heartbeat_request req, const consumer_topic_lookup& topics,
                                        clock::time_point now);

    /// Removes members whose session ended, or that kept partitions they were asked to revoke
    /// past their rebalance timeout. Returns the ids removed, each with the deadline it
    /// missed: "session" or "revocation".
    std::vector<std::pair<std::string, std::string_view>> expire(clock::time_point now);

    /// OffsetCommit's check: UNKNOWN_MEMBER_ID or STALE_MEMBER_EPOCH, else success.
    errc validate_commit(std::string_view member_id, int32_t member_epoch) const;

    bool empty() const noexcept { return _members.empty(); }
    std::size_t size() const noexcept { return _members.size(); }
    int32_t group_epoch() const noexcept { return _group_epoch; }
    int32_t assignment_epoch() const noexcept { return _assignment_epoch; }
    /// Kafka's names: Empty, Assigning, Reconciling, Stable.
    std::string_view state() const noexcept;
    consumer_group_view view() const;
    /// The topics any member subscribes to (OffsetDelete refuses to delete their offsets).
    std::set<std::string, std::less<>> subscribed_topics() const;

private:
    enum class member_state { stable, unrevoked, unreleased };
    struct member {
        std::string id;
        std::optional<std::string> instance_id;
        std::optional<std::string> rack_id;
        std::string client_id;
        std::string client_host;
        int32_t epoch = 0;
        int32_t previous_epoch = -1;
        int32_t rebalance_timeout_ms = 0;
        std::set<std::string, std::less<>> topics;
        std::optional<std::string> assignor;
        topic_assignment assigned;            ///< given to the member and not taken back
        topic_assignment pending_revocation;  ///< the member must stop owning these first
        member_state state = member_state::stable;
        bool left_static = false;             ///< left with epoch -2; its instance may come back
        clock::time_point session_deadline{};
        clock::time_point revocation_deadline{};
    };

    consumer_heartbeat_result fail(errc e, std::string message) const;
    consumer_heartbeat_result leave(const consumer_heartbeat_request& req, clock::time_point now);
    void remove(const std::string& id);
    void bump() { ++_group_epoch; }
    /// Takes the subscribed topics' metadata from `topics`; true if it changed.
    bool refresh_metadata(const consumer_topic_lookup& topics);
    void compute_target();
    std::string chosen_assignor() const;
    /// Moves the member towards its target as far as others allow; true if what the member
    /// should own changed.
    bool reconcile(member& m, const std::optional<topic_assignment>& owned, clock::time_point now);
    bool owned_by_other(const std::string& member_id, const std::string& topic, int32_t partition) const;

    const consumer_group_config* _config;
    std::map<std::string, member, std::less<>> _members;
    std::map<std::string, std::string, std::less<>> _static_members; ///< instance id -> member id
    int32_t _group_epoch = 0;
    int32_t _assignment_epoch = 0;
    std::string _assignor{consumer_assignors[0]};
    consumer_topic_lookup _metadata; ///< the subscribed topics at the last epoch bump
    std::map<std::string, topic_assignment, std::less<>> _target;
    /// Who owns each partition (assigned or pending revocation): the owner's id.
    std::map<std::pair<std::string, int32_t>, std::string> _owners;
};

} // namespace runnel::broker
