#pragma once

// Records as JSON, both ways: the body of POST /v1/topics/{name}/records, and the records the
// gateway serves (REST, WebSocket, event streams). Free of Beast and Asio; internal.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "gateway/router.h"
#include "model/model.h"

namespace runnel::gateway {

/// One record of a produce request, as the client sent it.
struct produce_record {
    std::optional<std::string> key;
    std::optional<std::string> value;
    std::vector<std::pair<std::string, std::optional<std::string>>> headers;
    std::optional<int32_t> partition;
    std::optional<int64_t> timestamp; ///< milliseconds since the epoch; now when absent
};

/// Parses a produce body: `{"records":[…]}`, a bare array of records, or one record object.
/// A record is `{"key":…,"value":…,"headers":{"name":"value"|null},"partition":N,
/// "timestamp":MS}`, every field optional; a string key or value is stored as its text,
/// `null` as null, any other JSON as its compact text. Returns the problem to answer with
/// when the body is not acceptable (`instance` is left for the caller).
std::optional<problem> parse_produce_body(std::string_view body, std::vector<produce_record>& out);

/// Why `body` is not JSON, with where: "the body is not JSON: syntax error at line 2, column 5
/// (byte 17)"; for a body cut short, "… incomplete JSON at line 1, column 14 (byte 13, the end
/// of the body)". Columns and bytes count from 1 and 0. `max_depth` as the caller parsed with.
std::string not_json_detail(std::string_view body, std::size_t max_depth = 32);

using model::partition_for_key;

/// Appends `,"name":` and `bytes` as records are served: `null`; a JSON object or array
/// embedded as JSON when `embed_json` (values); other UTF-8 text as a string; other bytes as
/// `,"name_base64":"…"`. `runnel consume --format json` writes records the same way.
void append_bytes_field(std::string& out, std::string_view name, std::optional<std::string_view> bytes,
                        bool embed_json);

/// A record as the gateway serves it: one JSON object with topic, partition, offset,
/// timestamp, key, value and headers. A value holding a JSON object or array is embedded as
/// JSON; other UTF-8 text is a string; other bytes come as `value_base64` (likewise
/// `key_base64`, and `headers_base64` for header values that are not UTF-8).
std::string render_record(std::string_view topic, int32_t partition, const model::record_view& r);

/// The records of the whole batches in `bytes` from offset `from` on, rendered; control
/// batches are skipped, compressed ones inflated (gzip, snappy, lz4, zstd). A batch that
/// cannot be decoded is reported through `skipped` as the range [from, to) with a reason.
/// The result of `decode_batches`: rendered records and skipped ranges, both in offset order.
struct decoded_records {
    std::vector<std::pair<int64_t, std::string>> records; ///< offset, rendered JSON
    struct skip {
        int64_t from;
        int64_t to;
        std::string reason;
    };
    std::vector<skip> skipped; ///< in offset order, interleaved with records by offset
    int64_t next_offset = 0;   ///< after the last batch seen
};
decoded_records decode_batches(std::string_view topic, int32_t partition, std::span<const std::byte> bytes,
                               int64_t from);

} // namespace runnel::gateway
