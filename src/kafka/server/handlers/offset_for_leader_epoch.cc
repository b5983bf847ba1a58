#include "kafka/server/handler.h"

namespace runnel::kafka {

// OffsetForLeaderEpoch: a single node leads every partition in epoch 0 for ever, so epoch 0
// ends at the log end and any other epoch is unknown (UNDEFINED_EPOCH, offset -1), as Kafka's
// leader answers an epoch it never had. A current_leader_epoch newer than 0 is
// UNKNOWN_LEADER_EPOCH, so a client with metadata from another cluster refreshes it.
asio::awaitable<response_frame> handle(const request_context& ctx, proto::offset_for_leader_epoch_request req) {
    constexpr int16_t unknown_leader_epoch = 76;
    proto::offset_for_leader_epoch_response r;
    for (auto& t : req.topics) {
        auto& out_topic = r.topics.emplace_back();
        out_topic.topic = t.topic;
        auto info = ctx.broker.topic(t.topic);
        const bool may_describe =
          authorize(ctx, security::acl_operation::describe, security::resource_type::topic, t.topic);
        for (auto& p : t.partitions) {
            auto& out = out_topic.partitions.emplace_back();
            out.partition = p.partition;
            if (!may_describe) {
                out.error_code = kerr::topic_authorization_failed;
                continue;
            }
            if (!info || !info->has_partition(p.partition)) {
                out.error_code = kerr::unknown_topic_or_partition;
                continue;
            }
            if (p.current_leader_epoch > 0) {
                out.error_code = unknown_leader_epoch;
                continue;
            }
            if (p.leader_epoch != 0) {
                continue; // UNDEFINED_EPOCH and UNDEFINED_EPOCH_OFFSET: the defaults
            }
            model::topic_partition tp{t.topic, model::partition_id(p.partition)};
            auto offs = co_await net::invoke_on(ctx.broker.owner_of(tp),
                                                [&] { return ctx.broker.offsets_local(tp); });
            if (!offs) {
                out.error_code = to_kafka_error(offs.error());
                continue;
            }
            out.leader_epoch = 0;
            out.end_offset = offs.value().high_watermark();
        }
    }
    co_return respond(ctx, r);
}

} // namespace runnel::kafka
