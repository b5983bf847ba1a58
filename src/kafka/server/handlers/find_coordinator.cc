#include "kafka/server/handler.h"

namespace runnel::kafka {

// FindCoordinator: this node coordinates every group (key type 0) and every transactional id
// (key type 1). A group whose offsets are still loading, or a transaction coordinator not yet
// recovered, gets COORDINATOR_NOT_AVAILABLE so the client asks again; other key types are
// INVALID_REQUEST.
asio::awaitable<response_frame> handle(const request_context& ctx, proto::find_coordinator_request req) {
    auto answer = [&](const std::string& key) {
        proto::find_coordinator_response::coordinator c;
        c.key = key;
        if (req.key_type != 0 && req.key_type != 1) {
            c.error_code = kerr::invalid_request;
            c.error_message = "key type must be 0 (group) or 1 (transaction)";
            c.node_id = -1;
            c.port = -1;
        } else if (req.key_type == 0
                   && !authorize(ctx, security::acl_operation::describe, security::resource_type::group, key)) {
            c.error_code = kerr::group_authorization_failed;
            c.node_id = -1;
            c.port = -1;
        } else if (req.key_type == 1
                   && !authorize(ctx, security::acl_operation::describe, security::resource_type::transactional_id,
                                 key)) {
            c.error_code = kerr::transactional_id_authorization_failed;
            c.node_id = -1;
            c.port = -1;
        } else if (req.key_type == 1 && !ctx.broker.transactions().started()) {
            c.error_code = kerr::coordinator_not_available;
            c.error_message = "the transaction coordinator is recovering";
            c.node_id = -1;
            c.port = -1;
        } else if (req.key_type == 0 && !ctx.groups.ready(key)) {
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
