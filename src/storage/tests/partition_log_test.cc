#include <gtest/gtest.h>

#include <thread>

#include "storage/tests/log_fixture.h"

namespace runnel::storage {
namespace {

using namespace testing;
using model::offset;

class partition_log_test : public log_fixture {};

log_config small_segments() {
    log_config cfg;
    cfg.segment_bytes = 4096;
    cfg.index_interval_bytes = 256;
    return cfg;
}

TEST_F(partition_log_test, append_and_read_round_trip_across_segment_rolls) {
    auto log = open(small_segments());
    std::mt19937 rng(1);
    std::vector<std::vector<std::byte>> expected;
    std::vector<offset> bases;
    std::vector<offset> lasts;
    for (uint64_t i = 0; i < 400; ++i) {
        auto batch = make_batch(i, 20 + rng() % 600, 1 + static_cast<int>(rng() % 3));
        auto r = log->append(batch);
        ASSERT_TRUE(r) << r.error().message();
        EXPECT_EQ(r.value().base, bases.empty() ? offset(0) : log->next_offset() - batch.header().record_count);
        bases.push_back(r.value().base);
        lasts.push_back(r.value().last);
        expected.push_back(bytes_of(batch)); // stamped base offset included
    }
    ASSERT_GT(log->segment_count(), 10u);
    ASSERT_TRUE(flush(*log));
    EXPECT_EQ(log->flushed_offset(), log->next_offset());

    EXPECT_EQ(read_all(*log, offset(0)), expected);
    EXPECT_EQ(read_all(*log, offset(0), 1), expected); // one batch per read
    // Reading from any offset inside a batch starts at that batch.
    for (std::size_t i = 0; i < bases.size(); i += 7) {
        auto r = log->read(i % 2 ? lasts[i] : bases[i], 1);
        ASSERT_TRUE(r);
        ASSERT_EQ(r.value().batches, 1u);
        std::vector<std::byte> got(r.value().bytes.span().begin(), r.value().bytes.span().end());
        EXPECT_EQ(got, expected[i]) << "batch " << i;
    }

    const auto end = log->next_offset();
    const auto segments = log->segment_count();
    ASSERT_TRUE(close(*log));
    log.reset();

    auto reopened = open(small_segments());
    EXPECT_EQ(reopened->next_offset(), end);
    EXPECT_EQ(reopened->segment_count(), segments);
    EXPECT_FALSE(reopened->recovery().torn);
    EXPECT_FALSE(reopened->recovery().corrupt);
    EXPECT_EQ(reopened->recovery().indexes_rebuilt, 0u);
    EXPECT_EQ(reopened->recovery().segments_scanned, 1u) << "only the tail after the durable point";
    EXPECT_EQ(read_all(*reopened, offset(0)), expected);

    // Appends continue at the old end.
    auto more = make_batch(999, 10);
    ASSERT_TRUE(reopened->append(more));
    EXPECT_EQ(more.header().base_offset, end);
}

TEST_F(partition_log_test, read_limits_and_errors) {
    auto log = open();
    for (uint64_t i = 0; i < 10; ++i) {
        auto b = make_batch(i, 1000);
        ASSERT_TRUE(log->append(b));
    }
    auto one = log->read(offset(0), 10); // smaller than one batch: still one batch
    ASSERT_TRUE(one);
    EXPECT_EQ(one.value().batches, 1u);
    EXPECT_EQ(one.value().next_offset, offset(1));

    auto three = log->read(offset(2), 3500);
    ASSERT_TRUE(three);
    EXPECT_EQ(three.value().batches, 3u);
    EXPECT_LE(three.value().bytes.size(), 3500u);

    auto bounded = log->read(offset(0), 1 << 20, offset(4));
    ASSERT_TRUE(bounded);
    EXPECT_EQ(bounded.value().batches, 4u);
    EXPECT_EQ(bounded.value().next_offset, offset(4));

    auto at_end = log->read(offset(10), 1 << 20);
    ASSERT_TRUE(at_end);
    EXPECT_EQ(at_end.value().batches, 0u);
    EXPECT_EQ(at_end.value().log_end, offset(10));

    EXPECT_EQ(log->read(offset(11), 100).error(), errc::offset_out_of_range);
    EXPECT_EQ(log->read(offset(-1), 100).error(), errc::offset_out_of_range);

    log_config tiny;
    tiny.max_batch_bytes = 200;
    ASSERT_TRUE(log->set_config(tiny));
    auto big = make_batch(99, 500);
    EXPECT_EQ(log->append(big).error(), errc::batch_too_large);

    ASSERT_TRUE(close(*log));
    auto late = make_batch(100, 10);
    EXPECT_EQ(log->append(late).error(), errc::closed);
}

TEST_F(partition_log_test, time_lookup_matches_a_scan_of_every_record) {
    auto cfg = small_segments();
    auto log = open(cfg);
    std::mt19937 rng(3);
    std::vector<std::pair<offset, int64_t>> records; // offset order
    int64_t clock = 1000;
    for (uint64_t i = 0; i < 300; ++i) {
        int n = 1 + static_cast<int>(rng() % 4);
        std::vector<int64_t> ts;
        for (int r = 0; r < n; ++r) {
            clock += static_cast<int64_t>(rng() % 5);
            // Some records arrive out of order, as producers' clocks disagree.
            ts.push_back(rng() % 5 == 0 ? clock - static_cast<int64_t>(rng() % 40) : clock);
        }
        auto b = make_batch(i, 30, n, ts);
        auto r = log->append(b);
        ASSERT_TRUE(r);
        for (int k = 0; k < n; ++k) {
            records.emplace_back(r.value().base + k, ts[static_cast<std::size_t>(k)]);
        }
    }
    auto check = [&](partition_log& l) {
        for (int64_t t = 900; t <= clock + 2; t += 3) {
            std::optional<partition_log::time_match> want;
            for (auto [o, ts] : records) {
                if (ts >= t) {
                    want = partition_log::time_match{o, model::event_time(ts)};
                    break;
                }
            }
            auto got = l.timequery(model::event_time(t));
            ASSERT_TRUE(got);
            ASSERT_EQ(got.value(), want) << "t=" << t;
        }
    };
    check(*log);
    ASSERT_TRUE(close(*log));
    log.reset();
    auto reopened = open(cfg); // sealed segments now answer from their stored time indexes
    check(*reopened);
}

TEST_F(partition_log_test, retention_by_time_deletes_whole_old_segments_only) {
    auto cfg = small_segments();
    cfg.retention_ms = 60'000;
    auto log = open(cfg);
    const int64_t now = 1'700'000'000'000;
    std::vector<std::vector<std::byte>> expected;
    // 40 old batches (two minutes ago), then 40 fresh ones.
    for (uint64_t i = 0; i < 80; ++i) {
        int64_t ts = i < 40 ? now - 120'000 : now - 1'000;
        auto b = make_batch(i, 300, 1, {ts});
        ASSERT_TRUE(log->append(b));
        expected.push_back(bytes_of(b));
    }
    ASSERT_TRUE(flush(*log));
    auto before = segment_files(dir());
    auto report = log->apply_retention(model::processing_time(now));
    ASSERT_GT(report.segments_removed, 0u);
    // Only segments made entirely of old batches go; the first remaining one may mix both.
    EXPECT_LE(report.start_offset, offset(40));
    EXPECT_EQ(log->start_offset(), report.start_offset);
    EXPECT_EQ(log->read(offset(0), 100).error(), errc::offset_out_of_range);
    auto rest = read_all(*log, log->start_offset());
    std::vector<std::vector<std::byte>> tail(expected.begin() + log->start_offset()(), expected.end());
    EXPECT_EQ(rest, tail);

    drain(); // files are removed on the flusher thread
    EXPECT_FALSE(std::filesystem::exists(before.front()));
    EXPECT_EQ(segment_files(dir()).size(), before.size() - report.segments_removed);

    // The active segment is never removed, however old.
    auto all_old = log->apply_retention(model::processing_time(now + 10'000'000));
    EXPECT_EQ(log->segment_count(), 1u);
    EXPECT_GT(all_old.segments_removed, 0u);

    ASSERT_TRUE(close(*log));
    log.reset();
    auto reopened = open(cfg);
    EXPECT_EQ(reopened->start_offset(), all_old.start_offset);
}

TEST_F(partition_log_test, retention_by_bytes_keeps_at_least_the_limit) {
    auto cfg = small_segments();
    cfg.retention_ms = -1;
    cfg.retention_bytes = 10'000;
    auto log = open(cfg);
    for (uint64_t i = 0; i < 200; ++i) {
        auto b = make_batch(i, 200);
        ASSERT_TRUE(log->append(b));
    }
    const auto size_before = log->size_bytes();
    auto report = log->apply_retention(model::processing_now());
    EXPECT_GT(report.segments_removed, 0u);
    EXPECT_GE(log->size_bytes(), 10'000u);
    EXPECT_LT(log->size_bytes(), 10'000u + cfg.segment_bytes);
    EXPECT_EQ(log->size_bytes() + report.bytes_removed, size_before);
}

TEST_F(partition_log_test, removing_a_prefix_drops_only_segments_wholly_before_the_offset) {
    auto cfg = small_segments();
    auto log = open(cfg);
    std::vector<std::vector<std::byte>> expected;
    for (uint64_t i = 0; i < 100; ++i) {
        auto b = make_batch(i, 300);
        ASSERT_TRUE(log->append(b));
        expected.push_back(bytes_of(b));
    }
    ASSERT_GT(log->segment_count(), 3u);
    auto report = log->remove_segments_before(offset(60));
    EXPECT_GT(report.segments_removed, 0u);
    EXPECT_LE(log->start_offset(), offset(60)); // the segment holding 60 stays whole
    EXPECT_EQ(report.start_offset, log->start_offset());
    auto rest = read_all(*log, log->start_offset());
    std::vector<std::vector<std::byte>> tail(expected.begin() + log->start_offset()(), expected.end());
    EXPECT_EQ(rest, tail);
    // Past the end: everything but the active segment goes.
    log->remove_segments_before(offset(1000));
    EXPECT_EQ(log->segment_count(), 1u);
    drain();
}

TEST_F(partition_log_test, concurrent_flushes_share_one_fsync_and_complete_on_the_owner) {
    auto log = open();
    ASSERT_TRUE(flush(*log)); // settle the directory sync of a new log
    const auto jobs_before = _flusher.completed();
    const auto owner = std::this_thread::get_id();
    int done = 0;
    bool all_on_owner = true;
    for (uint64_t i = 0; i < 200; ++i) {
        auto b = make_batch(i, 100);
        ASSERT_TRUE(log->append(b));
        log->flush([&](result<void> r) {
            EXPECT_TRUE(r);
            all_on_owner = all_on_owner && std::this_thread::get_id() == owner;
            ++done;
        });
    }
    ASSERT_TRUE(_exec.run_until([&] { return done == 200; }));
    EXPECT_TRUE(all_on_owner);
    // The first flush started a sync; the 199 behind it were served by exactly one more.
    EXPECT_EQ(_flusher.completed() - jobs_before, 2u);
    EXPECT_EQ(log->flushed_offset(), offset(200));
}

// A log dropped while a write waits for its sync (a topic deleted under an acks=all produce)
// answers the write: nothing waits for ever, and the connection it came on goes on.
TEST_F(partition_log_test, a_dropped_log_answers_the_writes_waiting_for_their_sync) {
    auto log = open();
    ASSERT_TRUE(flush(*log));
    auto b = make_batch(0, 10);
    ASSERT_TRUE(log->append(b));
    std::optional<result<void>> answer;
    log->flush([&](result<void> r) { answer = r; });
    // The sync's completion is posted to this test's executor, which has not run it yet.
    log.reset();
    ASSERT_TRUE(_exec.run_until([&] { return answer.has_value(); }));
    EXPECT_EQ(answer->error(), make_error_code(errc::closed));
}

TEST_F(partition_log_test, rolls_by_age) {
    log_config cfg;
    cfg.segment_age = std::chrono::milliseconds(1);
    auto log = open(cfg);
    auto a = make_batch(1, 10);
    ASSERT_TRUE(log->append(a));
    std::this_thread::sleep_for(std::chrono::milliseconds(5)); // the clock must move on
    auto b = make_batch(2, 10);
    ASSERT_TRUE(log->append(b));
    EXPECT_EQ(log->segment_count(), 2u);
}

} // namespace
} // namespace runnel::storage

namespace runnel::storage {
namespace {

using namespace testing;
using model::offset;

class fault_test : public log_fixture {
protected:
    void TearDown() override {
        fail_point::disarm_all();
        log_fixture::TearDown();
    }
};

TEST_F(fault_test, failed_write_leaves_no_partial_batch_and_the_log_usable) {
    auto log = open();
    auto a = make_batch(1, 500);
    ASSERT_TRUE(log->append(a));
    const auto size = log->size_bytes();
    const auto full_before = fault_count("runnel_storage_disk_full_total");
    const auto failed_before = fault_count("runnel_storage_append_failures_total", {"cause"}, {"no_space"});
    fail_point::arm("storage.write");
    auto b = make_batch(2, 500);
    auto r = log->append(b);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error(), std::errc::no_space_on_device);
    EXPECT_EQ(fault_count("runnel_storage_disk_full_total"), full_before + 1);
    EXPECT_EQ(fault_count("runnel_storage_append_failures_total", {"cause"}, {"no_space"}), failed_before + 1);
    EXPECT_EQ(log->size_bytes(), size);
    EXPECT_EQ(std::filesystem::file_size(segment_files(dir()).back()), size) << "the half write was undone";
    auto c = make_batch(3, 500);
    ASSERT_TRUE(log->append(c));
    EXPECT_EQ(c.header().base_offset, offset(1));
    ASSERT_TRUE(flush(*log));
    log.reset();
    auto reopened = open();
    EXPECT_FALSE(reopened->recovery().torn);
    EXPECT_EQ((read_all(*reopened, offset(0))), (std::vector{bytes_of(a), bytes_of(c)}));
}

TEST_F(fault_test, failed_fsync_fails_waiters_and_stops_writes) {
    auto log = open();
    auto a = make_batch(1, 100);
    ASSERT_TRUE(log->append(a));
    const auto fsync_before = fault_count("runnel_storage_fsync_failures_total");
    fail_point::arm("storage.fsync");
    auto r = flush(*log);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error(), errc::log_failed);
    EXPECT_EQ(fault_count("runnel_storage_fsync_failures_total"), fsync_before + 1);
    auto b = make_batch(2, 100);
    EXPECT_EQ(log->append(b).error(), errc::log_failed);
    EXPECT_EQ(flush(*log).error(), errc::log_failed);
    EXPECT_LT(log->flushed_offset(), log->next_offset());
    // A restart recovers from what is on disk.
    log.reset();
    auto reopened = open();
    ASSERT_TRUE(reopened->append(b));
    ASSERT_TRUE(flush(*reopened));
}

} // namespace
} // namespace runnel::storage
