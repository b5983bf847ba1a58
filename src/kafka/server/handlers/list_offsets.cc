#include "kafka/server/handler.h"

namespace runnel::kafka {
namespace {
constexpr int64_t latest = -1;
constexpr int64_t earliest = -2;
constexpr int64_t max_timestamp = -3;
constexpr int16_t max_timestamp_since = 7;
} // namespace

// ListOffsets: earliest (-2), latest (-1), the first record holding the largest timestamp
// (-3, MAX_TIMESTAMP, from v7 on: KIP-734), or the first offset at or after a timestamp. Before
// v7, -3 is no query of its own (as in Kafka, the client cannot send it there).
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
            if (p.timestamp == max_timestamp && ctx.header.request_api_version >= max_timestamp_since) {
                auto found =
                  co_await net::invoke_on(ctx.broker.owner_of(tp), [&] { return ctx.broker.max_timestamp_local(tp); });
                if (!found) {
                    out.error_code = to_kafka_error(found.error());
                } else if (found.value()) {
                    out.offset = found.value()->offset();
                    out.timestamp = found.value()->timestamp();
                }
                continue;
            }
            if (p.timestamp == latest || p.timestamp == earliest) {
                auto offs = co_await net::invoke_on(ctx.broker.owner_of(tp),
                                                    [&] { return ctx.broker.offsets_local(tp); });
                if (!offs) {
                    out.error_code = to_kafka_error(offs.error());
                } else if (p.timestamp == earliest) {
                    out.offset = offs.value().log_start();
                } else {
                    // read_committed readers see up to the last stable offset only.
                    out.offset = req.isolation_level == 1 ? offs.value().last_stable() : offs.value().high_watermark();
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
