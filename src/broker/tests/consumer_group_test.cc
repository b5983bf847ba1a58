#include <gtest/gtest.h>

#include <fmt/format.h>

#include "broker/consumer_group.h"

namespace runnel::broker {
namespace {

using namespace std::chrono_literals;
using clock_t_ = consumer_group::clock;

std::size_t count(const topic_assignment& a) {
    std::size_t n = 0;
    for (const auto& [t, ps] : a) {
        n += ps.size();
    }
    return n;
}

/// A group and a clock the test moves by hand; topics are a map the test edits.
class consumer_group_test : public ::testing::Test {
protected:
    consumer_group_test() {
        cfg.heartbeat_interval = 5s;
        cfg.session_timeout = 45s;
        topics["t"] = consumer_topic_meta{{1}, 4};
    }

    consumer_heartbeat_result join(const std::string& id, std::vector<std::string> subscribed = {"t"},
                                   std::optional<std::string> assignor = std::nullopt) {
        consumer_heartbeat_request r;
        r.member_id = id;
        r.member_epoch = 0;
        r.rebalance_timeout_ms = 30000;
        r.subscribed_topic_names = std::move(subscribed);
        r.server_assignor = std::move(assignor);
        r.owned = topic_assignment{};
        return group.heartbeat(std::move(r), topics, now);
    }

    /// A heartbeat that reports `owned` (what the member applied from its last answer).
    consumer_heartbeat_result beat(const std::string& id, int32_t epoch, std::optional<topic_assignment> owned) {
        consumer_heartbeat_request r;
        r.member_id = id;
        r.member_epoch = epoch;
        r.owned = std::move(owned);
        return group.heartbeat(std::move(r), topics, now);
    }

    /// A member as a client runs it: remembers its epoch and what it owns, applies answers.
    struct client {
        std::string id;
        int32_t epoch = 0;
        topic_assignment owned;
    };
    client joined(const std::string& id) {
        auto r = join(id);
        EXPECT_EQ(r.error, errc::success);
        EXPECT_TRUE(r.assignment);
        return {r.member_id, r.member_epoch, r.assignment.value_or(topic_assignment{})};
    }
    void step(client& c) {
        auto r = beat(c.id, c.epoch, c.owned);
        ASSERT_EQ(r.error, errc::success) << r.error_message;
        c.epoch = r.member_epoch;
        if (r.assignment) {
            c.owned = *r.assignment;
        }
    }

    /// `expire` at `now` removes exactly member `id`, for missing `deadline`.
    void expect_removed(const std::string& id, std::string_view deadline) {
        auto gone = group.expire(now);
        ASSERT_EQ(gone.size(), 1u);
        EXPECT_EQ(gone[0].first, id);
        EXPECT_EQ(gone[0].second, deadline);
    }

    consumer_group_config cfg;
    consumer_group group{cfg};
    consumer_topic_lookup topics;
    clock_t_::time_point now = clock_t_::time_point{} + 1h;
};

TEST_F(consumer_group_test, first_member_gets_every_partition) {
    auto r = join("");
    ASSERT_EQ(r.error, errc::success);
    EXPECT_EQ(r.member_id.size(), 22u); // a UUID in URL-safe base64, as Kafka makes them
    EXPECT_EQ(r.member_epoch, 1);
    EXPECT_EQ(r.heartbeat_interval_ms, 5000);
    ASSERT_TRUE(r.assignment);
    EXPECT_EQ((*r.assignment)["t"], (std::set<int32_t>{0, 1, 2, 3}));
    EXPECT_EQ(group.state(), "Stable");
    // A heartbeat that changes nothing carries no assignment.
    auto again = beat(r.member_id, 1, std::nullopt);
    EXPECT_EQ(again.error, errc::success);
    EXPECT_FALSE(again.assignment);
}

TEST_F(consumer_group_test, a_partition_moves_only_after_its_owner_revoked_it) {
    auto a = joined("a");
    EXPECT_EQ(count(a.owned), 4u);
    auto b = joined("b");
    // b is in the new epoch but owns nothing yet: every partition is still a's.
    EXPECT_EQ(b.epoch, 2);
    EXPECT_TRUE(b.owned.empty());
    EXPECT_EQ(group.state(), "Reconciling");
    // a is asked to give two partitions up; it keeps its epoch until it has.
    auto ra = beat(a.id, a.epoch, a.owned);
    ASSERT_TRUE(ra.assignment);
    EXPECT_EQ(ra.member_epoch, 1);
    EXPECT_EQ(count(*ra.assignment), 2u);
    // b still gets nothing while a owns them.
    step(b);
    EXPECT_TRUE(b.owned.empty());
    // a revokes (reports only what it kept), and moves to epoch 2.
    a.owned = *ra.assignment;
    step(a);
    EXPECT_EQ(a.epoch, 2);
    EXPECT_EQ(count(a.owned), 2u);
    // Now b gets the two freed partitions.
    step(b);
    EXPECT_EQ(count(b.owned), 2u);
    for (const auto& [t, ps] : b.owned) {
        for (auto p : ps) {
            EXPECT_FALSE(a.owned[t].contains(p));
        }
    }
    step(a);
    step(b);
    EXPECT_EQ(group.state(), "Stable");
}

TEST_F(consumer_group_test, a_leaving_member_frees_its_partitions) {
    auto a = joined("a");
    auto b = joined("b");
    for (int i = 0; i < 3; ++i) {
        step(a);
        step(b);
    }
    ASSERT_EQ(count(a.owned), 2u);
    ASSERT_EQ(count(b.owned), 2u);
    auto left = beat(b.id, -1, std::nullopt);
    EXPECT_EQ(left.error, errc::success);
    EXPECT_EQ(left.member_epoch, -1);
    step(a);
    EXPECT_EQ(count(a.owned), 4u);
    EXPECT_EQ(group.size(), 1u);
    EXPECT_EQ(group.state(), "Stable");
    // The member that left is unknown now.
    EXPECT_EQ(beat(b.id, b.epoch, std::nullopt).error, errc::unknown_member_id);
}

TEST_F(consumer_group_test, session_expiry_removes_the_member) {
    auto a = joined("a");
    auto b = joined("b");
    for (int i = 0; i < 3; ++i) {
        step(a);
        step(b);
    }
    now += 30s;
    step(a); // a keeps its session; b does not
    now += 20s;
    expect_removed("b", "session");
    step(a);
    EXPECT_EQ(count(a.owned), 4u);
}

TEST_F(consumer_group_test, a_member_that_does_not_revoke_in_time_is_removed) {
    auto a = joined("a");
    auto b = joined("b");
    step(a); // asked to revoke two partitions
    now += 31s; // past a's rebalance timeout of 30 s, within its session
    step(b);
    expect_removed("a", "revocation");
    step(b);
    EXPECT_EQ(count(b.owned), 4u);
}

TEST_F(consumer_group_test, fencing) {
    auto a = joined("a");
    EXPECT_EQ(beat("nobody", 1, std::nullopt).error, errc::unknown_member_id);
    EXPECT_EQ(beat(a.id, a.epoch + 1, std::nullopt).error, errc::fenced_member_epoch);
    joined("b");
    step(a); // asked to revoke
    step(a); // revoked: a moves to epoch 2
    ASSERT_EQ(a.epoch, 2);
    // The previous epoch is accepted while the member owns nothing it should not (the answer
    // with the new epoch may have been lost)...
    EXPECT_EQ(beat(a.id, 1, a.owned).error, errc::success);
    // ...but not with partitions that are no longer its own, nor without saying what it owns.
    topic_assignment everything{{"t", {0, 1, 2, 3}}};
    EXPECT_EQ(beat(a.id, 1, everything).error, errc::fenced_member_epoch);
    EXPECT_EQ(beat(a.id, 1, std::nullopt).error, errc::fenced_member_epoch);
}

TEST_F(consumer_group_test, offset_commits_check_the_member_epoch) {
    auto a = joined("a");
    EXPECT_EQ(group.validate_commit(a.id, a.epoch), errc::success);
    EXPECT_EQ(group.validate_commit(a.id, a.epoch - 1), errc::stale_member_epoch);
    EXPECT_EQ(group.validate_commit("nobody", 1), errc::unknown_member_id);
    EXPECT_EQ(group.validate_commit("", -1), errc::unknown_member_id);
}

TEST_F(consumer_group_test, bad_heartbeats_are_refused_with_reasons) {
    consumer_heartbeat_request r;
    r.member_id = "x";
    r.member_epoch = 0;
    EXPECT_EQ(group.heartbeat(r, topics, now).error, errc::invalid_request); // no subscription
    r.subscribed_topic_names = std::vector<std::string>{"t"};
    r.subscribed_topic_regex = "t.*";
    auto regex = group.heartbeat(r, topics, now);
    EXPECT_EQ(regex.error, errc::invalid_request);
    EXPECT_NE(regex.error_message.find("regular expression"), std::string::npos);
    r.subscribed_topic_regex.reset();
    r.server_assignor = "sticky";
    EXPECT_EQ(group.heartbeat(r, topics, now).error, errc::unsupported_assignor);
    r.server_assignor.reset();
    r.member_id.clear();
    r.client_generates_member_id = true; // version 1: the client makes the id
    EXPECT_EQ(group.heartbeat(r, topics, now).error, errc::invalid_request);
    r.member_epoch = -3;
    EXPECT_EQ(group.heartbeat(r, topics, now).error, errc::invalid_request);
    EXPECT_TRUE(group.empty());
}

TEST_F(consumer_group_test, the_group_has_a_maximum_size) {
    cfg.max_size = 2;
    joined("a");
    joined("b");
    EXPECT_EQ(join("c").error, errc::group_max_size_reached);
}

TEST_F(consumer_group_test, new_partitions_and_topics_bump_the_group_epoch) {
    auto a = joined("a");
    const auto epoch = group.group_epoch();
    topics["t"].partitions = 6;
    step(a);
    EXPECT_GT(group.group_epoch(), epoch);
    EXPECT_EQ(count(a.owned), 6u);
    // A subscribed topic created later is assigned once it exists.
    consumer_heartbeat_request r;
    r.member_id = a.id;
    r.member_epoch = a.epoch;
    r.subscribed_topic_names = std::vector<std::string>{"t", "later"};
    auto res = group.heartbeat(r, topics, now);
    a.epoch = res.member_epoch;
    EXPECT_EQ(count(res.assignment.value_or(a.owned)), 6u);
    topics["later"] = consumer_topic_meta{{2}, 2};
    step(a);
    EXPECT_EQ(count(a.owned), 8u);
    EXPECT_EQ(a.owned["later"], (std::set<int32_t>{0, 1}));
}

TEST_F(consumer_group_test, a_static_member_that_comes_back_keeps_its_partitions) {
    consumer_heartbeat_request r;
    r.member_id = "m1";
    r.member_epoch = 0;
    r.instance_id = "instance-1";
    r.subscribed_topic_names = std::vector<std::string>{"t"};
    auto first = group.heartbeat(r, topics, now);
    ASSERT_EQ(first.error, errc::success);
    // Another member may not take the instance id while it is in use.
    auto other = r;
    other.member_id = "m2";
    EXPECT_EQ(group.heartbeat(other, topics, now).error, errc::unreleased_instance_id);
    // Leaving with -2 keeps the place; coming back under a new id finds the same partitions
    // and the same epoch, without a new group epoch.
    EXPECT_EQ(beat("m1", -2, std::nullopt).member_epoch, -2);
    const auto epoch = group.group_epoch();
    auto back = group.heartbeat(other, topics, now);
    ASSERT_EQ(back.error, errc::success);
    EXPECT_EQ(back.member_id, "m2");
    EXPECT_EQ(back.member_epoch, first.member_epoch);
    EXPECT_EQ(back.assignment, first.assignment);
    EXPECT_EQ(group.group_epoch(), epoch);
}

TEST_F(consumer_group_test, describe_shows_members_and_targets) {
    auto a = joined("a");
    auto b = joined("b");
    auto v = group.view();
    EXPECT_EQ(v.state, "Reconciling");
    EXPECT_EQ(v.assignor, "uniform");
    ASSERT_EQ(v.members.size(), 2u);
    EXPECT_EQ(v.members[0].member_id, "a");
    EXPECT_EQ(count(v.members[0].assignment), 4u);
    EXPECT_EQ(count(v.members[0].target_assignment), 2u);
    EXPECT_EQ(count(v.members[1].target_assignment), 2u);
    EXPECT_EQ(v.members[1].subscribed_topic_names, std::vector<std::string>{"t"});
    (void)a;
    (void)b;
}

TEST_F(consumer_group_test, members_choose_the_range_assignor) {
    auto a = join("a", {"t"}, "range");
    ASSERT_EQ(a.error, errc::success);
    auto b = join("b", {"t"}, "range");
    ASSERT_EQ(b.error, errc::success);
    auto v = group.view();
    EXPECT_EQ(v.assignor, "range");
    EXPECT_EQ(v.members[0].target_assignment.at("t"), (std::set<int32_t>{0, 1}));
    EXPECT_EQ(v.members[1].target_assignment.at("t"), (std::set<int32_t>{2, 3}));
}

// ---- the assignors alone ----

TEST(assignors, range_splits_each_topic_into_contiguous_runs) {
    consumer_topic_lookup topics{{"x", {{1}, 5}}, {"y", {{2}, 2}}};
    std::vector<assignor_member> members{{"m2", {"x", "y"}, {}}, {"m1", {"x", "y"}, {}}, {"m3", {"x"}, {}}};
    auto out = assign_range(members, topics);
    EXPECT_EQ(out["m1"]["x"], (std::set<int32_t>{0, 1}));
    EXPECT_EQ(out["m2"]["x"], (std::set<int32_t>{2, 3}));
    EXPECT_EQ(out["m3"]["x"], (std::set<int32_t>{4}));
    EXPECT_EQ(out["m1"]["y"], (std::set<int32_t>{0}));
    EXPECT_EQ(out["m2"]["y"], (std::set<int32_t>{1}));
    EXPECT_FALSE(out["m3"].contains("y"));
}

TEST(assignors, uniform_balances_and_keeps_previous_partitions) {
    consumer_topic_lookup topics{{"x", {{1}, 7}}};
    std::vector<assignor_member> members{{"a", {"x"}, {}}, {"b", {"x"}, {}}};
    auto first = assign_uniform(members, topics);
    EXPECT_EQ(count(first["a"]) + count(first["b"]), 7u);
    EXPECT_LE(std::max(count(first["a"]), count(first["b"])) - std::min(count(first["a"]), count(first["b"])), 1u);
    // A third member takes partitions from the others; nobody else's partitions move.
    members[0].previous = first["a"];
    members[1].previous = first["b"];
    members.push_back({"c", {"x"}, {}});
    auto second = assign_uniform(members, topics);
    std::size_t total = 0;
    for (const auto& id : {"a", "b", "c"}) {
        EXPECT_GE(count(second[id]), 2u);
        EXPECT_LE(count(second[id]), 3u);
        total += count(second[id]);
    }
    EXPECT_EQ(total, 7u);
    for (const auto& id : {"a", "b"}) {
        for (auto p : second[id]["x"]) {
            EXPECT_TRUE(first[id]["x"].contains(p)) << id << " got partition " << p << " it did not have";
        }
    }
}

TEST(assignors, uniform_gives_a_large_group_equal_shares) {
    consumer_topic_lookup topics{{"x", {{1}, 1000}}, {"y", {{2}, 7}}};
    std::vector<assignor_member> members;
    for (int i = 0; i < 100; ++i) {
        members.push_back({fmt::format("m{:03}", i), {"x", "y"}, {}});
    }
    auto out = assign_uniform(members, topics);
    std::set<std::pair<std::string, int32_t>> seen;
    for (const auto& [id, a] : out) {
        EXPECT_GE(count(a), 10u) << id;
        EXPECT_LE(count(a), 11u) << id;
        for (const auto& [t, ps] : a) {
            for (auto p : ps) {
                EXPECT_TRUE(seen.emplace(t, p).second) << t << " " << p << " assigned twice";
            }
        }
    }
    EXPECT_EQ(seen.size(), 1007u);
}

TEST(assignors, uniform_respects_different_subscriptions) {
    consumer_topic_lookup topics{{"x", {{1}, 4}}, {"y", {{2}, 4}}};
    std::vector<assignor_member> members{{"a", {"x", "y"}, {}}, {"b", {"y"}, {}}};
    auto out = assign_uniform(members, topics);
    EXPECT_EQ(count(out["a"]) + count(out["b"]), 8u);
    EXPECT_FALSE(out["b"].contains("x"));
    EXPECT_EQ(count(out["a"]), 4u);
    EXPECT_EQ(count(out["b"]), 4u);
}

} // namespace
} // namespace runnel::broker
