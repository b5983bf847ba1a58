#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "base/result.h"
#include "kafka/protocol/messages/all.h"

namespace runnel::kafka::protocol {

/// Decodes the body of a request of `api_key` at `api_version` into the matching alternative
/// of `any_request`. Fails with `unsupported_api_key` / `unsupported_version` outside the api
/// table, and with the codec's error for malformed bytes. Bytes after a whole message are
/// ignored, as Kafka brokers ignore them: librdkafka 2.0.2 sends OffsetFetch v7 requests with
/// three zero bytes after the message.
result<any_request> decode_request(int16_t api_key, int16_t api_version,
                                   std::span<const std::byte> body);

inline result<any_request> decode_request(const request_header& h,
                                          std::span<const std::byte> body) {
    return decode_request(h.request_api_key, h.request_api_version, body);
}

/// The same for a response body (after its response header), for clients and tests.
result<any_response> decode_response(int16_t api_key, int16_t api_version,
                                     std::span<const std::byte> body);

} // namespace runnel::kafka::protocol
