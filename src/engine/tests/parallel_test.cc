// An exchange_set and run_parallel: a dataflow with two exchanges, run as 1, 2 and 3 instances
// on their own threads, gives the rows of one pipeline; a failing instance stops the run.
#include "engine/engine.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <mutex>
#include <random>

using namespace std::chrono_literals;

namespace runnel::engine {
namespace {

schema_ptr set_test_schema() {
    return make_schema({{"key", data_type::int64()}, {"ts", data_type::int64()}, {"v", data_type::int64()}});
}

/// `n` events over 300 keys, in event-time order with jitter below the bound, in batches of 400.
std::vector<batch> set_test_events(size_t n, uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::vector<batch> out;
    batch b(set_test_schema());
    for (size_t i = 0; i < n; ++i) {
        b.append_row({value::of(int64_t(rng() % 300)), value::of(int64_t(i) * 2 + int64_t(rng() % 100)),
                      value::of(int64_t(rng() % 100))});
        if (b.num_rows() == 400) {
            out.push_back(std::move(b));
            b = batch(set_test_schema());
        }
    }
    if (b.num_rows() > 0) out.push_back(std::move(b));
    return out;
}

/// Per key and 1 s window, the count and sum; then every window's rows brought to one
/// instance (no keys) and collected. Instance i of n reads every n-th batch.
std::vector<std::string> run_set(const std::vector<batch>& events, uint32_t n) {
    exchange_set xs(n, 4);
    std::vector<std::unique_ptr<pipeline>> ps;
    std::vector<pipeline*> instances;
    std::mutex mu;
    std::vector<std::string> rows;
    for (uint32_t i = 0; i < n; ++i) {
        std::vector<batch> mine;
        for (size_t k = i; k < events.size(); k += n) mine.push_back(events[k]);
        ps.push_back(std::make_unique<pipeline>());
        instances.push_back(ps.back().get());
        auto keyed = xs.exchange(ps[i]->source(set_test_schema(), from_batches(std::move(mine))).watermark("ts", 250ms),
                                 i, {"key"}, key_routing::columnar);
        auto counted = keyed.key_by({"key"}).window(tumble(1000ms)).aggregate({count(), sum("v")});
        xs.exchange(counted, i, {}, key_routing::columnar).sink([&](const batch& b) {
            std::lock_guard g(mu);
            for (size_t r = 0; r < b.num_rows(); ++r) rows.push_back(b.row_to_string(r));
        });
        EXPECT_TRUE(ps[i]->check());
    }
    EXPECT_EQ(xs.size(), 2u);
    if (n == 1) {
        EXPECT_TRUE(ps[0]->run());
    } else {
        std::vector<std::chrono::nanoseconds> cpu;
        auto r = run_parallel(instances, xs, &cpu);
        EXPECT_TRUE(r) << (r ? "" : r.error().message);
        EXPECT_EQ(cpu.size(), n);
        EXPECT_TRUE(std::all_of(cpu.begin(), cpu.end(), [](auto c) { return c.count() > 0; }));
        // Everything sent was taken.
        uint64_t sent = 0, taken = 0;
        for (uint32_t i = 0; i < n; ++i) {
            sent += xs.sent_by(i);
            taken += xs.taken_by(i);
        }
        EXPECT_EQ(sent, taken);
        EXPECT_GT(sent, 0u);
    }
    std::sort(rows.begin(), rows.end());
    return rows;
}

TEST(exchange_set, two_exchanges_on_threads_equal_one_pipeline) {
    auto events = set_test_events(60000, 5);
    auto want = run_set(events, 1);
    ASSERT_GT(want.size(), 1000u);
    for (uint32_t n : {2u, 3u}) EXPECT_EQ(run_set(events, n), want) << n << " instances";
}

TEST(exchange_set, a_failing_instance_stops_the_run_with_its_error) {
    exchange_set xs(2, 4);
    std::vector<std::unique_ptr<pipeline>> ps;
    std::vector<pipeline*> instances;
    for (uint32_t i = 0; i < 2; ++i) {
        ps.push_back(std::make_unique<pipeline>());
        instances.push_back(ps.back().get());
        // Instance 1's source never ends, so only the failure of instance 0 (a filter on a
        // column it does not have) can end the run.
        auto s = ps[i]->source(set_test_schema(), [] { return source_poll::idle(); });
        if (i == 0) s = s.filter(col("nope") > lit(int64_t(1)));
        xs.exchange(s, i, {"key"}, key_routing::columnar).sink([](const batch&) {});
    }
    auto r = run_parallel(instances, xs);
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().message.find("instance 0: "), std::string::npos) << r.error().message;
    EXPECT_NE(r.error().message.find("nope"), std::string::npos) << r.error().message;
}

} // namespace
} // namespace runnel::engine
