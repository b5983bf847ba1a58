// The built-in job templates. SQL statements become jobs through the same registry.

#include "connect/kafka/kafka.h"
#include "connect/webhook/webhook.h"
#include "jobs/jobs.h"

#include <fmt/format.h>

#include <charconv>

namespace runnel::jobs {
namespace {

std::error_code invalid() {
    return std::error_code(EINVAL, std::generic_category());
}

/// Reads the parameters of a job definition; the first problem is kept in `why`.
class params {
public:
    params(const job_definition& d, std::string& why)
        : _d(d)
        , _why(why) {}

    std::string text(const std::string& name, std::optional<std::string> fallback = std::nullopt) {
        auto it = _d.params.find(name);
        if (it != _d.params.end() && !it->second.empty())
            return it->second;
        if (!fallback)
            problem(fmt::format("parameter '{}' is required", name));
        return fallback.value_or("");
    }
    int64_t number(const std::string& name, std::optional<int64_t> fallback, int64_t min,
                   int64_t max) {
        auto it = _d.params.find(name);
        if (it == _d.params.end()) {
            if (!fallback)
                problem(fmt::format("parameter '{}' is required", name));
            return fallback.value_or(0);
        }
        int64_t v = 0;
        const auto& s = it->second;
        auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
        if (ec != std::errc() || p != s.data() + s.size()) {
            problem(fmt::format("parameter '{}' must be an integer, not '{}'", name, s));
        } else if (v < min || v > max) {
            problem(
                fmt::format("parameter '{}' must be between {} and {}, not {}", name, min, max, v));
        }
        return v;
    }
    bool ok() const { return _why.empty(); }

private:
    void problem(std::string p) {
        if (_why.empty())
            _why = std::move(p);
    }
    const job_definition& _d;
    std::string& _why;
};

result<void> windowed_count(job_context& ctx, const job_definition& def, std::string& why) {
    params p(def, why);
    auto input = p.text("input");
    auto output = p.text("output");
    auto key = p.text("key", "key");
    auto time = p.text("time", "ts");
    constexpr int64_t day = 86'400'000;
    auto window_ms = p.number("window_ms", std::nullopt, 1, 365 * day);
    auto bound_ms = p.number("bound_ms", 0, 0, day);
    auto lateness_ms = p.number("lateness_ms", 0, 0, day);
    auto idle_ms = p.number("idle_ms", 0, 0, day);
    auto out_parts = p.number("output_partitions", 1, 1, 10000);
    auto mode = p.text("delivery", "exactly_once");
    if (p.ok() && mode != "exactly_once" && mode != "at_least_once") {
        why = fmt::format("parameter 'delivery' must be exactly_once or at_least_once, not '{}'",
                          mode);
    }
    if (p.ok() && key == time)
        why = "parameters 'key' and 'time' name the same field";
    if (!p.ok())
        return invalid();
    const auto delivery =
        mode == "exactly_once" ? connect::delivery::exactly_once : connect::delivery::at_least_once;

    // With `bootstrap`, the topics are on an external Kafka-protocol cluster.
    const auto bootstrap = p.text("bootstrap", "");
    auto sink_to = [&](engine::stream s, std::string topic, std::vector<std::string> keys, int32_t parts) {
        if (bootstrap.empty()) return ctx.sink(std::move(s), {std::move(topic), delivery, std::move(keys)}, parts);
        // Exactly-once towards a cluster runs one Kafka transaction per checkpoint; the id is
        // the same for every run of this job's sink, so a restart fences the previous one.
        connect::kafka_sink_options o;
        o.bootstrap = bootstrap;
        o.exactly_once = delivery == connect::delivery::exactly_once;
        o.transactional_id = fmt::format("runnel-{}-{}", def.id, topic);
        o.topic = std::move(topic);
        o.key_columns = std::move(keys);
        ctx.sink(std::move(s), std::make_unique<connect::kafka_sink>(std::move(o), ctx.home(), ctx.waker()), parts);
    };
    const auto n = int32_t(ctx.parallelism());
    if (n > 1) {
        if (!bootstrap.empty()) {
            why = "parallelism above 1 reads the embedded log only; a job on an external cluster "
                  "runs as one instance";
            return invalid();
        }
        if (def.params.count("view")) {
            why = "a materialized view is kept by one instance; submit a job with a view with "
                  "parallelism 1";
            return invalid();
        }
    }
    auto fields = engine::make_schema(
        {{key, engine::data_type::string()}, {time, engine::data_type::timestamp()}});
    engine::stream raw;
    if (bootstrap.empty()) {
        connect::log_source_options src;
        src.topic = input;
        src.instances = n;
        src.instance = int32_t(ctx.instance());
        raw = ctx.source(src);
    } else {
        connect::kafka_source_options src;
        src.bootstrap = bootstrap;
        src.topic = input;
        src.client_id = "runnel-job-" + def.id;
        raw = ctx.source(std::make_unique<connect::kafka_source>(src, ctx.home(), ctx.waker()),
                         connect::log_source::schema());
    }
    auto decoded = raw.decode(engine::decode_format::json, fields, "value");
    engine::watermark_options wo;
    wo.partitions = std::max(1, ctx.partitions_of(input));
    if (!bootstrap.empty()) {
        auto parts = connect::kafka_partitions(bootstrap, input, std::chrono::seconds(10), why);
        if (!parts)
            return invalid();
        wo.partitions = parts.value();
    }
    wo.idle_timeout = std::chrono::milliseconds(idle_ms);
    wo.input = input;
    wo.instances = n;
    wo.instance = int32_t(ctx.instance());
    engine::window_options win;
    win.allowed_lateness = std::chrono::milliseconds(lateness_ms);
    auto counted =
        ctx.exchange(decoded.watermark(time, std::chrono::milliseconds(bound_ms), wo), {key})
            .key_by({key})
            .window(engine::tumble(std::chrono::milliseconds(window_ms)), win)
            .aggregate({engine::count()});
    sink_to(counted, output, {key}, int32_t(out_parts));
    // Optionally alerts: windows counting at least `min_count` POSTed to a webhook.
    if (auto w = def.params.find("webhook"); w != def.params.end() && !w->second.empty()) {
        std::map<std::string, std::string> wopts{{"url", w->second}};
        for (const auto& [k, v] : def.params) {
            if (k.starts_with("webhook."))
                wopts[k] = v;
        }
        auto parsed = connect::webhook_options::parse(wopts, why);
        if (!parsed)
            return invalid();
        auto min_count = p.number("min_count", 1, 0, INT64_MAX);
        if (!p.ok())
            return invalid();
        auto dead_topic = output + ".webhook-dead";
        auto* c = &ctx;
        auto dead = [c, dead_topic, url = w->second](std::string row, std::string reason,
                                                     int attempts) {
            c->append(dead_topic, fmt::format(R"({{"row":{},"reason":{},"attempts":{},"url":{}}})",
                                              row, text::json_string(reason), attempts,
                                              text::json_string(url)));
        };
        auto alerts = counted.filter(engine::col("count") >= engine::lit(min_count));
        ctx.sink(alerts,
                 std::make_unique<connect::webhook_sink>(
                     def.id + "-webhook", std::move(parsed).value(), ctx.home(), ctx.waker(), dead),
                 1);
    }
    // Optionally also a materialized view of the latest window per key.
    if (auto v = def.params.find("view"); v != def.params.end() && !v->second.empty()) {
        ctx.sink(counted, std::make_unique<view_sink>(default_views().open(v->second, {key})), 1);
    }
    // Side outputs: on the embedded log their topics appear with their first row and go with
    // the job; on a cluster they are ordinary sinks.
    if (bootstrap.empty()) {
        ctx.side_output(counted.late_rows(), output + ".late");
        ctx.side_output(decoded.dead_letters(), output + ".dead");
    } else {
        sink_to(counted.late_rows(), output + ".late", {}, 1);
        sink_to(decoded.dead_letters(), output + ".dead", {}, 1);
    }
    return ok();
}

} // namespace

/// The `sql` template (sql_job.cc): parameter `sql` holds CREATE TABLE / CREATE VIEW
/// statements and one INSERT INTO, planned over the embedded log, Kafka clusters and the
/// Nexmark generator.
result<void> sql_job(job_context& ctx, const job_definition& def, std::string& why);

namespace {
std::map<std::string, template_fn>& registry() {
    static std::map<std::string, template_fn> all = {{"windowed_count", windowed_count}, {"sql", sql_job}};
    return all;
}
} // namespace

const std::map<std::string, template_fn>& templates() {
    return registry();
}

std::string unknown_template(std::string_view name) {
    std::string known;
    for (const auto& [n, fn] : registry()) known += (known.empty() ? "" : ", ") + n;
    return fmt::format("unknown template '{}' (known: {})", name, known);
}

void register_template(std::string name, template_fn fn) {
    auto [it, added] = registry().emplace(std::move(name), std::move(fn));
    RUNNEL_ASSERT(added, "a job template registered twice");
}

} // namespace runnel::jobs
