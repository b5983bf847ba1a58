// The dashboard's history: the ring (history.h), the sampler that fills it on shard 0 every
// `options::history_interval` (and, at each sample, drops temporary views left unread), and
// GET /v1/history?range=5m|15m|1h.

#include "gateway/history.h"

#include <chrono>
#include <cmath>
#include <limits>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/redirect_error.hpp>

#include "base/text.h"
#include "gateway/internal.h"
#include "jobs/jobs.h"

namespace runnel::gateway {

history::history(std::size_t points, std::size_t max_series)
  : _points(std::max<std::size_t>(points, 2))
  , _max_series(max_series)
  , _times(_points, 0) {}

bool history::put(const key& k, double v) {
    auto it = _series.find(k);
    if (it == _series.end()) {
        if (_series.size() >= _max_series) {
            return false;
        }
        it = _series.emplace(k, std::vector<double>(_points, std::numeric_limits<double>::quiet_NaN())).first;
    }
    it->second[_head] = v;
    return true;
}

std::size_t history::add(int64_t t_ms, const std::map<key, double>& totals, const std::map<key, double>& gauges) {
    std::lock_guard lock(_mu);
    std::size_t refused = 0;
    constexpr double none = std::numeric_limits<double>::quiet_NaN();
    // Clear the slot being reused in every series; forget series left with no value.
    for (auto it = _series.begin(); it != _series.end();) {
        it->second[_head] = none;
        const bool empty = std::all_of(it->second.begin(), it->second.end(), [](double x) { return std::isnan(x); });
        it = empty ? _series.erase(it) : std::next(it);
    }
    const double dt = _count ? double(t_ms - _last_t_ms) / 1000.0 : 0;
    for (const auto& [k, total] : totals) {
        auto before = _last_totals.find(k);
        // A first sight has no rate yet; a total that went down (a topic recreated) restarts.
        if (dt > 0 && before != _last_totals.end() && total >= before->second) {
            refused += put(k, (total - before->second) / dt) ? 0 : 1;
        }
    }
    _last_totals = totals;
    for (const auto& [k, v] : gauges) {
        refused += put(k, v) ? 0 : 1;
    }
    _times[_head] = t_ms;
    _head = (_head + 1) % _points;
    _count = std::min(_count + 1, _points);
    _last_t_ms = t_ms;
    return refused;
}

std::string history::to_json(int64_t since_ms, int64_t interval_ms) const {
    std::lock_guard lock(_mu);
    // Oldest kept sample first.
    std::vector<std::size_t> slots;
    for (std::size_t i = 0; i < _count; ++i) {
        const std::size_t slot = (_head + _points - _count + i) % _points;
        if (_times[slot] >= since_ms) slots.push_back(slot);
    }
    std::string out = fmt::format(R"({{"interval_ms":{},"points":{},"times":[)", interval_ms, _points);
    for (std::size_t i = 0; i < slots.size(); ++i) {
        out += fmt::format("{}{}", i ? "," : "", _times[slots[i]]);
    }
    out += R"(],"series":[)";
    bool first = true;
    for (const auto& [k, values] : _series) {
        out += first ? "{" : ",{";
        first = false;
        out += R"("kind":)" + text::json_string(k.kind) + R"(,"name":)" + text::json_string(k.name) + R"(,"values":[)";
        for (std::size_t i = 0; i < slots.size(); ++i) {
            const double v = values[slots[i]];
            if (i) out += ',';
            out += std::isfinite(v) ? fmt::format("{}", std::round(v * 1000) / 1000) : "null";
        }
        out += "]}";
    }
    out += "]}";
    return out;
}

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
