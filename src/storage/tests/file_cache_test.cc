#include "storage/tests/log_fixture.h"

#include <fcntl.h>

namespace runnel::storage {
namespace {

using namespace testing;
using model::offset;

/// Descriptors this process has open now.
std::size_t open_fds() {
    std::size_t n = 0;
    for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator("/proc/self/fd")) {
        ++n;
    }
    return n;
}

class file_cache_test : public log_fixture {};

TEST_F(file_cache_test, keeps_at_most_capacity_and_drops_the_least_recently_used) {
    std::filesystem::create_directories(dir());
    for (int i = 0; i < 3; ++i) {
        ASSERT_TRUE(file_handle::open(dir() / fmt::format("f{}", i), O_RDWR | O_CREAT));
    }
    file_cache cache(2);
    const auto base = open_fds();
    {
        auto a = cache.get(dir() / "f0");
        ASSERT_TRUE(a);
        ASSERT_TRUE(cache.get(dir() / "f1"));
        EXPECT_EQ(cache.get(dir() / "f0").value(), a.value()); // a hit, now the most recent
    }
    ASSERT_TRUE(cache.get(dir() / "f2")); // drops f1, the least recently used
    EXPECT_EQ(cache.size(), 2u);
    EXPECT_EQ(cache.evictions(), 1u);
    EXPECT_EQ(open_fds(), base + 2);
    EXPECT_EQ(cache.opens(), 3u);
    ASSERT_TRUE(cache.get(dir() / "f0")); // still cached
    EXPECT_EQ(cache.opens(), 3u);
    ASSERT_TRUE(cache.get(dir() / "f1")); // reopened
    EXPECT_EQ(cache.opens(), 4u);
    cache.forget(dir() / "f1");
    EXPECT_EQ(cache.size(), 1u);
    EXPECT_EQ(open_fds(), base + 1);
    EXPECT_FALSE(cache.get(dir() / "missing"));
}

TEST_F(file_cache_test, many_logs_hold_one_descriptor_each_plus_the_cache) {
    // 40 partitions of 6 segments each: without the cache they would hold 240 descriptors
    // (plus a directory and a durable-point file each, before); with a cache of 8 they hold
    // one per active segment and at most 8 sealed ones, while every byte stays readable.
    constexpr int logs = 40;
    constexpr std::size_t capacity = 8;
    auto cache = std::make_shared<file_cache>(capacity);
    log_config cfg;
    cfg.segment_bytes = 4096;
    const auto before = open_fds();
    std::vector<std::shared_ptr<partition_log>> open_logs;
    std::vector<std::vector<std::vector<std::byte>>> written(logs);
    for (int l = 0; l < logs; ++l) {
        auto r = partition_log::open(dir(fmt::format("p{}", l)), cfg, _exec, _flusher, cache);
        ASSERT_TRUE(r) << r.error().message();
        auto log = r.value();
        for (int i = 0; i < 12; ++i) {
            auto b = make_batch(static_cast<uint64_t>(l * 100 + i), 1500);
            ASSERT_TRUE(log->append(b));
            written[static_cast<std::size_t>(l)].push_back(bytes_of(b));
        }
        ASSERT_TRUE(flush(*log));
        EXPECT_GE(log->segment_count(), 6u);
        open_logs.push_back(log);
    }
    drain();
    const auto held = open_fds() - before;
    EXPECT_LE(held, logs + capacity) << "descriptors held by " << logs << " logs";
    // Every log reads back in full, twice (the second pass finds its files evicted again).
    for (int pass = 0; pass < 2; ++pass) {
        for (int l = 0; l < logs; ++l) {
            EXPECT_EQ(read_all(*open_logs[static_cast<std::size_t>(l)], offset(0), 4096),
                      written[static_cast<std::size_t>(l)]);
        }
    }
    EXPECT_LE(open_fds() - before, logs + capacity);
    EXPECT_GT(cache->evictions(), 0u);
    EXPECT_LE(cache->size(), capacity);

    // Reopened (recovery), the logs again hold only their active segments.
    for (auto& log : open_logs) {
        ASSERT_TRUE(close(*log));
    }
    open_logs.clear();
    drain();
    auto cache2 = std::make_shared<file_cache>(capacity);
    for (int l = 0; l < logs; ++l) {
        auto r = partition_log::open(dir(fmt::format("p{}", l)), cfg, _exec, _flusher, cache2);
        ASSERT_TRUE(r) << r.error().message();
        open_logs.push_back(r.value());
    }
    EXPECT_LE(open_fds() - before, logs + capacity);
    for (int l = 0; l < logs; ++l) {
        EXPECT_EQ(read_all(*open_logs[static_cast<std::size_t>(l)], offset(0)), written[static_cast<std::size_t>(l)]);
    }
    // Retention removes sealed segments and their cache entries.
    for (auto& log : open_logs) {
        log->remove_segments_before(log->active_segment_base());
    }
    drain();
    EXPECT_EQ(cache2->size(), 0u);
}

} // namespace
} // namespace runnel::storage
