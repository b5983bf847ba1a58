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

} // namespace

asio::awaitable<response_frame> handle(const request_context& ctx, proto::offset_commit_request req) {
    broker::commit_request c;
    c.group_id = std::move(req.group_id);
    c.generation = req.generation_id_or_member_epoch;
    c.member_id = std::move(req.member_id);
    c.instance_id = std::move(req.group_instance_id);
    for (const auto& t : req.topics) {
        for (const auto& p : t.partitions) {
            broker::committed_offset v;
            v.offset = p.committed_offset;
            v.leader_epoch = p.committed_leader_epoch;
            v.metadata = p.committed_metadata;
            v.commit_time_ms = -1;
            c.partitions.push_back({{t.name, model::partition_id(p.partition_index)}, std::move(v)});
        }
    }
    using outcome = std::pair<broker::errc, std::vector<broker::partition_error>>;
    auto res = co_await await_callback<outcome>([&](std::function<void(outcome)> done) {
        ctx.groups.commit(std::move(c), ctx.shard,
                          [done](broker::errc top, std::vector<broker::partition_error> each) { done({top, std::move(each)}); });
    });
    proto::offset_commit_response r;
    r.topics = by_topic<proto::offset_commit_response::topic>(res.second);
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

} // namespace

asio::awaitable<response_frame> handle(const request_context& ctx, proto::offset_fetch_request req) {
    const auto version = ctx.header.request_api_version;
    proto::offset_fetch_response r;
    if (version >= 8) {
        for (auto& g : req.groups) {
            auto res = co_await fetch_offsets(ctx, g.group_id, wanted(g.topics));
            auto [error, topics] = fetch_group(res);
            proto::offset_fetch_response::group out;
            out.group_id = g.group_id;
            out.error_code = error;
            out.topics = std::move(topics);
            r.groups.push_back(std::move(out));
        }
        co_return respond(ctx, r);
    }
    auto tps = wanted(req.topics);
    auto res = co_await fetch_offsets(ctx, req.group_id, tps);
    if (version < 2 && res.error != broker::errc::success && tps) {
        // No top-level error before v2: each partition carries it.
        for (const auto& tp : *tps) {
            res.partitions.push_back({tp, {}, res.error});
        }
    }
    auto [error, topics] = fetch_group(res);
    r.error_code = error;
    r.topics = std::move(topics);
    co_return respond(ctx, r);
}

asio::awaitable<response_frame> handle(const request_context& ctx, proto::offset_delete_request req) {
    std::vector<model::topic_partition> tps;
    for (const auto& t : req.topics) {
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
    co_return respond(ctx, r);
}

} // namespace runnel::kafka
