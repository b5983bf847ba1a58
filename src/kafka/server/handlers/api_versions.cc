#include "kafka/server/handler.h"

namespace runnel::kafka {

// ApiVersions: the table of what this server answers, exactly as implemented.
asio::awaitable<response_frame> handle(const request_context& ctx, proto::api_versions_request) {
    proto::api_versions_response r;
    for (const auto& a : implemented_apis()) {
        r.api_keys.push_back({static_cast<int16_t>(a.key), a.min_version, a.max_version});
    }
    co_return respond(ctx, r);
}

} // namespace runnel::kafka
