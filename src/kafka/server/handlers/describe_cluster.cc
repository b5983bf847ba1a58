#include "kafka/server/handler.h"

namespace runnel::kafka {

// DescribeCluster: this node is the cluster, its controller and its one broker, at the address
// Metadata advertises. Controllers are not a separate endpoint (endpoint type 2:
// UNSUPPORTED_ENDPOINT_TYPE).
asio::awaitable<response_frame> handle(const request_context& ctx, proto::describe_cluster_request req) {
    constexpr int16_t unsupported_endpoint_type = 115;
    proto::describe_cluster_response r;
    r.endpoint_type = req.endpoint_type;
    if (req.endpoint_type != 1) {
        r.error_code = unsupported_endpoint_type;
        r.error_message = "only the brokers endpoint (type 1) is described";
        co_return respond(ctx, r);
    }
    if (!authorize(ctx, security::acl_operation::describe, security::resource_type::cluster,
                   security::cluster_resource_name)) {
        r.error_code = kerr::cluster_authorization_failed;
        r.error_message = "describing the cluster needs DESCRIBE on it";
        co_return respond(ctx, r);
    }
    r.cluster_id = ctx.config.cluster_id;
    r.controller_id = ctx.config.node_id;
    r.brokers.push_back({ctx.config.node_id, ctx.advertised.host, ctx.advertised.port, std::nullopt});
    if (req.include_cluster_authorized_operations) {
        r.cluster_authorized_operations =
          authorized_operations(ctx, security::resource_type::cluster, security::cluster_resource_name);
    }
    co_return respond(ctx, r);
}

} // namespace runnel::kafka
