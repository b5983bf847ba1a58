#include <gtest/gtest.h>

#include "storage/tests/log_fixture.h"

namespace runnel::storage {
namespace {

using namespace testing;
using model::offset;

class log_start_test : public log_fixture {
protected:
    static log_config small_segments() {
        log_config cfg;
        cfg.segment_bytes = 4096;
        cfg.index_interval_bytes = 256;
        return cfg;
    }

    /// Appends `n` one-record batches with timestamps 1000 + i and flushes them.
    std::vector<std::vector<std::byte>> fill(partition_log& log, uint64_t n) {
        std::vector<std::vector<std::byte>> out;
        for (uint64_t i = 0; i < n; ++i) {
            auto b = make_batch(i, 200, 1, {int64_t(1000 + i)});
            EXPECT_TRUE(log.append(b));
            out.push_back(bytes_of(b));
        }
        EXPECT_TRUE(flush(log));
        return out;
    }

    result<offset> advance(partition_log& log, offset o) {
        std::optional<result<offset>> out;
        log.advance_start(o, [&](result<offset> r) { out = r; });
        EXPECT_TRUE(_exec.run_until([&] { return out.has_value(); }));
        return out.value_or(result<offset>(errc::closed));
    }
};

TEST_F(log_start_test, moves_the_start_hides_records_below_it_and_deletes_whole_segments) {
    auto log = open(small_segments());
    auto all = fill(*log, 100);
    const auto segments_before = log->segment_count();
    ASSERT_GT(segments_before, 3u);

    auto r = advance(*log, offset(57));
    ASSERT_TRUE(r) << r.error().message();
    EXPECT_EQ(r.value(), offset(57));
    EXPECT_EQ(log->start_offset(), offset(57));
    EXPECT_LT(log->segment_count(), segments_before);
    EXPECT_TRUE(std::filesystem::exists(dir() / "log_start"));

    // Below the start is out of range; at it, the batch holding 57 comes first.
    EXPECT_EQ(log->read(offset(56), 1 << 20).error(), make_error_code(errc::offset_out_of_range));
    auto rest = read_all(*log, offset(57));
    ASSERT_FALSE(rest.empty());
    EXPECT_EQ(rest.front(), all[57]);
    EXPECT_EQ(rest.size(), 43u);

    // A time lookup never answers a record below the start.
    auto t = log->timequery(model::event_time(1000));
    ASSERT_TRUE(t);
    ASSERT_TRUE(t.value());
    EXPECT_EQ(t.value()->offset, offset(57));
    EXPECT_EQ(t.value()->timestamp, model::event_time(1057));

    // Files of deleted segments are gone once the flusher ran.
    drain();
    EXPECT_EQ(segment_files(dir()).size(), log->segment_count());
}

TEST_F(log_start_test, smaller_offsets_change_nothing_and_past_the_end_is_out_of_range) {
    auto log = open(small_segments());
    fill(*log, 20);
    ASSERT_TRUE(advance(*log, offset(10)));
    auto same = advance(*log, offset(3));
    ASSERT_TRUE(same);
    EXPECT_EQ(same.value(), offset(10));
    EXPECT_EQ(advance(*log, offset(21)).error(), make_error_code(errc::offset_out_of_range));
    EXPECT_EQ(advance(*log, offset(-5)).error(), make_error_code(errc::offset_out_of_range));
    // The end itself empties the log; appends go on from the end.
    auto end = advance(*log, offset(20));
    ASSERT_TRUE(end);
    EXPECT_EQ(end.value(), offset(20));
    EXPECT_EQ(log->start_offset(), log->next_offset());
    auto b = make_batch(99, 10);
    auto a = log->append(b);
    ASSERT_TRUE(a);
    EXPECT_EQ(a.value().base, offset(20));
}

TEST_F(log_start_test, concurrent_requests_never_move_the_recorded_start_backwards) {
    auto log = open(small_segments());
    fill(*log, 50);
    int answered = 0;
    std::vector<offset> answers;
    for (auto o : {offset(40), offset(20), offset(30)}) {
        log->advance_start(o, [&](result<offset> r) {
            ASSERT_TRUE(r);
            answers.push_back(r.value());
            ++answered;
        });
    }
    ASSERT_TRUE(_exec.run_until([&] { return answered == 3; }));
    for (auto a : answers) {
        EXPECT_EQ(a, offset(40));
    }
    ASSERT_TRUE(close(*log));
    log.reset();
    auto again = open(small_segments());
    EXPECT_EQ(again->start_offset(), offset(40));
}

TEST_F(log_start_test, survives_a_reopen) {
    std::vector<std::vector<std::byte>> all;
    {
        auto log = open(small_segments());
        all = fill(*log, 80);
        ASSERT_TRUE(advance(*log, offset(33)));
        ASSERT_TRUE(close(*log));
    }
    drain();
    auto log = open(small_segments());
    EXPECT_EQ(log->start_offset(), offset(33));
    EXPECT_EQ(log->next_offset(), offset(80));
    EXPECT_EQ(log->read(offset(0), 1 << 20).error(), make_error_code(errc::offset_out_of_range));
    auto rest = read_all(*log, offset(33));
    ASSERT_EQ(rest.size(), 47u);
    EXPECT_EQ(rest.front(), all[33]);
}

TEST_F(log_start_test, a_crash_after_recording_the_start_but_before_deleting_segments) {
    std::vector<std::vector<std::byte>> all;
    std::vector<std::filesystem::path> files_before;
    {
        auto log = open(small_segments());
        all = fill(*log, 80);
        files_before = segment_files(dir());
    }
    drain();
    ASSERT_GT(files_before.size(), 3u);
    // What `advance_start` writes, as if the process died right after the rename: the file
    // is in place and every segment still on disk. Written by a log in another directory.
    {
        auto other = open(small_segments(), "donor");
        fill(*other, 80);
        ASSERT_TRUE(advance(*other, offset(61)));
        drain();
        std::filesystem::copy_file(dir("donor") / "log_start", dir() / "log_start");
    }
    ASSERT_EQ(segment_files(dir()), files_before);

    auto log = open(small_segments());
    EXPECT_EQ(log->start_offset(), offset(61));
    auto rest = read_all(*log, offset(61));
    ASSERT_EQ(rest.size(), 19u);
    EXPECT_EQ(rest.front(), all[61]);
    EXPECT_EQ(log->read(offset(60), 1 << 20).error(), make_error_code(errc::offset_out_of_range));
    // Opening deleted the segments wholly below the start.
    drain();
    EXPECT_LT(segment_files(dir()).size(), files_before.size());
    EXPECT_EQ(segment_files(dir()).size(), log->segment_count());
}

TEST_F(log_start_test, a_start_past_a_cut_tail_is_clamped_to_the_log_end) {
    {
        auto log = open(small_segments());
        fill(*log, 30);
        ASSERT_TRUE(advance(*log, offset(30)));
        ASSERT_TRUE(close(*log));
    }
    drain();
    // The newest segment loses its last bytes from outside, as a torn write would leave it.
    auto files = segment_files(dir());
    ASSERT_FALSE(files.empty());
    std::filesystem::remove(dir() / "recovery_point");
    const auto size = std::filesystem::file_size(files.back());
    ASSERT_GT(size, 10u);
    std::filesystem::resize_file(files.back(), size - 10);

    auto log = open(small_segments());
    ASSERT_TRUE(log->recovery().torn);
    EXPECT_LT(log->next_offset(), offset(30));
    EXPECT_EQ(log->start_offset(), log->next_offset());
}

TEST_F(log_start_test, a_damaged_start_file_is_ignored) {
    {
        auto log = open(small_segments());
        fill(*log, 30);
        ASSERT_TRUE(advance(*log, offset(12)));
        ASSERT_TRUE(close(*log));
    }
    drain();
    {
        auto f = file_handle::open(dir() / "log_start", O_WRONLY);
        ASSERT_TRUE(f);
        const std::byte junk[2] = {std::byte{0xff}, std::byte{0xee}};
        ASSERT_TRUE(f.value().pwrite(junk, 10));
    }
    auto log = open(small_segments());
    EXPECT_LT(log->start_offset(), offset(12));
}

} // namespace
} // namespace runnel::storage
