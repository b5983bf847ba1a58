// Byte sequences computed by hand from the Kafka protocol guide, checked in both directions:
// encoding the struct gives exactly these bytes, and decoding these bytes gives the struct.
// Every golden frame is also cut at every length, which must fail and never crash.

#include <gtest/gtest.h>

#include <initializer_list>

#include "kafka/protocol/protocol.h"
#include "kafka/protocol/tests/message_cases.h"
#include "model/model.h"

namespace runnel::kafka::protocol {
namespace {

using testing::hex;

/// Bytes from a mix of integers (one byte each) and strings (their characters).
struct part {
    part(int v)
      : bytes{static_cast<std::byte>(v)} {}
    part(const char* s) {
        for (; *s != 0; ++s) {
            bytes.push_back(static_cast<std::byte>(*s));
        }
    }
    std::vector<std::byte> bytes;
};

std::vector<std::byte> frame_of(std::initializer_list<part> parts) {
    std::vector<std::byte> out;
    for (const auto& p : parts) {
        out.insert(out.end(), p.bytes.begin(), p.bytes.end());
    }
    return out;
}

/// Decodes a request frame without its size prefix: header, then body.
result<std::pair<request_header, any_request>> decode_request_payload(std::span<const std::byte> p) {
    RUNNEL_TRY(auto f, parse_request_header(p));
    RUNNEL_TRY(auto body, decode_request(f.header, f.body));
    return std::pair{f.header, std::move(body)};
}

/// Decodes a response frame without its size prefix, for a known api and version.
result<std::pair<response_header, any_response>>
decode_response_payload(std::span<const std::byte> p, int16_t key, int16_t version) {
    reader r(p);
    RUNNEL_TRY(auto h, parse_response_header(r, key, version));
    RUNNEL_TRY(auto body, decode_response(key, version, r.rest()));
    return std::pair{h, std::move(body)};
}

/// Every strict prefix of `payload` must fail to decode (as its own allocation, for ASan).
template <typename Decode>
void expect_every_truncation_fails(const std::vector<std::byte>& payload, Decode decode) {
    for (std::size_t len = 0; len < payload.size(); ++len) {
        std::vector<std::byte> cut(payload.begin(), payload.begin() + static_cast<long>(len));
        EXPECT_FALSE(decode(cut)) << "decoded from " << len << " of " << payload.size() << " bytes";
    }
}

std::span<const std::byte> without_size(const std::vector<std::byte>& frame) {
    EXPECT_GE(frame.size(), 4u);
    EXPECT_EQ(read_be<int32_t>(frame.data()), static_cast<int32_t>(frame.size() - 4));
    return std::span(frame).subspan(4);
}

// ApiVersions v3: request header v2 (client id stays a classic string, then an empty tagged
// section), and a flexible body of two compact strings and an empty tagged section.
TEST(golden, api_versions_v3_request) {
    const auto expected = frame_of({
      0, 0, 0, 36,                     // frame size
      0, 18,                           // api key: ApiVersions
      0, 3,                            // api version
      0, 0, 0, 1,                      // correlation id
      0, 7, "rdkafka",                 // client id: int16 length, not compact
      0,                               // header tagged fields: none
      11, "librdkafka",                // client_software_name: compact, length + 1
      6, "2.0.2",                      // client_software_version
      0,                               // body tagged fields: none
    });

    request_header h;
    h.request_api_key = 18;
    h.request_api_version = 3;
    h.correlation_id = 1;
    h.client_id = "rdkafka";
    api_versions_request m;
    m.client_software_name = "librdkafka";
    m.client_software_version = "2.0.2";
    writer w;
    write_request_frame(w, h, m);
    EXPECT_EQ(hex(w.span()), hex(expected));

    auto payload = without_size(expected);
    auto d = decode_request_payload(payload);
    ASSERT_TRUE(d) << d.error().message();
    EXPECT_EQ(d.value().first, h);
    EXPECT_EQ(std::get<api_versions_request>(d.value().second), m);
    expect_every_truncation_fails(std::vector<std::byte>(payload.begin(), payload.end()),
                                  decode_request_payload);
}

// Metadata v1: request header v1 and a classic body: int32 array count, int16 string lengths.
TEST(golden, metadata_v1_request_two_topics) {
    const auto expected = frame_of({
      0, 0, 0, 25,                     // frame size
      0, 3,                            // api key: Metadata
      0, 1,                            // api version
      0, 0, 0, 7,                      // correlation id
      0, 1, "c",                       // client id; no tagged fields in header v1
      0, 0, 0, 2,                      // topics: 2
      0, 3, "foo",                     //   name
      0, 3, "bar",                     //   name (allow_auto_topic_creation is v4+)
    });

    request_header h;
    h.request_api_key = 3;
    h.request_api_version = 1;
    h.correlation_id = 7;
    h.client_id = "c";
    metadata_request m;
    m.topics.emplace();
    m.topics->push_back({uuid{}, std::string("foo")});
    m.topics->push_back({uuid{}, std::string("bar")});
    writer w;
    write_request_frame(w, h, m);
    EXPECT_EQ(hex(w.span()), hex(expected));

    auto payload = without_size(expected);
    auto d = decode_request_payload(payload);
    ASSERT_TRUE(d) << d.error().message();
    EXPECT_EQ(d.value().first, h);
    EXPECT_EQ(std::get<metadata_request>(d.value().second), m);
    expect_every_truncation_fails(std::vector<std::byte>(payload.begin(), payload.end()),
                                  decode_request_payload);

    // Null topics ("all topics", v1+) is a count of -1; v0 cannot say null and writes empty.
    metadata_request all;
    all.topics.reset();
    writer w1;
    all.encode(w1, 1);
    EXPECT_EQ(hex(w1.span()), hex(frame_of({0xff, 0xff, 0xff, 0xff})));
    writer w0;
    all.encode(w0, 0);
    EXPECT_EQ(hex(w0.span()), hex(frame_of({0, 0, 0, 0})));
    // A v0 decoder refuses the null count.
    reader r(w1.span());
    metadata_request back;
    EXPECT_EQ(back.decode(r, 0).error(), errc::negative_length);
}

// Produce v3: request header v1 (never flexible before v9), then the classic body with the
// records as int32-length bytes, carried verbatim.
TEST(golden, produce_v3_request) {
    const auto expected = frame_of({
      0, 0, 0, 52,                     // frame size
      0, 0,                            // api key: Produce
      0, 3,                            // api version
      0, 0, 0, 42,                     // correlation id
      0, 10, "producer-1",             // client id
      0xff, 0xff,                      // transactional_id: null
      0xff, 0xff,                      // acks: -1 (all)
      0, 0, 0x75, 0x30,                // timeout_ms: 30000
      0, 0, 0, 1,                      // topic_data: 1
      0, 1, "t",                       //   name
      0, 0, 0, 1,                      //   partition_data: 1
      0, 0, 0, 2,                      //     index
      0, 0, 0, 5, 1, 2, 3, 4, 5,       //     records: 5 opaque bytes
    });

    request_header h;
    h.request_api_key = 0;
    h.request_api_version = 3;
    h.correlation_id = 42;
    h.client_id = "producer-1";
    produce_request m;
    m.transactional_id.reset();
    m.acks = -1;
    m.timeout_ms = 30000;
    auto& t = m.topic_data.emplace_back();
    t.name = "t";
    auto& p = t.partition_data.emplace_back();
    p.index = 2;
    p.records = bytes{std::byte{1}, std::byte{2}, std::byte{3}, std::byte{4}, std::byte{5}};
    writer w;
    write_request_frame(w, h, m);
    EXPECT_EQ(hex(w.span()), hex(expected));

    // The header alone, as a broker sees it before choosing a decoder.
    auto payload = without_size(expected);
    auto parsed = parse_request_header(payload);
    ASSERT_TRUE(parsed);
    EXPECT_EQ(parsed.value().header_version, 1);
    EXPECT_EQ(parsed.value().header, h);
    EXPECT_EQ(parsed.value().body.data(), payload.data() + 20);

    auto d = decode_request_payload(payload);
    ASSERT_TRUE(d) << d.error().message();
    EXPECT_EQ(std::get<produce_request>(d.value().second), m);
    expect_every_truncation_fails(std::vector<std::byte>(payload.begin(), payload.end()),
                                  decode_request_payload);
}

// Fetch v12 response: header v1 (correlation id + tagged section), a flexible body, and the
// partition's tagged fields diverging_epoch (tag 0) and current_leader (tag 1), each a struct
// with its own empty tagged section; snapshot_id is at its default and so not written.
const std::vector<std::byte> fetch_v12_golden = frame_of({
  0, 0, 0, 104,                        // frame size
  0, 0, 0, 5,                          // correlation id
  0,                                   // header tagged fields: none
  0, 0, 0, 0,                          // throttle_time_ms
  0, 0,                                // error_code
  0, 0, 0, 9,                          // session_id
  2,                                   // responses: compact, 1
  2, "t",                              //   topic: compact string
  2,                                   //   partitions: 1
  0, 0, 0, 0,                          //     partition_index
  0, 0,                                //     error_code
  0, 0, 0, 0, 0, 0, 0, 10,             //     high_watermark
  0, 0, 0, 0, 0, 0, 0, 10,             //     last_stable_offset
  0, 0, 0, 0, 0, 0, 0, 0,              //     log_start_offset
  2,                                   //     aborted_transactions: 1
  0, 0, 0, 0, 0, 0, 0, 7,              //       producer_id
  0, 0, 0, 0, 0, 0, 0, 3,              //       first_offset
  0,                                   //       tagged fields: none
  0xff, 0xff, 0xff, 0xff,              //     preferred_read_replica: -1
  4, 0xaa, 0xbb, 0xcc,                 //     records: compact bytes, 3
  2,                                   //     tagged fields: 2
  0, 13,                               //       tag 0 (diverging_epoch), 13 bytes
  0, 0, 0, 2,                          //         epoch
  0, 0, 0, 0, 0, 0, 0, 100,            //         end_offset
  0,                                   //         tagged fields: none
  1, 9,                                //       tag 1 (current_leader), 9 bytes
  0, 0, 0, 1,                          //         leader_id
  0, 0, 0, 3,                          //         leader_epoch
  0,                                   //         tagged fields: none
  0,                                   //   topic tagged fields: none
  0,                                   // body tagged fields: none
});

fetch_response fetch_v12_struct() {
    fetch_response m;
    m.session_id = 9;
    auto& t = m.responses.emplace_back();
    t.topic = "t";
    auto& p = t.partitions.emplace_back();
    p.high_watermark = 10;
    p.last_stable_offset = 10;
    p.log_start_offset = 0;
    p.aborted_transactions.emplace().push_back({7, 3});
    p.records = bytes{std::byte{0xaa}, std::byte{0xbb}, std::byte{0xcc}};
    p.diverging_epoch = {2, 100};
    p.current_leader = {1, 3};
    return m;
}

TEST(golden, fetch_v12_response_with_tagged_fields) {
    auto m = fetch_v12_struct();
    writer w;
    write_response_frame(w, 12, 5, m);
    EXPECT_EQ(hex(w.span()), hex(fetch_v12_golden));

    auto payload = without_size(fetch_v12_golden);
    auto decode = [](std::span<const std::byte> p) { return decode_response_payload(p, 1, 12); };
    auto d = decode(payload);
    ASSERT_TRUE(d) << d.error().message();
    EXPECT_EQ(d.value().first.correlation_id, 5);
    const auto& back = std::get<fetch_response>(d.value().second);
    EXPECT_EQ(back, m);
    EXPECT_EQ(back.responses[0].partitions[0].snapshot_id, fetch_response::snapshot{});
    expect_every_truncation_fails(std::vector<std::byte>(payload.begin(), payload.end()), decode);
}

TEST(golden, fetch_v12_unknown_and_out_of_version_tags_are_skipped) {
    // Replace the empty body tagged section with two fields: tag 0 (node_endpoints exists
    // only from v16, so at v12 it is unknown) and tag 77 (unknown to every version).
    auto payload = std::vector<std::byte>(fetch_v12_golden.begin() + 4, fetch_v12_golden.end());
    payload.pop_back();
    for (int b : {2, 0, 3, 0xde, 0xad, 0xbe, 77, 0}) {
        payload.push_back(static_cast<std::byte>(b));
    }
    auto d = decode_response_payload(payload, 1, 12);
    ASSERT_TRUE(d) << d.error().message();
    EXPECT_EQ(std::get<fetch_response>(d.value().second), fetch_v12_struct());
}

// A partition answered with an error carries empty records, never null, as Kafka's broker
// sends them: librdkafka treats null records as a parse failure and never sees the error.
TEST(golden, fetch_error_partition_has_empty_not_null_records) {
    fetch_response m;
    auto& p = m.responses.emplace_back().partitions.emplace_back();
    p.error_code = 1; // OFFSET_OUT_OF_RANGE
    for (int16_t v : {4, 11, 12}) {
        writer w;
        m.encode(w, v);
        auto bytes = w.take();
        // The partition's last field is records; a flexible version adds the partition's and
        // topic's and body's empty tagged sections after it.
        const std::size_t trailing = v >= 12 ? 3 : 0;
        ASSERT_GT(bytes.size(), trailing + 4);
        auto end = bytes.end() - static_cast<long>(trailing);
        if (v >= 12) {
            EXPECT_EQ(static_cast<int>(*(end - 1)), 1) << "compact length 0 (uvarint 1), not null (0)";
        } else {
            EXPECT_EQ(hex(std::vector<std::byte>(end - 4, end)), "00 00 00 00") << "length 0, not null (-1)";
        }
        reader r(bytes);
        fetch_response back;
        ASSERT_TRUE(back.decode(r, v));
        ASSERT_TRUE(back.responses[0].partitions[0].records.has_value()) << "v" << v;
        EXPECT_TRUE(back.responses[0].partitions[0].records->empty());
    }
}

TEST(golden, fetch_v11_is_not_flexible) {
    // The same message at v11: classic encodings, no tagged fields, response header v0.
    auto m = fetch_v12_struct();
    writer w;
    write_response_frame(w, 11, 5, m);
    auto frame = w.take();
    auto payload = without_size(frame);
    EXPECT_EQ(hex(payload.first(12)), hex(frame_of({0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0, 0})))
      << "correlation id, then throttle_time_ms: no header tagged section";
    auto d = decode_response_payload(payload, 1, 11);
    ASSERT_TRUE(d) << d.error().message();
    auto expected = m;
    expected.responses[0].partitions[0].diverging_epoch = {};
    expected.responses[0].partitions[0].current_leader = {};
    EXPECT_EQ(std::get<fetch_response>(d.value().second), expected);
}

// ApiVersions v3 response body: flexible, with supported_features as tagged field 0 (a
// compact array inside a tagged field) and the other tagged fields at their defaults.
TEST(golden, api_versions_v3_response_with_supported_features) {
    const auto expected = frame_of({
      0, 0,                            // error_code
      2,                               // api_keys: compact, 1
      0, 18, 0, 0, 0, 3,               //   api_key, min_version, max_version
      0,                               //   tagged fields: none
      0, 0, 0, 0,                      // throttle_time_ms
      1,                               // tagged fields: 1
      0, 8,                            //   tag 0 (supported_features), 8 bytes
      2,                               //     compact array, 1
      2, "f",                          //       name
      0, 1, 0, 2,                      //       min_version, max_version
      0,                               //       tagged fields: none
    });
    api_versions_response m;
    m.api_keys.push_back({18, 0, 3});
    m.supported_features.push_back({"f", 1, 2});
    writer w;
    m.encode(w, 3);
    EXPECT_EQ(hex(w.span()), hex(expected));
    auto d = decode_response(int16_t{18}, 3, expected);
    ASSERT_TRUE(d) << d.error().message();
    EXPECT_EQ(std::get<api_versions_response>(d.value()), m);
    expect_every_truncation_fails(expected, [](std::span<const std::byte> p) {
        return decode_response(int16_t{18}, 3, p);
    });
    // The same at v2: no tagged section, so supported_features is not sent.
    writer w2;
    m.encode(w2, 2);
    EXPECT_EQ(hex(w2.span()), hex(frame_of({0, 0, 0, 0, 0, 1, 0, 18, 0, 0, 0, 3, 0, 0, 0, 0})));
}

// Fetch v12 request body: cluster_id is tagged field 0, a compact nullable string written
// only when set.
TEST(golden, fetch_v12_request_with_cluster_id) {
    const auto expected = frame_of({
      0xff, 0xff, 0xff, 0xff,          // replica_id: -1
      0, 0, 1, 0xf4,                   // max_wait_ms: 500
      0, 0, 0, 1,                      // min_bytes
      0x7f, 0xff, 0xff, 0xff,          // max_bytes
      0,                               // isolation_level
      0, 0, 0, 0,                      // session_id
      0xff, 0xff, 0xff, 0xff,          // session_epoch: -1
      2,                               // topics: compact, 1
      2, "t",                          //   topic
      2,                               //   partitions: 1
      0, 0, 0, 0,                      //     partition
      0xff, 0xff, 0xff, 0xff,          //     current_leader_epoch: -1
      0, 0, 0, 0, 0, 0, 0, 5,          //     fetch_offset
      0xff, 0xff, 0xff, 0xff,          //     last_fetched_epoch: -1
      0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, // log_start_offset: -1
      0, 0x10, 0, 0,                   //     partition_max_bytes: 1 MiB
      0,                               //     tagged fields: none
      0,                               //   tagged fields: none
      1,                               // forgotten_topics_data: compact, 0
      1,                               // rack_id: ""
      1,                               // tagged fields: 1
      0, 4, 4, "abc",                  //   tag 0 (cluster_id), 4 bytes: compact string
    });
    fetch_request m;
    m.cluster_id = "abc";
    m.max_wait_ms = 500;
    m.min_bytes = 1;
    auto& t = m.topics.emplace_back();
    t.topic = "t";
    auto& p = t.partitions.emplace_back();
    p.fetch_offset = 5;
    p.partition_max_bytes = 1 << 20;
    writer w;
    m.encode(w, 12);
    EXPECT_EQ(hex(w.span()), hex(expected));
    auto d = decode_request(int16_t{1}, 12, expected);
    ASSERT_TRUE(d) << d.error().message();
    EXPECT_EQ(std::get<fetch_request>(d.value()), m);
    expect_every_truncation_fails(expected, [](std::span<const std::byte> p) {
        return decode_request(int16_t{1}, 12, p);
    });
    // Without a cluster id the tagged section is empty.
    m.cluster_id.reset();
    writer w2;
    m.encode(w2, 12);
    EXPECT_EQ(w2.span().back(), std::byte{0});
    EXPECT_EQ(w2.size(), expected.size() - 6);
}

TEST(golden, produce_v9_carries_a_real_record_batch_verbatim) {
    model::record_batch_builder builder;
    builder.add("k", "v", model::event_time(1700000000000));
    builder.add(std::nullopt, "second", model::event_time(1700000000001));
    auto batch = builder.build();

    produce_request m;
    m.acks = 1;
    m.timeout_ms = 1000;
    auto& t = m.topic_data.emplace_back();
    t.name = "orders";
    auto& p = t.partition_data.emplace_back();
    p.records = bytes(batch.bytes().begin(), batch.bytes().end());
    writer w;
    m.encode(w, 9);
    auto r = decode_request(int16_t{0}, 9, w.span());
    ASSERT_TRUE(r) << r.error().message();
    const auto& back = std::get<produce_request>(r.value());
    const auto& records = *back.topic_data[0].partition_data[0].records;
    EXPECT_TRUE(std::ranges::equal(records, batch.bytes()));
    auto h = model::validate_batch(records);
    ASSERT_TRUE(h) << h.error().message();
    EXPECT_EQ(h.value().record_count, 2);
}

// ConsumerGroupHeartbeat v0 response: a nullable struct (the assignment) is an int8 before
// its fields, -1 when null and 1 when present, as Kafka's generated code writes it.
TEST(golden, consumer_group_heartbeat_response_nullable_assignment) {
    consumer_group_heartbeat_response m;
    m.member_id = "m";
    m.member_epoch = 3;
    m.heartbeat_interval_ms = 5000;
    auto body = [](const consumer_group_heartbeat_response& r) {
        writer w;
        r.encode(w, 0);
        return w.take();
    };
    const auto without = frame_of({
      0, 0, 0, 0,                      // throttle_time_ms
      0, 0,                            // error_code
      0,                               // error_message: null
      2, "m",                          // member_id
      0, 0, 0, 3,                      // member_epoch
      0, 0, 0x13, 0x88,                // heartbeat_interval_ms: 5000
      0xff,                            // assignment: null
      0,                               // tagged fields
    });
    EXPECT_EQ(hex(body(m)), hex(without));
    auto& a = m.assignment.emplace();
    auto& tp = a.topic_partitions.emplace_back();
    tp.topic_id.value[15] = 7;
    tp.partitions = {0, 2};
    auto with = std::vector<std::byte>(without.begin(), without.end() - 2);
    for (auto p : {frame_of({1,                  // assignment: present
                             2}),                // topic_partitions: 1
                   frame_of({0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7}),
                   frame_of({3, 0, 0, 0, 0, 0, 0, 0, 2, // partitions: 0, 2
                             0,                  // topic tagged fields
                             0,                  // assignment tagged fields
                             0})}) {             // body tagged fields
        with.insert(with.end(), p.begin(), p.end());
    }
    EXPECT_EQ(hex(body(m)), hex(with));
    reader null_reader(without);
    consumer_group_heartbeat_response null_back;
    ASSERT_TRUE(null_back.decode(null_reader, 0));
    EXPECT_FALSE(null_back.assignment.has_value());
    reader r(with);
    consumer_group_heartbeat_response back;
    ASSERT_TRUE(back.decode(r, 0));
    EXPECT_EQ(back, m);
    expect_every_truncation_fails(with, [](std::span<const std::byte> p) {
        reader r(p);
        consumer_group_heartbeat_response x;
        return bool(x.decode(r, 0)) && r.rest().empty();
    });
}

} // namespace
} // namespace runnel::kafka::protocol
