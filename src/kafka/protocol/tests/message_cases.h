#pragma once

// Every generated message as a `message_case`, so tests loop over all apis and versions.

#include <algorithm>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "kafka/protocol/protocol.h"
#include "kafka/protocol/tests/fill_support.h"

namespace runnel::kafka::protocol::testing {

/// One generated message type, type-erased so tests can loop over all of them.
struct message_case {
    std::string_view name;
    int16_t api_key = -1; ///< -1 for the headers
    bool is_request = false;
    int16_t min_version = 0;
    int16_t max_version = 0;
    /// The filled message of `version`, encoded.
    std::function<std::vector<std::byte>(int16_t version, bool nulls)> encode_filled;
    /// Fills, encodes, decodes, compares and re-encodes; returns "" or what went wrong.
    std::function<std::string(int16_t version, bool nulls)> roundtrip;
    /// The same for a default-constructed message.
    std::function<std::string(int16_t version)> roundtrip_default;
    /// Decodes `bytes` as this message (no check for trailing bytes).
    std::function<result<void>(std::span<const std::byte>, int16_t version)> decode;
};

std::string hex(std::span<const std::byte> b);

template <typename M>
std::string check_roundtrip(const M& m, int16_t v) {
    writer w;
    m.encode(w, v);
    auto encoded = w.take();
    reader r(encoded);
    M decoded;
    auto res = decoded.decode(r, v);
    if (!res) {
        return "decode failed: " + res.error().message() + " in " + hex(encoded);
    }
    if (!r.empty()) {
        return std::to_string(r.remaining()) + " bytes left after decode of " + hex(encoded);
    }
    if (!(decoded == m)) {
        return "decoded message differs from the original; bytes " + hex(encoded);
    }
    writer again;
    decoded.encode(again, v);
    if (!std::ranges::equal(again.span(), encoded)) {
        return "re-encoding differs: " + hex(again.span()) + " vs " + hex(encoded);
    }
    return {};
}

template <typename M>
message_case make_case(std::string_view name, int16_t key, bool is_request,
                       void (*fill)(M&, int16_t, value_source&, bool)) {
    message_case c;
    c.name = name;
    c.api_key = key;
    c.is_request = is_request;
    c.min_version = M::min_version;
    c.max_version = M::max_version;
    c.encode_filled = [fill](int16_t v, bool nulls) {
        M m;
        value_source g;
        fill(m, v, g, nulls);
        writer w;
        m.encode(w, v);
        return w.take();
    };
    c.roundtrip = [fill](int16_t v, bool nulls) {
        M m;
        value_source g;
        fill(m, v, g, nulls);
        return check_roundtrip(m, v);
    };
    c.roundtrip_default = [](int16_t v) { return check_roundtrip(M{}, v); };
    c.decode = [](std::span<const std::byte> b, int16_t v) -> result<void> {
        reader r(b);
        M m;
        return m.decode(r, v);
    };
    return c;
}

/// Every generated message, requests and responses of every api, then the headers.
std::vector<message_case> all_message_cases();

} // namespace runnel::kafka::protocol::testing
