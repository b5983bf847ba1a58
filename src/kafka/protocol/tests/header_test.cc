// The api table, header versions and request dispatch.

#include <gtest/gtest.h>

#include <map>

#include "kafka/protocol/protocol.h"
#include "kafka/protocol/tests/message_cases.h"

namespace runnel::kafka::protocol {
namespace {

struct range {
    int16_t min, max, first_flexible;
    bool operator==(const range&) const = default;
};

// The supported ranges, and the first flexible version of each from the Kafka specs.
const std::map<int16_t, range> expected = {
  {0, {3, 9, 9}},   // Produce
  {1, {4, 17, 12}}, // Fetch
  {2, {1, 7, 6}},   // ListOffsets
  {3, {0, 12, 9}},  // Metadata
  {8, {2, 9, 8}},   // OffsetCommit
  {9, {1, 8, 6}},   // OffsetFetch
  {10, {0, 4, 3}},  // FindCoordinator
  {11, {0, 9, 6}},  // JoinGroup
  {12, {0, 4, 4}},  // Heartbeat
  {13, {0, 5, 4}},  // LeaveGroup
  {14, {0, 5, 4}},  // SyncGroup
  {15, {0, 5, 5}},  // DescribeGroups
  {16, {0, 5, 3}},  // ListGroups
  {18, {0, 3, 3}},  // ApiVersions
  {19, {2, 7, 5}},  // CreateTopics
  {20, {1, 6, 4}},  // DeleteTopics
  {21, {1, 2, 2}},  // DeleteRecords
  {22, {0, 4, 2}},  // InitProducerId
  {32, {1, 4, 4}},  // DescribeConfigs
  {37, {0, 3, 2}},  // CreatePartitions
  {42, {0, 2, 2}},  // DeleteGroups
  {44, {0, 1, 1}},  // IncrementalAlterConfigs
  {33, {0, 2, 2}},  // AlterConfigs
  {50, {0, 0, 0}},  // DescribeUserScramCredentials
  {51, {0, 0, 0}},  // AlterUserScramCredentials
  {47, {0, 0, -1}}, // OffsetDelete
  {23, {2, 4, 4}},  // OffsetForLeaderEpoch
  {60, {0, 1, 0}},  // DescribeCluster
  {17, {0, 1, -1}}, // SaslHandshake
  {36, {0, 2, 2}},  // SaslAuthenticate
  {68, {0, 1, 0}},  // ConsumerGroupHeartbeat
  {69, {0, 1, 0}},  // ConsumerGroupDescribe
  {24, {0, 4, 3}},  // AddPartitionsToTxn
  {25, {0, 3, 3}},  // AddOffsetsToTxn
  {26, {0, 3, 3}},  // EndTxn
  {28, {0, 3, 3}},  // TxnOffsetCommit
  {61, {0, 0, 0}},  // DescribeProducers
  {65, {0, 0, 0}},  // DescribeTransactions
  {66, {0, 1, 0}},  // ListTransactions
  {29, {0, 3, 2}},  // DescribeAcls
  {30, {0, 3, 2}},  // CreateAcls
  {31, {0, 3, 2}},  // DeleteAcls
};

TEST(api_table, exactly_the_supported_ranges) {
    std::map<int16_t, range> actual;
    for (const auto& a : supported_apis()) {
        actual[static_cast<int16_t>(a.key)] = {a.min_version, a.max_version, a.first_flexible_version};
        EXPECT_EQ(find_api(a.key), &a);
    }
    EXPECT_EQ(actual, expected);
    EXPECT_EQ(find_api(int16_t{4}), nullptr); // LeaderAndIsr: not spoken
    EXPECT_EQ(find_api(int16_t{-1}), nullptr);
    EXPECT_EQ(find_api(int16_t{1000}), nullptr);
    EXPECT_EQ(find_api(api_key::metadata)->name, "metadata");
}

TEST(api_table, struct_constants_agree_with_table) {
    EXPECT_EQ(metadata_request::min_version, 0);
    EXPECT_EQ(metadata_response::max_version, 12);
    EXPECT_EQ(fetch_request::first_flexible_version, 12);
    EXPECT_EQ(offset_delete_response::first_flexible_version, -1);
    EXPECT_EQ(produce_request::api, api_key::produce);
}

TEST(header_versions, follow_flexible_versions) {
    for (const auto& [key, r] : expected) {
        for (int16_t v = r.min; v <= r.max; ++v) {
            bool flexible = r.first_flexible >= 0 && v >= r.first_flexible;
            EXPECT_EQ(request_header_version(key, v), flexible ? 2 : 1) << key << " v" << v;
            int16_t response = key == 18 ? 0 : (flexible ? 1 : 0);
            EXPECT_EQ(response_header_version(key, v), response) << key << " v" << v;
        }
    }
    // Spot checks against the Kafka protocol guide.
    EXPECT_EQ(request_header_version(18, 3), 2);
    EXPECT_EQ(response_header_version(18, 3), 0); // ApiVersions: always v0
    EXPECT_EQ(request_header_version(3, 8), 1);
    EXPECT_EQ(request_header_version(3, 9), 2);
    EXPECT_EQ(response_header_version(3, 9), 1);
    EXPECT_EQ(request_header_version(0, 3), 1);
    // Unsupported versions of known apis follow the same rule, so they can be answered.
    EXPECT_EQ(request_header_version(18, 4), 2);
    EXPECT_EQ(request_header_version(3, 13), 2);
    EXPECT_EQ(request_header_version(1234, 0), 1);
}

TEST(dispatch, unknown_api_and_version) {
    std::vector<std::byte> empty;
    auto r = decode_request(int16_t{4}, 0, empty);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error(), errc::unsupported_api_key);
    EXPECT_EQ(kafka_error_code(errc::unsupported_api_key), error_codes::unsupported_version);

    r = decode_request(int16_t{3}, 13, empty);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error(), errc::unsupported_version);
    r = decode_request(int16_t{0}, 2, empty); // Produce v2: below Runnel's range
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error(), errc::unsupported_version);
    r = decode_request(int16_t{18}, -1, empty);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error(), errc::unsupported_version);
    EXPECT_EQ(kafka_error_code(errc::unsupported_version), error_codes::unsupported_version);
    EXPECT_EQ(kafka_error_code(errc::truncated), error_codes::invalid_request);
}

TEST(dispatch, decodes_into_the_right_alternative) {
    heartbeat_request hb;
    hb.group_id = "g";
    hb.generation_id = 7;
    hb.member_id = "m";
    hb.group_instance_id = "i";
    writer w;
    hb.encode(w, 4);
    auto r = decode_request(int16_t{12}, 4, w.span());
    ASSERT_TRUE(r) << r.error().message();
    ASSERT_TRUE(std::holds_alternative<heartbeat_request>(r.value()));
    EXPECT_EQ(std::get<heartbeat_request>(r.value()), hb);

    // Bytes after the message are ignored, as a Kafka broker ignores them (librdkafka 2.0.2
    // sends three extra zero bytes in OffsetFetch v7).
    auto bytes = w.take();
    bytes.push_back(std::byte{0});
    r = decode_request(int16_t{12}, 4, bytes);
    ASSERT_TRUE(r) << r.error().message();
    EXPECT_EQ(std::get<heartbeat_request>(r.value()), hb);

    // Every api decodes into its own alternative, requests and responses alike.
    std::size_t requests = 0;
    for (const auto& c : testing::all_message_cases()) {
        if (c.api_key < 0) {
            continue;
        }
        for (int16_t v = c.min_version; v <= c.max_version; ++v) {
            auto body = c.encode_filled(v, false);
            auto key_of = [](const auto& m) { return std::remove_cvref_t<decltype(m)>::api; };
            if (c.is_request) {
                auto d = decode_request(c.api_key, v, body);
                ASSERT_TRUE(d) << c.name << " v" << v << ": " << d.error().message();
                EXPECT_EQ(static_cast<int16_t>(std::visit(key_of, d.value())), c.api_key);
                ++requests;
            } else {
                auto d = decode_response(c.api_key, v, body);
                ASSERT_TRUE(d) << c.name << " v" << v << ": " << d.error().message();
                EXPECT_EQ(static_cast<int16_t>(std::visit(key_of, d.value())), c.api_key);
            }
        }
    }
    EXPECT_EQ(requests, 190u);
    EXPECT_EQ(std::variant_size_v<any_request>, supported_apis().size());
}

TEST(frames, request_frame_round_trip) {
    metadata_request m;
    m.topics = std::vector<metadata_request::topic>{{uuid{}, std::string("orders")}};
    request_header h;
    h.request_api_key = static_cast<int16_t>(api_key::metadata);
    h.request_api_version = 9;
    h.correlation_id = 42;
    h.client_id = "runnel";
    writer w;
    write_request_frame(w, h, m);
    auto frame = w.span();
    ASSERT_GE(frame.size(), 4u);
    EXPECT_EQ(read_be<int32_t>(frame.data()), static_cast<int32_t>(frame.size() - 4));

    auto parsed = parse_request_header(frame.subspan(4));
    ASSERT_TRUE(parsed) << parsed.error().message();
    EXPECT_EQ(parsed.value().header_version, 2);
    EXPECT_EQ(parsed.value().header, h);
    auto req = decode_request(parsed.value().header, parsed.value().body);
    ASSERT_TRUE(req) << req.error().message();
    EXPECT_EQ(std::get<metadata_request>(req.value()), m);
}

TEST(frames, response_frame_uses_header_v0_for_api_versions) {
    api_versions_response resp;
    resp.api_keys.push_back({18, 0, 3});
    writer w;
    write_response_frame(w, 3, 99, resp);
    // size, correlation id, then the body at once: no tagged-field byte in between.
    auto f = w.span();
    ASSERT_GE(f.size(), 10u);
    EXPECT_EQ(read_be<int32_t>(f.data() + 4), 99);
    EXPECT_EQ(read_be<int16_t>(f.data() + 8), 0); // error_code, first field of the body
    reader r(f.subspan(4));
    auto h = parse_response_header(r, 18, 3);
    ASSERT_TRUE(h);
    EXPECT_EQ(h.value().correlation_id, 99);
    auto body = decode_response(int16_t{18}, 3, r.rest());
    ASSERT_TRUE(body) << body.error().message();
    EXPECT_EQ(std::get<api_versions_response>(body.value()), resp);

    metadata_response mr;
    writer w2;
    write_response_frame(w2, 9, 7, mr);
    // Flexible metadata: response header v1 ends with an empty tagged-field section.
    EXPECT_EQ(w2.span()[8], std::byte{0});
}

TEST(frames, truncated_headers_fail) {
    request_header h;
    h.request_api_key = 18;
    h.request_api_version = 3;
    h.correlation_id = 1;
    h.client_id = "c";
    writer w;
    h.encode(w, 2);
    auto b = w.take();
    for (std::size_t len = 0; len < b.size(); ++len) {
        std::vector<std::byte> cut(b.begin(), b.begin() + static_cast<long>(len));
        EXPECT_FALSE(parse_request_header(cut)) << len;
    }
    EXPECT_TRUE(parse_request_header(b));
}

} // namespace
} // namespace runnel::kafka::protocol
