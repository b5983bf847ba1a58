#include <gtest/gtest.h>

#include <atomic>
#include <set>
#include <thread>

#include "net/net.h"

namespace runnel::net {
namespace {

TEST(shard_group, runs_work_on_distinct_threads_and_stops) {
    shard_group shards(3);
    ASSERT_EQ(shards.size(), 3u);
    std::set<std::thread::id> ids;
    for (unsigned s = 0; s < 3; ++s) {
        shards.run_on(s, [&] { ids.insert(std::this_thread::get_id()); });
    }
    EXPECT_EQ(ids.size(), 3u);
    EXPECT_FALSE(ids.contains(std::this_thread::get_id()));

    std::atomic<int> posted{0};
    for (int i = 0; i < 100; ++i) {
        shards.executor_of(static_cast<unsigned>(i) % 3).post([&] { ++posted; });
    }
    shards.stop(); // finishes queued work first
    EXPECT_EQ(posted.load(), 100);
    shards.stop();
}

TEST(shard_group, periodic_tasks_repeat_until_stop) {
    shard_group shards(1);
    std::atomic<int> ticks{0};
    shards.every(0, std::chrono::milliseconds(1), [&] { ++ticks; });
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (ticks.load() < 5 && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::yield();
    }
    EXPECT_GE(ticks.load(), 5);
    shards.stop();
}

TEST(shard_group, run_on_propagates_exceptions) {
    shard_group shards(1);
    EXPECT_THROW(shards.run_on(0, [] { throw std::runtime_error("boom"); }), std::runtime_error);
}

} // namespace
} // namespace runnel::net

namespace runnel::net {
namespace {

TEST(endpoint, parses_hosts_and_ports_and_explains_errors) {
    std::string why;
    auto e = parse_endpoint("127.0.0.1:9092", why);
    ASSERT_TRUE(e);
    EXPECT_EQ(e.value().host, "127.0.0.1");
    EXPECT_EQ(e.value().port, 9092);
    auto v6 = parse_endpoint("[::1]:8080", why);
    ASSERT_TRUE(v6);
    EXPECT_EQ(v6.value().host, "::1");
    EXPECT_EQ(v6.value().to_string(), "[::1]:8080");
    for (const char* bad : {"localhost", ":9092", "host:0", "host:70000", "host:12ab", "::1:80"}) {
        why.clear();
        EXPECT_FALSE(parse_endpoint(bad, why)) << bad;
        EXPECT_FALSE(why.empty()) << bad;
    }
    EXPECT_TRUE(parse_endpoint("127.0.0.1:0", why, true));
}

} // namespace
} // namespace runnel::net
