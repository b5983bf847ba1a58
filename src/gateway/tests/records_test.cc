#include "gateway/records.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>

namespace runnel::gateway {
namespace {

namespace json = boost::json;

TEST(produce_body, one_record_an_array_or_records_field) {
    std::vector<produce_record> out;
    ASSERT_FALSE(parse_produce_body(R"({"key":"k","value":{"a":1},"headers":{"h":"x","n":null},"partition":2,"timestamp":5})", out));
    ASSERT_EQ(out.size(), 1u);
    EXPECT_EQ(*out[0].key, "k");
    EXPECT_EQ(*out[0].value, R"({"a":1})");
    ASSERT_EQ(out[0].headers.size(), 2u);
    EXPECT_EQ(*out[0].headers[0].second, "x");
    EXPECT_FALSE(out[0].headers[1].second);
    EXPECT_EQ(*out[0].partition, 2);
    EXPECT_EQ(*out[0].timestamp, 5);
    out.clear();
    ASSERT_FALSE(parse_produce_body(R"([{"value":"a"},{"value":null,"key":7}])", out));
    ASSERT_EQ(out.size(), 2u);
    EXPECT_EQ(*out[0].value, "a");
    EXPECT_FALSE(out[1].value);
    EXPECT_EQ(*out[1].key, "7");
    out.clear();
    ASSERT_FALSE(parse_produce_body(R"({"records":[{"value":"x"}]})", out));
    EXPECT_EQ(out.size(), 1u);
}

TEST(not_json_detail, says_where_the_json_goes_wrong) {
    EXPECT_EQ(not_json_detail("{oops"), "the body is not JSON: syntax error at line 1, column 2 (byte 1)");
    EXPECT_EQ(not_json_detail("{\"a\": 1,\n \"b\": ]}"),
              "the body is not JSON: syntax error at line 2, column 7 (byte 15)");
    EXPECT_EQ(not_json_detail("{\"a\":"),
              "the body is not JSON: incomplete JSON at line 1, column 6 (byte 5, the end of the body)");
}

TEST(produce_body, precise_problems) {
    std::vector<produce_record> out;
    auto p = parse_produce_body("{\"value\":", out);
    ASSERT_TRUE(p);
    EXPECT_EQ(p->kind, "malformed-json");
    EXPECT_EQ(p->status, 400u);
    p = parse_produce_body(R"([{"value":"a"},{"valeu":"b"}])", out);
    ASSERT_TRUE(p);
    EXPECT_EQ(p->kind, "invalid-request");
    EXPECT_EQ(p->detail, "record 1: unknown field \"valeu\" (expected key, value, headers, partition, timestamp)");
    p = parse_produce_body(R"({"partition":-1})", out);
    ASSERT_TRUE(p);
    EXPECT_EQ(p->detail, "record 0: \"partition\" -1 is negative or too large");
    EXPECT_TRUE(parse_produce_body("[]", out));
    EXPECT_TRUE(parse_produce_body("42", out));
    EXPECT_TRUE(parse_produce_body(R"({"records":[],"x":1})", out));
    EXPECT_TRUE(parse_produce_body(R"({"headers":{"a":1}})", out));
}

TEST(records, strings_are_escaped) {
    model::record_batch_builder b;
    const std::string tricky = std::string("q\"b\\s\nn\tt\x01c\x1f/") + "\xc3\xa9";
    model::record_batch_builder::header_kv h[] = {{"h\"1", tricky}};
    b.add(tricky, tricky, model::event_time(1), h);
    auto batch = b.build(model::offset(0));
    auto d = decode_batches("to\"pic", 0, batch.bytes(), 0);
    ASSERT_EQ(d.records.size(), 1u);
    auto r = json::parse(d.records[0].second).as_object();
    EXPECT_EQ(r.at("topic").as_string(), "to\"pic");
    EXPECT_EQ(r.at("key").as_string(), tricky);
    EXPECT_EQ(r.at("value").as_string(), tricky);
    EXPECT_EQ(r.at("headers").as_object().at("h\"1").as_string(), tricky);
}

TEST(records, keyed_partitioning_matches_java_clients) {
    // murmur2("user-1") & 0x7fffffff is 1404122828 in Kafka's Java client (and kafka-python).
    EXPECT_EQ(partition_for_key("user-1", 100), 1404122828 % 100);
    EXPECT_EQ(partition_for_key("user-1", 7), 1404122828 % 7);
}

TEST(records, keyed_partitioning_is_stable_and_in_range) {
    for (int32_t n : {1, 3, 7, 100}) {
        for (std::string k : {"", "a", "ab", "abc", "abcd", "user-42"}) {
            auto p = partition_for_key(k, n);
            EXPECT_GE(p, 0);
            EXPECT_LT(p, n);
            EXPECT_EQ(p, partition_for_key(k, n));
        }
    }
}

TEST(records, decode_and_render_batches) {
    model::record_batch_builder b;
    model::record_batch_builder::header_kv h[] = {{"src", "web"}, {"bin", std::string_view("\xff", 1)}};
    b.add("k0", R"({"n":1})", model::event_time(1000), h);
    b.add(std::nullopt, "plain text", model::event_time(1001));
    b.add(std::string_view("\xfe", 1), std::nullopt, model::event_time(1002));
    auto batch = b.build(model::offset(10));
    auto d = decode_batches("t", 3, batch.bytes(), 11);
    EXPECT_EQ(d.next_offset, 13);
    ASSERT_EQ(d.records.size(), 2u); // offset 10 is before `from`
    EXPECT_EQ(d.records[0].first, 11);
    auto r1 = json::parse(d.records[0].second).as_object();
    EXPECT_EQ(r1.at("topic").as_string(), "t");
    EXPECT_EQ(r1.at("partition").as_int64(), 3);
    EXPECT_EQ(r1.at("offset").as_int64(), 11);
    EXPECT_EQ(r1.at("timestamp").as_int64(), 1001);
    EXPECT_TRUE(r1.at("key").is_null());
    EXPECT_EQ(r1.at("value").as_string(), "plain text");
    auto r2 = json::parse(d.records[1].second).as_object();
    EXPECT_EQ(r2.at("key_base64").as_string(), "/g==");
    EXPECT_TRUE(r2.at("value").is_null());

    auto all = decode_batches("t", 3, batch.bytes(), 0);
    ASSERT_EQ(all.records.size(), 3u);
    auto r0 = json::parse(all.records[0].second).as_object();
    EXPECT_EQ(r0.at("value").as_object().at("n").as_int64(), 1); // JSON objects are embedded
    EXPECT_EQ(r0.at("headers").as_object().at("src").as_string(), "web");
    EXPECT_EQ(r0.at("headers_base64").as_object().at("bin").as_string(), "/w==");
}

} // namespace
} // namespace runnel::gateway

#include <zlib.h>

#include "model/decompress.h"

namespace runnel::gateway {
namespace {

std::span<const std::byte> bytes_of(const std::string& s) { return std::as_bytes(std::span(s.data(), s.size())); }

TEST(decompress, gzip_round_trip_and_size_limit) {
    std::string plain(100000, 'a');
    uLongf n = compressBound(plain.size());
    std::string packed(n, '\0');
    ASSERT_EQ(compress2(reinterpret_cast<Bytef*>(packed.data()), &n, reinterpret_cast<const Bytef*>(plain.data()),
                        plain.size(), 9),
              Z_OK);
    packed.resize(n);
    std::string why;
    auto out = model::decompress_records(model::compression::gzip, bytes_of(packed), 1 << 20, why);
    ASSERT_TRUE(out) << why;
    EXPECT_EQ(*out, plain);
    EXPECT_FALSE(model::decompress_records(model::compression::gzip, bytes_of(packed), 1000, why));
    EXPECT_EQ(why, "gzip: inflates past 1000 bytes");
    EXPECT_FALSE(model::decompress_records(model::compression::gzip, bytes_of(packed.substr(0, packed.size() / 2)), 1 << 20, why));
}

TEST(decompress, garbage_is_refused_with_a_reason) {
    const std::string junk = "this is not compressed at all, not by any codec";
    for (auto c : {model::compression::gzip, model::compression::snappy, model::compression::lz4,
                   model::compression::zstd}) {
        std::string why;
        EXPECT_FALSE(model::decompress_records(c, bytes_of(junk), 1 << 20, why)) << static_cast<int>(c);
        EXPECT_FALSE(why.empty());
    }
}

} // namespace
} // namespace runnel::gateway
