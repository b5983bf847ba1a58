#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>

#include <set>

#include "kafka/server/handler.h"

namespace runnel::kafka {
namespace {

struct wanted {
    std::size_t topic;
    std::size_t partition;
    model::topic_partition tp;
    model::offset offset;
    std::size_t max_bytes; ///< the partition's own limit
};

/// After this many rounds of reads, the partitions still unread share what is left of the
/// budget evenly, so a request of many partitions costs a bounded number of shard hops.
constexpr std::size_t max_rounds = 8;

} // namespace

// Fetch: whole stored batches from each partition, named by topic (v4-12) or topic id (v13+).
// When fewer than min_bytes are there, waits up to max_wait_ms for a produce to any of the
// partitions (long poll), then answers with whatever there is. No fetch sessions: session id 0
// tells clients to send full requests.
//
// Memory is bounded by the response's own limits, never by the number of partition entries:
// partitions are read in request order in rounds, each read limited to the partition's
// max_bytes and to what is left of the response's max_bytes (itself at most the server's
// `fetch_max_bytes`); only the first partition read may exceed that by one batch (KIP-74). A
// partition named twice is answered INVALID_REQUEST the second time. Partitions in error carry
// empty records, never null, as Kafka's broker sends them.
asio::awaitable<response_frame> handle(const request_context& ctx, proto::fetch_request req) {
    using clock = std::chrono::steady_clock;
    const auto version = ctx.header.request_api_version;
    const auto deadline = clock::now() + std::chrono::milliseconds(std::max(req.max_wait_ms, 0));
    const std::size_t budget = static_cast<std::size_t>(std::clamp(req.max_bytes, 0, ctx.config.fetch_max_bytes));

    proto::fetch_response r;
    if (req.session_id != 0 || req.session_epoch > 0) {
        r.error_code = kerr::fetch_session_id_not_found;
        co_return respond(ctx, r);
    }
    std::vector<wanted> parts;
    std::set<std::pair<std::string, int32_t>> seen;
    for (auto& t : req.topics) {
        auto& out_topic = r.responses.emplace_back();
        std::shared_ptr<const broker::topic_info> info;
        if (version >= 13) {
            out_topic.topic_id = t.topic_id;
            info = ctx.broker.topic_by_id(t.topic_id.value);
        } else {
            out_topic.topic = t.topic;
            info = ctx.broker.topic(t.topic);
        }
        // READ on the topic; a topic id the principal may not read is as unknown as a missing one.
        const bool may_read = (version >= 13 && !info)
                              || authorize(ctx, security::acl_operation::read, security::resource_type::topic,
                                           info ? std::string_view(info->name) : std::string_view(t.topic));
        for (auto& p : t.partitions) {
            auto& out = out_topic.partitions.emplace_back();
            out.partition_index = p.partition;
            out.high_watermark = -1;
            out.aborted_transactions.emplace();
            if (!may_read) {
                out.error_code = version >= 13 ? kerr::unknown_topic_id : kerr::topic_authorization_failed;
                continue;
            }
            if (!info) {
                out.error_code = version >= 13 ? kerr::unknown_topic_id : kerr::unknown_topic_or_partition;
                continue;
            }
            if (!info->has_partition(p.partition)) {
                out.error_code = kerr::unknown_topic_or_partition;
                continue;
            }
            if (!seen.emplace(info->name, p.partition).second) {
                out.error_code = kerr::invalid_request;
                continue;
            }
            parts.push_back({r.responses.size() - 1, out_topic.partitions.size() - 1,
                             {info->name, model::partition_id(p.partition)}, model::offset(p.fetch_offset),
                             static_cast<std::size_t>(std::max(p.partition_max_bytes, 0))});
        }
    }

    // A read_committed reader at the last stable offset waits for the log to grow past its
    // end (a marker or more data), not merely past the reader's offset.
    std::vector<model::offset> watch_from(parts.size());
    for (std::size_t i = 0; i < parts.size(); ++i) {
        watch_from[i] = parts[i].offset;
    }
    auto timer = std::make_shared<asio::steady_timer>(co_await asio::this_coro::executor);
    for (bool waited = false;;) {
        std::size_t total = 0;
        bool any_error = false;
        for (std::size_t next = 0, round = 1; next < parts.size(); ++round) {
            // One round: the next partitions whose limits fit what is left of the budget, read
            // at once. Once nothing is left, the rest are read for their offsets only.
            const std::size_t left = budget > total ? budget - total : 0;
            const std::size_t first = next;
            std::vector<std::size_t> give;
            std::size_t promised = 0;
            if (round == max_rounds) {
                const std::size_t share = left / (parts.size() - first);
                for (; next < parts.size(); ++next) {
                    give.push_back(std::min(parts[next].max_bytes, share));
                }
            } else {
                do {
                    give.push_back(left == 0 ? 0 : std::min(parts[next].max_bytes, left - promised));
                    promised += give.back();
                    ++next;
                } while (next < parts.size() && (left == 0 || promised < left));
            }
            auto results = co_await await_all<result<broker::fetch_result>>(
              give.size(), [&](std::size_t i, std::function<void(result<broker::fetch_result>)> done) {
                  const bool at_least_one = total == 0 && i == 0;
                  ctx.broker.fetch(parts[first + i].tp, parts[first + i].offset, give[i], ctx.shard, std::move(done),
                                   at_least_one, req.isolation_level == 1);
              });
            for (std::size_t i = 0; i < results.size(); ++i) {
                const auto& want = parts[first + i];
                auto& out = r.responses[want.topic].partitions[want.partition];
                out.records.emplace();
                if (!results[i]) {
                    out.error_code = to_kafka_error(results[i].error());
                    any_error = true;
                    if (out.error_code == kerr::offset_out_of_range) {
                        // Tell the client where the log is, as Kafka does.
                        auto offs = co_await net::invoke_on(ctx.broker.owner_of(want.tp), [&] {
                            return ctx.broker.offsets_local(want.tp);
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
                out.last_stable_offset = f.last_stable();
                if (req.isolation_level == 1) {
                    watch_from[first + i] = std::max(want.offset, f.high_watermark);
                }
                out.aborted_transactions->clear();
                for (const auto& a : f.aborted) {
                    out.aborted_transactions->push_back({a.producer_id, a.first()});
                }
                out.log_start_offset = f.log_start();
                auto bytes = f.data.bytes.span();
                out.records->assign(bytes.begin(), bytes.end());
                total += bytes.size();
            }
        }
        const bool enough = total >= static_cast<std::size_t>(std::max(req.min_bytes, 1));
        if (enough || any_error || waited || parts.empty() || clock::now() >= deadline
            || ctx.connections.draining) {
            break;
        }
        // Long poll: wake on the first produce to any of the partitions, or at the deadline.
        auto w = ctx.broker.watch_for_data(ctx.shard, [timer] { timer->cancel(); });
        for (std::size_t i = 0; i < parts.size(); ++i) {
            ctx.broker.add_to_watch(w, parts[i].tp, watch_from[i]);
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
