// The primitive codec: every type, both encodings, and every malformed-length case.

#include <gtest/gtest.h>

#include <initializer_list>
#include <limits>

#include "kafka/protocol/protocol.h"

namespace runnel::kafka::protocol {
namespace {

std::vector<std::byte> b(std::initializer_list<int> v) {
    std::vector<std::byte> out;
    for (int x : v) {
        out.push_back(static_cast<std::byte>(x));
    }
    return out;
}

std::vector<std::byte> encoded(auto fn) {
    writer w;
    fn(w);
    return w.take();
}

TEST(wire, fixed_width_big_endian) {
    auto bytes = encoded([](writer& w) {
        w.write_int8(-2);
        w.write_int16(0x0102);
        w.write_int32(-1);
        w.write_int64(0x0102030405060708);
        w.write_uint16(0xfffe);
        w.write_uint32(0x80000001u);
        w.write_bool(true);
        w.write_float64(1.5);
    });
    EXPECT_EQ(bytes, b({0xfe, 1, 2, 0xff, 0xff, 0xff, 0xff, 1, 2, 3, 4, 5, 6, 7, 8, 0xff, 0xfe, 0x80,
                        0, 0, 1, 1, 0x3f, 0xf8, 0, 0, 0, 0, 0, 0}));
    reader r(bytes);
    EXPECT_EQ(r.read_int8().value(), -2);
    EXPECT_EQ(r.read_int16().value(), 0x0102);
    EXPECT_EQ(r.read_int32().value(), -1);
    EXPECT_EQ(r.read_int64().value(), 0x0102030405060708);
    EXPECT_EQ(r.read_uint16().value(), 0xfffe);
    EXPECT_EQ(r.read_uint32().value(), 0x80000001u);
    EXPECT_EQ(r.read_bool().value(), true);
    EXPECT_EQ(r.read_float64().value(), 1.5);
    EXPECT_TRUE(r.empty());
    EXPECT_EQ(r.read_int8().error(), errc::truncated);
}

TEST(wire, fixed_width_truncated) {
    auto three = b({1, 2, 3});
    EXPECT_EQ(reader(three).read_int32().error(), errc::truncated);
    EXPECT_EQ(reader(three).read_int64().error(), errc::truncated);
    EXPECT_EQ(reader(three).read_uuid().error(), errc::truncated);
    EXPECT_EQ(reader(three).read_float64().error(), errc::truncated);
    EXPECT_EQ(reader({}).read_bool().error(), errc::truncated);
    // Any non-zero byte is true.
    auto two = b({2});
    EXPECT_TRUE(reader(two).read_bool().value());
}

TEST(wire, uuid) {
    uuid u;
    for (std::size_t i = 0; i < 16; ++i) {
        u.value[i] = static_cast<uint8_t>(i + 1);
    }
    auto bytes = encoded([&](writer& w) { w.write_uuid(u); });
    EXPECT_EQ(bytes, b({1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}));
    EXPECT_EQ(reader(bytes).read_uuid().value(), u);
    EXPECT_TRUE(uuid{}.is_zero());
}

TEST(wire, unsigned_varint) {
    struct {
        uint32_t v;
        std::vector<std::byte> enc;
    } cases[] = {
      {0, b({0})},
      {1, b({1})},
      {127, b({0x7f})},
      {128, b({0x80, 0x01})},
      {300, b({0xac, 0x02})},
      {16383, b({0xff, 0x7f})},
      {16384, b({0x80, 0x80, 0x01})},
      {0xffffffffu, b({0xff, 0xff, 0xff, 0xff, 0x0f})},
    };
    for (const auto& c : cases) {
        EXPECT_EQ(encoded([&](writer& w) { w.write_uvarint(c.v); }), c.enc) << c.v;
        reader r(c.enc);
        EXPECT_EQ(r.read_uvarint().value(), c.v);
        EXPECT_TRUE(r.empty());
        for (std::size_t len = 0; len < c.enc.size(); ++len) {
            std::vector<std::byte> cut(c.enc.begin(), c.enc.begin() + static_cast<long>(len));
            EXPECT_EQ(reader(cut).read_uvarint().error(), errc::truncated);
        }
    }
    auto six = b({0x80, 0x80, 0x80, 0x80, 0x80, 0x01});
    EXPECT_EQ(reader(six).read_uvarint().error(), errc::varint_too_long);
    auto past32 = b({0xff, 0xff, 0xff, 0xff, 0x1f});
    EXPECT_EQ(reader(past32).read_uvarint().error(), errc::varint_too_long);
}

TEST(wire, zigzag_varint_and_varlong) {
    struct {
        int32_t v;
        std::vector<std::byte> enc;
    } cases[] = {
      {0, b({0})},
      {-1, b({1})},
      {1, b({2})},
      {-2, b({3})},
      {63, b({0x7e})},
      {-64, b({0x7f})},
      {64, b({0x80, 0x01})},
      {std::numeric_limits<int32_t>::max(), b({0xfe, 0xff, 0xff, 0xff, 0x0f})},
      {std::numeric_limits<int32_t>::min(), b({0xff, 0xff, 0xff, 0xff, 0x0f})},
    };
    for (const auto& c : cases) {
        EXPECT_EQ(encoded([&](writer& w) { w.write_varint(c.v); }), c.enc) << c.v;
        EXPECT_EQ(reader(c.enc).read_varint().value(), c.v);
        EXPECT_EQ(reader(c.enc).read_varlong().value(), c.v);
    }
    auto min64 = encoded([](writer& w) { w.write_varlong(std::numeric_limits<int64_t>::min()); });
    EXPECT_EQ(min64.size(), 10u);
    EXPECT_EQ(reader(min64).read_varlong().value(), std::numeric_limits<int64_t>::min());
    // Past int32: too long for a varint, fine for a varlong.
    auto big = encoded([](writer& w) { w.write_varlong(int64_t{1} << 40); });
    EXPECT_EQ(reader(big).read_varint().error(), errc::varint_too_long);
    EXPECT_EQ(reader(big).read_varlong().value(), int64_t{1} << 40);
    std::vector<std::byte> eleven(11, std::byte{0x80});
    EXPECT_EQ(reader(eleven).read_varlong().error(), errc::varint_too_long);
    auto cut = b({0x80, 0x80});
    EXPECT_EQ(reader(cut).read_varint().error(), errc::truncated);
    EXPECT_EQ(reader(cut).read_varlong().error(), errc::truncated);
}

TEST(wire, strings_classic_and_compact) {
    auto classic = encoded([](writer& w) { w.write_string("abc", false); });
    EXPECT_EQ(classic, b({0, 3, 'a', 'b', 'c'}));
    auto compact = encoded([](writer& w) { w.write_string("abc", true); });
    EXPECT_EQ(compact, b({4, 'a', 'b', 'c'}));
    EXPECT_EQ(reader(classic).read_string(false).value(), "abc");
    EXPECT_EQ(reader(compact).read_string(true).value(), "abc");
    EXPECT_EQ(reader(compact).read_string_view(true).value(), "abc");

    auto null_classic = encoded([](writer& w) { w.write_nullable_string(std::nullopt, false); });
    EXPECT_EQ(null_classic, b({0xff, 0xff}));
    auto null_compact = encoded([](writer& w) { w.write_nullable_string(std::nullopt, true); });
    EXPECT_EQ(null_compact, b({0}));
    EXPECT_EQ(reader(null_classic).read_nullable_string(false).value(), std::nullopt);
    EXPECT_EQ(reader(null_compact).read_nullable_string(true).value(), std::nullopt);
    // Null where the field is not nullable.
    EXPECT_EQ(reader(null_classic).read_string(false).error(), errc::negative_length);
    EXPECT_EQ(reader(null_compact).read_string(true).error(), errc::negative_length);
    auto minus2 = b({0xff, 0xfe});
    EXPECT_EQ(reader(minus2).read_nullable_string(false).error(), errc::negative_length);
    // Longer than the bytes left.
    auto short_classic = b({0, 5, 'a'});
    EXPECT_EQ(reader(short_classic).read_string(false).error(), errc::truncated);
    auto short_compact = b({6, 'a'});
    EXPECT_EQ(reader(short_compact).read_nullable_string(true).error(), errc::truncated);
    // Compact strings cannot exceed 32767 bytes either.
    auto huge = encoded([](writer& w) { w.write_uvarint(32769); });
    huge.resize(huge.size() + 32768, std::byte{'x'});
    EXPECT_EQ(reader(huge).read_string(true).error(), errc::string_too_long);
    std::string too_long(32768, 'x');
    writer w;
    EXPECT_THROW(w.write_string(too_long, true), std::system_error);
    // The empty string is not null.
    auto empty = encoded([](writer& w) { w.write_string("", true); });
    EXPECT_EQ(empty, b({1}));
    EXPECT_EQ(reader(empty).read_nullable_string(true).value(), std::string());
}

TEST(wire, bytes_classic_and_compact) {
    bytes payload = b({9, 8, 7});
    auto classic = encoded([&](writer& w) { w.write_bytes(payload, false); });
    EXPECT_EQ(classic, b({0, 0, 0, 3, 9, 8, 7}));
    auto compact = encoded([&](writer& w) { w.write_nullable_bytes(payload, true); });
    EXPECT_EQ(compact, b({4, 9, 8, 7}));
    EXPECT_EQ(reader(classic).read_bytes(false).value(), payload);
    EXPECT_EQ(reader(compact).read_nullable_bytes(true).value(), payload);
    auto view = reader(compact).read_nullable_bytes_view(true).value();
    ASSERT_TRUE(view);
    EXPECT_EQ(view->data(), compact.data() + 1); // no copy

    auto null_classic = encoded([](writer& w) { w.write_nullable_bytes(std::optional<bytes>(), false); });
    EXPECT_EQ(null_classic, b({0xff, 0xff, 0xff, 0xff}));
    EXPECT_EQ(reader(null_classic).read_nullable_bytes(false).value(), std::nullopt);
    EXPECT_EQ(reader(null_classic).read_bytes(false).error(), errc::negative_length);
    auto minus5 = b({0xff, 0xff, 0xff, 0xfb});
    EXPECT_EQ(reader(minus5).read_nullable_bytes(false).error(), errc::negative_length);
    auto lying = b({0x7f, 0xff, 0xff, 0xff, 1});
    EXPECT_EQ(reader(lying).read_bytes(false).error(), errc::truncated);
    auto lying_compact = b({0xff, 0xff, 0xff, 0xff, 0x0f});
    EXPECT_EQ(reader(lying_compact).read_bytes(true).error(), errc::invalid_length);
}

TEST(wire, array_lengths) {
    auto three = encoded([](writer& w) {
        w.write_array_length(3, false);
        w.write_raw(b({1, 2, 3}));
    });
    EXPECT_EQ(reader(three).read_array_length(false, false).value(), 3);
    auto three_compact = encoded([](writer& w) {
        w.write_array_length(3, true);
        w.write_raw(b({1, 2, 3}));
    });
    EXPECT_EQ(three_compact[0], std::byte{4});
    EXPECT_EQ(reader(three_compact).read_array_length(true, false).value(), 3);

    auto null_classic = encoded([](writer& w) { w.write_null_array(false); });
    auto null_compact = encoded([](writer& w) { w.write_null_array(true); });
    EXPECT_EQ(reader(null_classic).read_array_length(false, true).value(), -1);
    EXPECT_EQ(reader(null_compact).read_array_length(true, true).value(), -1);
    EXPECT_EQ(reader(null_classic).read_array_length(false, false).error(), errc::negative_length);
    EXPECT_EQ(reader(null_compact).read_array_length(true, false).error(), errc::negative_length);
    auto minus2 = b({0xff, 0xff, 0xff, 0xfe});
    EXPECT_EQ(reader(minus2).read_array_length(false, true).error(), errc::negative_length);
    // A count no input could hold is refused before anything is allocated.
    auto claims_many = b({0x7f, 0xff, 0xff, 0xff, 0});
    EXPECT_EQ(reader(claims_many).read_array_length(false, false).error(), errc::invalid_length);
    auto claims_many_compact = b({0xff, 0xff, 0xff, 0xff, 0x07, 0});
    EXPECT_EQ(reader(claims_many_compact).read_array_length(true, false).error(),
              errc::invalid_length);
    auto past_int32 = b({0xff, 0xff, 0xff, 0xff, 0x0f});
    EXPECT_EQ(reader(past_int32).read_array_length(true, false).error(), errc::invalid_length);
}

TEST(wire, tagged_fields_are_skipped) {
    // Two unknown tagged fields: tag 5 with 3 bytes, tag 300 with none.
    auto section = b({2, 5, 3, 0xaa, 0xbb, 0xcc, 0xac, 0x02, 0, 0x42});
    reader r(section);
    ASSERT_TRUE(r.skip_tagged_fields());
    EXPECT_EQ(r.read_int8().value(), 0x42);
    for (std::size_t len = 0; len + 1 < section.size(); ++len) {
        std::vector<std::byte> cut(section.begin(), section.begin() + static_cast<long>(len));
        EXPECT_FALSE(reader(cut).skip_tagged_fields()) << len;
    }
    // A field whose size runs past the end.
    auto lying = b({1, 0, 9, 1});
    EXPECT_EQ(reader(lying).skip_tagged_fields().error(), errc::truncated);
}

TEST(wire, unknown_tags_in_messages_are_ignored) {
    // heartbeat_response v4: throttle, error, then a tagged section with an unknown tag 7.
    auto bytes = b({0, 0, 0, 5, 0, 16, 1, 7, 2, 0xde, 0xad});
    reader r(bytes);
    heartbeat_response m;
    ASSERT_TRUE(m.decode(r, 4));
    EXPECT_TRUE(r.empty());
    EXPECT_EQ(m.throttle_time_ms, 5);
    EXPECT_EQ(m.error_code, 16);
}

TEST(wire, known_tag_with_wrong_size_is_rejected) {
    // api_versions_response v3 with tag 1 (finalized_features_epoch, an int64) of 9 bytes.
    auto bytes = b({0, 0, 1, 0, 0, 0, 0, 1, 1, 9, 0, 0, 0, 0, 0, 0, 0, 1, 0xff});
    reader r(bytes);
    api_versions_response m;
    EXPECT_EQ(m.decode(r, 3).error(), errc::invalid_tagged_field);
    // The same with 8 bytes decodes.
    auto good = b({0, 0, 1, 0, 0, 0, 0, 1, 1, 8, 0, 0, 0, 0, 0, 0, 0, 9});
    reader r2(good);
    ASSERT_TRUE(m.decode(r2, 3));
    EXPECT_EQ(m.finalized_features_epoch, 9);
}

TEST(wire, frames) {
    writer w;
    w.write_int8(1);
    auto mark = w.begin_frame();
    w.write_int32(7);
    w.end_frame(mark);
    EXPECT_EQ(w.span().size(), 9u);
    EXPECT_EQ(read_be<int32_t>(w.span().data() + 1), 4);
}

TEST(wire, errc_category) {
    std::error_code ec = errc::truncated;
    EXPECT_EQ(std::string(ec.category().name()), "kafka.protocol");
    EXPECT_EQ(ec.message(), "kafka message is truncated");
    result<int> r = errc::varint_too_long;
    EXPECT_EQ(r.error(), errc::varint_too_long);
}

} // namespace
} // namespace runnel::kafka::protocol
