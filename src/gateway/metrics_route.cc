// GET /metrics: the registry in the Prometheus text format, with partition offsets and the
// consumer groups' committed offsets gathered from every shard just before rendering.

#include "gateway/internal.h"

namespace runnel::gateway {
namespace {

asio::awaitable<std::optional<reply>> get_metrics(request_ctx& ctx) {
    auto& st = ctx.st;
    std::vector<model::topic_partition> parts;
    for (const auto& [name, t] : *st.broker.topics()) {
        for (int32_t p = 0; p < t->config.partitions; ++p) {
            parts.push_back({name, model::partition_id(p)});
        }
    }
    using R = result<broker::offsets_result>;
    std::vector<std::tuple<std::string, int32_t, int64_t, int64_t>> snapshot;
    // One partition at a time keeps the scrape's footprint small; each is a post to its shard.
    for (const auto& tp : parts) {
        auto r = co_await await_callback<R>(
          [&](std::function<void(R)> done) { st.broker.offsets(tp, ctx.exec, std::move(done)); });
        if (r) {
            snapshot.emplace_back(tp.topic, tp.partition(), r.value().log_start(), r.value().high_watermark());
        }
    }
    std::vector<broker::group_offsets> groups;
    if (st.opts.groups) {
        groups = co_await await_callback<std::vector<broker::group_offsets>>(
          [&](std::function<void(std::vector<broker::group_offsets>)> done) {
              st.opts.groups->all_offsets(ctx.exec, std::move(done));
          });
    }
    {
        std::lock_guard lock(st.snapshot_mu);
        st.offsets_snapshot = std::move(snapshot);
        st.groups_snapshot = std::move(groups);
    }
    reply out;
    out.content_type = "text/plain; version=0.0.4; charset=utf-8";
    out.body = st.registry.render();
    co_return out;
}

} // namespace

void add_metrics_routes(router<handler_fn>& r) { r.add("GET", "/metrics", &get_metrics); }

} // namespace runnel::gateway
