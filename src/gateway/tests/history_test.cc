#include "gateway/history.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>

namespace runnel::gateway {
namespace {

namespace json = boost::json;

json::object parse(const history& h, int64_t since = 0) { return json::parse(h.to_json(since, 1000)).as_object(); }

const json::array* values_of(const json::object& doc, std::string_view kind, std::string_view name) {
    for (const auto& s : doc.at("series").as_array()) {
        const auto& o = s.as_object();
        if (o.at("kind").as_string() == kind && o.at("name").as_string() == name) return &o.at("values").as_array();
    }
    return nullptr;
}

TEST(history, totals_become_rates_and_gauges_stay) {
    history h(10, 8);
    h.add(1000, {{{"topic", "a"}, 100}}, {{{"pipeline_lag", "p"}, 2.5}});
    h.add(2000, {{{"topic", "a"}, 150}}, {{{"pipeline_lag", "p"}, 3}});
    h.add(4000, {{{"topic", "a"}, 250}}, {});
    auto doc = parse(h);
    ASSERT_EQ(doc.at("times").as_array().size(), 3u);
    EXPECT_EQ(doc.at("times").as_array()[0].to_number<int64_t>(), 1000);
    auto* a = values_of(doc, "topic", "a");
    ASSERT_NE(a, nullptr);
    EXPECT_TRUE((*a)[0].is_null()); // no rate before a second sample
    EXPECT_DOUBLE_EQ((*a)[1].to_number<double>(), 50);
    EXPECT_DOUBLE_EQ((*a)[2].to_number<double>(), 50); // 100 records over 2 s
    auto* lag = values_of(doc, "pipeline_lag", "p");
    ASSERT_NE(lag, nullptr);
    EXPECT_DOUBLE_EQ((*lag)[0].to_number<double>(), 2.5);
    EXPECT_TRUE((*lag)[2].is_null());
    // `since` keeps the newer samples only.
    EXPECT_EQ(parse(h, 2000).at("times").as_array().size(), 2u);
}

TEST(history, ring_is_bounded_and_forgets_vanished_series) {
    history h(4, 8);
    for (int64_t i = 0; i < 20; ++i) {
        std::map<history::key, double> totals{{{"topic", "kept"}, double(i * 10)}};
        if (i < 3) totals[{"topic", "gone"}] = double(i);
        h.add(i * 1000, totals, {});
    }
    auto doc = parse(h);
    ASSERT_EQ(doc.at("times").as_array().size(), 4u);
    EXPECT_EQ(doc.at("times").as_array()[0].to_number<int64_t>(), 16000);
    EXPECT_EQ(values_of(doc, "topic", "gone"), nullptr);
    auto* kept = values_of(doc, "topic", "kept");
    ASSERT_NE(kept, nullptr);
    EXPECT_DOUBLE_EQ((*kept)[3].to_number<double>(), 10);
}

TEST(history, series_past_the_cap_are_refused_and_counted) {
    history h(4, 2);
    std::map<history::key, double> g{{{"pipeline_lag", "a"}, 1}, {{"pipeline_lag", "b"}, 1}, {{"pipeline_lag", "c"}, 1}};
    EXPECT_EQ(h.add(0, {}, g), 1u);
    auto doc = parse(h);
    EXPECT_EQ(doc.at("series").as_array().size(), 2u);
    // A recreated topic (its total went down) has no rate for that sample, never a negative one.
    history t(4, 2);
    t.add(0, {{{"topic", "x"}, 100}}, {});
    t.add(1000, {{{"topic", "x"}, 5}}, {});
    t.add(2000, {{{"topic", "x"}, 15}}, {});
    const auto recreated = parse(t); // values_of points into it
    auto* x = values_of(recreated, "topic", "x");
    ASSERT_NE(x, nullptr);
    EXPECT_TRUE((*x)[1].is_null());
    EXPECT_DOUBLE_EQ((*x)[2].to_number<double>(), 10);
}

} // namespace
} // namespace runnel::gateway
