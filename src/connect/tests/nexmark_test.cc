#include <set>

#include <gtest/gtest.h>

#include "connect/connect.h"
#include "connect/nexmark/java_random.h"

namespace runnel::connect::nexmark {
namespace {

generator make(generator_config c = {}) {
    auto g = generator::create(c);
    EXPECT_TRUE(g.has_value());
    return std::move(g).value();
}

TEST(java_random, matches_the_specified_sequence) {
    // Values of java.util.Random for these seeds, as its specification computes them.
    EXPECT_EQ(java_random(0).next_int(), -1155484576);
    EXPECT_EQ(java_random(42).next_int(), -1170105035);
    EXPECT_DOUBLE_EQ(java_random(0).next_double(), 0.730967787376657);
    java_random r(7);
    for (int i = 0; i < 10'000; ++i) {
        int v = r.next_int(13);
        ASSERT_GE(v, 0);
        ASSERT_LT(v, 13);
    }
}

TEST(nexmark_generator, proportions_follow_event_ids) {
    auto g = make();
    int people = 0;
    int auctions = 0;
    int bids = 0;
    for (int i = 0; i < 50'000; ++i) {
        auto e = g.next();
        // Every window of 50 events holds exactly 1 person, then 3 auctions, then 46 bids.
        int pos = i % 50;
        if (pos == 0) {
            ASSERT_TRUE(std::holds_alternative<person>(e)) << i;
            ++people;
        } else if (pos < 4) {
            ASSERT_TRUE(std::holds_alternative<auction>(e)) << i;
            ++auctions;
        } else {
            ASSERT_TRUE(std::holds_alternative<bid>(e)) << i;
            ++bids;
        }
    }
    EXPECT_EQ(people, 1000);
    EXPECT_EQ(auctions, 3000);
    EXPECT_EQ(bids, 46000);
}

TEST(nexmark_generator, ids_are_sequential_and_references_stay_in_range) {
    auto g = make();
    int64_t next_person = generator::first_person_id;
    int64_t next_auction = generator::first_auction_id;
    std::set<std::string> channels;
    for (int i = 0; i < 100'000; ++i) {
        auto e = g.next();
        if (auto* p = std::get_if<person>(&e)) {
            ASSERT_EQ(p->id, next_person++);
            EXPECT_FALSE(p->name.empty());
            EXPECT_NE(p->email_address.find('@'), std::string::npos);
            EXPECT_EQ(p->credit_card.size(), 19u);
            EXPECT_EQ(p->state.size(), 2u);
        } else if (auto* a = std::get_if<auction>(&e)) {
            ASSERT_EQ(a->id, next_auction++);
            EXPECT_GE(a->seller, generator::first_person_id);
            EXPECT_LT(a->seller, next_person + 10);
            EXPECT_GE(a->category, 10);
            EXPECT_LT(a->category, 15);
            EXPECT_GT(a->expires, a->date_time);
            EXPECT_GE(a->reserve, a->initial_bid);
            EXPECT_GE(a->initial_bid, 100);
        } else {
            const auto& b = std::get<bid>(e);
            // Bids may name an auction or person up to ten ids ahead (the reference's "lead").
            ASSERT_GE(b.auction, std::max<int64_t>(generator::first_auction_id,
                                                   next_auction - 1 - 100));
            ASSERT_LT(b.auction, next_auction + 10);
            ASSERT_GE(b.bidder, generator::first_person_id);
            ASSERT_LT(b.bidder, next_person + 10);
            ASSERT_GE(b.price, 100);
            ASSERT_LE(b.price, 100'000'000);
            EXPECT_TRUE(b.url.starts_with("https://www.nexmark.com/"));
            channels.insert(b.channel);
        }
    }
    EXPECT_TRUE(channels.count("Google") && channels.count("Apple"));
    EXPECT_GT(channels.size(), 1000u);
}

TEST(nexmark_generator, event_times_are_monotone_and_spaced_by_the_rate) {
    generator_config c;
    c.events_per_second = 1000;
    c.base_time_ms = 1'700'000'000'000;
    auto g = make(c);
    int64_t last = c.base_time_ms;
    for (int i = 0; i < 5000; ++i) {
        auto e = g.next();
        int64_t t = event_time(e);
        ASSERT_GE(t, last);
        ASSERT_EQ(t, c.base_time_ms + i); // one event per millisecond at 1000 events/s
        last = t;
        ASSERT_LE(g.watermark(), g.timestamp_for_event(g.events_so_far()));
    }
}

TEST(nexmark_generator, deterministic_for_a_seed) {
    generator_config c;
    c.max_events = 20'000;
    auto a = make(c);
    auto b = make(c);
    c.seed = 99;
    auto other = make(c);
    int differ = 0;
    while (a.has_next()) {
        auto x = a.next();
        ASSERT_EQ(x, b.next());
        differ += x != other.next();
    }
    EXPECT_FALSE(b.has_next());
    EXPECT_GT(differ, 10'000);
}

TEST(nexmark_generator, sizes_average_out) {
    auto g = make();
    int64_t bid_bytes = 0;
    int64_t nbids = 0;
    for (int i = 0; i < 50'000; ++i) {
        auto e = g.next();
        if (auto* b = std::get_if<bid>(&e)) {
            bid_bytes += 32 + static_cast<int64_t>(b->extra.size());
            ++nbids;
        }
    }
    double avg = static_cast<double>(bid_bytes) / static_cast<double>(nbids);
    EXPECT_NEAR(avg, 100.0, 5.0);
}

TEST(nexmark_generator, options_and_bad_config) {
    auto c = generator_config::from_options({{"events.num", "10"}, {"rate", "500"}, {"x", "y"}});
    ASSERT_TRUE(c.has_value());
    EXPECT_EQ(c.value().max_events, 10);
    EXPECT_EQ(c.value().events_per_second, 500);
    EXPECT_EQ(generator_config::from_options({{"rate", "fast"}}).error(), errc::invalid_config);
    EXPECT_EQ(generator_config::from_options({{"rate", "0"}}).error(), errc::invalid_config);
    generator_config bad;
    bad.person_proportion = 0;
    EXPECT_FALSE(generator::create(bad).has_value());
}

} // namespace
} // namespace runnel::connect::nexmark
