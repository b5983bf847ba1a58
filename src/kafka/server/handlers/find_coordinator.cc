#include "kafka/server/handler.h"

namespace runnel::kafka {

// FindCoordinator: this node coordinates every group. Transactional ids have no coordinator
// (transactions are not offered): UNSUPPORTED_VERSION, which clients treat as final rather than
// retrying for ever. A group whose offsets are still loading gets COORDINATOR_NOT_AVAILABLE so
// the client asks again.
asio::awaitable<response_frame> handle(const request_context& ctx, proto::find_coordinator_request req) {
    auto answer = [&](const std::string& key) {
        proto::find_coordinator_response::coordinator c;
        c.key = key;
        if (req.key_type != 0) {
            c.error_code = kerr::unsupported_version;
            c.error_message = "transactions are not offered by this broker: only group coordinators (key type 0)";
            c.node_id = -1;
            c.port = -1;
        } else if (!ctx.groups.ready(key)) {
            c.error_code = kerr::coordinator_not_available;
            c.error_message = "the group coordinator is loading committed offsets";
            c.node_id = -1;
            c.port = -1;
        } else {
            c.error_message = std::nullopt;
            c.node_id = ctx.config.node_id;
            c.host = ctx.advertised.host;
            c.port = ctx.advertised.port;
        }
        return c;
    };
    proto::find_coordinator_response r;
    if (ctx.header.request_api_version >= 4) {
        for (const auto& key : req.coordinator_keys) {
            r.coordinators.push_back(answer(key));
        }
    } else {
        auto c = answer(req.key);
        r.error_code = c.error_code;
        r.error_message = c.error_message;
        r.node_id = c.node_id;
        r.host = c.host;
        r.port = c.port;
    }
    co_return respond(ctx, r);
}

} // namespace runnel::kafka
