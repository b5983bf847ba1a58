#include "kafka/server/handler.h"

namespace runnel::kafka {

// ConsumerGroupHeartbeat and ConsumerGroupDescribe: groups of the consumer protocol (KIP-848),
// answered by the group coordinator (src/broker/consumer_group.h). The wire names topics by
// id; the coordinator by name.

namespace {

std::optional<std::string> message_or_null(std::string m) {
    return m.empty() ? std::nullopt : std::optional<std::string>(std::move(m));
}

} // namespace

asio::awaitable<response_frame> handle(const request_context& ctx, proto::consumer_group_heartbeat_request req) {
    if (!authorize(ctx, security::acl_operation::read, security::resource_type::group, req.group_id)) {
        proto::consumer_group_heartbeat_response r;
        r.error_code = kerr::group_authorization_failed;
        co_return respond(ctx, r);
    }
    broker::consumer_heartbeat_request hb;
    hb.member_id = std::move(req.member_id);
    hb.member_epoch = req.member_epoch;
    hb.instance_id = std::move(req.instance_id);
    hb.rack_id = std::move(req.rack_id);
    hb.rebalance_timeout_ms = req.rebalance_timeout_ms;
    hb.subscribed_topic_names = std::move(req.subscribed_topic_names);
    hb.subscribed_topic_regex = std::move(req.subscribed_topic_regex);
    hb.server_assignor = std::move(req.server_assignor);
    if (req.topic_partitions) {
        auto& owned = hb.owned.emplace();
        for (const auto& t : *req.topic_partitions) {
            // A topic deleted meanwhile is no longer owned by anyone.
            if (auto info = ctx.broker.topic_by_id(t.topic_id.value)) {
                owned[info->name].insert(t.partitions.begin(), t.partitions.end());
            }
        }
    }
    hb.client_id = ctx.header.client_id.value_or("");
    hb.client_host = ctx.client_host;
    hb.client_generates_member_id = ctx.header.request_api_version >= 1;
    auto group_id = std::move(req.group_id);
    auto res = co_await await_callback<broker::consumer_heartbeat_result>(
      [&](std::function<void(broker::consumer_heartbeat_result)> done) {
          ctx.groups.consumer_heartbeat(std::move(group_id), std::move(hb), ctx.shard, std::move(done));
      });
    proto::consumer_group_heartbeat_response r;
    r.error_code = to_kafka_error(res.error);
    r.error_message = message_or_null(std::move(res.error_message));
    if (res.error == broker::errc::success) {
        r.member_id = std::move(res.member_id);
        r.member_epoch = res.member_epoch;
        r.heartbeat_interval_ms = res.heartbeat_interval_ms;
        if (res.assignment) {
            auto& a = r.assignment.emplace();
            for (const auto& [name, partitions] : *res.assignment) {
                if (auto info = ctx.broker.topic(name)) {
                    proto::consumer_group_heartbeat_response::assigned_partitions tp;
                    tp.topic_id.value = info->id;
                    tp.partitions.assign(partitions.begin(), partitions.end());
                    a.topic_partitions.push_back(std::move(tp));
                }
            }
        }
    }
    co_return respond(ctx, r);
}

asio::awaitable<response_frame> handle(const request_context& ctx, proto::consumer_group_describe_request req) {
    using described = proto::consumer_group_describe_response::described_group;
    auto results = co_await await_all<broker::consumer_group_description>(
      req.group_ids.size(), [&](std::size_t i, std::function<void(broker::consumer_group_description)> done) {
          ctx.groups.consumer_describe(req.group_ids[i], ctx.shard, std::move(done));
      });
    auto convert = [&](const broker::topic_assignment& a) {
        proto::consumer_group_describe_response::member_assignment out;
        for (const auto& [name, partitions] : a) {
            proto::consumer_group_describe_response::assigned_topic t;
            if (auto info = ctx.broker.topic(name)) {
                t.topic_id.value = info->id;
            }
            t.topic_name = name;
            t.partitions.assign(partitions.begin(), partitions.end());
            out.topic_partitions.push_back(std::move(t));
        }
        return out;
    };
    proto::consumer_group_describe_response r;
    for (std::size_t i = 0; i < results.size(); ++i) {
        auto& d = results[i];
        described out;
        if (!authorize(ctx, security::acl_operation::describe, security::resource_type::group, req.group_ids[i])) {
            out.group_id = req.group_ids[i];
            out.error_code = kerr::group_authorization_failed;
            r.groups.push_back(std::move(out));
            continue;
        }
        out.group_id = std::move(d.group_id);
        out.error_code = to_kafka_error(d.error);
        out.error_message = message_or_null(std::move(d.error_message));
        if (d.error == broker::errc::success) {
            out.group_state = std::move(d.group.state);
            out.group_epoch = d.group.group_epoch;
            out.assignment_epoch = d.group.assignment_epoch;
            out.assignor_name = std::move(d.group.assignor);
            for (auto& m : d.group.members) {
                proto::consumer_group_describe_response::member pm;
                pm.member_id = std::move(m.member_id);
                pm.instance_id = std::move(m.instance_id);
                pm.rack_id = std::move(m.rack_id);
                pm.member_epoch = m.member_epoch;
                pm.client_id = std::move(m.client_id);
                pm.client_host = std::move(m.client_host);
                pm.subscribed_topic_names = std::move(m.subscribed_topic_names);
                pm.assignment = convert(m.assignment);
                pm.target_assignment = convert(m.target_assignment);
                pm.member_type = 1; // a member of the consumer protocol
                out.members.push_back(std::move(pm));
            }
        }
        r.groups.push_back(std::move(out));
    }
    co_return respond(ctx, r);
}

} // namespace runnel::kafka
