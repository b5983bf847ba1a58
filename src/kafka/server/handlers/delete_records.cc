#include "kafka/server/handler.h"

namespace runnel::kafka {

// DeleteRecords: moves each partition's log start to the offset given (-1: the high
// watermark) and answers the new start as the low watermark once it is durable. The
// partitions of one request are moved concurrently; `timeout_ms` is not needed, since every
// partition is local and answers as soon as its start is on disk.
asio::awaitable<response_frame> handle(const request_context& ctx, proto::delete_records_request req) {
    constexpr int64_t no_watermark = -1;
    proto::delete_records_response r;
    struct target {
        proto::delete_records_response::partition_result* out;
        model::topic_partition tp;
        model::offset offset;
    };
    std::vector<target> targets;
    for (auto& t : req.topics) {
        auto& out_topic = r.topics.emplace_back();
        out_topic.name = t.name;
        out_topic.partitions.reserve(t.partitions.size()); // `targets` points into it
        auto info = ctx.broker.topic(t.name);
        const bool may_delete = authorize(ctx, security::acl_operation::remove, security::resource_type::topic, t.name);
        for (auto& p : t.partitions) {
            auto& out = out_topic.partitions.emplace_back();
            out.partition_index = p.partition_index;
            out.low_watermark = no_watermark;
            if (!may_delete) {
                out.error_code = kerr::topic_authorization_failed;
            } else if (!info || !info->has_partition(p.partition_index)) {
                out.error_code = kerr::unknown_topic_or_partition;
            } else if (broker::is_internal_topic(t.name)) {
                out.error_code = kerr::invalid_topic_exception; // only the broker trims its own topics
            } else if (info->config.cleanup_policy == "compact") {
                out.error_code = kerr::policy_violation; // as Kafka: records of a compacted topic stay
            } else if (p.offset < 0 && p.offset != -1) {
                out.error_code = kerr::offset_out_of_range;
            } else {
                targets.push_back({&out, {t.name, model::partition_id(p.partition_index)}, model::offset(p.offset)});
            }
        }
    }
    auto results = co_await await_all<result<model::offset>>(
      targets.size(), [&](std::size_t i, std::function<void(result<model::offset>)> done) {
          ctx.broker.delete_records(targets[i].tp, targets[i].offset, ctx.shard, std::move(done));
      });
    for (std::size_t i = 0; i < targets.size(); ++i) {
        if (results[i]) {
            targets[i].out->low_watermark = results[i].value()();
        } else {
            targets[i].out->error_code = to_kafka_error(results[i].error());
        }
    }
    co_return respond(ctx, r);
}

} // namespace runnel::kafka
