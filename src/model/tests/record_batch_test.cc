#include "model/model.h"

#include <gtest/gtest.h>

#include <limits>

#include <random>
#include <string>

namespace runnel::model {
namespace {

std::string str(std::span<const std::byte> b) {
    return {reinterpret_cast<const char*>(b.data()), b.size()};
}

TEST(varint, round_trips_extremes) {
    for (int64_t v : {int64_t{0}, int64_t{1}, int64_t{-1}, int64_t{63}, int64_t{-64}, int64_t{300},
                      std::numeric_limits<int64_t>::max(), std::numeric_limits<int64_t>::min()}) {
        std::vector<std::byte> buf;
        varint::append(buf, v);
        std::size_t pos = 0;
        auto back = varint::read(buf, pos);
        ASSERT_TRUE(back);
        EXPECT_EQ(*back, v);
        EXPECT_EQ(pos, buf.size());
    }
    std::vector<std::byte> endless(11, std::byte{0xff});
    std::size_t pos = 0;
    EXPECT_FALSE(varint::read(endless, pos));
}

TEST(record_batch, builder_output_validates_and_decodes) {
    record_batch_builder b;
    record_batch_builder::header_kv hs[] = {{"trace", "abc"}, {"empty", std::nullopt}};
    b.add("k1", "v1", event_time(1000), hs);
    b.add(std::nullopt, "v2", event_time(1005));
    b.add("k3", std::nullopt, event_time(999));
    auto batch = b.build(offset(42));

    auto h = validate_batch(batch.bytes());
    ASSERT_TRUE(h) << h.error().message();
    EXPECT_EQ(h.value().base_offset, offset(42));
    EXPECT_EQ(h.value().last_offset(), offset(44));
    EXPECT_EQ(h.value().record_count, 3);
    EXPECT_EQ(h.value().max_timestamp, event_time(1005));
    EXPECT_EQ(h.value().first_timestamp, event_time(1000));

    auto recs = decode_records(batch.bytes());
    ASSERT_TRUE(recs) << recs.error().message();
    ASSERT_EQ(recs.value().size(), 3u);
    const auto& r0 = recs.value()[0];
    EXPECT_EQ(r0.offset_value, offset(42));
    EXPECT_EQ(str(*r0.key), "k1");
    EXPECT_EQ(str(*r0.value), "v1");
    ASSERT_EQ(r0.headers.size(), 2u);
    EXPECT_EQ(str(r0.headers[0].first), "trace");
    EXPECT_EQ(str(*r0.headers[0].second), "abc");
    EXPECT_FALSE(r0.headers[1].second);
    EXPECT_FALSE(recs.value()[1].key);
    EXPECT_FALSE(recs.value()[2].value);
    EXPECT_EQ(recs.value()[2].timestamp, event_time(999));
    EXPECT_EQ(recs.value()[2].offset_value, offset(44));
}

TEST(record_batch, base_offset_stamp_keeps_crc_valid) {
    record_batch_builder b;
    b.add("k", "v", event_time(1));
    auto batch = b.build();
    batch.set_base_offset(offset(1'000'000));
    EXPECT_TRUE(validate_batch(batch.bytes()));
    EXPECT_EQ(parse_batch_header(batch.bytes()).value().base_offset, offset(1'000'000));
}

// A base offset whose last offset would not fit an int64 is refused, not overflowed.
TEST(record_batch, a_base_offset_whose_last_offset_overflows_is_refused) {
    record_batch_builder b;
    b.add("k", "v", event_time(1));
    b.add("k", "w", event_time(2));
    auto batch = b.build();
    batch.set_base_offset(offset(std::numeric_limits<int64_t>::max() - 2));
    EXPECT_TRUE(parse_batch_header(batch.bytes()));
    batch.set_base_offset(offset(std::numeric_limits<int64_t>::max() - 1));
    EXPECT_EQ(parse_batch_header(batch.bytes()).error(), errc::batch_length_invalid);
    batch.set_base_offset(offset(std::numeric_limits<int64_t>::max()));
    EXPECT_FALSE(parse_batch_header(batch.bytes()));
}

TEST(record_batch, every_flipped_bit_after_the_crc_is_detected) {
    record_batch_builder b;
    b.add("key", "some value", event_time(7));
    auto batch = b.build();
    auto bytes = byte_buffer::copy_of(batch.bytes());
    for (std::size_t i = batch_layout::attributes; i < bytes.size(); ++i) {
        for (int bit = 0; bit < 8; ++bit) {
            bytes.data()[i] ^= static_cast<std::byte>(1 << bit);
            auto r = validate_batch(bytes.span());
            EXPECT_FALSE(r) << "byte " << i << " bit " << bit;
            bytes.data()[i] ^= static_cast<std::byte>(1 << bit);
        }
    }
    EXPECT_TRUE(validate_batch(bytes.span()));
}

TEST(record_batch, rejects_truncation_bad_magic_and_trailing_bytes) {
    record_batch_builder b;
    b.add("key", "value", event_time(7));
    auto batch = b.build();
    auto bytes = batch.bytes();
    for (std::size_t n = 0; n < bytes.size(); ++n) {
        auto r = validate_batch(bytes.first(n));
        ASSERT_FALSE(r);
        EXPECT_EQ(r.error(), errc::batch_truncated) << n;
    }
    auto copy = byte_buffer::copy_of(bytes);
    copy.data()[batch_layout::magic] = std::byte{1};
    EXPECT_EQ(validate_batch(copy.span()).error(), errc::unsupported_magic);

    std::vector<std::byte> longer(bytes.begin(), bytes.end());
    longer.push_back(std::byte{0});
    auto buf = byte_buffer::copy_of(longer);
    EXPECT_EQ(record_batch::from_bytes(std::move(buf)).error(), errc::batch_length_invalid);
}

TEST(record_batch, decoding_random_garbage_never_crashes) {
    std::mt19937 rng(11);
    record_batch_builder b;
    for (int i = 0; i < 5; ++i) {
        b.add("key", std::string(static_cast<std::size_t>(i * 3), 'x'), event_time(i));
    }
    auto good = b.build();
    for (int round = 0; round < 2000; ++round) {
        auto bytes = byte_buffer::copy_of(good.bytes());
        auto i = batch_layout::header_size + rng() % (bytes.size() - batch_layout::header_size);
        bytes.data()[i] = static_cast<std::byte>(rng());
        (void)decode_records(bytes.span()); // may fail; must not read out of bounds
    }
}

} // namespace
} // namespace runnel::model
