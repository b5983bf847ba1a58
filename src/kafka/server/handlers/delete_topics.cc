#include "kafka/server/handler.h"

namespace runnel::kafka {

// DeleteTopics: by name (all versions) or by topic id (v6).
asio::awaitable<response_frame> handle(const request_context& ctx, proto::delete_topics_request req) {
    const auto version = ctx.header.request_api_version;
    proto::delete_topics_response r;
    struct wanted {
        std::optional<std::string> name;
        proto::uuid id;
    };
    std::vector<wanted> targets;
    if (version >= 6) {
        for (auto& t : req.topics) {
            targets.push_back({t.name, t.topic_id});
        }
    } else {
        for (auto& n : req.topic_names) {
            targets.push_back({n, {}});
        }
    }
    for (auto& t : targets) {
        auto& out = r.responses.emplace_back();
        out.name = t.name;
        out.topic_id = t.id;
        std::shared_ptr<const broker::topic_info> info;
        if (t.name && !authorize(ctx, security::acl_operation::remove, security::resource_type::topic, *t.name)) {
            out.error_code = kerr::topic_authorization_failed;
            continue;
        }
        if (t.name) {
            info = ctx.broker.topic(*t.name);
        } else {
            for (const auto& [_, candidate] : *ctx.broker.topics()) {
                if (candidate->id == t.id.value) {
                    info = candidate;
                }
            }
        }
        if (!info) {
            out.error_code = t.name ? kerr::unknown_topic_or_partition : kerr::unknown_topic_id;
            continue;
        }
        if (!t.name && !authorize(ctx, security::acl_operation::remove, security::resource_type::topic, info->name)) {
            // By id: a topic the principal may not even describe stays unknown.
            out.error_code = authorize(ctx, security::acl_operation::describe, security::resource_type::topic,
                                       info->name, false)
                               ? kerr::topic_authorization_failed
                               : kerr::unknown_topic_id;
            continue;
        }
        out.name = info->name;
        out.topic_id.value = info->id;
        auto deleted = co_await await_callback<result<void>>([&](std::function<void(result<void>)> done) {
            ctx.broker.delete_topic(info->name, ctx.shard, std::move(done));
        });
        if (!deleted) {
            out.error_code = to_kafka_error(deleted.error());
            out.error_message = deleted.error().message();
        }
    }
    co_return respond(ctx, r);
}

} // namespace runnel::kafka
