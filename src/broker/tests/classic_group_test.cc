#include <gtest/gtest.h>

#include <algorithm>
#include <variant>

#include "broker/classic_group.h"
#include "broker/group_records.h"

// The classic group's state machine on its own: no threads, no sockets, no log. The clock
// is a value the test moves; answers land in optionals; durable writes are the effects.

namespace runnel::broker {
namespace {

using namespace std::chrono_literals;
using time_point = classic_group::time_point;

/// One group, a hand-moved clock and helpers that keep each request's answer.
class classic_group_test : public ::testing::Test {
protected:
    classic_group group{"g", 0ms};
    time_point now = time_point{} + 1h;

    static join_request join_req(std::string member_id, std::optional<std::string> instance = std::nullopt,
                                 std::string metadata = "md") {
        join_request r;
        r.group_id = "g";
        r.session_timeout_ms = 10000;
        r.rebalance_timeout_ms = 30000;
        r.member_id = std::move(member_id);
        r.instance_id = std::move(instance);
        r.protocol_type = "consumer";
        r.protocols = {{"range", std::move(metadata)}};
        r.client_id = "client";
        return r;
    }

    struct pending_join {
        std::shared_ptr<std::optional<join_result>> result = std::make_shared<std::optional<join_result>>();
        group_effects effects;
    };

    /// Sends a JoinGroup; `fresh` is the id handed out when the request has none.
    pending_join join(const join_request& req, std::string fresh = "fresh") {
        pending_join p;
        p.effects = group.join(req, std::move(fresh), [r = p.result](join_result j) { *r = std::move(j); }, now);
        return p;
    }

    struct pending_sync {
        std::shared_ptr<std::optional<sync_result>> result = std::make_shared<std::optional<sync_result>>();
        group_effects effects;
    };

    pending_sync sync(const std::string& member, int32_t generation,
                      std::vector<std::pair<std::string, std::string>> assignments = {}) {
        sync_request r;
        r.group_id = "g";
        r.member_id = member;
        r.generation = generation;
        r.assignments = std::move(assignments);
        pending_sync p;
        p.effects = group.sync(r, [res = p.result](sync_result s) { *res = std::move(s); }, now);
        return p;
    }

    /// A group of one stable member `id` at generation 1 holding `assignment`.
    void stable_group_of(const std::string& id, std::optional<std::string> instance = std::nullopt) {
        auto j = join(join_req("", std::move(instance)), id);
        ASSERT_TRUE(j.result->has_value());
        ASSERT_EQ((*j.result)->error, errc::success);
        auto s = sync(id, 1, {{id, "assignment-" + id}});
        ASSERT_TRUE(s.effects.store_sync);
        EXPECT_TRUE(group.stored_sync(1, true, now).store.empty());
        ASSERT_TRUE(s.result->has_value());
        ASSERT_EQ(group.state(), group_state::stable);
    }

    errc heartbeat(const std::string& member, int32_t generation, std::optional<std::string> instance = std::nullopt) {
        return group.heartbeat(generation, {member, std::move(instance)}, now);
    }
};

TEST_F(classic_group_test, a_new_member_is_asked_for_its_id_then_leads_a_group_of_one) {
    auto req = join_req("");
    req.require_known_member = true;
    auto first = join(req, "m1");
    ASSERT_TRUE(first.result->has_value());
    EXPECT_EQ((*first.result)->error, errc::member_id_required);
    EXPECT_EQ((*first.result)->member_id, "m1");
    EXPECT_EQ(group.member_count(), 0u);

    auto joined = join(join_req("m1"));
    ASSERT_TRUE(joined.result->has_value());
    const auto& j = **joined.result;
    EXPECT_EQ(j.error, errc::success);
    EXPECT_EQ(j.generation, 1);
    EXPECT_EQ(j.leader, "m1");
    EXPECT_EQ(j.protocol_name, "range");
    ASSERT_EQ(j.members.size(), 1u);
    EXPECT_EQ(j.members[0].metadata, "md");
    EXPECT_EQ(group.state(), group_state::completing_rebalance);
    EXPECT_TRUE(joined.effects.store.empty()); // stored only with the leader's assignment
}

TEST_F(classic_group_test, the_leaders_sync_is_answered_only_once_its_assignment_is_stored) {
    auto j = join(join_req(""), "m1");
    ASSERT_TRUE(j.result->has_value());
    EXPECT_EQ(heartbeat("m1", 1), errc::success); // CompletingRebalance: heartbeats are fine
    auto s = sync("m1", 1, {{"m1", "mine"}, {"ghost", "x"}});
    EXPECT_FALSE(s.result->has_value());
    ASSERT_TRUE(s.effects.store_sync);
    EXPECT_EQ(s.effects.store_sync->first, 1);
    const auto& stored = s.effects.store_sync->second;
    ASSERT_EQ(stored.members.size(), 1u);
    EXPECT_EQ(stored.members[0].assignment, "mine");
    EXPECT_EQ(stored.leader, "m1");

    group.stored_sync(1, true, now);
    ASSERT_TRUE(s.result->has_value());
    EXPECT_EQ((*s.result)->error, errc::success);
    EXPECT_EQ((*s.result)->assignment, "mine");
    EXPECT_EQ(group.state(), group_state::stable);
    // A late answer for an older generation changes nothing.
    EXPECT_TRUE(group.stored_sync(0, false, now).store.empty());
    EXPECT_EQ(group.state(), group_state::stable);
}

TEST_F(classic_group_test, a_failed_store_of_the_assignment_fails_the_syncs_and_rebalances) {
    auto j = join(join_req(""), "m1");
    auto s = sync("m1", 1, {{"m1", "mine"}});
    ASSERT_TRUE(s.effects.store_sync);
    group.stored_sync(1, false, now);
    ASSERT_TRUE(s.result->has_value());
    EXPECT_EQ((*s.result)->error, errc::coordinator_not_available);
    // The only member has no join pending: the rebalance waits for it until its deadline.
    EXPECT_EQ(group.state(), group_state::preparing_rebalance);
    EXPECT_EQ(heartbeat("m1", 1), errc::rebalance_in_progress);
}

TEST_F(classic_group_test, a_member_joining_a_stable_group_starts_a_rebalance_both_rejoin) {
    stable_group_of("a");
    auto b = join(join_req(""), "b");
    EXPECT_FALSE(b.result->has_value()); // waits for a to rejoin
    EXPECT_EQ(group.state(), group_state::preparing_rebalance);
    EXPECT_EQ(heartbeat("a", 1), errc::rebalance_in_progress);

    auto a = join(join_req("a"));
    ASSERT_TRUE(a.result->has_value());
    ASSERT_TRUE(b.result->has_value());
    EXPECT_EQ((*a.result)->generation, 2);
    EXPECT_EQ((*b.result)->generation, 2);
    EXPECT_EQ((*a.result)->leader, "a"); // the leader stays
    EXPECT_EQ((*a.result)->members.size(), 2u);
    EXPECT_TRUE((*b.result)->members.empty()); // only the leader sees the members

    // The follower's sync waits for the leader's, whose assignment is stored first.
    auto follower = sync("b", 2);
    EXPECT_FALSE(follower.result->has_value());
    EXPECT_FALSE(follower.effects.store_sync);
    commit_request c;
    c.member_id = "b";
    c.generation = 2;
    EXPECT_EQ(group.check_commit(c, false), errc::rebalance_in_progress);
    c.generation = 1; // an older generation is told so first, as Kafka does
    EXPECT_EQ(group.check_commit(c, false), errc::illegal_generation);
    c.generation = 2;
    auto leader = sync("a", 2, {{"a", "half-a"}, {"b", "half-b"}});
    ASSERT_TRUE(leader.effects.store_sync);
    EXPECT_FALSE(follower.result->has_value());
    group.stored_sync(2, true, now);
    ASSERT_TRUE(leader.result->has_value());
    ASSERT_TRUE(follower.result->has_value());
    EXPECT_EQ((*leader.result)->assignment, "half-a");
    EXPECT_EQ((*follower.result)->assignment, "half-b");
    EXPECT_EQ(group.check_commit(c, false), errc::success);
    c.generation = 1;
    EXPECT_EQ(group.check_commit(c, false), errc::illegal_generation);
}

TEST_F(classic_group_test, a_leaving_member_makes_the_rest_rejoin) {
    stable_group_of("a");
    auto b = join(join_req(""), "b");
    join(join_req("a"));
    sync("a", 2, {{"a", "1"}, {"b", "2"}});
    group.stored_sync(2, true, now);
    ASSERT_EQ(group.state(), group_state::stable);

    std::vector<errc> each;
    group.leave({{"b", std::nullopt}, {"ghost", std::nullopt}}, each, now);
    EXPECT_EQ(each, (std::vector<errc>{errc::success, errc::unknown_member_id}));
    EXPECT_EQ(group.member_count(), 1u);
    EXPECT_EQ(heartbeat("a", 2), errc::rebalance_in_progress);
    auto a = join(join_req("a"));
    ASSERT_TRUE(a.result->has_value());
    EXPECT_EQ((*a.result)->generation, 3);
    EXPECT_EQ((*a.result)->members.size(), 1u);
    EXPECT_EQ(heartbeat("b", 3), errc::unknown_member_id);

    // The last member leaving empties the group, and that is stored.
    each.clear();
    sync("a", 3, {{"a", "all"}});
    group.stored_sync(3, true, now);
    auto left = group.leave({{"a", std::nullopt}}, each, now);
    EXPECT_EQ(group.state(), group_state::empty);
    ASSERT_EQ(left.store.size(), 1u);
    EXPECT_EQ(left.store[0].generation, 4);
    EXPECT_TRUE(left.store[0].members.empty());
    EXPECT_TRUE(group.idle());
}

TEST_F(classic_group_test, an_expired_session_removes_the_member_and_the_last_empties_the_group) {
    stable_group_of("a");
    now += 9s;
    EXPECT_EQ(heartbeat("a", 1), errc::success); // keeps the session for another 10 s
    now += 9s;
    auto fx = group.tick(now);
    EXPECT_TRUE(fx.expired.empty());
    EXPECT_EQ(group.state(), group_state::stable);
    now += 2s;
    fx = group.tick(now);
    EXPECT_EQ(fx.expired, (std::vector<std::string_view>{"session"}));
    EXPECT_EQ(group.state(), group_state::empty);
    EXPECT_EQ(group.generation(), 2);
    ASSERT_EQ(fx.store.size(), 1u);
    EXPECT_TRUE(fx.store[0].members.empty());
    EXPECT_EQ(heartbeat("a", 1), errc::unknown_member_id);
}

TEST_F(classic_group_test, a_member_that_does_not_rejoin_in_time_leaves) {
    stable_group_of("a");
    auto b = join(join_req(""), "b");
    EXPECT_FALSE(b.result->has_value());
    for (int i = 0; i < 3; ++i) {
        now += 9s; // a heartbeats (keeping its session) but does not rejoin
        EXPECT_EQ(heartbeat("a", 1), errc::rebalance_in_progress);
        EXPECT_TRUE(group.tick(now).expired.empty());
    }
    now += 4s; // past the rebalance timeout (30 s)
    EXPECT_EQ(heartbeat("a", 1), errc::rebalance_in_progress);
    auto fx = group.tick(now);
    EXPECT_EQ(fx.expired, (std::vector<std::string_view>{"join"}));
    ASSERT_TRUE(b.result->has_value());
    EXPECT_EQ((*b.result)->generation, 2);
    EXPECT_EQ((*b.result)->leader, "b");
    EXPECT_EQ(group.member_count(), 1u);
}

TEST_F(classic_group_test, a_member_that_never_syncs_leaves_after_the_rebalance_timeout) {
    auto j = join(join_req(""), "m1");
    ASSERT_TRUE(j.result->has_value());
    for (int i = 0; i < 3; ++i) {
        now += 9s;
        EXPECT_EQ(heartbeat("m1", 1), errc::success);
        EXPECT_TRUE(group.tick(now).expired.empty());
    }
    now += 4s; // 31 s after the join completed
    EXPECT_EQ(heartbeat("m1", 1), errc::success);
    auto fx = group.tick(now);
    EXPECT_EQ(fx.expired, (std::vector<std::string_view>{"sync"}));
    EXPECT_EQ(group.state(), group_state::empty);
}

TEST_F(classic_group_test, the_initial_delay_waits_for_more_members) {
    classic_group delayed("g", 3s);
    std::optional<join_result> a, b;
    delayed.join(join_req(""), "a", [&](join_result r) { a = std::move(r); }, now);
    EXPECT_FALSE(a);
    now += 2s;
    delayed.join(join_req(""), "b", [&](join_result r) { b = std::move(r); }, now);
    now += 2s; // past the first delay, but b's join extended it
    delayed.tick(now);
    EXPECT_FALSE(a);
    now += 2s;
    delayed.tick(now);
    ASSERT_TRUE(a && b);
    EXPECT_EQ(a->generation, 1);
    EXPECT_EQ(b->generation, 1);
    EXPECT_EQ(a->leader, "a");
    EXPECT_EQ(a->members.size(), 2u);
}

TEST_F(classic_group_test, a_static_member_back_with_a_new_id_keeps_its_assignment_and_fences_the_old_id) {
    stable_group_of("a", "instance-1");
    auto back = join(join_req("", "instance-1"), "a2");
    ASSERT_TRUE(back.result->has_value());
    const auto& r = **back.result;
    EXPECT_EQ(r.error, errc::success);
    EXPECT_EQ(r.member_id, "a2");
    EXPECT_EQ(r.generation, 1);
    EXPECT_TRUE(r.skip_assignment); // the leader keeps the assignment it made
    EXPECT_EQ(group.state(), group_state::stable);
    ASSERT_EQ(back.effects.store.size(), 1u); // the new id is stored
    EXPECT_EQ(back.effects.store[0].members.at(0).id, "a2");
    EXPECT_EQ(back.effects.store[0].leader, "a2");

    auto s = sync("a2", 1);
    ASSERT_TRUE(s.result->has_value());
    EXPECT_EQ((*s.result)->assignment, "assignment-a");
    EXPECT_EQ(heartbeat("a", 1, "instance-1"), errc::fenced_instance_id);
    EXPECT_EQ(heartbeat("a2", 1, "instance-1"), errc::success);

    // Leaving by instance id with the old member id is fenced; with the new one it leaves.
    std::vector<errc> each;
    group.leave({{"a", "instance-1"}, {"", "instance-2"}}, each, now);
    EXPECT_EQ(each, (std::vector<errc>{errc::fenced_instance_id, errc::unknown_member_id}));
    each.clear();
    group.leave({{"", "instance-1"}}, each, now);
    EXPECT_EQ(each, (std::vector<errc>{errc::success}));
    EXPECT_EQ(group.state(), group_state::empty);
}

TEST_F(classic_group_test, a_static_member_back_with_other_protocols_rebalances) {
    stable_group_of("a", "instance-1");
    auto back = join(join_req("", "instance-1", "other-md"), "a2");
    ASSERT_TRUE(back.result->has_value()); // alone in the group: the rebalance completes at once
    EXPECT_EQ((*back.result)->generation, 2);
    EXPECT_FALSE((*back.result)->skip_assignment);
    EXPECT_EQ(group.state(), group_state::completing_rebalance);
}

TEST_F(classic_group_test, joins_of_another_protocol_type_or_to_a_dead_group_are_refused) {
    stable_group_of("a");
    auto other = join_req("");
    other.protocol_type = "connect";
    auto j = join(other);
    ASSERT_TRUE(j.result->has_value());
    EXPECT_EQ((*j.result)->error, errc::inconsistent_group_protocol);
    EXPECT_EQ(join(join_req("nobody")).result->value().error, errc::unknown_member_id);
    classic_group dead("d", 0ms);
    dead.mark_dead();
    std::optional<join_result> r;
    dead.join(join_req(""), "x", [&](join_result res) { r = std::move(res); }, now);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->error, errc::coordinator_not_available);
}

TEST_F(classic_group_test, the_stored_metadata_restores_a_stable_group) {
    stable_group_of("a", "instance-1");
    const auto key = group_records::group_key("g");
    const auto value = group_records::group_value(group.metadata());
    auto decoded = group_records::decode(std::as_bytes(std::span(key.data(), key.size())),
                                         std::as_bytes(std::span(value.data(), value.size())));
    ASSERT_TRUE(decoded);
    auto* rec = std::get_if<group_records::group_record>(&*decoded);
    ASSERT_TRUE(rec && rec->value);
    EXPECT_EQ(rec->group, "g");

    classic_group restored("g", 0ms);
    restored.restore(*rec->value);
    restored.restart_sessions(now);
    EXPECT_EQ(restored.state(), group_state::stable);
    EXPECT_EQ(restored.generation(), 1);
    EXPECT_EQ(restored.leader(), "a");
    EXPECT_EQ(restored.protocol(), "range");
    EXPECT_EQ(restored.heartbeat(1, {"a", "instance-1"}, now), errc::success);
    EXPECT_EQ(restored.heartbeat(1, {"x", "instance-1"}, now), errc::fenced_instance_id);
    group_description d;
    restored.describe(d);
    ASSERT_EQ(d.members.size(), 1u);
    EXPECT_EQ(d.members[0].assignment, "assignment-a");
    EXPECT_EQ(d.members[0].metadata, "md");
    // A tombstone forgets it.
    auto gone = group_records::decode(std::as_bytes(std::span(key.data(), key.size())), std::nullopt);
    ASSERT_TRUE(gone);
    EXPECT_FALSE(std::get<group_records::group_record>(*gone).value);
}

TEST(group_records_test, offset_records_round_trip_and_malformed_keys_are_skipped) {
    committed_offset c{42, 3, std::string("meta"), 1700};
    model::topic_partition tp{"t", model::partition_id(5)};
    const auto key = group_records::offset_key("g", tp);
    const auto value = group_records::offset_value(c);
    auto as_bytes = [](const std::string& s) { return std::as_bytes(std::span(s.data(), s.size())); };
    auto decoded = group_records::decode(as_bytes(key), as_bytes(value));
    ASSERT_TRUE(decoded);
    auto& o = std::get<group_records::offset_record>(*decoded);
    EXPECT_EQ(o.group, "g");
    EXPECT_EQ(o.tp, tp);
    ASSERT_TRUE(o.value);
    EXPECT_EQ(o.value->offset, 42);
    EXPECT_EQ(o.value->leader_epoch, 3);
    EXPECT_EQ(o.value->metadata, "meta");
    EXPECT_EQ(o.value->commit_time_ms, 1700);
    EXPECT_FALSE(group_records::decode(as_bytes(key.substr(0, key.size() - 2)), as_bytes(value)));
    EXPECT_FALSE(group_records::decode(as_bytes(key), as_bytes(value.substr(0, 5))));
    const std::string unknown_type("\x00\x07\x00\x01g", 5);
    EXPECT_FALSE(group_records::decode(as_bytes(unknown_type), std::nullopt));
}

} // namespace
} // namespace runnel::broker
