#include "kafka/server/handler.h"

namespace runnel::kafka {
namespace {
constexpr int64_t latest = -1;
constexpr int64_t earliest = -2;
constexpr int64_t max_timestamp = -3;
} // namespace

// ListOffsets: earliest (-2), latest (-1), or the first offset at or after a timestamp.
// The max-timestamp query (-3) answers with the last offset, without its timestamp.
asio::awaitable<response_frame> handle(const request_context& ctx, proto::list_offsets_request req) {
    proto::list_offsets_response r;
    for (auto& t : req.topics) {
        auto& out_topic = r.topics.emplace_back();
        out_topic.name = t.name;
        auto info = ctx.broker.topic(t.name);
        const bool may_describe =
          authorize(ctx, security::acl_operation::describe, security::resource_type::topic, t.name);
        for (auto& p : t.partitions) {
            auto& out = out_topic.partitions.emplace_back();
            out.partition_index = p.partition_index;
            out.timestamp = -1;
            out.offset = -1;
            if (!may_describe) {
                out.error_code = kerr::topic_authorization_failed;
                continue;
            }
            if (!info || !info->has_partition(p.partition_index)) {
                out.error_code = kerr::unknown_topic_or_partition;
                continue;
            }
            model::topic_partition tp{t.name, model::partition_id(p.partition_index)};
            out.leader_epoch = 0;
            if (p.timestamp == latest || p.timestamp == earliest || p.timestamp == max_timestamp) {
                auto offs = co_await net::invoke_on(ctx.broker.owner_of(tp),
                                                    [&] { return ctx.broker.offsets_local(tp); });
                if (!offs) {
                    out.error_code = to_kafka_error(offs.error());
                } else if (p.timestamp == earliest) {
                    out.offset = offs.value().log_start();
                } else if (p.timestamp == latest) {
                    // read_committed readers see up to the last stable offset only.
                    out.offset = req.isolation_level == 1 ? offs.value().last_stable() : offs.value().high_watermark();
                } else {
                    out.offset = std::max<int64_t>(offs.value().high_watermark() - 1, -1);
                }
                continue;
            }
            auto found = co_await net::invoke_on(ctx.broker.owner_of(tp), [&] {
                return ctx.broker.offset_for_time_local(tp, model::event_time(p.timestamp));
            });
            if (!found) {
                out.error_code = to_kafka_error(found.error());
            } else if (found.value()) {
                out.offset = found.value()->offset();
                out.timestamp = found.value()->timestamp();
            }
        }
    }
    co_return respond(ctx, r);
}

} // namespace runnel::kafka
