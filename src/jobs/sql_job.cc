// The `sql` job template: a script of CREATE TABLE and CREATE VIEW statements and one
// INSERT INTO, planned by `sql::planner` over the job's connectors.

#include <algorithm>
#include <cctype>
#include <charconv>

#include <fmt/format.h>

#include "connect/kafka/kafka.h"
#include "connect/nexmark/rows.h"
#include "jobs/jobs.h"
#include "sql/catalog.h"
#include "sql/parser.h"
#include "sql/planner.h"

namespace runnel::jobs {
namespace {

namespace en = runnel::engine;
namespace nx = runnel::connect::nexmark;

std::string lower(std::string_view s) {
    std::string out(s);
    std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return char(std::tolower(c)); });
    return out;
}

en::error bad(std::string why) { return en::error(en::errc::invalid_argument, std::move(why)); }

std::string option(const sql::table_schema& t, std::string_view key, std::string fallback = {}) {
    auto o = t.option(key);
    return o ? *o : fallback;
}

/// A duration option: "500 ms", "5 s", "2 min" or plain milliseconds.
std::optional<int64_t> duration_ms(std::string_view text) {
    std::string_view s = text;
    while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
    int64_t n = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), n);
    if (ec != std::errc() || n < 0) return std::nullopt;
    std::string unit = lower(std::string_view(p, std::size_t(s.data() + s.size() - p)));
    unit.erase(std::remove(unit.begin(), unit.end(), ' '), unit.end());
    if (unit.empty() || unit == "ms") return n;
    if (unit == "s" || unit == "sec" || unit == "second" || unit == "seconds") return n * 1000;
    if (unit == "min" || unit == "minute" || unit == "minutes") return n * 60'000;
    return std::nullopt;
}

/// A Nexmark table as a checkpointed source: the checkpoint keeps how many events were read;
/// a restore generates again up to there.
class nexmark_source final : public en::checkpointed_source {
public:
    explicit nexmark_source(nx::row_reader r)
      : _r(std::move(r)) {}

    en::source_fn fn() override {
        return [this]() -> en::source_poll {
            if (_paused) return en::source_poll::idle();
            if (_r.done()) return en::source_poll::end();
            auto b = _r.next();
            _taken = _r.position();
            if (b.num_rows() == 0) return _r.done() ? en::source_poll::end() : en::source_poll::idle();
            return en::source_poll::data(std::move(b));
        };
    }
    void pause(bool paused) override { _paused = paused; }
    std::string state() const override { return std::to_string(_taken); }
    runnel::result<void> restore(std::string_view state) override {
        int64_t n = 0;
        auto [p, ec] = std::from_chars(state.data(), state.data() + state.size(), n);
        if (ec != std::errc() || p != state.data() + state.size() || n < 0 || !_r.seek(n)) {
            return std::error_code(EINVAL, std::generic_category());
        }
        _taken = n;
        return ok();
    }
    std::size_t buffered_bytes() const override { return 0; }
    void stop() override {}

private:
    nx::row_reader _r;
    int64_t _taken = 0;
    bool _paused = false;
};

/// The connectors a SQL job reads and writes through: `topic` (the embedded log), `kafka`
/// (an external cluster with `properties.bootstrap.servers`; without it, the embedded log),
/// `nexmark` (the generator) and `blackhole` (a sink that discards).
class job_connectors final : public sql::connector_factory {
public:
    job_connectors(job_context& ctx, const job_definition& def)
      : _ctx(ctx)
      , _def(def) {}

    en::result<en::stream> source(en::pipeline& p, const sql::table_schema& t, const en::schema_ptr& columns) override {
        (void)p;
        const auto name = t.name.back();
        const auto kind = lower(option(t, "connector"));
        if (kind == "nexmark") {
            std::map<std::string, std::string> opts(t.options.begin(), t.options.end());
            auto r = nx::row_reader::make(opts, columns);
            if (!r) return en::error(r.error().code, fmt::format("table {}: {}", name, r.error().message));
            return _ctx.source(std::make_unique<nexmark_source>(std::move(r).value()), columns);
        }
        if (kind != "topic" && kind != "kafka") return unknown(t, kind);
        const auto topic = option(t, "topic");
        if (topic.empty()) return bad(fmt::format("table {}: option 'topic' is required", name));
        const auto mode = option(t, "scan.startup.mode", "earliest-offset");
        if (mode != "earliest-offset" && mode != "latest-offset") {
            return bad(fmt::format("table {}: 'scan.startup.mode' = '{}' is not supported yet; use earliest-offset or "
                                   "latest-offset",
                                   name, mode));
        }
        const auto format = lower(option(t, "format", option(t, "value.format", "json")));
        en::decode_format f;
        if (format == "json") f = en::decode_format::json;
        else if (format == "csv") f = en::decode_format::csv;
        else if (format == "raw") f = en::decode_format::raw;
        else return bad(fmt::format("table {}: format '{}' is not supported; use json, csv or raw", name, format));
        en::stream raw;
        const auto bootstrap = option(t, "properties.bootstrap.servers");
        if (!bootstrap.empty()) {
            connect::kafka_source_options o;
            o.bootstrap = bootstrap;
            o.topic = topic;
            o.client_id = "runnel-job-" + _def.id;
            raw = _ctx.source(std::make_unique<connect::kafka_source>(o, _ctx.home(), _ctx.waker()),
                              connect::log_source::schema());
        } else {
            connect::log_source_options o;
            o.topic = topic;
            o.start = mode == "latest-offset" ? connect::log_source_options::start_at::latest
                                              : connect::log_source_options::start_at::earliest;
            raw = _ctx.source(o);
        }
        auto decoded = raw.decode(f, columns, "value");
        // Records that do not decode are never dropped silently: they go to `<job>.dead`
        // with the reason, unless the table says to ignore them (then they are only counted).
        if (lower(option(t, "json.ignore-parse-errors", "false")) != "true") {
            _ctx.to_topic(decoded.dead_letters(), _def.id + ".dead", {}, connect::delivery::at_least_once);
        } else {
            decoded.dead_letters().sink([](const en::batch&) {});
        }
        return decoded;
    }

    en::result<void> sink(en::stream rows, const sql::table_schema& t) override {
        const auto name = t.name.back();
        const auto kind = lower(option(t, "connector"));
        if (kind == "blackhole") {
            rows.sink([](const en::batch&) {});
            return outcome::success();
        }
        if (kind != "topic" && kind != "kafka") return unknown(t, kind);
        const auto topic = option(t, "topic");
        if (topic.empty()) return bad(fmt::format("table {}: option 'topic' is required", name));
        const auto guarantee = option(t, "sink.delivery-guarantee", "exactly-once");
        if (guarantee != "exactly-once" && guarantee != "at-least-once") {
            return bad(fmt::format("table {}: 'sink.delivery-guarantee' is exactly-once or at-least-once, not '{}'", name,
                                   guarantee));
        }
        const auto format = lower(option(t, "format", option(t, "value.format", "json")));
        if (format != "json") return bad(fmt::format("table {}: a sink writes format json, not '{}'", name, format));
        int32_t parts = 1;
        if (auto p = t.option("sink.partitions")) {
            auto [e, ec] = std::from_chars(p->data(), p->data() + p->size(), parts);
            if (ec != std::errc() || e != p->data() + p->size() || parts < 1 || parts > 10000) {
                return bad(fmt::format("table {}: 'sink.partitions' must be 1 to 10000, not '{}'", name, *p));
            }
        }
        const bool exactly = guarantee == "exactly-once";
        const auto bootstrap = option(t, "properties.bootstrap.servers");
        if (!bootstrap.empty()) {
            connect::kafka_sink_options o;
            o.bootstrap = bootstrap;
            o.topic = topic;
            o.key_columns = t.primary_key;
            o.exactly_once = exactly;
            o.transactional_id = fmt::format("runnel-{}-{}", _def.id, topic);
            _ctx.sink(std::move(rows), std::make_unique<connect::kafka_sink>(std::move(o), _ctx.home(), _ctx.waker()),
                      parts);
            return outcome::success();
        }
        connect::log_sink_options o;
        o.topic = topic;
        o.mode = exactly ? connect::delivery::exactly_once : connect::delivery::at_least_once;
        o.key_columns = t.primary_key;
        o.sql_timestamps = true;
        _ctx.sink(std::move(rows), std::move(o), parts);
        return outcome::success();
    }

    en::watermark_options watermarks(const sql::table_schema& t) override {
        en::watermark_options w;
        const auto topic = option(t, "topic");
        const auto kind = lower(option(t, "connector"));
        if ((kind == "topic" || kind == "kafka") && option(t, "properties.bootstrap.servers").empty()) {
            w.partitions = std::max(1, _ctx.partitions_of(topic));
        }
        if (auto idle = t.option("scan.watermark.idle-timeout")) {
            if (auto ms = duration_ms(*idle)) w.idle_timeout = std::chrono::milliseconds(*ms);
        }
        return w;
    }

private:
    static en::error unknown(const sql::table_schema& t, const std::string& kind) {
        return bad(fmt::format("table {}: connector '{}' is not one Runnel has (topic, kafka, nexmark, blackhole)",
                               t.name.back(), kind));
    }

    job_context& _ctx;
    const job_definition& _def;
};

} // namespace

result<void> sql_job(job_context& ctx, const job_definition& def, std::string& why) {
    auto invalid = [] { return std::error_code(EINVAL, std::generic_category()); };
    auto it = def.params.find("sql");
    if (it == def.params.end() || it->second.empty()) {
        why = "parameter 'sql' is required: CREATE TABLE statements and one INSERT INTO";
        return invalid();
    }
    const std::string& text = it->second;
    auto script = sql::parse_script(text);
    if (!script) {
        why = sql::format_error(text, script.error());
        return invalid();
    }
    sql::memory_catalog cat;
    const sql::statement* insert = nullptr;
    for (const auto& st : script.value()) {
        auto declared = sql::declare(st, cat);
        if (!declared) {
            why = sql::format_error(text, declared.error());
            return invalid();
        }
        if (declared.value()) {
            continue;
        }
        const auto* cv = std::get_if<sql::create_view_stmt>(&st.node);
        if ((std::holds_alternative<sql::insert_stmt>(st.node) || (cv && cv->materialized)) && !insert) {
            insert = &st;
        } else {
            why = sql::format_error(text, sql::error_at(st.pos, 1, "a pipeline's script holds CREATE TABLE and "
                                                                   "CREATE VIEW statements and one INSERT INTO or "
                                                                   "CREATE MATERIALIZED VIEW"));
            return invalid();
        }
    }
    if (!insert) {
        why = "the script has no INSERT INTO: a pipeline writes its query's rows into a table";
        return invalid();
    }
    if (ctx.parallelism() > 1) {
        why = "a SQL pipeline runs as one instance for now";
        return invalid();
    }
    job_connectors conn(ctx, def);
    sql::planner pl(cat, conn);
    // A materialized view plans its query and keeps the rows in a view the gateway serves.
    const auto* view = std::get_if<sql::create_view_stmt>(&insert->node);
    std::optional<sql::statement> query;
    if (view) query = sql::statement{sql::query_stmt{view->body}, insert->pos};
    auto plan = pl.plan(query ? *query : *insert, ctx.pipeline());
    if (!plan) {
        why = sql::format_error(text, plan.error());
        return invalid();
    }
    if (view) {
        auto columns = plan.value().columns;
        if (!view->columns.empty()) {
            if (view->columns.size() != columns.size()) {
                why = sql::format_error(text, sql::error_at(insert->pos, 1,
                                                            fmt::format("the view names {} columns and its query has {}",
                                                                        view->columns.size(), columns.size())));
                return invalid();
            }
            columns = view->columns;
        }
        const auto& planned = plan.value().columns;
        std::vector<std::string> key;
        for (const auto& k : sql::materialized_view_key(view->body, planned)) {
            key.push_back(columns[std::size_t(std::find(planned.begin(), planned.end(), k) - planned.begin())]);
        }
        auto rows = plan.value().output;
        if (columns != planned) {
            std::vector<en::named_expr> renamed;
            for (std::size_t i = 0; i < columns.size(); ++i) renamed.push_back(en::as(en::col(planned[i]), columns[i]));
            rows = rows.project(renamed);
        }
        ctx.sink(rows, std::make_unique<view_sink>(default_views().open(view->name.back(), key), true), 1);
    }
    // Rows too late for every window they belong to go to `<job>.late`, never nowhere.
    for (auto& late : plan.value().late) {
        ctx.to_topic(late, def.id + ".late", {}, connect::delivery::at_least_once);
    }
    return ok();
}

} // namespace runnel::jobs
