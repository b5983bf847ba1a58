// The sampler that fills the dashboard's history (history.h) on shard 0 every
// `options::history_interval` (and, at each sample, drops temporary views left unread), and
// GET /v1/history?range=5m|15m|1h.

#include <chrono>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/redirect_error.hpp>

#include "base/text.h"
#include "gateway/history.h"
#include "gateway/internal.h"
#include "jobs/jobs.h"

namespace runnel::gateway {

namespace {

int64_t now_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

/// One sample: records appended per topic (internal `__…` topics left out) and, per pipeline,
/// records read by its sources, results written by its sinks and its watermark lag.
asio::awaitable<void> take_sample(server::state& st, executor& exec) {
    std::map<history::key, double> totals;
    std::map<history::key, double> gauges;
    for (const auto& [topic, p, start, end] : co_await partition_offsets(st, exec)) {
        if (topic.starts_with("__")) continue;
        totals[{"topic", topic}] += double(end);
    }
    if (st.opts.jobs) {
        for (const auto& j : st.opts.jobs->status()) {
            double in = 0;
            double out = 0;
            for (const auto& s : j.stages) {
                if (s.name.ends_with(".source")) in += double(s.rows_out);
                if (s.name.ends_with(".sink")) out += double(s.rows_in);
            }
            totals[{"pipeline_in", j.id}] = in;
            totals[{"pipeline_out", j.id}] = out;
            if (j.watermark_ms != INT64_MIN) gauges[{"pipeline_lag", j.id}] = double(j.watermark_lag_ms) / 1000.0;
        }
    }
    if (auto refused = st.hist->add(now_ms(), totals, gauges)) st.m.history_dropped->inc(refused);
}

/// Drops the temporary views nobody read for `--temporary-view-idle-ms`, with their pipelines
/// (a closed dashboard tab or a killed shell cannot drop its push query itself).
void expire_unread_views(server::state& st, executor& exec) {
    if (!st.opts.jobs) return;
    for (const auto& v : jobs::default_views().all()) {
        if (!v->temporary() || v->unread_for() < st.opts.temporary_view_idle) continue;
        const auto name = v->name();
        logging::get("gateway").info("temporary view {}: unread for {} ms, dropped with its pipeline", name,
                                     st.opts.temporary_view_idle.count());
        jobs::default_views().drop(name);
        st.m.views_expired->inc();
        st.opts.jobs->remove_async(name, exec, [name](result<void> r) {
            if (!r) logging::get("gateway").warn("temporary view {}: its pipeline: {}", name, r.error().message());
        });
    }
}

asio::awaitable<void> sample_loop(server::state& st, std::shared_ptr<asio::steady_timer> timer) {
    auto& exec = st.shards.executor_of(0);
    try {
        while (!st.stopping.load()) {
            co_await take_sample(st, exec);
            expire_unread_views(st, exec);
            // `stop` sets `stopping` before its closer cancels the timer on this shard, so a
            // stop that came during the sample is seen here and one after it cancels the wait.
            if (st.stopping.load()) break;
            timer->expires_after(st.opts.history_interval);
            boost::system::error_code ec;
            co_await timer->async_wait(asio::redirect_error(asio::use_awaitable, ec));
            if (ec) break;
        }
    } catch (const std::exception& ex) {
        logging::get("gateway").error("dashboard history sampler stopped: {}", ex.what());
    }
    st.running.leave();
}

/// GET /v1/history?range=5m|15m|1h (default 15m): the samples of the last `range`.
asio::awaitable<std::optional<reply>> get_history(request_ctx& ctx) {
    int64_t range_ms = 15 * 60 * 1000;
    for (const auto& [k, v] : ctx.query) {
        if (k == "range" && (v == "5m" || v == "15m" || v == "1h")) {
            range_ms = (v == "5m" ? 5 : v == "15m" ? 15 : 60) * 60 * 1000;
        } else if (k != "access_token") {
            co_return to_reply(ctx.fail("invalid-parameter",
                                        fmt::format("unknown query parameter '{}={}' (expected range=5m|15m|1h)",
                                                    text::scrub_utf8(k), text::scrub_utf8(v))));
        }
    }
    co_return json_reply(200, ctx.st.hist->to_json(now_ms() - range_ms, ctx.st.opts.history_interval.count()));
}

} // namespace

void start_history(server::state& st) {
    auto timer = std::make_shared<asio::steady_timer>(st.shards.context_of(0));
    st.running.enter();
    st.shards.run_on(0, [&st, timer] {
        add_closer(st, 0, [timer] { timer->cancel(); });
        asio::co_spawn(st.shards.context_of(0), sample_loop(st, timer), asio::detached);
    });
}

void add_history_routes(router<route>& r) {
    // The history holds every topic's and pipeline's rates: the cluster's state.
    r.add("GET", "/v1/history", {&get_history, access::on_cluster(acl_op::describe)});
}

} // namespace runnel::gateway
