#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "base/result.h"
#include "kafka/protocol/messages/apis.h"
#include "kafka/protocol/messages/headers.h"
#include "kafka/protocol/wire.h"

namespace runnel::kafka::protocol {

/// The request header version a client uses for `version` of api `key`: 2 from the api's
/// first flexible version on (client id, then tagged fields), 1 before it. Versions outside
/// the supported range follow the same rule, so an unsupported request still parses far
/// enough to be answered; unknown apis get 1.
int16_t request_header_version(int16_t key, int16_t version) noexcept;

/// The response header version: 1 (with tagged fields) in flexible versions, 0 before, and
/// always 0 for ApiVersions, whose response a client must read before it knows any version.
int16_t response_header_version(int16_t key, int16_t version) noexcept;

/// A request frame split into its header and its body. Views the frame's bytes.
struct request_frame {
    request_header header;
    int16_t header_version = 1;
    /// The bytes after the header, to give to `decode_request`.
    std::span<const std::byte> body;
};

/// Parses the header at the start of `frame` (the bytes after the 4-byte size prefix).
/// Fails only when the header itself is malformed; an unknown api or version is left to
/// `decode_request`, so the caller still has the correlation id to answer with.
result<request_frame> parse_request_header(std::span<const std::byte> frame);

/// Parses a response header of the version api `key` at `version` implies, advancing `r` to
/// the body (for clients and tests).
result<response_header> parse_response_header(reader& r, int16_t key, int16_t version);

/// Appends a whole request frame: 4-byte size, header (of the version the api implies) and
/// `body` encoded at `h.request_api_version`. Precondition: h.request_api_key == Request::api.
template <typename Request>
void write_request_frame(writer& w, const request_header& h, const Request& body) {
    auto mark = w.begin_frame();
    h.encode(w, request_header_version(h.request_api_key, h.request_api_version));
    body.encode(w, h.request_api_version);
    w.end_frame(mark);
}

/// Appends a whole response frame: 4-byte size, response header and `body` at `api_version`.
template <typename Response>
void write_response_frame(writer& w, int16_t api_version, int32_t correlation_id,
                          const Response& body) {
    auto key = static_cast<int16_t>(Response::api);
    auto mark = w.begin_frame();
    response_header h;
    h.correlation_id = correlation_id;
    h.encode(w, response_header_version(key, api_version));
    body.encode(w, api_version);
    w.end_frame(mark);
}

} // namespace runnel::kafka::protocol
