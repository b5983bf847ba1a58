// The `sql` job template: a script of CREATE TABLE and CREATE VIEW statements and one
// INSERT INTO, planned by `sql::planner` over the job's connectors.

#include <algorithm>
#include <cctype>
#include <charconv>

#include <fmt/format.h>

#include "connect/kafka/kafka.h"
#include "connect/nexmark/generator.h"
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

/// Events of one kind (`event` = bid, auction or person) of the Nexmark stream, as rows of the
/// table's columns, matched by name (`dateTime` → date_time). Every table over the same
/// options sees the same deterministic stream. The checkpoint keeps how many events were
/// generated; a restore generates again up to there.
class nexmark_source final : public en::checkpointed_source {
public:
    static en::result<std::unique_ptr<nexmark_source>> make(const sql::table_schema& t, en::schema_ptr columns) {
        std::map<std::string, std::string> opts;
        for (const auto& [k, v] : t.options) opts[k] = v;
        auto cfg = nx::generator_config::from_options(opts);
        if (!cfg) return bad(fmt::format("table {}: nexmark options: {}", t.name.back(), cfg.error().message()));
        std::unique_ptr<nexmark_source> s(new nexmark_source());
        s->_cfg = cfg.value();
        s->_kind = lower(option(t, "event", "bid"));
        if (s->_kind != "bid" && s->_kind != "auction" && s->_kind != "person") {
            return bad(fmt::format("table {}: option 'event' is bid, auction or person, not '{}'", t.name.back(), s->_kind));
        }
        s->_schema = std::move(columns);
        for (const auto& f : s->_schema->fields()) {
            int field = s->field_of(lower(f.name));
            if (field < 0) {
                return bad(fmt::format("table {}: a nexmark {} has no field '{}'", t.name.back(), s->_kind, f.name));
            }
            s->_fields.push_back(field);
        }
        if (auto r = s->reset(0); !r) return r.error();
        return s;
    }

    en::source_fn fn() override {
        return [this]() -> en::source_poll {
            if (_paused) return en::source_poll::idle();
            if (!_gen->has_next()) return en::source_poll::end();
            en::batch b(_schema);
            // Rows of the table's kind until the batch is full; a rare kind (people) ends a
            // batch after a bounded number of events so one poll stays short.
            std::size_t rows = 0;
            for (int generated = 0; _gen->has_next() && rows < 4096 && generated < 16384; ++generated) {
                rows += append(_gen->next(), b);
            }
            _taken = _gen->events_so_far();
            b.seal();
            if (rows == 0) return _gen->has_next() ? en::source_poll::idle() : en::source_poll::end();
            return en::source_poll::data(std::move(b));
        };
    }
    void pause(bool paused) override { _paused = paused; }
    std::string state() const override { return std::to_string(_taken); }
    runnel::result<void> restore(std::string_view state) override {
        int64_t n = 0;
        auto [p, ec] = std::from_chars(state.data(), state.data() + state.size(), n);
        if (ec != std::errc() || p != state.data() + state.size() || n < 0) {
            return std::error_code(EINVAL, std::generic_category());
        }
        if (!reset(n)) return std::error_code(EINVAL, std::generic_category());
        return ok();
    }
    std::size_t buffered_bytes() const override { return 0; }
    void stop() override {}

private:
    nexmark_source() = default;

    en::result<void> reset(int64_t skip) {
        auto g = nx::generator::create(_cfg);
        if (!g) return bad(fmt::format("nexmark generator: {}", g.error().message()));
        _gen.emplace(std::move(g).value());
        while (_gen->events_so_far() < skip && _gen->has_next()) (void)_gen->next();
        _taken = _gen->events_so_far();
        return outcome::success();
    }

    int field_of(const std::string& name) const {
        static const std::vector<std::string> bid{"auction", "bidder", "price", "channel", "url", "datetime", "extra"};
        static const std::vector<std::string> auction{"id",     "itemname", "description", "initialbid", "reserve",
                                                      "datetime", "expires", "seller",     "category",   "extra"};
        static const std::vector<std::string> person{"id",   "name",  "emailaddress", "creditcard",
                                                     "city", "state", "datetime",     "extra"};
        const auto& names = _kind == "bid" ? bid : _kind == "auction" ? auction : person;
        auto it = std::find(names.begin(), names.end(), name);
        return it == names.end() ? -1 : int(it - names.begin());
    }

    static void put_int(en::column& c, int64_t v) { c.push_int64(v); }
    static void put_str(en::column& c, const std::string& v) {
        if (c.type().id == en::type_id::string) c.push_string(v);
        else c.push_null();
    }

    /// Appends `e` as a row when it is of the table's kind; returns the rows added (0 or 1).
    std::size_t append(const nx::event& e, en::batch& b) {
        if (_kind == "bid") {
            const auto* x = std::get_if<nx::bid>(&e);
            if (!x) return 0;
            for (std::size_t c = 0; c < _fields.size(); ++c) {
                auto& col = b.mutable_col(c);
                switch (_fields[c]) {
                case 0: put_int(col, x->auction); break;
                case 1: put_int(col, x->bidder); break;
                case 2: put_int(col, x->price); break;
                case 3: put_str(col, x->channel); break;
                case 4: put_str(col, x->url); break;
                case 5: put_int(col, x->date_time); break;
                default: put_str(col, x->extra); break;
                }
            }
        } else if (_kind == "auction") {
            const auto* x = std::get_if<nx::auction>(&e);
            if (!x) return 0;
            for (std::size_t c = 0; c < _fields.size(); ++c) {
                auto& col = b.mutable_col(c);
                switch (_fields[c]) {
                case 0: put_int(col, x->id); break;
                case 1: put_str(col, x->item_name); break;
                case 2: put_str(col, x->description); break;
                case 3: put_int(col, x->initial_bid); break;
                case 4: put_int(col, x->reserve); break;
                case 5: put_int(col, x->date_time); break;
                case 6: put_int(col, x->expires); break;
                case 7: put_int(col, x->seller); break;
                case 8: put_int(col, x->category); break;
                default: put_str(col, x->extra); break;
                }
            }
        } else {
            const auto* x = std::get_if<nx::person>(&e);
            if (!x) return 0;
            for (std::size_t c = 0; c < _fields.size(); ++c) {
                auto& col = b.mutable_col(c);
                switch (_fields[c]) {
                case 0: put_int(col, x->id); break;
                case 1: put_str(col, x->name); break;
                case 2: put_str(col, x->email_address); break;
                case 3: put_str(col, x->credit_card); break;
                case 4: put_str(col, x->city); break;
                case 5: put_str(col, x->state); break;
                case 6: put_int(col, x->date_time); break;
                default: put_str(col, x->extra); break;
                }
            }
        }
        return 1;
    }

    nx::generator_config _cfg;
    std::optional<nx::generator> _gen;
    std::string _kind;
    en::schema_ptr _schema;
    std::vector<int> _fields;
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
            auto src = nexmark_source::make(t, columns);
            if (!src) return src.error();
            return _ctx.source(std::move(src).value(), columns);
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
        if (const auto* ct = std::get_if<sql::create_table_stmt>(&st.node)) {
            auto t = sql::table_schema_from(*ct);
            if (!t) {
                why = sql::format_error(text, t.error());
                return invalid();
            }
            cat.put(std::move(t).value());
        } else if (const auto* cv = std::get_if<sql::create_view_stmt>(&st.node); cv && !cv->materialized) {
            sql::table_schema v;
            v.name = cv->name;
            v.kind = sql::relation_kind::view;
            v.definition = sql::box<sql::query>(cv->body);
            cat.put(std::move(v));
        } else if (std::holds_alternative<sql::insert_stmt>(st.node) && !insert) {
            insert = &st;
        } else {
            sql::error e;
            e.line = st.pos.line;
            e.column = st.pos.column;
            e.offset = st.pos.offset;
            e.message = "a pipeline's script holds CREATE TABLE and CREATE VIEW statements and one INSERT INTO";
            why = sql::format_error(text, e);
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
    auto plan = pl.plan(*insert, ctx.pipeline());
    if (!plan) {
        why = sql::format_error(text, plan.error());
        return invalid();
    }
    // Rows too late for every window they belong to go to `<job>.late`, never nowhere.
    for (auto& late : plan.value().late) {
        ctx.to_topic(late, def.id + ".late", {}, connect::delivery::at_least_once);
    }
    return ok();
}

} // namespace runnel::jobs
