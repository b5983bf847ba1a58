#include <algorithm>
#include <map>

#include "kafka/server/handler.h"

namespace runnel::kafka {

// OffsetCommit, OffsetFetch and OffsetDelete: a group's committed positions, stored by the
// coordinator in __consumer_offsets and synced before a commit is answered.

namespace {

/// Per-partition errors in a response's topic → partitions shape, topics in first-seen order.
template <typename Topic>
std::vector<Topic> by_topic(const std::vector<broker::partition_error>& errors) {
    std::vector<Topic> topics;
    std::map<std::string, std::size_t> topic_index;
    for (const auto& e : errors) {
        auto [it, fresh] = topic_index.try_emplace(e.tp.topic, topics.size());
        if (fresh) {
            topics.emplace_back().name = e.tp.topic;
        }
        auto& part = topics[it->second].partitions.emplace_back();
        part.partition_index = e.tp.partition();
        part.error_code = to_kafka_error(e.error);
    }
    return topics;
}

/// Adds `code` for each of `denied` to a response's topic → partitions shape.
template <typename Topic>
void add_errors(std::vector<Topic>& topics, const std::vector<model::topic_partition>& denied, int16_t code) {
    for (const auto& tp : denied) {
        auto it = std::find_if(topics.begin(), topics.end(), [&](const Topic& t) { return t.name == tp.topic; });
        if (it == topics.end()) {
            it = topics.emplace(topics.end());
            it->name = tp.topic;
        }
        auto& part = it->partitions.emplace_back();
        part.partition_index = tp.partition();
        part.error_code = code;
    }
}

/// Splits a request's partitions into those whose topic allows `op` and those it does not.
template <typename Topics, typename Partitions>
std::vector<model::topic_partition> denied_partitions(const request_context& ctx, const Topics& topics,
                                                      security::acl_operation op, Partitions partitions_of) {
    std::vector<model::topic_partition> denied;
    for (const auto& t : topics) {
        if (!authorize(ctx, op, security::resource_type::topic, t.name)) {
            for (auto p : partitions_of(t)) {
                denied.push_back({t.name, model::partition_id(p)});
            }
        }
    }
    return denied;
}

template <typename Topic>
std::vector<int32_t> partition_indexes(const Topic& t) {
    std::vector<int32_t> out;
    for (const auto& p : t.partitions) {
        out.push_back(p.partition_index);
    }
    return out;
}

} // namespace

// OffsetCommit needs READ on the group (or every partition is GROUP_AUTHORIZATION_FAILED) and
// READ on each topic (TOPIC_AUTHORIZATION_FAILED for that topic's partitions).
asio::awaitable<response_frame> handle(const request_context& ctx, proto::offset_commit_request req) {
    if (!authorize(ctx, security::acl_operation::read, security::resource_type::group, req.group_id)) {
        proto::offset_commit_response r;
        std::vector<model::topic_partition> all;
        for (const auto& t : req.topics) {
            for (const auto& p : t.partitions) {
                all.push_back({t.name, model::partition_id(p.partition_index)});
            }
        }
        add_errors(r.topics, all, kerr::group_authorization_failed);
        co_return respond(ctx, r);
    }
    auto denied = denied_partitions(ctx, req.topics, security::acl_operation::read,
                                    [](const auto& t) { return partition_indexes(t); });
    broker::commit_request c;
    c.group_id = std::move(req.group_id);
    c.generation = req.generation_id_or_member_epoch;
    c.member_id = std::move(req.member_id);
    c.instance_id = std::move(req.group_instance_id);
    for (const auto& t : req.topics) {
        if (!denied.empty() && std::any_of(denied.begin(), denied.end(), [&](const auto& tp) { return tp.topic == t.name; })) {
            continue;
        }
        for (const auto& p : t.partitions) {
            broker::committed_offset v;
            v.offset = p.committed_offset;
            v.leader_epoch = p.committed_leader_epoch;
            v.metadata = p.committed_metadata;
            v.commit_time_ms = -1;
            c.partitions.push_back({{t.name, model::partition_id(p.partition_index)}, std::move(v)});
        }
    }
    proto::offset_commit_response r;
    if (c.partitions.empty() && !denied.empty()) {
        add_errors(r.topics, denied, kerr::topic_authorization_failed);
        co_return respond(ctx, r);
    }
    using outcome = std::pair<broker::errc, std::vector<broker::partition_error>>;
    auto res = co_await await_callback<outcome>([&](std::function<void(outcome)> done) {
        ctx.groups.commit(std::move(c), ctx.shard,
                          [done](broker::errc top, std::vector<broker::partition_error> each) { done({top, std::move(each)}); });
    });
    r.topics = by_topic<proto::offset_commit_response::topic>(res.second);
    add_errors(r.topics, denied, kerr::topic_authorization_failed);
    co_return respond(ctx, r);
}

namespace {

/// One group's answer in OffsetFetch's per-topic shape.
std::pair<int16_t, std::vector<proto::offset_fetch_response::topic>> fetch_group(
  const broker::offsets_fetch_result& res) {
    std::vector<proto::offset_fetch_response::topic> topics;
    std::map<std::string, std::size_t> topic_index;
    for (const auto& f : res.partitions) {
        auto [it, fresh] = topic_index.try_emplace(f.tp.topic, topics.size());
        if (fresh) {
            topics.emplace_back().name = f.tp.topic;
        }
        auto& part = topics[it->second].partitions.emplace_back();
        part.partition_index = f.tp.partition();
        part.committed_offset = f.value.offset;
        part.committed_leader_epoch = f.value.leader_epoch;
        part.metadata = f.value.metadata.value_or("");
        part.error_code = to_kafka_error(f.error);
    }
    return {to_kafka_error(res.error), std::move(topics)};
}

std::optional<std::vector<model::topic_partition>> wanted(
  const std::optional<std::vector<proto::offset_fetch_request::topic>>& topics) {
    if (!topics) {
        return std::nullopt;
    }
    std::vector<model::topic_partition> out;
    for (const auto& t : *topics) {
        for (auto p : t.partition_indexes) {
            out.push_back({t.name, model::partition_id(p)});
        }
    }
    return out;
}

asio::awaitable<broker::offsets_fetch_result> fetch_offsets(const request_context& ctx, std::string group,
                                                            std::optional<std::vector<model::topic_partition>> tps) {
    co_return co_await await_callback<broker::offsets_fetch_result>(
      [&](std::function<void(broker::offsets_fetch_result)> done) {
          ctx.groups.fetch_offsets(std::move(group), std::move(tps), ctx.shard, std::move(done));
      });
}

/// Topics the principal may not DESCRIBE: left out when the client asked for all of the
/// group's, TOPIC_AUTHORIZATION_FAILED when it named them.
void hide_topics(const request_context& ctx, std::vector<proto::offset_fetch_response::topic>& topics, bool named) {
    std::erase_if(topics, [&](proto::offset_fetch_response::topic& t) {
        if (authorize(ctx, security::acl_operation::describe, security::resource_type::topic, t.name, named)) {
            return false;
        }
        for (auto& p : t.partitions) {
            p.committed_offset = -1;
            p.committed_leader_epoch = -1;
            p.metadata = "";
            p.error_code = kerr::topic_authorization_failed;
        }
        return !named;
    });
}

bool may_describe_group(const request_context& ctx, std::string_view group) {
    return authorize(ctx, security::acl_operation::describe, security::resource_type::group, group);
}

} // namespace

// OffsetFetch needs DESCRIBE on the group (GROUP_AUTHORIZATION_FAILED) and on each topic.
asio::awaitable<response_frame> handle(const request_context& ctx, proto::offset_fetch_request req) {
    const auto version = ctx.header.request_api_version;
    proto::offset_fetch_response r;
    if (version >= 8) {
        for (auto& g : req.groups) {
            if (!may_describe_group(ctx, g.group_id)) {
                proto::offset_fetch_response::group out;
                out.group_id = g.group_id;
                out.error_code = kerr::group_authorization_failed;
                r.groups.push_back(std::move(out));
                continue;
            }
            auto res = co_await fetch_offsets(ctx, g.group_id, wanted(g.topics));
            auto [error, topics] = fetch_group(res);
            hide_topics(ctx, topics, g.topics.has_value());
            proto::offset_fetch_response::group out;
            out.group_id = g.group_id;
            out.error_code = error;
            out.topics = std::move(topics);
            r.groups.push_back(std::move(out));
        }
        co_return respond(ctx, r);
    }
    auto tps = wanted(req.topics);
    if (!may_describe_group(ctx, req.group_id)) {
        r.error_code = kerr::group_authorization_failed;
        if (version < 2 && tps) {
            add_errors(r.topics, *tps, kerr::group_authorization_failed);
            for (auto& t : r.topics) {
                for (auto& p : t.partitions) {
                    p.committed_offset = -1;
                    p.committed_leader_epoch = -1;
                    p.metadata = "";
                }
            }
        }
        co_return respond(ctx, r);
    }
    auto res = co_await fetch_offsets(ctx, req.group_id, tps);
    if (version < 2 && res.error != broker::errc::success && tps) {
        // No top-level error before v2: each partition carries it.
        for (const auto& tp : *tps) {
            res.partitions.push_back({tp, {}, res.error});
        }
    }
    auto [error, topics] = fetch_group(res);
    hide_topics(ctx, topics, tps.has_value());
    r.error_code = error;
    r.topics = std::move(topics);
    co_return respond(ctx, r);
}

// OffsetDelete needs DELETE on the group and READ on each topic.
asio::awaitable<response_frame> handle(const request_context& ctx, proto::offset_delete_request req) {
    if (!authorize(ctx, security::acl_operation::remove, security::resource_type::group, req.group_id)) {
        proto::offset_delete_response r;
        r.error_code = kerr::group_authorization_failed;
        co_return respond(ctx, r);
    }
    auto denied = denied_partitions(ctx, req.topics, security::acl_operation::read,
                                    [](const auto& t) { return partition_indexes(t); });
    std::vector<model::topic_partition> tps;
    for (const auto& t : req.topics) {
        if (!authorize(ctx, security::acl_operation::read, security::resource_type::topic, t.name, false)) {
            continue;
        }
        for (const auto& p : t.partitions) {
            tps.push_back({t.name, model::partition_id(p.partition_index)});
        }
    }
    using outcome = std::pair<broker::errc, std::vector<broker::partition_error>>;
    auto res = co_await await_callback<outcome>([&](std::function<void(outcome)> done) {
        ctx.groups.delete_offsets(std::move(req.group_id), std::move(tps), ctx.shard,
                                  [done](broker::errc top, std::vector<broker::partition_error> each) {
                                      done({top, std::move(each)});
                                  });
    });
    proto::offset_delete_response r;
    r.error_code = to_kafka_error(res.first);
    r.topics = by_topic<proto::offset_delete_response::topic>(res.second);
    add_errors(r.topics, denied, kerr::topic_authorization_failed);
    co_return respond(ctx, r);
}

} // namespace runnel::kafka
