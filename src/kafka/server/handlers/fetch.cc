#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>

#include "kafka/server/handler.h"

namespace runnel::kafka {
namespace {

/// The longest prefix of whole batches in `bytes` that fits `budget` (at least one batch when
/// `at_least_one`).
std::size_t whole_batches_within(std::span<const std::byte> bytes, std::size_t budget, bool at_least_one) {
    std::size_t used = 0;
    while (used < bytes.size()) {
        auto h = model::parse_batch_header(bytes.subspan(used));
        if (!h) {
            break;
        }
        auto next = used + h.value().size_bytes();
        if (next > budget && !(at_least_one && used == 0)) {
            break;
        }
        used = next;
    }
    return used;
}

struct wanted {
    std::size_t topic;
    std::size_t partition;
    model::topic_partition tp;
    model::offset offset;
    std::size_t max_bytes;
};

} // namespace

// Fetch: whole stored batches from each partition. When fewer than min_bytes are there, waits
// up to max_wait_ms for a produce to any of the partitions (long poll), then answers with
// whatever there is. No fetch sessions: session id 0 tells clients to send full requests.
asio::awaitable<response_frame> handle(const request_context& ctx, proto::fetch_request req) {
    using clock = std::chrono::steady_clock;
    const auto deadline = clock::now() + std::chrono::milliseconds(std::max(req.max_wait_ms, 0));
    const std::size_t max_bytes = req.max_bytes > 0 ? static_cast<std::size_t>(req.max_bytes) : 0;

    proto::fetch_response r;
    if (req.session_id != 0 || req.session_epoch > 0) {
        r.error_code = kerr::fetch_session_id_not_found;
        co_return respond(ctx, r);
    }
    std::vector<wanted> parts;
    for (auto& t : req.topics) {
        auto& out_topic = r.responses.emplace_back();
        out_topic.topic = t.topic;
        auto info = ctx.broker.topic(t.topic);
        for (auto& p : t.partitions) {
            auto& out = out_topic.partitions.emplace_back();
            out.partition_index = p.partition;
            out.high_watermark = -1;
            out.aborted_transactions.emplace();
            if (!info || !info->has_partition(p.partition)) {
                out.error_code = kerr::unknown_topic_or_partition;
                continue;
            }
            parts.push_back({r.responses.size() - 1, out_topic.partitions.size() - 1,
                             {t.topic, model::partition_id(p.partition)}, model::offset(p.fetch_offset),
                             static_cast<std::size_t>(std::max(p.partition_max_bytes, 0))});
        }
    }

    auto timer = std::make_shared<asio::steady_timer>(co_await asio::this_coro::executor);
    for (bool waited = false;;) {
        auto results = co_await await_all<result<broker::fetch_result>>(
          parts.size(), [&](std::size_t i, std::function<void(result<broker::fetch_result>)> done) {
              ctx.broker.fetch(parts[i].tp, parts[i].offset, std::max<std::size_t>(parts[i].max_bytes, 1), ctx.shard,
                               std::move(done));
          });
        std::size_t total = 0;
        bool any_error = false;
        for (std::size_t i = 0; i < parts.size(); ++i) {
            auto& out = r.responses[parts[i].topic].partitions[parts[i].partition];
            if (!results[i]) {
                out.error_code = to_kafka_error(results[i].error());
                any_error = true;
                if (out.error_code == kerr::offset_out_of_range) {
                    // Tell the client where the log is, as Kafka does.
                    auto offs = co_await await_callback<result<broker::offsets_result>>(
                      [&](std::function<void(result<broker::offsets_result>)> done) {
                          ctx.broker.offsets(parts[i].tp, ctx.shard, std::move(done));
                      });
                    if (offs) {
                        out.high_watermark = offs.value().high_watermark();
                        out.log_start_offset = offs.value().log_start();
                    }
                }
                continue;
            }
            auto& f = results[i].value();
            out.error_code = kerr::none;
            out.high_watermark = f.high_watermark();
            out.last_stable_offset = f.high_watermark();
            out.log_start_offset = f.log_start();
            auto bytes = f.data.bytes.span();
            const std::size_t budget = max_bytes > total ? max_bytes - total : 0;
            auto keep = whole_batches_within(bytes, budget, total == 0);
            out.records = proto::bytes(bytes.begin(), bytes.begin() + static_cast<long>(keep));
            total += keep;
        }
        const bool enough = total >= static_cast<std::size_t>(std::max(req.min_bytes, 1));
        if (enough || any_error || waited || parts.empty() || clock::now() >= deadline) {
            break;
        }
        // Long poll: wake on the first produce to any of the partitions, or at the deadline.
        auto w = ctx.broker.watch_for_data(ctx.shard, [timer] { timer->cancel(); });
        for (const auto& p : parts) {
            ctx.broker.add_to_watch(w, p.tp, p.offset);
        }
        timer->expires_at(deadline);
        ctx.connections.long_polls.insert(timer.get());
        boost::system::error_code ec;
        co_await timer->async_wait(asio::redirect_error(asio::use_awaitable, ec));
        ctx.connections.long_polls.erase(timer.get());
        w.cancel();
        waited = true;
    }
    co_return respond(ctx, r);
}

} // namespace runnel::kafka
