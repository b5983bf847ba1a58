// GET /metrics: the registry in the Prometheus text format, with partition offsets and the
// consumer groups' committed offsets gathered from every shard just before rendering.

#include "gateway/internal.h"

#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <map>
#include <sstream>

namespace runnel::gateway {
namespace {

asio::awaitable<std::optional<reply>> get_metrics(request_ctx& ctx) {
    auto& st = ctx.st;
    auto snapshot = co_await partition_offsets(st, ctx.exec);
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

/// Seconds since the epoch at which the system booted (`btime` of /proc/stat), or -1.
double boot_time_seconds() {
    std::ifstream in("/proc/stat");
    std::string word;
    while (in >> word) {
        if (word == "btime") {
            double t = -1;
            in >> t;
            return t;
        }
    }
    return -1;
}

} // namespace

asio::awaitable<std::vector<std::tuple<std::string, int32_t, int64_t, int64_t>>>
partition_offsets(server::state& st, executor& exec) {
    std::vector<model::topic_partition> parts;
    for (const auto& [name, t] : *st.broker.topics()) {
        for (int32_t p = 0; p < t->config.partitions; ++p) {
            parts.push_back({name, model::partition_id(p)});
        }
    }
    using R = result<broker::offsets_result>;
    std::vector<std::tuple<std::string, int32_t, int64_t, int64_t>> out;
    // One partition at a time keeps the footprint small; each is a post to its shard.
    for (const auto& tp : parts) {
        auto r = co_await await_callback<R>(
          [&](std::function<void(R)> done) { st.broker.offsets(tp, exec, std::move(done)); });
        if (r) {
            out.emplace_back(tp.topic, tp.partition(), r.value().log_start(), r.value().high_watermark());
        }
    }
    co_return out;
}

void collect_standard_series(const std::vector<std::tuple<std::string, int32_t, int64_t, int64_t>>& offsets,
                             metrics::sample_sink& s) {
    // /proc/self/stat: utime and stime (fields 14, 15) and starttime (22), in clock ticks; the
    // command name (field 2) may hold spaces, so fields are counted after its closing ')'.
    std::ifstream in("/proc/self/stat");
    std::string line;
    std::getline(in, line);
    if (auto close = line.rfind(')'); close != std::string::npos) {
        std::istringstream fields(line.substr(close + 1));
        std::vector<std::string> f{"pid", "comm"};
        for (std::string x; fields >> x;) f.push_back(x);
        const double ticks = double(sysconf(_SC_CLK_TCK));
        if (f.size() > 21 && ticks > 0) {
            const double cpu = (std::stod(f[13]) + std::stod(f[14])) / ticks;
            s.counter("process_cpu_seconds_total", "User and system CPU time spent in seconds", {}, cpu);
            if (const double boot = boot_time_seconds(); boot >= 0) {
                s.gauge("process_start_time_seconds", "Start time of the process since unix epoch in seconds", {},
                        boot + std::stod(f[21]) / ticks);
            }
        }
    }
    // kafka_exporter's names, so its dashboards and alerts work unchanged.
    s.gauge("kafka_brokers", "Number of Brokers in the Kafka Cluster", {}, 1);
    std::map<std::string, int32_t> partitions;
    for (const auto& [topic, p, start, end] : offsets) {
        std::vector<metrics::label> labels{{"topic", topic}, {"partition", std::to_string(p)}};
        s.gauge("kafka_topic_partition_current_offset", "Current Offset of a Broker at Topic/Partition", labels,
                double(end));
        s.gauge("kafka_topic_partition_oldest_offset", "Oldest Offset of a Broker at Topic/Partition", labels,
                double(start));
        ++partitions[topic];
    }
    for (const auto& [topic, n] : partitions) {
        s.gauge("kafka_topic_partitions", "Number of partitions for this Topic", {{"topic", topic}}, double(n));
    }
}

void add_metrics_routes(router<route>& r) {
    // Authenticated (unless on the metrics listener) but not subject to ACLs, as a Kafka
    // broker's JMX and Prometheus exporters are not.
    r.add("GET", "/metrics", {&get_metrics, access::open()});
}

} // namespace runnel::gateway
