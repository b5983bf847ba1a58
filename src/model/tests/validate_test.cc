#include "model/model.h"

#include <gtest/gtest.h>

#include <zlib.h>
#include <zstd.h>

#include <string>
#include <vector>

namespace runnel::model {
namespace {

namespace L = batch_layout;

using bytes = std::vector<std::byte>;

/// The fields of one record, written the way a client would (or, with the overrides, would not).
struct raw_record {
    int64_t ts_delta = 0;
    int64_t offset_delta = 0;
    std::optional<std::string> key = "k";
    std::optional<std::string> value = "v";
    std::vector<std::pair<std::optional<std::string>, std::optional<std::string>>> headers;
    int64_t length_adjust = 0; ///< added to the record's true length
};

void put_string(bytes& out, const std::optional<std::string>& s) {
    if (!s) {
        varint::append(out, -1);
        return;
    }
    varint::append(out, static_cast<int64_t>(s->size()));
    for (char c : *s) {
        out.push_back(static_cast<std::byte>(c));
    }
}

bytes records_section(const std::vector<raw_record>& recs) {
    bytes out;
    for (const auto& r : recs) {
        bytes rec{std::byte{0}};
        varint::append(rec, r.ts_delta);
        varint::append(rec, r.offset_delta);
        put_string(rec, r.key);
        put_string(rec, r.value);
        varint::append(rec, static_cast<int64_t>(r.headers.size()));
        for (const auto& [k, v] : r.headers) {
            put_string(rec, k);
            put_string(rec, v);
        }
        varint::append(out, static_cast<int64_t>(rec.size()) + r.length_adjust);
        out.insert(out.end(), rec.begin(), rec.end());
    }
    return out;
}

std::vector<raw_record> good_records(int n) {
    std::vector<raw_record> out(static_cast<std::size_t>(n));
    for (int i = 0; i < n; ++i) {
        out[static_cast<std::size_t>(i)].offset_delta = i;
        out[static_cast<std::size_t>(i)].ts_delta = i;
        out[static_cast<std::size_t>(i)].headers = {{"h", "v"}};
    }
    return out;
}

struct header_fields {
    int32_t count = 0;
    int32_t last_offset_delta = -1; ///< -1: count - 1
    int16_t attributes = 0;
    int64_t first_ts = 1000;
    int64_t max_ts = -2; ///< -2: first_ts + count - 1
};

/// A batch around `section` with a correct CRC, whatever its fields say.
bytes make_batch(const bytes& section, header_fields f) {
    if (f.last_offset_delta == -1) f.last_offset_delta = f.count - 1;
    if (f.max_ts == -2) f.max_ts = f.first_ts + f.count - 1;
    bytes b(L::header_size + section.size());
    std::byte* p = b.data();
    write_be<int64_t>(p + L::base_offset, 0);
    write_be<int32_t>(p + L::length, static_cast<int32_t>(b.size() - L::length_field_end));
    write_be<int32_t>(p + L::leader_epoch, -1);
    write_be<int8_t>(p + L::magic, 2);
    write_be<int16_t>(p + L::attributes, f.attributes);
    write_be<int32_t>(p + L::last_offset_delta, f.last_offset_delta);
    write_be<int64_t>(p + L::first_timestamp, f.first_ts);
    write_be<int64_t>(p + L::max_timestamp, f.max_ts);
    write_be<int64_t>(p + L::producer_id, -1);
    write_be<int16_t>(p + L::producer_epoch, -1);
    write_be<int32_t>(p + L::base_sequence, -1);
    write_be<int32_t>(p + L::record_count, f.count);
    std::copy(section.begin(), section.end(), b.begin() + L::header_size);
    write_be<uint32_t>(p + L::crc, compute_batch_crc(b));
    return b;
}

struct outcome {
    std::error_code error;
    std::string why;
};

outcome check(const bytes& batch, std::size_t max_inflated = std::size_t{64} << 20) {
    auto h = validate_batch(batch);
    EXPECT_TRUE(h) << "the test built a batch whose header or CRC is wrong";
    if (!h) return {h.error(), "header"};
    std::string why;
    auto r = validate_produced_batch(batch, h.value(), {max_inflated}, why);
    return {r ? std::error_code() : r.error(), why};
}

bytes gzip(const bytes& in) {
    uLongf n = compressBound(static_cast<uLong>(in.size()));
    bytes out(n);
    EXPECT_EQ(compress2(reinterpret_cast<Bytef*>(out.data()), &n, reinterpret_cast<const Bytef*>(in.data()),
                        static_cast<uLong>(in.size()), 9),
              Z_OK);
    out.resize(n);
    return out;
}

bytes zstd(const bytes& in) {
    bytes out(ZSTD_compressBound(in.size()));
    auto n = ZSTD_compress(out.data(), out.size(), in.data(), in.size(), 3);
    EXPECT_FALSE(ZSTD_isError(n));
    out.resize(n);
    return out;
}

TEST(validate_produced_batch, accepts_what_clients_send) {
    record_batch_builder b;
    record_batch_builder::header_kv hs[] = {{"trace", "abc"}, {"empty", std::nullopt}};
    b.add("k1", "v1", event_time(1000), hs);
    b.add(std::nullopt, std::nullopt, event_time(1005));
    b.add("k3", "", event_time(999));
    auto built = b.build();
    bytes batch(built.bytes().begin(), built.bytes().end());
    auto o = check(batch);
    EXPECT_FALSE(o.error) << o.why;

    const auto section = records_section(good_records(50));
    EXPECT_FALSE(check(make_batch(section, {.count = 50})).error);
    EXPECT_FALSE(check(make_batch(gzip(section), {.count = 50, .attributes = 1})).error);
    EXPECT_FALSE(check(make_batch(zstd(section), {.count = 50, .attributes = 4})).error);
    // No timestamps at all (-1) is allowed.
    auto untimed = good_records(2);
    untimed[1].ts_delta = 0;
    EXPECT_FALSE(check(make_batch(records_section(untimed), {.count = 2, .first_ts = -1, .max_ts = -1})).error);
}

TEST(validate_produced_batch, compacted_topics_need_keys) {
    auto recs = good_records(3);
    recs[2].key = std::nullopt;
    const auto section = records_section(recs);
    for (int16_t codec : {0, 1, 4}) {
        const auto body = codec == 0 ? section : codec == 1 ? gzip(section) : zstd(section);
        const auto batch = make_batch(body, {.count = 3, .attributes = codec});
        EXPECT_FALSE(check(batch).error) << "keys are optional elsewhere";
        auto h = validate_batch(batch);
        ASSERT_TRUE(h);
        std::string why;
        auto r = validate_produced_batch(batch, h.value(), {.require_keys = true}, why);
        ASSERT_FALSE(r);
        EXPECT_EQ(r.error(), errc::record_malformed) << codec;
        EXPECT_EQ(why, "record 2: a compacted topic takes no record without a key");
    }
    // Tombstones (null values) with keys are fine.
    recs[2].key = "k";
    recs[1].value = std::nullopt;
    const auto batch = make_batch(records_section(recs), {.count = 3});
    std::string why;
    EXPECT_TRUE(validate_produced_batch(batch, validate_batch(batch).value(), {.require_keys = true}, why)) << why;
}

TEST(validate_produced_batch, every_keyless_record_is_named) {
    // With a list to fill, the check goes on past a keyless record, so the producer learns
    // each record at fault (record_errors) and the rest of the batch is known to be sound.
    auto recs = good_records(10);
    for (int i : {0, 4, 9}) {
        recs[static_cast<std::size_t>(i)].key = std::nullopt;
    }
    const auto batch = make_batch(records_section(recs), {.count = 10});
    auto h = validate_batch(batch);
    ASSERT_TRUE(h);
    std::string why;
    std::vector<int32_t> keyless;
    auto r = validate_produced_batch(batch, h.value(), {.require_keys = true}, why, &keyless);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error(), errc::record_malformed);
    EXPECT_EQ(keyless, (std::vector<int32_t>{0, 4, 9}));
    EXPECT_EQ(why, "record 0: a compacted topic takes no record without a key");
    // A malformed record after them still fails the batch for its own reason.
    recs[7].offset_delta = 3;
    const auto broken = make_batch(records_section(recs), {.count = 10});
    keyless.clear();
    r = validate_produced_batch(broken, validate_batch(broken).value(), {.require_keys = true}, why, &keyless);
    ASSERT_FALSE(r);
    EXPECT_EQ(why, "record 7: offset delta 3, expected 7");
}

TEST(compress_records, round_trips_with_every_codec) {
    const auto section = records_section(good_records(200));
    for (auto c : {compression::none, compression::gzip, compression::snappy, compression::lz4, compression::zstd}) {
        std::string why;
        auto packed = compress_records(c, section, why);
        ASSERT_TRUE(packed) << why;
        auto back = decompress_records(c, std::as_bytes(std::span(*packed)), 1 << 20, why);
        ASSERT_TRUE(back) << static_cast<int>(c) << ": " << why;
        EXPECT_EQ(*back, std::string(reinterpret_cast<const char*>(section.data()), section.size()));
    }
}

TEST(validate_produced_batch, offset_deltas_must_count_from_zero) {
    auto recs = good_records(3);
    recs[1].offset_delta = 0; // two records at the same offset
    for (int16_t codec : {0, 1, 4}) {
        const auto section = records_section(recs);
        const auto body = codec == 0 ? section : codec == 1 ? gzip(section) : zstd(section);
        auto o = check(make_batch(body, {.count = 3, .attributes = codec}));
        EXPECT_EQ(o.error, errc::record_malformed) << codec;
        EXPECT_EQ(o.why, "record 1: offset delta 0, expected 1");
    }
    recs[1].offset_delta = 2;
    recs[2].offset_delta = 1;
    EXPECT_EQ(check(make_batch(records_section(recs), {.count = 3})).error, errc::record_malformed);
    recs = good_records(1);
    recs[0].offset_delta = -1;
    EXPECT_EQ(check(make_batch(records_section(recs), {.count = 1})).error, errc::record_malformed);
}

TEST(validate_produced_batch, header_counts_must_agree_with_the_records) {
    const auto section = records_section(good_records(3));
    EXPECT_EQ(check(make_batch(section, {.count = 3, .last_offset_delta = 1})).error, errc::batch_invalid);
    EXPECT_EQ(check(make_batch(section, {.count = 2, .last_offset_delta = 1})).error, errc::record_malformed);
    auto o = check(make_batch(section, {.count = 4}));
    EXPECT_EQ(o.error, errc::record_malformed);
    EXPECT_EQ(o.why, "batch declares 4 records and holds 3");
    EXPECT_EQ(check(make_batch(section, {.count = 0, .last_offset_delta = 0})).error, errc::batch_invalid);
    EXPECT_EQ(check(make_batch(section, {.count = 3, .attributes = 0x20})).error, errc::batch_invalid);
    // A count far beyond what the bytes can hold is refused before reading any record.
    o = check(make_batch(section, {.count = 2'000'000'000}));
    EXPECT_EQ(o.error, errc::record_malformed);
}

TEST(validate_produced_batch, lengths_must_stay_inside_the_record) {
    auto recs = good_records(2);
    recs[0].length_adjust = 1; // record claims one byte more than it has
    EXPECT_EQ(check(make_batch(records_section(recs), {.count = 2})).error, errc::record_malformed);
    recs = good_records(2);
    recs[1].length_adjust = -1;
    EXPECT_EQ(check(make_batch(records_section(recs), {.count = 2})).error, errc::record_malformed);

    // A key length past the end of its record.
    bytes rec{std::byte{0}};
    varint::append(rec, 0);
    varint::append(rec, 0);
    varint::append(rec, 100);
    rec.push_back(std::byte{'x'});
    bytes section;
    varint::append(section, static_cast<int64_t>(rec.size()));
    section.insert(section.end(), rec.begin(), rec.end());
    auto o = check(make_batch(section, {.count = 1}));
    EXPECT_EQ(o.error, errc::record_malformed);
    EXPECT_NE(o.why.find("key length 100 runs past the record"), std::string::npos) << o.why;

    // A null header key, and a negative header count.
    recs = good_records(1);
    recs[0].headers = {{std::nullopt, "v"}};
    EXPECT_EQ(check(make_batch(records_section(recs), {.count = 1})).error, errc::record_malformed);
    // Bytes after the last record.
    auto extra = records_section(good_records(1));
    extra.push_back(std::byte{0});
    o = check(make_batch(extra, {.count = 1}));
    EXPECT_EQ(o.error, errc::record_malformed);
    EXPECT_EQ(o.why, "1 bytes follow the last of 1 records");
}

TEST(validate_produced_batch, varints_must_be_well_formed) {
    // Offset delta written in 6 bytes (a varint has at most 5).
    bytes rec{std::byte{0}, std::byte{0}};
    for (int i = 0; i < 5; ++i) rec.push_back(std::byte{0x80});
    rec.push_back(std::byte{0});
    rec.insert(rec.end(), {std::byte{1}, std::byte{1}, std::byte{0}}); // null key, null value, no headers
    bytes section;
    varint::append(section, static_cast<int64_t>(rec.size()));
    section.insert(section.end(), rec.begin(), rec.end());
    auto o = check(make_batch(section, {.count = 1}));
    EXPECT_EQ(o.error, errc::record_malformed);
    EXPECT_EQ(o.why, "record 0: offset delta is not a well-formed varint");
}

TEST(validate_produced_batch, timestamps_follow_kafkas_rules) {
    const auto section = records_section(good_records(3));
    // LogAppendTime is the broker's to set.
    EXPECT_EQ(check(make_batch(section, {.count = 3, .attributes = 0x08})).error, errc::timestamp_invalid);
    // A record after the batch's maxTimestamp, and timestamps below -1.
    EXPECT_EQ(check(make_batch(section, {.count = 3, .max_ts = 1000})).error, errc::timestamp_invalid);
    EXPECT_EQ(check(make_batch(section, {.count = 3, .first_ts = -100})).error, errc::timestamp_invalid);
    auto recs = good_records(1);
    recs[0].ts_delta = std::numeric_limits<int64_t>::max();
    EXPECT_EQ(check(make_batch(records_section(recs), {.count = 1, .max_ts = std::numeric_limits<int64_t>::max()})).error,
              errc::timestamp_invalid);
}

TEST(validate_produced_batch, undecodable_and_unknown_codecs_are_corrupt) {
    const auto section = records_section(good_records(10));
    bytes garbage(200);
    for (std::size_t i = 0; i < garbage.size(); ++i) garbage[i] = static_cast<std::byte>(i * 37 + 11);
    for (int16_t codec : {1, 2, 3, 4}) {
        auto o = check(make_batch(garbage, {.count = 10, .attributes = codec}));
        EXPECT_EQ(o.error, errc::records_undecodable) << codec << ": " << o.why;
    }
    // A truncated gzip stream.
    auto gz = gzip(section);
    gz.resize(gz.size() / 2);
    EXPECT_EQ(check(make_batch(gz, {.count = 10, .attributes = 1})).error, errc::records_undecodable);
    for (int16_t codec : {5, 6, 7}) {
        auto o = check(make_batch(section, {.count = 10, .attributes = codec}));
        EXPECT_EQ(o.error, errc::codec_unknown);
        EXPECT_EQ(o.why, fmt::format("unknown compression codec {}", codec));
    }
}

TEST(validate_produced_batch, a_compression_bomb_stops_at_the_bound) {
    // 64 MiB of zeros in one record's value, gzip'd to ~64 KiB; the bound is 1 MiB.
    raw_record big;
    big.value = std::string(64 << 20, '\0');
    const auto section = records_section({big});
    auto gz = gzip(section);
    EXPECT_LT(gz.size(), std::size_t{1} << 20);
    auto o = check(make_batch(gz, {.count = 1, .attributes = 1}), std::size_t{1} << 20);
    EXPECT_EQ(o.error, errc::records_too_large);
    EXPECT_NE(o.why.find("inflates past 1048576 bytes"), std::string::npos) << o.why;
    auto zs = zstd(section);
    EXPECT_EQ(check(make_batch(zs, {.count = 1, .attributes = 4}), std::size_t{1} << 20).error,
              errc::records_too_large);
    // Under a bound that fits, the same batch passes.
    EXPECT_FALSE(check(make_batch(zs, {.count = 1, .attributes = 4}), std::size_t{65} << 20).error);
}

} // namespace
} // namespace runnel::model

namespace runnel::model {
namespace {

/// A transactional batch of three records with producer fields and spread timestamps.
record_batch producer_batch() {
    record_batch_builder b;
    b.set_producer(4242, 7, 19);
    b.add("k0", "first value", event_time(1'700'000'000'100));
    b.add("k1", std::nullopt, event_time(1'700'000'000'400));
    b.add(std::nullopt, "third", event_time(1'700'000'000'250));
    return b.build(offset(1000));
}

TEST(recompress_batch, keeps_every_header_field_and_record_in_every_codec) {
    const auto original = producer_batch();
    const auto& h0 = original.header();
    const auto want = decode_records(original.bytes()).value();
    for (auto from : {compression::none, compression::gzip, compression::lz4}) {
        std::string why;
        auto source = recompress_batch(original.bytes(), h0, from, 1 << 20, why);
        ASSERT_TRUE(source) << why;
        const auto hs = validate_batch(*source).value();
        for (auto to : {compression::none, compression::gzip, compression::snappy, compression::lz4,
                        compression::zstd}) {
            auto packed = recompress_batch(*source, hs, to, 1 << 20, why);
            ASSERT_TRUE(packed) << why;
            auto h = validate_batch(*packed); // length and CRC agree with the new body
            ASSERT_TRUE(h) << static_cast<int>(from) << "->" << static_cast<int>(to);
            EXPECT_EQ(h.value().compression(), to);
            EXPECT_EQ(h.value().base_offset, h0.base_offset);
            EXPECT_EQ(h.value().last_offset_delta, h0.last_offset_delta);
            EXPECT_EQ(h.value().first_timestamp, h0.first_timestamp);
            EXPECT_EQ(h.value().max_timestamp, h0.max_timestamp);
            EXPECT_EQ(h.value().producer_id, 4242);
            EXPECT_EQ(h.value().producer_epoch, 7);
            EXPECT_EQ(h.value().base_sequence, 19);
            EXPECT_EQ(h.value().record_count, 3);
            EXPECT_EQ(h.value().attributes & ~0x7, h0.attributes & ~0x7);
            std::vector<std::byte> inflated;
            auto plain = uncompressed_batch(*packed, h.value(), 1 << 20, inflated, why);
            ASSERT_TRUE(plain) << why;
            auto got = decode_records(*plain).value();
            ASSERT_EQ(got.size(), want.size());
            for (std::size_t i = 0; i < got.size(); ++i) {
                EXPECT_EQ(got[i].offset_value, want[i].offset_value);
                EXPECT_EQ(got[i].timestamp, want[i].timestamp);
                EXPECT_EQ(got[i].key.has_value(), want[i].key.has_value());
                EXPECT_EQ(got[i].value.has_value(), want[i].value.has_value());
            }
        }
    }
}

TEST(recompress_batch, refuses_a_body_that_does_not_inflate_within_the_limit) {
    // Inflating stops once a 64 KiB chunk passes the limit: records well past both.
    record_batch_builder b;
    const std::string big(100'000, 'x');
    b.add("k", big, event_time(1)).add("k", big, event_time(2));
    const auto original = b.build();
    std::string why;
    auto zipped = recompress_batch(original.bytes(), original.header(), compression::gzip, 1 << 20, why);
    ASSERT_TRUE(zipped) << why;
    const auto h = validate_batch(*zipped).value();
    EXPECT_TRUE(recompress_batch(*zipped, h, compression::zstd, 1 << 20, why)) << why;
    EXPECT_FALSE(recompress_batch(*zipped, h, compression::zstd, 1024, why));
    EXPECT_NE(why.find("gzip"), std::string::npos) << why;
}

} // namespace
} // namespace runnel::model
