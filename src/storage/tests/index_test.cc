#include <gtest/gtest.h>

#include "storage/index.h"
#include "storage/tests/log_fixture.h"

namespace runnel::storage {
namespace {

model::batch_header header(int64_t base, int32_t count, int64_t max_ts, int32_t length) {
    model::batch_header h;
    h.base_offset = model::offset(base);
    h.last_offset_delta = count - 1;
    h.max_timestamp = model::event_time(max_ts);
    h.length = length;
    return h;
}

TEST(segment_index, sparse_entries_and_lookups) {
    segment_index idx(model::offset(100), 1000);
    uint32_t pos = 0;
    for (int i = 0; i < 50; ++i) {
        auto h = header(100 + 2 * i, 2, 10 * i, 288); // 300 bytes per batch
        idx.on_batch(h, pos);
        pos += 300;
    }
    // One entry per >= 1000 bytes: batches 0, 4, 8, …
    ASSERT_EQ(idx.offsets().size(), 13u);
    EXPECT_EQ(idx.offsets()[1].relative_offset, 8u);
    EXPECT_EQ(idx.offsets()[1].position, 1200u);

    EXPECT_EQ(idx.position_for_offset(model::offset(50)).first, 0u);
    EXPECT_EQ(idx.position_for_offset(model::offset(107)).first, 0u);
    EXPECT_EQ(idx.position_for_offset(model::offset(108)), (std::pair{1200u, model::offset(108)}));
    EXPECT_EQ(idx.position_for_offset(model::offset(10'000)).first, 14400u);

    EXPECT_EQ(idx.position_for_timestamp(model::event_time(0)), 0u);
    EXPECT_EQ(idx.position_for_timestamp(model::event_time(45)), 1200u); // entries at ts 0, 40
    EXPECT_EQ(idx.position_for_timestamp(model::event_time(1'000'000)), 14400u);
}

TEST(segment_index, files_round_trip_and_reject_damage) {
    auto dir = std::filesystem::temp_directory_path() / fmt::format("runnel-index-{}", ::getpid());
    std::filesystem::create_directories(dir);
    segment_index idx(model::offset(0), 100);
    uint32_t pos = 0;
    for (int i = 0; i < 20; ++i) {
        idx.on_batch(header(i, 1, i, 88), pos);
        pos += 100;
    }
    segment_summary s{pos, model::offset(20), model::event_time(19)};
    auto write = [&](const char* name, const byte_buffer& b) {
        auto f = file_handle::open(dir / name, O_WRONLY | O_CREAT | O_TRUNC);
        ASSERT_TRUE(f);
        ASSERT_TRUE(f.value().pwrite(b.span(), 0));
    };
    write("a.index", idx.encode_offset_index(s));
    write("a.timeindex", idx.encode_time_index(s));

    auto loaded = segment_index::load(dir / "a.index", dir / "a.timeindex", model::offset(0), 100, pos);
    ASSERT_TRUE(loaded);
    EXPECT_EQ(loaded->second.next_offset, model::offset(20));
    EXPECT_EQ(loaded->first.offsets().size(), idx.offsets().size());
    EXPECT_EQ(loaded->first.position_for_offset(model::offset(13)), idx.position_for_offset(model::offset(13)));

    // A segment of another size, a flipped byte, or a missing file: stale.
    EXPECT_FALSE(segment_index::load(dir / "a.index", dir / "a.timeindex", model::offset(0), 100, pos + 1));
    auto bytes = idx.encode_offset_index(s);
    bytes.data()[3] ^= std::byte{1};
    write("b.index", bytes);
    EXPECT_FALSE(segment_index::load(dir / "b.index", dir / "a.timeindex", model::offset(0), 100, pos));
    EXPECT_FALSE(segment_index::load(dir / "none.index", dir / "a.timeindex", model::offset(0), 100, pos));
    std::filesystem::remove_all(dir);
}

} // namespace
} // namespace runnel::storage
