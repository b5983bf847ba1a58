#include <gtest/gtest.h>

#include <unistd.h>

#include "broker/tests/broker_fixture.h"

namespace runnel::broker {
namespace {

using namespace std::chrono_literals;

/// A broker and a group coordinator on two real shards; the test thread calls them and
/// waits for the answers on its own executor. Time-outs are driven by calling `tick` with a
/// chosen clock, so nothing waits for real time to pass.
class group_coordinator_test : public testing::broker_fixture {
protected:
    void started(const std::vector<executor*>& ex) override {
        group_config cfg;
        cfg.initial_rebalance_delay = 0ms;
        cfg.min_session_timeout = 10ms;
        cfg.offsets_partitions = 4;
        cfg.offsets_segment_bytes = 4096;
        cfg.compaction_slack_records = 100;
        _groups = std::make_unique<group_coordinator>(*_broker, cfg, ex);
        _broker->on_topic_deleted([g = _groups.get()](const std::string& t) { g->on_topic_deleted(t); });
        ASSERT_TRUE(_groups->start());
        ASSERT_TRUE(eventually([&] { return _groups->loaded(); })); // loading runs on the shards
    }
    void stopped() override { _groups.reset(); }
    void restart() {
        shutdown();
        start();
    }

    /// Polls `pred` (running the caller's tasks in between) until it holds or 20 s pass.
    template <typename Pred>
    bool eventually(Pred pred) {
        const auto deadline = std::chrono::steady_clock::now() + 20s;
        while (!pred()) {
            if (std::chrono::steady_clock::now() > deadline) {
                return false;
            }
            _caller.run_until([] { return false; }, 2ms);
        }
        return true;
    }

    void create_topic(const std::string& name, int32_t partitions) {
        topic_config cfg;
        cfg.partitions = partitions;
        std::optional<bool> done;
        _broker->create_topic(name, cfg, _caller, [&](result<void> r, std::string) { done = bool(r); });
        ASSERT_TRUE(_caller.run_until([&] { return done.has_value(); }));
        ASSERT_TRUE(*done);
    }
    /// Ticks every shard as if `ahead` had passed.
    void advance(std::chrono::milliseconds ahead) {
        for (unsigned s = 0; s < 2; ++s) {
            _shards->run_on(s, [&, s] { _groups->tick(s, coordinator_clock::now() + ahead); });
        }
    }

    join_request join_req(std::string member, std::optional<std::string> instance = std::nullopt,
                          std::string protocol_md = "md") {
        join_request r;
        r.group_id = "g";
        r.session_timeout_ms = 1000;
        r.rebalance_timeout_ms = 1000;
        r.member_id = std::move(member);
        r.instance_id = std::move(instance);
        r.protocol_type = "consumer";
        r.protocols = {{"range", protocol_md}};
        r.client_id = "test";
        r.require_known_member = true;
        return r;
    }
    /// A join whose session (10 s) outlasts its rebalance timeout (1 s): what expires first is
    /// the wait for the member's next step, never its session.
    join_request join_req_long_session(std::string member) {
        auto r = join_req(std::move(member));
        r.session_timeout_ms = 10000;
        return r;
    }
    /// Starts a join; the answer lands in the returned slot when the rebalance completes.
    std::shared_ptr<std::optional<join_result>> start_join(join_request r) {
        auto slot = std::make_shared<std::optional<join_result>>();
        _groups->join(std::move(r), _caller, [slot](join_result j) { *slot = std::move(j); });
        return slot;
    }
    join_result join(join_request r) {
        auto slot = start_join(std::move(r));
        EXPECT_TRUE(_caller.run_until([&] { return slot->has_value(); }, 30s));
        return std::move(**slot);
    }
    /// A member that joins as a fresh member would (two round trips) and is alone in the group.
    join_result join_new(std::optional<std::string> instance = std::nullopt) {
        auto first = join(join_req("", instance));
        if (first.error != errc::member_id_required) {
            return first;
        }
        return join(join_req(first.member_id, instance));
    }
    sync_result sync(const std::string& member, int32_t generation,
                     std::vector<std::pair<std::string, std::string>> assignments = {}) {
        sync_request r;
        r.group_id = "g";
        r.generation = generation;
        r.member_id = member;
        r.assignments = std::move(assignments);
        return wait<sync_result>([&](auto done) { _groups->sync(r, _caller, done); });
    }
    errc heartbeat(const std::string& member, int32_t generation, std::optional<std::string> instance = std::nullopt) {
        return wait<errc>([&](auto done) { _groups->heartbeat("g", generation, {member, instance}, _caller, done); });
    }
    std::pair<errc, std::vector<partition_error>> commit(commit_request r) {
        using out = std::pair<errc, std::vector<partition_error>>;
        return wait<out>([&](auto done) {
            _groups->commit(r, _caller, [done](errc e, std::vector<partition_error> each) { done({e, each}); });
        });
    }
    commit_request commit_req(const std::string& member, int32_t generation, int64_t offset,
                              std::string topic = "t", int32_t partition = 0) {
        commit_request r;
        r.group_id = "g";
        r.generation = generation;
        r.member_id = member;
        committed_offset v;
        v.offset = offset;
        v.metadata = "m";
        r.partitions.push_back({{std::move(topic), model::partition_id(partition)}, v});
        return r;
    }
    offsets_fetch_result fetch_offsets(std::string group = "g") {
        return wait<offsets_fetch_result>(
          [&](auto done) { _groups->fetch_offsets(group, std::nullopt, _caller, done); });
    }
    group_description describe() {
        return wait<group_description>([&](auto done) { _groups->describe("g", _caller, done); });
    }

    std::unique_ptr<group_coordinator> _groups;
};

TEST_F(group_coordinator_test, a_new_member_gets_an_id_then_leads_a_group_of_one) {
    auto first = join(join_req(""));
    EXPECT_EQ(first.error, errc::member_id_required);
    ASSERT_FALSE(first.member_id.empty());
    auto joined = join(join_req(first.member_id));
    ASSERT_EQ(joined.error, errc::success);
    EXPECT_EQ(joined.generation, 1);
    EXPECT_EQ(joined.leader, first.member_id);
    EXPECT_EQ(joined.protocol_name, "range");
    ASSERT_EQ(joined.members.size(), 1u);
    EXPECT_EQ(joined.members[0].metadata, "md");

    EXPECT_EQ(heartbeat(first.member_id, 1), errc::success); // CompletingRebalance: as Kafka, fine
    auto synced = sync(first.member_id, 1, {{first.member_id, "assignment-a"}});
    ASSERT_EQ(synced.error, errc::success);
    EXPECT_EQ(synced.assignment, "assignment-a");
    EXPECT_EQ(describe().state, "Stable");

    EXPECT_EQ(heartbeat(first.member_id, 2), errc::illegal_generation);
    EXPECT_EQ(heartbeat("nobody", 1), errc::unknown_member_id);
    EXPECT_EQ(sync("nobody", 1).error, errc::unknown_member_id);
    EXPECT_EQ(sync(first.member_id, 7).error, errc::illegal_generation);
    // A different protocol type cannot join.
    auto other = join_req("");
    other.protocol_type = "connect";
    EXPECT_EQ(join(other).error, errc::inconsistent_group_protocol);
    // Session timeouts outside the configured range are refused.
    auto bad = join_req("");
    bad.session_timeout_ms = 1;
    EXPECT_EQ(join(bad).error, errc::invalid_session_timeout);
    bad.group_id = "";
    bad.session_timeout_ms = 1000;
    EXPECT_EQ(join(bad).error, errc::invalid_group_id);
}

TEST_F(group_coordinator_test, a_second_member_triggers_a_rebalance_both_rejoin) {
    auto a = join_new();
    ASSERT_EQ(a.error, errc::success);
    ASSERT_EQ(sync(a.member_id, 1, {{a.member_id, "all"}}).error, errc::success);

    auto b_id = join(join_req("")).member_id;
    auto b = start_join(join_req(b_id)); // waits for a to rejoin
    EXPECT_EQ(heartbeat(a.member_id, 1), errc::rebalance_in_progress);
    EXPECT_EQ(describe().state, "PreparingRebalance");
    auto a2 = join(join_req(a.member_id));
    ASSERT_TRUE(_caller.run_until([&] { return b->has_value(); }, 10s));
    ASSERT_EQ(a2.error, errc::success);
    ASSERT_EQ((*b)->error, errc::success);
    EXPECT_EQ(a2.generation, 2);
    EXPECT_EQ((*b)->generation, 2);
    EXPECT_EQ(a2.leader, a.member_id); // the leader stays
    EXPECT_EQ(a2.members.size(), 2u);
    EXPECT_TRUE((*b)->members.empty()); // only the leader sees the members

    // The follower's sync waits for the leader's.
    auto follower = std::make_shared<std::optional<sync_result>>();
    sync_request fr;
    fr.group_id = "g";
    fr.generation = 2;
    fr.member_id = b_id;
    _groups->sync(fr, _caller, [follower](sync_result r) { *follower = std::move(r); });
    EXPECT_EQ(commit(commit_req(b_id, 2, 5)).first, errc::rebalance_in_progress);
    auto leader = sync(a.member_id, 2, {{a.member_id, "half-a"}, {b_id, "half-b"}});
    ASSERT_TRUE(_caller.run_until([&] { return follower->has_value(); }, 10s));
    EXPECT_EQ(leader.assignment, "half-a");
    EXPECT_EQ((*follower)->assignment, "half-b");

    // b leaves: a must rejoin and gets generation 3 alone.
    auto left = wait<std::vector<errc>>([&](auto done) {
        _groups->leave("g", {{b_id, std::nullopt}, {"ghost", std::nullopt}}, _caller,
                       [done](errc, std::vector<errc> each) { done(each); });
    });
    EXPECT_EQ(left, (std::vector<errc>{errc::success, errc::unknown_member_id}));
    EXPECT_EQ(heartbeat(a.member_id, 2), errc::rebalance_in_progress);
    auto a3 = join(join_req(a.member_id));
    EXPECT_EQ(a3.generation, 3);
    EXPECT_EQ(a3.members.size(), 1u);
}

TEST_F(group_coordinator_test, a_static_member_that_comes_back_keeps_its_assignment_without_a_rebalance) {
    auto a = join_new("instance-1");
    ASSERT_EQ(a.error, errc::success);
    ASSERT_EQ(sync(a.member_id, 1, {{a.member_id, "mine"}}).error, errc::success);

    // Restarted: it joins with no member id but the same instance id.
    auto back = join(join_req("", "instance-1"));
    ASSERT_EQ(back.error, errc::success);
    EXPECT_EQ(back.generation, 1);
    EXPECT_NE(back.member_id, a.member_id);
    EXPECT_EQ(describe().state, "Stable");
    EXPECT_EQ(sync(back.member_id, 1).assignment, "mine");
    // The old incarnation is fenced.
    EXPECT_EQ(heartbeat(a.member_id, 1, "instance-1"), errc::fenced_instance_id);
    EXPECT_EQ(commit(commit_req(a.member_id, 1, 3)).first, errc::unknown_member_id);
    auto fenced = commit_req(a.member_id, 1, 3);
    fenced.instance_id = "instance-1";
    EXPECT_EQ(commit(fenced).first, errc::fenced_instance_id);
}

TEST_F(group_coordinator_test, expired_sessions_leave_and_the_last_one_empties_the_group) {
    auto a = join_new();
    ASSERT_EQ(sync(a.member_id, 1, {{a.member_id, "x"}}).error, errc::success);
    advance(500ms);
    EXPECT_EQ(describe().state, "Stable");
    advance(5s);
    auto d = describe();
    EXPECT_EQ(d.state, "Empty");
    EXPECT_TRUE(d.members.empty());
    EXPECT_EQ(d.generation, 2);
    EXPECT_EQ(heartbeat(a.member_id, 1), errc::unknown_member_id);
}

// A request that reads a group (describe, list, delete) first ends the sessions already past
// their deadline, so its answer does not wait for the next tick: a client that deletes a group
// the moment its last static member's session ends (librdkafka's 0081_admin does) finds it empty.
TEST_F(group_coordinator_test, a_session_past_its_deadline_has_ended_for_describe_and_delete_without_a_tick) {
    auto a = join_new();
    ASSERT_EQ(sync(a.member_id, 1, {{a.member_id, "x"}}).error, errc::success);
    // No tick runs in this fixture: only the requests themselves can see the deadline pass.
    EXPECT_TRUE(eventually([&] { return describe().state == "Empty"; }));
    EXPECT_EQ(wait<errc>([&](auto done) { _groups->delete_group("g", _caller, done); }), errc::success);
    EXPECT_EQ(describe().state, "Dead");
}

TEST_F(group_coordinator_test, a_member_that_never_syncs_leaves_after_the_rebalance_timeout) {
    // Heartbeats succeed while the group waits for SyncGroup, so a leader that heartbeats but
    // never syncs would hold the group in CompletingRebalance, refusing every commit, for as
    // long as it lives. As in Kafka, the rebalance timeout bounds the wait for SyncGroup.
    auto req = [this](std::string id) { return join_req_long_session(std::move(id)); };
    auto a = join(req(join(req("")).member_id));
    ASSERT_EQ(a.error, errc::success);
    ASSERT_EQ(sync(a.member_id, 1, {{a.member_id, "all"}}).error, errc::success);
    auto b_id = join(req("")).member_id;
    auto b = start_join(req(b_id));
    auto a2 = join(req(a.member_id));
    ASSERT_TRUE(_caller.run_until([&] { return b->has_value(); }, 10s));
    ASSERT_EQ(a2.generation, 2);
    ASSERT_EQ(a2.leader, a.member_id);

    // b syncs and waits for the leader, which only heartbeats.
    auto follower = std::make_shared<std::optional<sync_result>>();
    sync_request fr;
    fr.group_id = "g";
    fr.generation = 2;
    fr.member_id = b_id;
    _groups->sync(fr, _caller, [follower](sync_result r) { *follower = std::move(r); });
    EXPECT_EQ(heartbeat(a.member_id, 2), errc::success);
    EXPECT_EQ(commit(commit_req(b_id, 2, 5)).first, errc::rebalance_in_progress);
    advance(500ms); // within the rebalance timeout (1 s) and the session (10 s): nothing moves
    EXPECT_EQ(describe().state, "CompletingRebalance");
    EXPECT_FALSE(follower->has_value());

    advance(1500ms); // past the rebalance timeout, still within the session
    auto d = describe();
    EXPECT_EQ(d.state, "PreparingRebalance");
    ASSERT_EQ(d.members.size(), 1u);
    EXPECT_EQ(d.members[0].member_id, b_id);
    ASSERT_TRUE(_caller.run_until([&] { return follower->has_value(); }, 10s));
    EXPECT_EQ((*follower)->error, errc::rebalance_in_progress);
    EXPECT_EQ(heartbeat(a.member_id, 2), errc::unknown_member_id);

    // b rejoins alone, leads generation 3, and its commits are accepted again.
    auto b3 = join(req(b_id));
    ASSERT_EQ(b3.error, errc::success);
    EXPECT_EQ(b3.generation, 3);
    EXPECT_EQ(b3.leader, b_id);
    ASSERT_EQ(sync(b_id, 3, {{b_id, "all"}}).error, errc::success);
    EXPECT_EQ(commit(commit_req(b_id, 3, 5)).first, errc::success);
}

TEST_F(group_coordinator_test, a_follower_that_never_syncs_leaves_after_the_rebalance_timeout) {
    auto req = [this](std::string id) { return join_req_long_session(std::move(id)); };
    auto a = join(req(join(req("")).member_id));
    ASSERT_EQ(sync(a.member_id, 1, {{a.member_id, "all"}}).error, errc::success);
    auto b_id = join(req("")).member_id;
    auto b = start_join(req(b_id));
    ASSERT_EQ(join(req(a.member_id)).generation, 2);
    ASSERT_TRUE(_caller.run_until([&] { return b->has_value(); }, 10s));
    // The leader syncs: the group is Stable, but b never asks for its assignment.
    ASSERT_EQ(sync(a.member_id, 2, {{a.member_id, "half-a"}, {b_id, "half-b"}}).error, errc::success);
    EXPECT_EQ(heartbeat(b_id, 2), errc::success);
    advance(500ms);
    EXPECT_EQ(describe().state, "Stable");
    advance(1500ms);
    auto d = describe();
    EXPECT_EQ(d.state, "PreparingRebalance");
    ASSERT_EQ(d.members.size(), 1u);
    EXPECT_EQ(d.members[0].member_id, a.member_id);
    EXPECT_EQ(heartbeat(a.member_id, 2), errc::rebalance_in_progress);
    EXPECT_EQ(heartbeat(b_id, 2), errc::unknown_member_id);
}

TEST_F(group_coordinator_test, commits_are_checked_stored_and_survive_a_restart) {
    create_topic("t", 2);
    // No group yet: a commit outside group management (generation -1) creates it.
    auto simple = commit(commit_req("", -1, 42));
    EXPECT_EQ(simple.first, errc::success);
    ASSERT_EQ(simple.second.size(), 1u);
    EXPECT_EQ(simple.second[0].error, errc::success);
    EXPECT_EQ(commit(commit_req("someone", 3, 1)).first, errc::unknown_member_id);
    auto unknown_topic = commit(commit_req("", -1, 1, "nope"));
    EXPECT_EQ(unknown_topic.second[0].error, errc::unknown_topic_or_partition);
    auto big = commit_req("", -1, 1);
    big.partitions[0].value.metadata = std::string(5000, 'x');
    EXPECT_EQ(commit(big).second[0].error, errc::offset_metadata_too_large);

    auto a = join_new();
    ASSERT_EQ(sync(a.member_id, 1, {{a.member_id, "x"}}).error, errc::success);
    EXPECT_EQ(commit(commit_req(a.member_id, 1, 100, "t", 1)).first, errc::success);
    EXPECT_EQ(commit(commit_req(a.member_id, 9, 100, "t", 1)).first, errc::illegal_generation);
    EXPECT_EQ(commit(commit_req("", -1, 7)).first, errc::unknown_member_id); // the group is active
    EXPECT_EQ(wait<errc>([&](auto done) { _groups->delete_group("g", _caller, done); }), errc::non_empty_group);
    EXPECT_EQ(wait<errc>([&](auto done) { _groups->delete_group("nope", _caller, done); }), errc::group_id_not_found);

    restart();
    auto fetched = fetch_offsets();
    ASSERT_EQ(fetched.error, errc::success);
    ASSERT_EQ(fetched.partitions.size(), 2u);
    std::map<int32_t, committed_offset> by_partition;
    for (auto& f : fetched.partitions) {
        by_partition[f.tp.partition()] = f.value;
    }
    EXPECT_EQ(by_partition[0].offset, 42);
    EXPECT_EQ(by_partition[1].offset, 100);
    EXPECT_EQ(by_partition[1].metadata, "m");
    // The member was restored with its session: it may go on without rejoining.
    EXPECT_EQ(heartbeat(a.member_id, 1), errc::success);
    EXPECT_EQ(describe().state, "Stable");

    // Deleting the topic forgets its offsets, durably.
    std::optional<bool> deleted;
    _broker->delete_topic("t", _caller, [&](result<void> r) { deleted = bool(r); });
    ASSERT_TRUE(_caller.run_until([&] { return deleted.has_value(); }));
    EXPECT_TRUE(eventually([&] { return fetch_offsets().partitions.empty(); })); // posted to every shard
    restart();
    EXPECT_TRUE(fetch_offsets().partitions.empty());
}

TEST_F(group_coordinator_test, the_offsets_topic_is_compacted_and_keeps_every_live_key) {
    create_topic("t", 3);
    // Many commits of the same three keys: most records are superseded.
    for (int i = 0; i < 600; ++i) {
        auto r = commit_req("", -1, i, "t", i % 3);
        ASSERT_EQ(commit(r).second[0].error, errc::success);
    }
    const int32_t p = [&] {
        // The partition of group "g" is the one whose log moved its start.
        for (int32_t q = 0; q < 4; ++q) {
            auto o = wait<result<offsets_result>>([&](auto done) {
                _broker->offsets({std::string(offsets_topic), model::partition_id(q)}, _caller, done);
            });
            if (o && o.value().high_watermark() > 0) {
                return q;
            }
        }
        return -1;
    }();
    ASSERT_GE(p, 0);
    ASSERT_TRUE(eventually([&] {
        auto o = wait<result<offsets_result>>([&](auto done) {
            _broker->offsets({std::string(offsets_topic), model::partition_id(p)}, _caller, done);
        });
        return o && o.value().log_start() > 0;
    })) << "no segment was removed";
    restart();
    auto fetched = fetch_offsets();
    ASSERT_EQ(fetched.partitions.size(), 3u);
    for (const auto& f : fetched.partitions) {
        EXPECT_EQ(f.value.offset % 3, f.tp.partition());
        EXPECT_GE(f.value.offset, 600 - 3);
    }
}

} // namespace
} // namespace runnel::broker
