#include "kafka/protocol/header.h"

namespace runnel::kafka::protocol {

int16_t request_header_version(int16_t key, int16_t version) noexcept {
    const api_support* api = find_api(key);
    return api != nullptr && api->is_flexible(version) ? 2 : 1;
}

int16_t response_header_version(int16_t key, int16_t version) noexcept {
    if (key == static_cast<int16_t>(api_key::api_versions)) {
        return 0;
    }
    const api_support* api = find_api(key);
    return api != nullptr && api->is_flexible(version) ? 1 : 0;
}

result<request_frame> parse_request_header(std::span<const std::byte> frame) {
    // The api key and version come first in every header version and decide the rest.
    reader peek(frame);
    RUNNEL_TRY(auto key, peek.read_int16());
    RUNNEL_TRY(auto version, peek.read_int16());
    request_frame out;
    out.header_version = request_header_version(key, version);
    reader r(frame);
    RUNNEL_TRY(out.header.decode(r, out.header_version));
    out.body = r.rest();
    return out;
}

result<response_header> parse_response_header(reader& r, int16_t key, int16_t version) {
    response_header h;
    RUNNEL_TRY(h.decode(r, response_header_version(key, version)));
    return h;
}

} // namespace runnel::kafka::protocol
