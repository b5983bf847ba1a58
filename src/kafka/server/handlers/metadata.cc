#include "kafka/server/handler.h"

namespace runnel::kafka {
namespace {

proto::metadata_response::topic describe(const request_context& ctx, const proto::metadata_request& req,
                                         const broker::topic_info& t) {
    const int32_t node = ctx.config.node_id;
    proto::metadata_response::topic out;
    if (req.include_topic_authorized_operations) {
        out.topic_authorized_operations = authorized_operations(ctx, security::resource_type::topic, t.name);
    }
    out.name = t.name;
    out.topic_id.value = t.id;
    out.is_internal = broker::is_internal_topic(t.name);
    for (int32_t p = 0; p < t.config.partitions; ++p) {
        proto::metadata_response::partition part;
        part.partition_index = p;
        part.leader_id = node;
        part.leader_epoch = 0;
        part.replica_nodes = {node};
        part.isr_nodes = {node};
        out.partitions.push_back(std::move(part));
    }
    return out;
}

} // namespace

// Metadata: this one broker leads every partition. Unknown topics named by the client are
// created when auto-creation is on and the client allows it (always before v4).
asio::awaitable<response_frame> handle(const request_context& ctx, proto::metadata_request req) {
    const auto version = ctx.header.request_api_version;
    proto::metadata_response r;
    r.brokers.push_back({ctx.config.node_id, ctx.advertised.host, ctx.advertised.port, std::nullopt});
    r.cluster_id = ctx.config.cluster_id;
    r.controller_id = ctx.config.node_id;
    if (req.include_cluster_authorized_operations) {
        r.cluster_authorized_operations =
          authorized_operations(ctx, security::resource_type::cluster, security::cluster_resource_name);
    }

    const bool all = !req.topics || (version == 0 && req.topics->empty());
    // Topics the principal may not DESCRIBE are left out of a full listing, and answer
    // TOPIC_AUTHORIZATION_FAILED when named (UNKNOWN_TOPIC_ID when asked for by id).
    auto may_describe = [&ctx](std::string_view name, bool audit) {
        return authorize(ctx, security::acl_operation::describe, security::resource_type::topic, name, audit);
    };
    if (all) {
        for (const auto& [_, t] : *ctx.broker.topics()) {
            if (may_describe(t->name, false)) {
                r.topics.push_back(describe(ctx, req, *t));
            }
        }
        co_return respond(ctx, r);
    }
    const bool may_create = version < 4 || req.allow_auto_topic_creation;
    for (const auto& wanted : *req.topics) {
        if (!wanted.name) {
            // By topic id (v10+).
            proto::metadata_response::topic out;
            out.topic_id = wanted.topic_id;
            out.error_code = kerr::unknown_topic_id;
            for (const auto& [_, t] : *ctx.broker.topics()) {
                if (t->id == wanted.topic_id.value && may_describe(t->name, true)) {
                    out = describe(ctx, req, *t);
                }
            }
            r.topics.push_back(std::move(out));
            continue;
        }
        if (!may_describe(*wanted.name, true)) {
            proto::metadata_response::topic out;
            out.name = *wanted.name;
            out.error_code = kerr::topic_authorization_failed;
            r.topics.push_back(std::move(out));
            continue;
        }
        auto [topic, error] = co_await find_or_create_topic(ctx, *wanted.name, may_create);
        if (topic) {
            r.topics.push_back(describe(ctx, req, *topic));
        } else {
            proto::metadata_response::topic out;
            out.name = *wanted.name;
            out.error_code = error;
            r.topics.push_back(std::move(out));
        }
    }
    co_return respond(ctx, r);
}

} // namespace runnel::kafka
