#include "kafka/server/handler.h"

namespace runnel::kafka {

// JoinGroup, SyncGroup, Heartbeat and LeaveGroup: the classic rebalance protocol, answered by
// the group coordinator (src/broker/group_coordinator.h). JoinGroup and SyncGroup answers
// wait for the rest of the group, so a connection waits on them as Kafka's does. Each needs
// READ on the group.

namespace {
bool may_read_group(const request_context& ctx, std::string_view group) {
    return authorize(ctx, security::acl_operation::read, security::resource_type::group, group);
}
} // namespace

asio::awaitable<response_frame> handle(const request_context& ctx, proto::join_group_request req) {
    const auto version = ctx.header.request_api_version;
    if (!may_read_group(ctx, req.group_id)) {
        proto::join_group_response r;
        r.error_code = kerr::group_authorization_failed;
        r.generation_id = -1;
        r.protocol_name = version >= 7 ? std::nullopt : std::optional<std::string>("");
        co_return respond(ctx, r);
    }
    broker::join_request j;
    j.group_id = std::move(req.group_id);
    j.session_timeout_ms = req.session_timeout_ms;
    j.rebalance_timeout_ms = version >= 1 ? req.rebalance_timeout_ms : -1;
    j.member_id = std::move(req.member_id);
    j.instance_id = std::move(req.group_instance_id);
    j.protocol_type = std::move(req.protocol_type);
    for (auto& p : req.protocols) {
        j.protocols.emplace_back(std::move(p.name), std::string(reinterpret_cast<const char*>(p.metadata.data()), p.metadata.size()));
    }
    j.client_id = ctx.header.client_id.value_or("");
    j.client_host = ctx.client_host;
    j.require_known_member = version >= 4;
    auto res = co_await await_callback<broker::join_result>(
      [&](std::function<void(broker::join_result)> done) { ctx.groups.join(std::move(j), ctx.shard, std::move(done)); });
    proto::join_group_response r;
    r.error_code = to_kafka_error(res.error);
    r.generation_id = res.generation;
    r.member_id = res.member_id;
    r.leader = res.leader;
    r.skip_assignment = res.skip_assignment;
    if (res.error == broker::errc::success) {
        r.protocol_type = res.protocol_type;
        r.protocol_name = res.protocol_name;
        if (version < 7 && !r.protocol_name) {
            r.protocol_name = "";
        }
        for (auto& m : res.members) {
            proto::join_group_response::member out;
            out.member_id = std::move(m.member_id);
            out.group_instance_id = std::move(m.instance_id);
            out.metadata = proto::bytes(reinterpret_cast<const std::byte*>(m.metadata.data()),
                                        reinterpret_cast<const std::byte*>(m.metadata.data() + m.metadata.size()));
            r.members.push_back(std::move(out));
        }
    } else {
        r.generation_id = -1;
        r.protocol_name = version >= 7 ? std::nullopt : std::optional<std::string>("");
    }
    co_return respond(ctx, r);
}

asio::awaitable<response_frame> handle(const request_context& ctx, proto::sync_group_request req) {
    if (!may_read_group(ctx, req.group_id)) {
        proto::sync_group_response r;
        r.error_code = kerr::group_authorization_failed;
        co_return respond(ctx, r);
    }
    broker::sync_request sreq;
    sreq.group_id = std::move(req.group_id);
    sreq.generation = req.generation_id;
    sreq.member_id = std::move(req.member_id);
    sreq.instance_id = std::move(req.group_instance_id);
    sreq.protocol_type = std::move(req.protocol_type);
    sreq.protocol_name = std::move(req.protocol_name);
    for (auto& a : req.assignments) {
        sreq.assignments.emplace_back(std::move(a.member_id),
                                      std::string(reinterpret_cast<const char*>(a.assignment.data()), a.assignment.size()));
    }
    auto res = co_await await_callback<broker::sync_result>(
      [&](std::function<void(broker::sync_result)> done) { ctx.groups.sync(std::move(sreq), ctx.shard, std::move(done)); });
    proto::sync_group_response r;
    r.error_code = to_kafka_error(res.error);
    r.protocol_type = res.protocol_type;
    r.protocol_name = res.protocol_name;
    r.assignment = proto::bytes(reinterpret_cast<const std::byte*>(res.assignment.data()),
                                reinterpret_cast<const std::byte*>(res.assignment.data() + res.assignment.size()));
    co_return respond(ctx, r);
}

asio::awaitable<response_frame> handle(const request_context& ctx, proto::heartbeat_request req) {
    if (!may_read_group(ctx, req.group_id)) {
        proto::heartbeat_response r;
        r.error_code = kerr::group_authorization_failed;
        co_return respond(ctx, r);
    }
    auto e = co_await await_callback<broker::errc>([&](std::function<void(broker::errc)> done) {
        ctx.groups.heartbeat(std::move(req.group_id), req.generation_id,
                             {std::move(req.member_id), std::move(req.group_instance_id)}, ctx.shard, std::move(done));
    });
    proto::heartbeat_response r;
    r.error_code = to_kafka_error(e);
    co_return respond(ctx, r);
}

asio::awaitable<response_frame> handle(const request_context& ctx, proto::leave_group_request req) {
    if (!may_read_group(ctx, req.group_id)) {
        proto::leave_group_response r;
        r.error_code = kerr::group_authorization_failed;
        co_return respond(ctx, r);
    }
    const bool batch = ctx.header.request_api_version >= 3;
    std::vector<broker::member_identity> who;
    if (batch) {
        for (auto& m : req.members) {
            who.push_back({std::move(m.member_id), std::move(m.group_instance_id)});
        }
    } else {
        who.push_back({std::move(req.member_id), std::nullopt});
    }
    using outcome = std::pair<broker::errc, std::vector<broker::errc>>;
    auto res = co_await await_callback<outcome>([&](std::function<void(outcome)> done) {
        ctx.groups.leave(std::move(req.group_id), who, ctx.shard,
                         [done](broker::errc top, std::vector<broker::errc> each) { done({top, std::move(each)}); });
    });
    proto::leave_group_response r;
    if (!batch) {
        // One member: its own error is the answer.
        r.error_code = to_kafka_error(res.second.empty() ? res.first : res.second.front());
    } else {
        r.error_code = to_kafka_error(res.first);
        for (std::size_t i = 0; i < res.second.size() && i < who.size(); ++i) {
            proto::leave_group_response::member_response m;
            m.member_id = who[i].member_id;
            m.group_instance_id = who[i].instance_id;
            m.error_code = to_kafka_error(res.second[i]);
            r.members.push_back(std::move(m));
        }
    }
    co_return respond(ctx, r);
}

} // namespace runnel::kafka
