// Keyed state stores: in memory and in RocksDB, snapshots and restores, and the
// deduplicate stage on RocksDB giving what it gives in memory, across a restore.
#include "engine/engine.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <random>

namespace runnel::engine {
namespace {

namespace fs = std::filesystem;

struct temp_dir {
    fs::path path;
    temp_dir() {
        path = fs::temp_directory_path() /
               fmt::format("runnel-state-{}-{}", ::getpid(), std::random_device{}());
        fs::create_directories(path);
    }
    ~temp_dir() {
        std::error_code ec;
        fs::remove_all(path, ec);
    }
};

void exercise(state_store& s) {
    std::string v;
    EXPECT_FALSE(s.get("a", v));
    s.put("a", "1");
    s.put("b", "2");
    ASSERT_TRUE(s.get("a", v));
    EXPECT_EQ(v, "1");
    auto snap = s.snapshot();
    s.put("a", "changed");
    s.erase("b");
    s.put("c", "3");
    EXPECT_FALSE(s.get("b", v));
    ASSERT_TRUE(s.restore(snap));
    ASSERT_TRUE(s.get("a", v));
    EXPECT_EQ(v, "1");
    ASSERT_TRUE(s.get("b", v));
    EXPECT_EQ(v, "2");
    EXPECT_FALSE(s.get("c", v)) << "written after the snapshot";
    // The store goes on after a restore, and a second snapshot sees the new writes.
    s.put("d", "4");
    auto snap2 = s.snapshot();
    s.erase("d");
    ASSERT_TRUE(s.restore(snap2));
    ASSERT_TRUE(s.get("d", v));
    EXPECT_EQ(v, "4");
    EXPECT_TRUE(s.failure().empty()) << s.failure();
}

TEST(state_store, memory_snapshot_and_restore) {
    auto s = memory_state();
    exercise(*s);
    EXPECT_FALSE(s->restore("junk"));
}

TEST(state_store, rocksdb_snapshot_and_restore) {
    temp_dir d;
    auto s = rocksdb_state(d.path / "dedup");
    ASSERT_TRUE(s) << s.error().message;
    exercise(*s.value());
    EXPECT_STREQ(s.value()->kind(), "rocksdb");
}

TEST(state_store, rocksdb_restore_in_a_new_store_and_old_snapshots_are_retired) {
    temp_dir d;
    std::string snap;
    {
        auto s = rocksdb_state(d.path / "st");
        ASSERT_TRUE(s);
        for (int i = 0; i < 10000; ++i)
            s.value()->put(fmt::format("k{}", i), fmt::format("v{}", i));
        for (int i = 0; i < 5; ++i)
            snap = s.value()->snapshot();
    }
    size_t snaps = 0;
    for (const auto& e : fs::directory_iterator(d.path))
        snaps += e.path().filename().string().find(".snap-") != std::string::npos;
    EXPECT_EQ(snaps, 3u) << "the newest three snapshots are kept";
    // A new store (a restarted job) comes back from the snapshot, not from what was left.
    auto s = rocksdb_state(d.path / "st");
    ASSERT_TRUE(s);
    std::string v;
    EXPECT_FALSE(s.value()->get("k1", v));
    ASSERT_TRUE(s.value()->restore(snap));
    ASSERT_TRUE(s.value()->get("k9999", v));
    EXPECT_EQ(v, "v9999");
    EXPECT_GE(s.value()->approximate_keys(), 5000u);
}

TEST(state_store, rocksdb_restore_of_a_missing_checkpoint_is_an_error) {
    temp_dir d;
    auto s = rocksdb_state(d.path / "st");
    ASSERT_TRUE(s);
    auto snap = s.value()->snapshot();
    for (const auto& e : fs::directory_iterator(d.path)) {
        if (e.path().filename().string().find(".snap-") != std::string::npos)
            fs::remove_all(e.path());
    }
    auto r = s.value()->restore(snap);
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().message.find("missing"), std::string::npos) << r.error().message;
    EXPECT_FALSE(s.value()->restore("not a snapshot"));
}

schema_ptr keyed_schema() {
    return make_schema({{"k", data_type::int64()}, {"v", data_type::string()}});
}

std::vector<batch> keyed_batches(uint64_t seed, size_t n, int64_t keys) {
    std::mt19937_64 rng(seed);
    std::vector<batch> out;
    batch b(keyed_schema());
    for (size_t i = 0; i < n; ++i) {
        b.append_row(
            {value::of(int64_t(rng() % uint64_t(keys))), value::of(fmt::format("r{}", i))});
        if (b.num_rows() == 1000) {
            out.push_back(std::move(b));
            b = batch(keyed_schema());
        }
    }
    if (b.num_rows())
        out.push_back(std::move(b));
    return out;
}

/// Dedup over `input`, snapshotting after `cut` batches and restoring into a new pipeline.
std::vector<std::string> dedup(const std::vector<batch>& input, state_options st, size_t cut) {
    std::vector<std::string> rows;
    auto collect = [&](const batch& b) {
        for (size_t i = 0; i < b.num_rows(); ++i)
            rows.push_back(b.row_to_string(i));
    };
    std::vector<std::string> states;
    {
        pipeline p;
        p.source(keyed_schema(), from_batches({input.begin(), input.begin() + long(cut)}))
            .deduplicate({"k"}, st)
            .sink(collect);
        EXPECT_TRUE(p.run());
        states = p.snapshot();
    }
    pipeline p;
    p.source(keyed_schema(), from_batches({input.begin() + long(cut), input.end()}))
        .deduplicate({"k"}, st)
        .sink(collect);
    auto r = p.restore(states);
    EXPECT_TRUE(r) << (r ? "" : r.error().message);
    EXPECT_TRUE(p.run());
    return rows;
}

TEST(state_store, dedup_on_rocksdb_equals_dedup_in_memory_across_a_restore) {
    temp_dir d;
    auto input = keyed_batches(11, 200000, 60000);
    auto want = dedup(input, {}, 100);
    auto got = dedup(input, {d.path / "dedup"}, 100);
    EXPECT_GT(want.size(), 50000u);
    EXPECT_EQ(got, want);
}

TEST(state_store, unusable_rocksdb_directory_is_a_build_error) {
    temp_dir d;
    fs::path file = d.path / "plain-file";
    { std::ofstream(file) << "x"; }
    pipeline p;
    p.source(keyed_schema(), from_batches({}))
        .deduplicate({"k"}, {file / "state"})
        .sink([](const batch&) {});
    auto r = p.check();
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().message.find("RocksDB"), std::string::npos) << r.error().message;
}

} // namespace
} // namespace runnel::engine
