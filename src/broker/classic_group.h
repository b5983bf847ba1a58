#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "broker/errc.h"
#include "broker/group_coordinator.h"
#include "broker/group_records.h"

namespace runnel::broker {

/// The states of a classic group, as Kafka names them (`group_state_name`).
enum class group_state { empty, preparing_rebalance, completing_rebalance, stable, dead };

std::string_view group_state_name(group_state s) noexcept;

/// How a JoinGroup or SyncGroup is answered: called once, possibly during a later transition
/// (a join waits for the rebalance to complete, a follower's sync for the leader's).
using join_answer = std::function<void(join_result)>;
using sync_answer = std::function<void(sync_result)>;

/// What a transition of `classic_group` asks its owner to do once it returns.
struct group_effects {
    /// Snapshots of the group's metadata to append to the offsets topic, in order; a failure
    /// is only logged (the next rebalance stores it again).
    std::vector<group_records::group_metadata> store;
    /// The leader's SyncGroup: store this generation's metadata, then call `stored_sync`
    /// with the outcome; the members' SyncGroups are answered only then.
    std::optional<std::pair<int32_t, group_records::group_metadata>> store_sync;
    /// One entry per member removed for missing a deadline: "session", "join" or "sync".
    std::vector<std::string_view> expired;
};

/// One group of Kafka's classic group protocol (JoinGroup, SyncGroup, Heartbeat, LeaveGroup):
/// members, generations, the chosen protocol and the leader's assignment, static members
/// (`group.instance.id`), and the deadlines (initial delay, rebalance, sync, session).
///
/// A pure state machine: no threads, no I/O, and no clock (every transition is given `now`).
/// Answers go to the `join_answer`/`sync_answer` a request brought, durable writes and metrics
/// come back as `group_effects` for the owner to carry out. The group coordinator keeps one per
/// group on the group's shard and calls it only there; its unit tests drive it directly.
class classic_group {
public:
    using time_point = coordinator_clock::time_point;

    classic_group(std::string id, std::chrono::milliseconds initial_rebalance_delay);

    const std::string& id() const noexcept { return _id; }
    group_state state() const noexcept { return _state; }
    int32_t generation() const noexcept { return _generation; }
    const std::string& protocol_type() const noexcept { return _protocol_type; }
    const std::optional<std::string>& protocol() const noexcept { return _protocol; }
    const std::string& leader() const noexcept { return _leader; }
    std::size_t member_count() const noexcept { return _members.size(); }
    bool has_member(std::string_view member_id) const { return _members.find(member_id) != _members.end(); }
    /// Empty, with no members: may be deleted or turned into a consumer-protocol group.
    bool idle() const noexcept { return _members.empty() && _state == group_state::empty; }
    /// Has metadata worth storing (it rebalanced at least once, or has members).
    bool has_metadata() const noexcept { return _generation > 0 || !_members.empty(); }

    /// JoinGroup. `fresh_id` is the member id handed out if the request brings none.
    /// Precondition: the router checked the group id and the session timeout's bounds.
    group_effects join(const join_request& req, std::string fresh_id, join_answer answer, time_point now);
    /// SyncGroup; the leader's assignment is stored (`store_sync`) before anyone is answered.
    group_effects sync(const sync_request& req, sync_answer answer, time_point now);
    /// The outcome of storing generation `generation`'s metadata for `store_sync`.
    group_effects stored_sync(int32_t generation, bool stored, time_point now);
    /// Heartbeat: keeps a member's session and tells it whether to rejoin.
    errc heartbeat(int32_t generation, const member_identity& who, time_point now);
    /// LeaveGroup: one error per member in `who`, appended to `each`.
    group_effects leave(const std::vector<member_identity>& who, std::vector<errc>& each, time_point now);
    /// Expires pending ids and sessions, removes members that did not sync in time and ends
    /// rebalances whose time is up.
    group_effects tick(time_point now);

    /// The membership checks of an OffsetCommit to a classic group; `simple`: a commit without
    /// a member (generation -1, no ids).
    errc check_commit(const commit_request& req, bool simple) const;
    /// A commit from a member counts as a sign of life.
    void touch(std::string_view member_id, time_point now);

    /// DescribeGroups' view (state, protocol, members; assignments only when stable).
    void describe(group_description& d) const;
    /// The topics the members of a "consumer" protocol group subscribe to, whose offsets may
    /// not be deleted; NON_EMPTY_GROUP for a group of another protocol type that is not empty.
    errc topics_in_use(std::set<std::string>& out) const;

    /// The metadata record of the group as it is now.
    group_records::group_metadata metadata() const;
    /// Replaces the group's state with a stored record (recovery): stable, or empty.
    void restore(const group_records::group_metadata& m);
    /// DeleteGroups: the group is dead until its tombstones are stored and it is dropped.
    void mark_dead() noexcept { _state = group_state::dead; }
    /// Recovery read the group's tombstone: forget everything and be dead.
    void forget();
    /// After recovery, each restored member keeps its place for one session from `now`.
    void restart_sessions(time_point now);

private:
    /// A member as the group knows it, with the JoinGroup or SyncGroup it has waiting.
    struct member {
        std::string id;
        std::optional<std::string> instance_id;
        std::string client_id;
        std::string client_host;
        int32_t session_timeout_ms = 0;
        int32_t rebalance_timeout_ms = 0;
        std::string protocol_type;
        std::vector<std::pair<std::string, std::string>> protocols;
        std::string assignment;
        join_answer join_cb;
        sync_answer sync_cb;
        time_point deadline{};

        const std::string* metadata_for(std::string_view protocol) const;
        void fill(const join_request& req, time_point now);
    };

    bool fenced(const std::optional<std::string>& instance, std::string_view member_id) const;
    bool supports(std::string_view type, const std::vector<std::pair<std::string, std::string>>& candidates) const;
    std::optional<std::string> choose_protocol() const;
    int32_t rebalance_timeout() const;
    bool all_joined() const;
    join_result current_join(const member& m) const;

    group_effects join_new(const join_request& req, std::string fresh_id, join_answer answer, time_point now);
    group_effects rejoin_static(const join_request& req, const std::string& old_id, std::string id, join_answer answer,
                                time_point now);
    group_effects join_known(member& m, const join_request& req, join_answer answer, time_point now);
    void add_and_rebalance(const join_request& req, std::string id, join_answer answer, time_point now,
                           group_effects& fx);
    void prepare_rebalance(std::string_view why, time_point now, group_effects& fx);
    void try_complete_join(time_point now, group_effects& fx);
    void remove_member(const std::string& member_id, std::string_view why, time_point now, group_effects& fx);
    void complete_sync();

    static void fail_join(member& m, errc e);
    static void fail_sync(member& m, errc e);

    std::string _id;
    std::chrono::milliseconds _initial_rebalance_delay;
    group_state _state = group_state::empty;
    int32_t _generation = 0;
    std::string _protocol_type;
    std::optional<std::string> _protocol;
    std::string _leader;
    std::map<std::string, member, std::less<>> _members;
    std::map<std::string, std::string> _static_members; ///< instance id -> member id
    std::map<std::string, time_point> _pending;         ///< ids handed out, not joined yet
    /// Members of this generation that have not sent SyncGroup yet; they must by `_sync_deadline`
    /// (the rebalance timeout after the join completed) or leave the group, as in Kafka.
    std::set<std::string> _pending_sync;
    time_point _rebalance_deadline{};
    time_point _sync_deadline{};
    time_point _initial_delay_end{};
    time_point _initial_delay_cap{};
};

} // namespace runnel::broker
