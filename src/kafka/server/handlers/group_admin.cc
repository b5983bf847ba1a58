#include <algorithm>

#include "kafka/server/handler.h"
#include "base/text.h"

namespace runnel::kafka {

// ListGroups, DescribeGroups and DeleteGroups. ListGroups v5 names each group's type (classic
// or consumer, KIP-848); DescribeGroups describes classic groups only, as Kafka's does.

namespace {

proto::bytes as_bytes(const std::string& s) {
    return proto::bytes(reinterpret_cast<const std::byte*>(s.data()), reinterpret_cast<const std::byte*>(s.data() + s.size()));
}

} // namespace

asio::awaitable<response_frame> handle(const request_context& ctx, proto::list_groups_request req) {
    auto groups = co_await await_callback<std::vector<broker::group_listing>>(
      [&](std::function<void(std::vector<broker::group_listing>)> done) { ctx.groups.list(ctx.shard, std::move(done)); });
    proto::list_groups_response r;
    // DESCRIBE on the cluster lists every group; otherwise only those the principal may describe.
    const bool all = authorize(ctx, security::acl_operation::describe, security::resource_type::cluster,
                               security::cluster_resource_name, false);
    for (auto& g : groups) {
        if (!all && !authorize(ctx, security::acl_operation::describe, security::resource_type::group, g.group_id, false)) {
            continue;
        }
        if (!req.states_filter.empty()
            && std::none_of(req.states_filter.begin(), req.states_filter.end(),
                            [&](const std::string& s) { return text::iequals(s, g.state); })) {
            continue;
        }
        if (!req.types_filter.empty()
            && std::none_of(req.types_filter.begin(), req.types_filter.end(),
                            [&](const std::string& t) { return text::iequals(t, g.type); })) {
            continue;
        }
        proto::list_groups_response::listed_group out;
        out.group_id = std::move(g.group_id);
        out.protocol_type = std::move(g.protocol_type);
        out.group_state = std::move(g.state);
        out.group_type = std::move(g.type);
        r.groups.push_back(std::move(out));
    }
    co_return respond(ctx, r);
}

asio::awaitable<response_frame> handle(const request_context& ctx, proto::describe_groups_request req) {
    proto::describe_groups_response r;
    for (auto& id : req.groups) {
        if (!authorize(ctx, security::acl_operation::describe, security::resource_type::group, id)) {
            proto::describe_groups_response::described_group out;
            out.error_code = kerr::group_authorization_failed;
            out.group_id = id;
            r.groups.push_back(std::move(out));
            continue;
        }
        auto d = co_await await_callback<broker::group_description>(
          [&](std::function<void(broker::group_description)> done) { ctx.groups.describe(id, ctx.shard, std::move(done)); });
        proto::describe_groups_response::described_group out;
        out.error_code = to_kafka_error(d.error);
        out.group_id = id;
        out.group_state = d.state;
        out.protocol_type = d.protocol_type;
        out.protocol_data = d.protocol;
        for (auto& m : d.members) {
            proto::describe_groups_response::member pm;
            pm.member_id = std::move(m.member_id);
            pm.group_instance_id = std::move(m.instance_id);
            pm.client_id = std::move(m.client_id);
            pm.client_host = std::move(m.client_host);
            pm.member_metadata = as_bytes(m.metadata);
            pm.member_assignment = as_bytes(m.assignment);
            out.members.push_back(std::move(pm));
        }
        if (req.include_authorized_operations) {
            out.authorized_operations = authorized_operations(ctx, security::resource_type::group, id);
        }
        r.groups.push_back(std::move(out));
    }
    co_return respond(ctx, r);
}

asio::awaitable<response_frame> handle(const request_context& ctx, proto::delete_groups_request req) {
    proto::delete_groups_response r;
    for (auto& id : req.groups_names) {
        if (!authorize(ctx, security::acl_operation::remove, security::resource_type::group, id)) {
            r.results.push_back({id, kerr::group_authorization_failed});
            continue;
        }
        auto e = co_await await_callback<broker::errc>(
          [&](std::function<void(broker::errc)> done) { ctx.groups.delete_group(id, ctx.shard, std::move(done)); });
        proto::delete_groups_response::group_result out;
        out.group_id = id;
        out.error_code = to_kafka_error(e);
        r.results.push_back(std::move(out));
    }
    co_return respond(ctx, r);
}

} // namespace runnel::kafka
