// The table connectors of SQL jobs (`table_connectors.h`): one factory per connector of
// `connect::connector_registry`, and the planner's view of them for one job instance.

#include "jobs/table_connectors.h"

#include <algorithm>
#include <charconv>
#include <map>

#include <fmt/format.h>

#include "base/text.h"
#include "broker/broker.h"
#include "connect/datagen/datagen.h"
#include "connect/file/file.h"
#include "connect/kafka/kafka.h"
#include "connect/nexmark/rows.h"
#include "connect/options/options.h"

namespace runnel::jobs {
namespace {

namespace en = runnel::engine;
namespace nx = runnel::connect::nexmark;
namespace dg = runnel::connect::datagen;

en::error bad(std::string why) { return en::error(en::errc::invalid_argument, std::move(why)); }

std::string option(const sql::table_schema& t, std::string_view key, std::string fallback = {}) {
    auto o = t.option(key);
    return o ? *o : fallback;
}

/// The datagen column of physical column `f` of table `t`, or why it has none.
std::optional<dg::column> datagen_column(const sql::table_schema& t, const en::field& f) {
    auto i = t.find_column(f.name);
    if (!i) return std::nullopt;
    const auto& ty = t.columns[*i].type;
    dg::column c;
    c.name = f.name;
    switch (ty.kind) {
    case sql::type_kind::tinyint: c.kind = dg::column_kind::tinyint; break;
    case sql::type_kind::smallint: c.kind = dg::column_kind::smallint; break;
    case sql::type_kind::int_: c.kind = dg::column_kind::int_; break;
    case sql::type_kind::bigint: c.kind = dg::column_kind::bigint; break;
    case sql::type_kind::float_: c.kind = dg::column_kind::float_; break;
    case sql::type_kind::double_: c.kind = dg::column_kind::double_; break;
    case sql::type_kind::decimal:
        c.kind = dg::column_kind::decimal;
        c.precision = sql::effective_precision(ty);
        c.scale = sql::effective_scale(ty);
        break;
    case sql::type_kind::boolean: c.kind = dg::column_kind::boolean; break;
    case sql::type_kind::char_:
    case sql::type_kind::varchar:
        c.kind = dg::column_kind::string;
        c.precision = sql::effective_precision(ty) == sql::max_varchar_length ? 0 : sql::effective_precision(ty);
        break;
    case sql::type_kind::string: c.kind = dg::column_kind::string; break;
    case sql::type_kind::timestamp:
    case sql::type_kind::timestamp_ltz: c.kind = dg::column_kind::timestamp; break;
    default: return std::nullopt;
    }
    return c;
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

/// The one row a SELECT without FROM reads, as a checkpointed source: given once by the job's
/// first instance (the others have nothing to give), and not again after a restore from a
/// checkpoint taken after it.
class constant_source final : public en::checkpointed_source {
public:
    constant_source(en::batch rows, bool mine)
      : _rows(std::move(rows))
      , _given(!mine) {}

    en::source_fn fn() override {
        return [this]() -> en::source_poll {
            if (_paused) return en::source_poll::idle();
            if (_given) return en::source_poll::end();
            _given = true;
            return en::source_poll::data(std::move(_rows));
        };
    }
    void pause(bool paused) override { _paused = paused; }
    std::string state() const override { return _given ? "given" : "pending"; }
    runnel::result<void> restore(std::string_view state) override {
        if (state != "given" && state != "pending") return std::error_code(EINVAL, std::generic_category());
        _given = _given || state == "given";
        return ok();
    }
    std::size_t buffered_bytes() const override { return 0; }
    void stop() override {}

private:
    en::batch _rows;
    bool _given = false;
    bool _paused = false;
};

/// What an instance reads of an unbounded input another instance reads whole (a Kafka
/// cluster's topic): nothing, ever. Its watermark stage owns no partition, so it is idle and
/// holds no window back.
class no_rows_source final : public en::checkpointed_source {
public:
    en::source_fn fn() override {
        return [] { return en::source_poll::idle(); };
    }
    void pause(bool) override {}
    std::string state() const override { return "none"; }
    runnel::result<void> restore(std::string_view state) override {
        if (state != "none") return std::error_code(EINVAL, std::generic_category());
        return ok();
    }
    std::size_t buffered_bytes() const override { return 0; }
    void stop() override {}
};

/// Why table `t`, whose connector is `kind`, cannot be read (`source`) or written here.
en::error unknown(const sql::table_schema& t, const std::string& kind, bool source) {
    const auto& reg = connect::connector_registry::global();
    std::string ids;
    for (const auto& c : reg.all()) {
        if ((source ? c.source : c.sink) && find_table_connector(c.id)) ids += (ids.empty() ? "" : ", ") + c.id;
    }
    const auto* spec = reg.find(kind);
    if (kind.empty()) return bad(fmt::format("table {}: option 'connector' is required ({})", t.name.back(), ids));
    if (spec) {
        return bad(fmt::format("table {}: the {} connector cannot be {}; tables of {} can", t.name.back(), spec->id,
                               source ? "read" : "written", ids));
    }
    return bad(fmt::format("table {}: connector '{}' is not one Runnel has ({})", t.name.back(), kind, ids));
}

/// The table's `format` (or `value.format`): json by default for topics; `raw` only for
/// sources.
en::result<en::decode_format> format_of(const sql::table_schema& t, bool defaulted) {
    const auto name = t.name.back();
    if (!defaulted && !t.option("format")) return bad(fmt::format("table {}: option 'format' is required (csv, json or raw)", name));
    const auto format = text::to_lower(option(t, "format", option(t, "value.format", "json")));
    if (format == "json") return en::decode_format::json;
    if (format == "csv") return en::decode_format::csv;
    if (format == "raw") return en::decode_format::raw;
    return bad(fmt::format("table {}: format '{}' is not supported; use json, csv or raw", name, format));
}

/// Records of `raw`'s `value` column decoded into `columns`. Records that do not decode are
/// never dropped silently: they go to `<job>.dead` with the reason, unless the table says to
/// ignore them (then they are only counted).
en::stream decode(table_io io, en::stream raw, en::decode_format f, const en::schema_ptr& columns,
                  const sql::table_schema& t) {
    auto decoded = raw.decode(f, columns, "value");
    if (text::to_lower(option(t, "json.ignore-parse-errors", "false")) != "true") {
        io.ctx.side_output(decoded.dead_letters(), io.def.id + ".dead");
    } else {
        decoded.dead_letters().sink([](const en::batch&) {});
    }
    return decoded;
}

/// `topic`: a topic of the embedded log; `kafka`: a topic of an external cluster when the
/// table has `properties.bootstrap.servers`, else of the embedded log as well.
class topic_connector final : public table_connector {
public:
    en::result<en::stream> source(table_io io, const sql::table_schema& t, const en::schema_ptr& columns) const override {
        const auto name = t.name.back();
        const auto topic = option(t, "topic");
        if (topic.empty()) return bad(fmt::format("table {}: option 'topic' is required", name));
        auto f = format_of(t, true);
        if (!f) return f.error();
        const auto bootstrap = option(t, "properties.bootstrap.servers");
        const auto mode = option(t, "scan.startup.mode", "earliest-offset");
        using start_at = connect::log_source_options::start_at;
        start_at start;
        if (mode == "earliest-offset") start = start_at::earliest;
        else if (mode == "latest-offset") start = start_at::latest;
        else if (mode == "timestamp") start = start_at::timestamp;
        else if (mode == "group-offsets") start = start_at::group_offsets;
        else {
            return bad(fmt::format("table {}: 'scan.startup.mode' is earliest-offset, latest-offset, timestamp or "
                                   "group-offsets, not '{}'",
                                   name, mode));
        }
        const auto group = option(t, "properties.group.id");
        en::stream raw;
        if (!bootstrap.empty()) {
            if (start == start_at::timestamp || start == start_at::group_offsets || !group.empty()) {
                return bad(fmt::format("table {}: a Kafka cluster's table starts at earliest-offset or latest-offset "
                                       "and keeps its offsets in the job's checkpoints; '{}' is for the embedded "
                                       "log's topics for now",
                                       name, group.empty() ? "scan.startup.mode' = '" + mode : "properties.group.id"));
            }
            auto client = kafka_client(t);
            if (!client) return client.error();
            connect::kafka_source_options o;
            o.bootstrap = bootstrap;
            o.client = std::move(client).value();
            o.topic = topic;
            o.client_id = "runnel-job-" + io.def.id;
            o.start_at_end = start == start_at::latest;
            // The cluster's consumer assigns itself every partition, so the first instance reads
            // them all; the planner's exchanges bring rows to their keys' instances.
            if (io.ctx.instance() == 0) {
                raw = io.ctx.source(std::make_unique<connect::kafka_source>(o, io.ctx.home(), io.ctx.waker()),
                                    connect::log_source::schema());
            } else {
                raw = io.ctx.source(std::make_unique<no_rows_source>(), connect::log_source::schema());
            }
        } else {
            connect::log_source_options o;
            o.topic = topic;
            o.start = start;
            if (const auto n = int32_t(io.ctx.parallelism()); n > 1) {
                // Instance i reads partitions p with p % n == i. One that reads none (a topic of
                // fewer partitions than instances) is idle, and holds no watermark back.
                o.instances = n;
                o.instance = int32_t(io.ctx.instance());
            }
            if (start == start_at::timestamp) {
                const auto ts = option(t, "scan.startup.timestamp-millis");
                int64_t ms = -1;
                auto [e, ec] = std::from_chars(ts.data(), ts.data() + ts.size(), ms);
                if (ts.empty()) {
                    return bad(fmt::format("table {}: 'scan.startup.mode' = 'timestamp' needs "
                                           "'scan.startup.timestamp-millis'",
                                           name));
                }
                if (ec != std::errc() || e != ts.data() + ts.size() || ms < 0) {
                    return bad(fmt::format("table {}: 'scan.startup.timestamp-millis' must be epoch milliseconds, not "
                                           "'{}'",
                                           name, ts));
                }
                o.start_timestamp_ms = ms;
            }
            if (!group.empty()) {
                if (!io.ctx.groups()) {
                    return bad(fmt::format("table {}: 'properties.group.id' needs consumer groups, which this server "
                                           "does not run",
                                           name));
                }
                o.group_id = group;
                o.groups = io.ctx.groups();
            } else if (start == start_at::group_offsets) {
                return bad(fmt::format("table {}: 'scan.startup.mode' = 'group-offsets' needs 'properties.group.id'",
                                       name));
            }
            const auto reset = text::to_lower(option(t, "properties.auto.offset.reset", "earliest"));
            if (reset != "earliest" && reset != "latest") {
                return bad(fmt::format("table {}: 'properties.auto.offset.reset' is earliest or latest, not '{}'", name,
                                       reset));
            }
            o.group_fallback = reset == "latest" ? start_at::latest : start_at::earliest;
            raw = io.ctx.source(o);
        }
        return decode(io, raw, f.value(), columns, t);
    }

    en::result<void> sink(table_io io, en::stream rows, const sql::table_schema& t) const override {
        const auto name = t.name.back();
        const auto topic = option(t, "topic");
        if (topic.empty()) return bad(fmt::format("table {}: option 'topic' is required", name));
        const auto guarantee = option(t, "sink.delivery-guarantee", "exactly-once");
        if (guarantee != "exactly-once" && guarantee != "at-least-once") {
            return bad(fmt::format("table {}: 'sink.delivery-guarantee' is exactly-once or at-least-once, not '{}'", name,
                                   guarantee));
        }
        const auto format = text::to_lower(option(t, "format", option(t, "value.format", "json")));
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
            auto client = kafka_client(t);
            if (!client) return client.error();
            connect::kafka_sink_options o;
            o.bootstrap = bootstrap;
            o.client = std::move(client).value();
            o.topic = topic;
            o.key_columns = t.primary_key;
            o.exactly_once = exactly;
            // One transactional id per instance: instances must not fence each other.
            o.transactional_id = io.ctx.instance() == 0 ? fmt::format("runnel-{}-{}", io.def.id, topic)
                                                      : fmt::format("runnel-{}-{}-{}", io.def.id, topic, io.ctx.instance());
            io.ctx.sink(std::move(rows), std::make_unique<connect::kafka_sink>(std::move(o), io.ctx.home(), io.ctx.waker()),
                      parts);
            return outcome::success();
        }
        connect::log_sink_options o;
        o.topic = topic;
        o.mode = exactly ? connect::delivery::exactly_once : connect::delivery::at_least_once;
        o.key_columns = t.primary_key;
        io.ctx.sink(std::move(rows), std::move(o), parts);
        return outcome::success();
    }

    void watermarks(table_io io, const sql::table_schema& t, en::watermark_options& w) const override {
        // A cluster's topic: the first instance reads every partition (known as they come).
        w.partitions = option(t, "properties.bootstrap.servers").empty()
                         ? std::max(1, io.ctx.partitions_of(option(t, "topic"))) : 1;
        w.instances = int32_t(io.ctx.parallelism());
        w.instance = int32_t(io.ctx.instance());
    }

private:
    /// The Kafka client configuration of a table on an external cluster (its `properties.*`,
    /// checked by the connector when the pipeline is planned).
    static en::result<connect::kafka_client_config> kafka_client(const sql::table_schema& t) {
        std::string why;
        auto c = connect::kafka_client_config_of(t.name.back(), t.options, why);
        if (!c) return bad(std::move(why));
        return std::move(c).value();
    }
};

/// `nexmark`: the Nexmark generator's events of one kind; instance i of N generates the events
/// n with n % N == i.
class nexmark_connector final : public table_connector {
public:
    en::result<en::stream> source(table_io io, const sql::table_schema& t, const en::schema_ptr& columns) const override {
        std::map<std::string, std::string> opts(t.options.begin(), t.options.end());
        auto r = nx::row_reader::make(opts, columns);
        if (!r) return en::error(r.error().code, fmt::format("table {}: {}", t.name.back(), r.error().message));
        r.value().slice(io.ctx.instance(), io.ctx.parallelism());
        return io.ctx.source(std::make_unique<nexmark_source>(std::move(r).value()), columns);
    }
};

/// `datagen`: random or sequence rows of the table's columns; bounded with `number-of-rows`
/// or a sequence column.
class datagen_connector final : public table_connector {
public:
    en::result<en::stream> source(table_io io, const sql::table_schema& t, const en::schema_ptr& columns) const override {
        const auto name = t.name.back();
        std::vector<dg::column> cols;
        for (const auto& f : columns->fields()) {
            auto c = datagen_column(t, f);
            if (!c) return bad(fmt::format("table {}: datagen cannot make column '{}' of its type", name, f.name));
            cols.push_back(std::move(*c));
        }
        std::map<std::string, std::string> opts;
        for (const auto& [k, v] : t.options) {
            if (!connect::common_option(k)) opts[k] = v;
        }
        auto g = dg::generator::make(opts, std::move(cols), columns);
        if (!g) return en::error(g.error().code, fmt::format("table {}: {}", name, g.error().message));
        g.value().slice(io.ctx.instance(), io.ctx.parallelism());
        return io.ctx.source(std::make_unique<dg::source>(std::move(g).value()), columns);
    }

    bool bounded(const sql::table_schema& t) const override {
        return std::any_of(t.options.begin(), t.options.end(), [](const auto& o) {
            return o.first == "number-of-rows" ||
                   (o.first.starts_with("fields.") && o.first.ends_with(".kind") && text::to_lower(o.second) == "sequence");
        });
    }
};

/// `file` (`filesystem`): a file or a directory's files read once by the first instance, or
/// one file appended to; bounded, so a lookup join reads it whole first.
class file_connector final : public table_connector {
public:
    en::result<en::stream> source(table_io io, const sql::table_schema& t, const en::schema_ptr& columns) const override {
        const auto name = t.name.back();
        const auto path = option(t, "path");
        if (path.empty()) return bad(fmt::format("table {}: option 'path' is required", name));
        auto f = format_of(t, false);
        if (!f) return f.error();
        std::string why;
        auto files = connect::files_of(path, why);
        if (!files) return bad(fmt::format("table {}: {}", name, why));
        // One instance reads the file; the planner's exchanges bring its rows to their keys'.
        auto mine = io.ctx.instance() == 0 ? std::move(files).value() : std::vector<std::filesystem::path>{};
        auto raw = io.ctx.source(std::make_unique<connect::file_source>(std::move(mine)), connect::file_source::schema());
        return decode(io, raw, f.value(), columns, t);
    }

    en::result<void> sink(table_io io, en::stream rows, const sql::table_schema& t) const override {
        const auto name = t.name.back();
        const auto path = option(t, "path");
        if (path.empty()) return bad(fmt::format("table {}: option 'path' is required", name));
        auto f = format_of(t, false);
        if (!f) return f.error();
        if (f.value() == en::decode_format::raw) return bad(fmt::format("table {}: a file sink writes csv or json, not raw", name));
        // An updating query reaches a keyed sink through an upsert stage; a file cannot update
        // or delete a line it wrote, so (as Flink's filesystem sink) it takes only inserts.
        if (rows.schema_of() && io.ctx.pipeline().stage_at(rows.stage_id()).name() == std::string_view("upsert")) {
            return bad(fmt::format("table {}: a file sink takes only inserts, and the query updates its rows; write "
                                   "them to a topic with a PRIMARY KEY",
                                   name));
        }
        if (std::filesystem::is_directory(path)) {
            return bad(fmt::format("table {}: path '{}' is a directory; a file sink appends to one file", name, path));
        }
        if (io.ctx.parallelism() > 1) {
            // One file, one writer: an exchange without keys brings every instance's rows to one
            // instance, which writes them; the others' sink stays empty.
            rows = io.ctx.exchange(std::move(rows), {}, en::key_routing::columnar);
            if (io.ctx.instance() != en::keyless_shard(io.ctx.parallelism(), en::key_routing::columnar)) {
                rows.sink([](const en::batch&) {});
                return outcome::success();
            }
        }
        connect::file_sink_options o;
        o.path = path;
        o.format = f.value() == en::decode_format::csv ? connect::file_format::csv : connect::file_format::json;
        io.ctx.sink(std::move(rows), std::make_unique<connect::file_sink>(std::move(o), io.ctx.home()), 1);
        return outcome::success();
    }

    bool bounded(const sql::table_schema&) const override { return true; }
};

/// `blackhole`: a sink that discards its rows.
class blackhole_connector final : public table_connector {
public:
    en::result<void> sink(table_io, en::stream rows, const sql::table_schema&) const override {
        rows.sink([](const en::batch&) {});
        return outcome::success();
    }
};

/// Every connector's factory by its id in `connect::connector_registry`.
const std::map<std::string, const table_connector*, std::less<>>& factories() {
    static const topic_connector topic;
    static const nexmark_connector nexmark;
    static const datagen_connector datagen;
    static const file_connector file;
    static const blackhole_connector blackhole;
    static const std::map<std::string, const table_connector*, std::less<>> all{
      {"topic", &topic}, {"kafka", &topic}, {"nexmark", &nexmark},
      {"datagen", &datagen}, {"file", &file}, {"blackhole", &blackhole}};
    return all;
}

/// The planner's connectors for one job instance: each table through its connector's factory.
///
/// In a parallel job every instance plans the same statement through its own: each reads its
/// share of every source (a topic's partitions p with p % parallelism == instance, the
/// generators' rows n with n % parallelism == instance, a file and a constant row on instance
/// 0 only), the planner's exchanges bring rows to their key's instance, and each instance
/// writes its own rows to the sinks.
class instance_connectors final : public sql::connector_factory {
public:
    instance_connectors(job_context& ctx, const job_definition& def)
      : _io{ctx, def} {}

    en::result<en::stream> constant(en::pipeline&, en::batch rows) override {
        auto schema = rows.schema_of();
        return _io.ctx.source(std::make_unique<constant_source>(std::move(rows), _io.ctx.instance() == 0),
                              std::move(schema));
    }

    en::result<en::stream> source(en::pipeline&, const sql::table_schema& t, const en::schema_ptr& columns) override {
        const auto kind = text::to_lower(option(t, "connector"));
        const auto* c = find_table_connector(kind);
        if (!c) return unknown(t, kind, true);
        return c->source(_io, t, columns);
    }

    en::result<void> sink(en::stream rows, const sql::table_schema& t) override {
        const auto kind = text::to_lower(option(t, "connector"));
        const auto* c = find_table_connector(kind);
        if (!c) return unknown(t, kind, false);
        return c->sink(_io, std::move(rows), t);
    }

    bool bounded(const sql::table_schema& t) override {
        const auto* c = find_table_connector(option(t, "connector"));
        return c && c->bounded(t);
    }

    en::watermark_options watermarks(const sql::table_schema& t) override {
        en::watermark_options w;
        const auto topic = option(t, "topic");
        w.input = topic.empty() ? t.name.back() : topic;
        if (auto idle = t.option(connect::idle_timeout_option)) {
            if (auto ms = connect::duration_ms(*idle)) w.idle_timeout = std::chrono::milliseconds(*ms);
        }
        if (const auto* c = find_table_connector(option(t, "connector"))) c->watermarks(_io, t, w);
        return w;
    }

    /// The planner's exchanges: by `columnar` routing, since no SQL job's state was ever split
    /// by another (decision 0021).
    en::result<en::stream> exchange(en::pipeline&, en::stream s, const std::vector<std::string>& keys) override {
        return _io.ctx.exchange(std::move(s), keys, en::key_routing::columnar);
    }

private:
    table_io _io;
};

} // namespace

en::result<en::stream> table_connector::source(table_io, const sql::table_schema& t, const en::schema_ptr&) const {
    return unknown(t, text::to_lower(option(t, "connector")), true);
}

en::result<void> table_connector::sink(table_io, en::stream, const sql::table_schema& t) const {
    return unknown(t, text::to_lower(option(t, "connector")), false);
}

bool table_connector::bounded(const sql::table_schema&) const { return false; }

void table_connector::watermarks(table_io, const sql::table_schema&, en::watermark_options&) const {}

const table_connector* find_table_connector(std::string_view id) {
    const auto* spec = connect::connector_registry::global().find(text::to_lower(id));
    if (!spec) return nullptr;
    const auto& all = factories();
    auto it = all.find(spec->id);
    return it == all.end() ? nullptr : it->second;
}

std::unique_ptr<sql::connector_factory> job_connectors(job_context& ctx, const job_definition& def) {
    return std::make_unique<instance_connectors>(ctx, def);
}

} // namespace runnel::jobs
