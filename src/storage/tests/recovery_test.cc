#include <gtest/gtest.h>

#include <fstream>

#include "storage/tests/log_fixture.h"

namespace runnel::storage {
namespace {

using namespace testing;
using model::offset;

class recovery_test : public log_fixture {
protected:
    void copy_dir(const std::filesystem::path& from, const std::filesystem::path& to) {
        std::filesystem::remove_all(to);
        std::filesystem::copy(from, to, std::filesystem::copy_options::recursive);
    }
    void cut(const std::filesystem::path& file, uint64_t size) {
        std::filesystem::resize_file(file, size);
    }
    void flip_bit(const std::filesystem::path& file, uint64_t pos, int bit) {
        std::fstream f(file, std::ios::in | std::ios::out | std::ios::binary);
        f.seekg(static_cast<std::streamoff>(pos));
        char c = 0;
        f.read(&c, 1);
        c = static_cast<char>(c ^ (1 << bit));
        f.seekp(static_cast<std::streamoff>(pos));
        f.write(&c, 1);
    }
};

// The last batch was written but never flushed, then the process died and the file was
// cut at every byte inside that batch, as an interrupted write leaves it.
TEST_F(recovery_test, torn_tail_cut_at_every_byte_of_the_last_batch) {
    std::vector<std::vector<std::byte>> expected;
    uint64_t last_start = 0;
    uint64_t last_end = 0;
    {
        auto log = open();
        for (uint64_t i = 0; i < 20; ++i) {
            auto b = make_batch(i, 50, 2);
            ASSERT_TRUE(log->append(b));
            expected.push_back(bytes_of(b));
        }
        ASSERT_TRUE(flush(*log));
        last_start = log->size_bytes();
        auto last = make_batch(20, 80, 3);
        ASSERT_TRUE(log->append(last));
        last_end = log->size_bytes();
        // Dropped without close: a crash.
    }
    const auto pristine = _dir / "pristine";
    copy_dir(dir(), pristine);
    for (uint64_t pos = last_start; pos < last_end; ++pos) {
        copy_dir(pristine, dir());
        cut(segment_files(dir()).back(), pos);
        const auto torn_before = fault_count("runnel_storage_torn_tails_truncated_total");
        auto log = open();
        ASSERT_TRUE(log);
        EXPECT_EQ(fault_count("runnel_storage_torn_tails_truncated_total"), torn_before + (pos == last_start ? 0 : 1));
        EXPECT_EQ(log->next_offset(), offset(40)) << "cut at " << pos;
        EXPECT_FALSE(log->recovery().corrupt);
        if (pos == last_start) {
            EXPECT_FALSE(log->recovery().torn) << "the file ends on a batch boundary";
        } else {
            ASSERT_TRUE(log->recovery().torn) << "cut at " << pos;
            const auto& t = *log->recovery().torn;
            EXPECT_EQ(t.position, last_start);
            EXPECT_EQ(t.bytes_dropped, pos - last_start);
            EXPECT_EQ(t.first_offset_dropped, offset(40));
            if (pos - last_start >= model::batch_layout::header_size) {
                EXPECT_EQ(t.last_offset_dropped, offset(42));
            }
        }
        EXPECT_EQ(log->size_bytes(), last_start);
        EXPECT_EQ(read_all(*log, offset(0)), expected);
        auto again = make_batch(77, 10);
        ASSERT_TRUE(log->append(again));
        EXPECT_EQ(again.header().base_offset, offset(40));
    }
}

TEST_F(recovery_test, cut_inside_durable_data_is_corruption_not_a_torn_tail) {
    uint64_t second_last_start = 0;
    {
        auto log = open();
        for (uint64_t i = 0; i < 10; ++i) {
            if (i == 9) {
                second_last_start = log->size_bytes();
            }
            auto b = make_batch(i, 100);
            ASSERT_TRUE(log->append(b));
        }
        ASSERT_TRUE(flush(*log)); // all ten are durable
    }
    cut(segment_files(dir()).back(), second_last_start + 30);
    const auto corrupt_before = fault_count("runnel_storage_corrupt_partitions_total");
    auto log = open();
    EXPECT_FALSE(log->recovery().torn);
    ASSERT_TRUE(log->recovery().corrupt);
    EXPECT_EQ(fault_count("runnel_storage_corrupt_partitions_total"), corrupt_before + 1);
    EXPECT_EQ(log->recovery().corrupt->offset, offset(9));
    EXPECT_EQ(log->recovery().corrupt->position, second_last_start);
    EXPECT_EQ(read_all(*log, offset(0)).size(), 9u);
    EXPECT_EQ(log->read(offset(9), 100).error(), errc::corrupt_data);
    auto b = make_batch(50, 10);
    EXPECT_EQ(log->append(b).error(), errc::corrupt_data);
}

TEST_F(recovery_test, flipped_bit_in_a_middle_batch_of_a_sealed_segment) {
    log_config cfg;
    cfg.segment_bytes = 4096;
    cfg.index_interval_bytes = 512;
    std::vector<std::vector<std::byte>> expected;
    {
        auto log = open(cfg);
        for (uint64_t i = 0; i < 100; ++i) {
            auto b = make_batch(i, 200);
            ASSERT_TRUE(log->append(b));
            expected.push_back(bytes_of(b));
        }
        ASSERT_TRUE(close(*log));
    }
    auto files = segment_files(dir());
    ASSERT_GT(files.size(), 3u);
    // Segment 1's third batch: skip two whole batches of segment 1.
    const auto batch_size = expected[0].size();
    const uint64_t seg1_batches = 4096 / batch_size;
    const uint64_t bad_offset = seg1_batches + 2;
    flip_bit(files[1], 2 * batch_size + 100, 3);

    auto log = open(cfg);
    EXPECT_FALSE(log->recovery().torn);
    EXPECT_EQ(log->next_offset(), offset(100)); // nothing was cut
    // Reading from the start serves everything before the bad batch, then refuses.
    std::optional<std::error_code> error;
    auto got = read_all(*log, offset(0), 1 << 20, &error);
    EXPECT_EQ(error, std::error_code(errc::corrupt_data));
    ASSERT_EQ(got.size(), bad_offset);
    EXPECT_TRUE(std::equal(got.begin(), got.end(), expected.begin()));
    EXPECT_EQ(log->read(offset(static_cast<int64_t>(bad_offset)), 100).error(), errc::corrupt_data);
    // Once known, nothing past it is served, even from a later segment.
    EXPECT_EQ(log->read(offset(90), 100).error(), errc::corrupt_data);
    EXPECT_EQ(log->timequery(model::event_time(1'700'000'000'000 + 95)).error(), errc::corrupt_data);
    auto b = make_batch(500, 10);
    EXPECT_EQ(log->append(b).error(), errc::corrupt_data);
    // Before it, reads still work.
    EXPECT_TRUE(log->read(offset(1), 100));
}

TEST_F(recovery_test, flipped_bit_in_durable_active_segment_keeps_the_bytes_after_it) {
    {
        auto log = open();
        for (uint64_t i = 0; i < 10; ++i) {
            auto b = make_batch(i, 100);
            ASSERT_TRUE(log->append(b));
        }
        ASSERT_TRUE(flush(*log));
    }
    auto file = segment_files(dir()).back();
    const auto size = std::filesystem::file_size(file);
    // Every field of a middle batch, including the base offset the CRC does not cover.
    const uint64_t batch = size / 10;
    for (uint64_t pos = 4 * batch; pos < 5 * batch; pos += 3) {
        if (pos - 4 * batch >= model::batch_layout::leader_epoch
            && pos - 4 * batch < model::batch_layout::magic) {
            continue; // the leader epoch is neither covered by the CRC nor checked by the log
        }
        flip_bit(file, pos, static_cast<int>(pos % 8));
        auto log = open();
        ASSERT_TRUE(log->recovery().corrupt) << "flipped byte " << pos;
        EXPECT_EQ(log->recovery().corrupt->offset, offset(4));
        EXPECT_EQ(log->recovery().corrupt->position, 4 * batch);
        EXPECT_EQ(std::filesystem::file_size(file), size);
        flip_bit(file, pos, static_cast<int>(pos % 8));
    }
    flip_bit(file, size / 2, 0);
    auto log = open();
    ASSERT_TRUE(log->recovery().corrupt);
    EXPECT_FALSE(log->recovery().torn);
    EXPECT_EQ(std::filesystem::file_size(file), size) << "acknowledged bytes after it are kept";
    EXPECT_EQ(log->read(log->recovery().corrupt->offset, 100).error(), errc::corrupt_data);
}

TEST_F(recovery_test, missing_and_stale_indexes_are_rebuilt) {
    log_config cfg;
    cfg.segment_bytes = 4096;
    cfg.index_interval_bytes = 300;
    std::vector<std::vector<std::byte>> expected;
    {
        auto log = open(cfg);
        for (uint64_t i = 0; i < 120; ++i) {
            auto b = make_batch(i, 150, 1, {int64_t(1000 + i)});
            ASSERT_TRUE(log->append(b));
            expected.push_back(bytes_of(b));
        }
        ASSERT_TRUE(close(*log));
    }
    auto files = segment_files(dir());
    ASSERT_GT(files.size(), 4u);
    auto with = [](std::filesystem::path p, const char* ext) { return p.replace_extension(ext); };
    std::filesystem::remove(with(files[0], ".index"));          // missing
    std::filesystem::remove(with(files[1], ".timeindex"));      // half missing
    std::filesystem::resize_file(with(files[2], ".index"), 20); // cut short
    std::filesystem::copy_file(with(files[0], ".timeindex"), with(files[3], ".timeindex"),
                               std::filesystem::copy_options::overwrite_existing); // another segment's

    auto log = open(cfg);
    EXPECT_EQ(log->recovery().indexes_rebuilt, 4u);
    EXPECT_FALSE(log->recovery().corrupt);
    EXPECT_EQ(read_all(*log, offset(0)), expected);
    for (int64_t i = 0; i < 120; i += 5) {
        auto r = log->read(offset(i), 1);
        ASSERT_TRUE(r);
        EXPECT_EQ(std::vector<std::byte>(r.value().bytes.span().begin(), r.value().bytes.span().end()),
                  expected[static_cast<std::size_t>(i)]);
        EXPECT_EQ(log->timequery(model::event_time(1000 + i)).value()->offset, offset(i));
    }
    EXPECT_TRUE(std::filesystem::exists(with(files[0], ".index")));
    ASSERT_TRUE(close(*log));
    log.reset();
    auto again = open(cfg);
    EXPECT_EQ(again->recovery().indexes_rebuilt, 0u) << "rebuilt indexes were written back";
}

TEST_F(recovery_test, without_a_durable_point_a_bad_tail_is_torn) {
    {
        auto log = open();
        for (uint64_t i = 0; i < 5; ++i) {
            auto b = make_batch(i, 100);
            ASSERT_TRUE(log->append(b));
        }
    } // never flushed: no durable point recorded
    auto file = segment_files(dir()).back();
    cut(file, std::filesystem::file_size(file) - 1);
    auto log = open();
    ASSERT_TRUE(log->recovery().torn);
    EXPECT_EQ(log->next_offset(), offset(4));
}

TEST_F(recovery_test, garbage_segment_names_and_temp_files_are_ignored) {
    {
        auto log = open();
        auto b = make_batch(1, 10);
        ASSERT_TRUE(log->append(b));
        ASSERT_TRUE(close(*log));
    }
    std::ofstream(dir() / "notes.txt") << "hello";
    std::ofstream(dir() / "00000000000000000005.log.tmp") << "partial";
    auto log = open();
    EXPECT_EQ(log->next_offset(), offset(1));
    EXPECT_FALSE(std::filesystem::exists(dir() / "00000000000000000005.log.tmp"));
}

} // namespace
} // namespace runnel::storage
