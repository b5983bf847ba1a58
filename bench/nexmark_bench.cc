// nexmark_bench: the Nexmark queries of examples/nexmark, planned by the SQL planner and run on
// the engine with the generator inside the process and a blackhole sink, one thread per query.
// Prints events/s (per core, as one core runs each query) beside the published per-core figures
// of Flink and RisingWave, with the ratios, and one JSON document.
//
//     build/release/bench/nexmark_bench --events 10000000 --json build/bench-nexmark.json
//
// Each query runs twice: over its own per-kind tables, and over Flink's nested shape
// (`--nested`, examples/nexmark/nested.sql: one table of every event with ROW columns, views
// per kind, which replace the query's tables of one kind).
//
// With `--parallelism N` each query also runs as N instances on N threads, joined by the
// exchanges the planner puts before every keyed operator (instance i generates the events n
// with n % N == i), and the table gains its events/s at N and the ratio to one instance.

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "connect/nexmark/rows.h"
#include "sql/catalog.h"
#include "sql/parser.h"
#include "sql/planner.h"

namespace {

namespace en = runnel::engine;
namespace sql = runnel::sql;
using steady = std::chrono::steady_clock;

/// Flink 1.13's published Nexmark results (nexmark/nexmark README, "Benchmark Results"):
/// throughput per core, 100M events, 8 TaskManagers of one slot on 3 worker nodes of 8 cores
/// and 32 GB, RocksDB state, exactly-once checkpoints every 3 minutes.
const std::map<std::string, double> flink_per_core = {
  {"q0", 155.02e3}, {"q1", 157.94e3}, {"q2", 175.21e3}, {"q3", 152.12e3}, {"q4", 34.33e3},  {"q5", 22.14e3},
  {"q7", 12.33e3},  {"q8", 146.14e3}, {"q9", 14.24e3},  {"q11", 39.7e3},  {"q12", 75.67e3}, {"q13", 130.73e3},
  {"q14", 161.23e3}, {"q15", 72.42e3}, {"q16", 18.65e3}, {"q17", 116.8e3}, {"q18", 53.7e3},  {"q19", 44.04e3},
  {"q20", 18.98e3}, {"q21", 98.49e3}, {"q22", 129.96e3}};

/// RisingWave's published Nexmark results (docs.risingwave.com, "Stream processing benchmarks:
/// Nexmark results"): throughput per core of nightly-20230309 on one node of 8 vCPUs and 16 GB
/// with S3 state storage, reading the events from Kafka, blackhole sinks. No figure is
/// published for q11, q12, q13 and q19.
const std::map<std::string, double> risingwave_per_core = {
  {"q0", 118.41e3},  {"q1", 119.37e3}, {"q2", 127.36e3}, {"q3", 97.358e3}, {"q4", 13.923e3},
  {"q5", 5.2249e3},  {"q7", 20.348e3}, {"q8", 60.732e3}, {"q9", 8.2208e3}, {"q14", 45.371e3},
  {"q15", 78.525e3}, {"q16", 8.0565e3}, {"q17", 17.314e3}, {"q18", 9.8455e3}, {"q20", 12.726e3},
  {"q21", 89.377e3}, {"q22", 110.5e3}};

double published(const std::map<std::string, double>& figures, const std::string& query) {
    auto it = figures.find(query);
    return it == figures.end() ? 0.0 : it->second;
}

/// A CSV file's lines, decoded into `columns` (q13's side table, read before the clock starts).
en::result<en::stream> csv_file(en::pipeline& p, const sql::table_schema& t, const en::schema_ptr& columns) {
    auto path = t.option("path").value_or("");
    std::ifstream in(path, std::ios::binary);
    if (!in) return en::error(en::errc::invalid_argument, fmt::format("table {}: cannot read {}", t.name.back(), path));
    auto raw = en::make_schema({{"value", en::data_type::string(), false}});
    std::vector<en::batch> batches;
    en::batch b(raw);
    std::string line;
    while (std::getline(in, line)) {
        if (!line.empty() && line.back() == '\r') line.pop_back();
        if (line.empty()) continue;
        b.append_row({en::value::of(line)});
        if (b.num_rows() == 4096) {
            batches.push_back(std::move(b));
            b = en::batch(raw);
        }
    }
    if (b.num_rows() > 0) batches.push_back(std::move(b));
    return p.source(raw, en::from_batches(std::move(batches))).decode(en::decode_format::csv, columns);
}

/// Nexmark tables read from the generator, CSV file tables read whole; blackhole sinks count
/// the rows. One per instance; `xs` joins the instances of a parallel run.
class bench_connectors final : public sql::connector_factory {
public:
    bench_connectors(en::exchange_set& xs, uint32_t instance)
      : _xs(xs)
      , _instance(instance) {}

    en::result<en::stream> exchange(en::pipeline& p, en::stream s, const std::vector<std::string>& keys) override {
        (void)p;
        return _xs.exchange(std::move(s), _instance, keys, en::key_routing::columnar);
    }
    en::result<en::stream> source(en::pipeline& p, const sql::table_schema& t, const en::schema_ptr& columns) override {
        if (bounded(t) && t.option("format").value_or("csv") == "csv") return csv_file(p, t, columns);
        if (t.option("connector").value_or("") != "nexmark") {
            return en::error(en::errc::invalid_argument,
                             fmt::format("table {}: only nexmark tables and CSV files run here", t.name.back()));
        }
        std::map<std::string, std::string> opts(t.options.begin(), t.options.end());
        auto r = runnel::connect::nexmark::row_reader::make(opts, columns);
        if (!r) return r.error();
        r.value().slice(_instance, _xs.parallelism());
        auto reader = std::make_shared<runnel::connect::nexmark::row_reader>(std::move(r).value());
        return p.source(columns, [reader]() -> en::source_poll {
            if (reader->done()) return en::source_poll::end();
            auto b = reader->next();
            if (b.num_rows() == 0) return reader->done() ? en::source_poll::end() : en::source_poll::idle();
            return en::source_poll::data(std::move(b));
        });
    }
    bool bounded(const sql::table_schema& t) override { return t.option("connector").value_or("") == "file"; }
    en::result<void> sink(en::stream rows, const sql::table_schema& t) override {
        if (t.option("connector").value_or("") != "blackhole") {
            return en::error(en::errc::invalid_argument, fmt::format("table {}: only blackhole sinks run here", t.name.back()));
        }
        rows.sink([this](const en::batch& b) { output_rows += b.num_rows(); });
        return runnel::outcome::success();
    }
    uint64_t output_rows = 0;

private:
    en::exchange_set& _xs;
    uint32_t _instance;
};

struct result_line {
    std::string query;
    bool ran = false;
    std::string why; ///< when it did not run
    double seconds = 0;
    double events_per_s = 0;
    uint64_t output_rows = 0;
    double nested_events_per_s = 0; ///< over the nested shape; 0 when it did not run
    double parallel_events_per_s = 0; ///< as `--parallelism` instances; 0 when not run
    /// CPU seconds of the run's thread (one instance), or of its busiest instance's thread.
    double cpu_seconds = 0;
    double parallel_cpu_seconds = 0;
};

/// Declares `st` into `cat`; a generated table reads `events` events (the same stream in
/// every table).
runnel::sql::parse_result<bool> declare_bounded(sql::statement& st, sql::memory_catalog& cat, int64_t events) {
    if (auto* ct = std::get_if<sql::create_table_stmt>(&st.node)) {
        bool nexmark = false;
        for (const auto& [k, v] : ct->options) nexmark = nexmark || (k == "connector" && v == "nexmark");
        if (nexmark) {
            std::erase_if(ct->options, [](const auto& kv) { return kv.first == "events.num"; });
            ct->options.emplace_back("events.num", std::to_string(events));
        }
    }
    return sql::declare(st, cat);
}

/// True when `st` is a generated table of one event kind (what the nested shape replaces).
bool per_kind_table(const sql::statement& st) {
    auto* ct = std::get_if<sql::create_table_stmt>(&st.node);
    if (!ct) return false;
    bool nexmark = false, kind = false;
    for (const auto& [k, v] : ct->options) {
        nexmark = nexmark || (k == "connector" && v == "nexmark");
        kind = kind || k == "event";
    }
    return nexmark && kind;
}

/// Runs the query of `text` as `parallelism` instances on as many threads; with `nested` (a
/// script), over that script's tables and views instead of the query's per-kind tables.
result_line run(const std::string& name, const std::string& text, int64_t events, const std::string& nested = {},
                uint32_t parallelism = 1, sql::plan_options opts = {}) {
    result_line l;
    l.query = name;
    auto script = sql::parse_script(text);
    if (!script) {
        l.why = sql::format_error(text, script.error());
        return l;
    }
    sql::memory_catalog cat;
    if (!nested.empty()) {
        auto setup = sql::parse_script(nested);
        if (!setup) {
            l.why = "nested: " + sql::format_error(nested, setup.error());
            return l;
        }
        for (auto& st : setup.value()) {
            if (auto d = declare_bounded(st, cat, events); !d) {
                l.why = "nested: " + sql::format_error(nested, d.error());
                return l;
            }
        }
    }
    const sql::statement* insert = nullptr;
    for (auto& st : script.value()) {
        if (!nested.empty() && per_kind_table(st)) continue;
        auto declared = declare_bounded(st, cat, events);
        if (!declared) {
            l.why = sql::format_error(text, declared.error());
            return l;
        }
        if (!declared.value() && std::holds_alternative<sql::insert_stmt>(st.node)) insert = &st;
    }
    if (!insert) {
        l.why = "no INSERT INTO";
        return l;
    }
    en::exchange_set xs(parallelism);
    std::vector<std::unique_ptr<bench_connectors>> conns;
    std::vector<std::unique_ptr<en::pipeline>> ps;
    std::vector<en::pipeline*> instances;
    opts.parallelism = parallelism;
    for (uint32_t i = 0; i < parallelism; ++i) {
        conns.push_back(std::make_unique<bench_connectors>(xs, i));
        ps.push_back(std::make_unique<en::pipeline>());
        instances.push_back(ps.back().get());
        sql::planner pl(cat, *conns.back(), opts);
        auto plan = pl.plan(*insert, *ps.back());
        if (!plan) {
            auto msg = sql::format_error(text, plan.error());
            l.why = msg.substr(0, msg.find('\n'));
            return l;
        }
        for (auto& late : plan.value().late) late.sink([](const en::batch&) {});
    }
    std::vector<std::chrono::nanoseconds> cpu;
    const auto c0 = en::thread_cpu_time();
    auto t0 = steady::now();
    auto r = parallelism == 1 ? ps[0]->run() : en::run_parallel(instances, xs, &cpu);
    auto t1 = steady::now();
    if (parallelism == 1) cpu.push_back(en::thread_cpu_time() - c0);
    for (auto c : cpu) l.cpu_seconds = std::max(l.cpu_seconds, std::chrono::duration<double>(c).count());
    if (!r) {
        l.why = "run: " + r.error().message;
        return l;
    }
    l.ran = true;
    l.seconds = std::chrono::duration<double>(t1 - t0).count();
    l.events_per_s = double(events) / l.seconds;
    for (const auto& c : conns) l.output_rows += c->output_rows;
    return l;
}

} // namespace

int main(int argc, char** argv) {
    int64_t events = 10'000'000;
    uint32_t parallelism = 1;
    std::string dir = "examples/nexmark", json_path, only, nested_path;
    CLI::App app{"nexmark_bench: the Nexmark SQL queries on the engine, generator in process, blackhole sink"};
    app.add_option("--events", events, "events of the generated stream per query")->check(CLI::Range(10'000, 1'000'000'000));
    app.add_option("--dir", dir, "where q0.sql … q22.sql are");
    app.add_option("--queries", only, "comma-separated queries to run (default: every file)");
    app.add_option("--json", json_path, "also write the JSON document here");
    app.add_option("--nested", nested_path,
                   "the nested shape's script (default DIR/nested.sql); 'none' runs the per-kind tables only");
    app.add_option("--parallelism", parallelism,
                   "also run each query (per-kind tables) as N instances on N threads joined by exchanges")
        ->check(CLI::Range(1u, 64u));
    std::vector<std::string> settings;
    app.add_option("--set", settings, "a planner option KEY=VALUE, as SET 'KEY' = 'VALUE' (repeatable), e.g. "
                                      "table.optimizer.agg-phase-strategy=ONE_PHASE");
    CLI11_PARSE(app, argc, argv);
    sql::plan_options opts;
    for (const auto& kv : settings) {
        const auto eq = kv.find('=');
        sql::set_stmt set{false, kv.substr(0, eq), eq == std::string::npos ? "" : kv.substr(eq + 1)};
        auto applied = sql::apply_setting(set, {}, opts);
        if (!applied || !applied.value()) {
            fmt::print(stderr, "nexmark_bench: --set {}: {}\n", kv,
                       applied ? "not a planner option" : applied.error().message);
            return 2;
        }
    }

    std::vector<std::string> names;
    for (int q = 0; q <= 22; ++q) {
        auto n = fmt::format("q{}", q);
        if (!std::filesystem::exists(std::filesystem::path(dir) / (n + ".sql"))) continue;
        if (!only.empty() && ("," + only + ",").find("," + n + ",") == std::string::npos) continue;
        names.push_back(n);
    }
    if (names.empty()) {
        fmt::print(stderr, "nexmark_bench: no q*.sql in {}\n", dir);
        return 2;
    }
    const auto read = [](const std::filesystem::path& path) {
        std::ifstream in(path);
        std::stringstream ss;
        ss << in.rdbuf();
        return ss.str();
    };
    std::string nested;
    if (nested_path != "none") {
        nested = read(nested_path.empty() ? std::filesystem::path(dir) / "nested.sql" : std::filesystem::path(nested_path));
    }
    std::vector<result_line> lines;
    for (const auto& n : names) {
        const std::string text = read(std::filesystem::path(dir) / (n + ".sql"));
        lines.push_back(run(n, text, events, {}, 1, opts));
        auto& l = lines.back();
        if (l.ran) fmt::print(stderr, "{}: {:.0f} events/s\n", n, l.events_per_s);
        else fmt::print(stderr, "{}: not run: {}\n", n, l.why);
        if (l.ran && parallelism > 1) {
            auto pl = run(n, text, events, {}, parallelism, opts);
            if (pl.ran && pl.output_rows != l.output_rows) {
                fmt::print(stderr, "{} x{}: {} output rows, one instance {}\n", n, parallelism, pl.output_rows,
                           l.output_rows);
            }
            if (pl.ran) {
                l.parallel_events_per_s = pl.events_per_s;
                l.parallel_cpu_seconds = pl.cpu_seconds;
                fmt::print(stderr, "{} x{}: {:.0f} events/s ({:.2f}x one instance)\n", n, parallelism,
                           pl.events_per_s, pl.events_per_s / l.events_per_s);
            } else {
                fmt::print(stderr, "{} x{}: not run: {}\n", n, parallelism, pl.why);
            }
        }
        if (l.ran && !nested.empty()) {
            auto nl = run(n, text, events, nested, 1, opts);
            if (nl.ran) {
                l.nested_events_per_s = nl.events_per_s;
                fmt::print(stderr, "{} nested: {:.0f} events/s\n", n, nl.events_per_s);
            } else {
                fmt::print(stderr, "{} nested: not run: {}\n", n, nl.why);
            }
        }
    }

    fmt::print("\nNexmark, {} events per query, generator in process, blackhole sink, one core per query\n", events);
    fmt::print("{:<6} {:>14} {:>12} {:>7} {:>12} {:>7} {:>12} {:>14}  {}\n", "query", "events/s/core", "Flink /core",
               "ratio", "RisingWave", "ratio", "output rows", "nested ev/s", "");
    std::string json = fmt::format("{{\"benchmark\":\"nexmark\",\"events\":{},\"queries\":[", events);
    bool first = true;
    const auto ratio_text = [](double mine, double theirs) {
        return theirs > 0 ? fmt::format("{:.1f}", mine / theirs) : std::string("-");
    };
    for (const auto& l : lines) {
        const double flink = published(flink_per_core, l.query);
        const double rw = published(risingwave_per_core, l.query);
        const std::string rw_text = rw > 0 ? fmt::format("{:.0f}", rw) : "-";
        if (l.ran) {
            const std::string nested_text = l.nested_events_per_s > 0 ? fmt::format("{:.0f}", l.nested_events_per_s) : "-";
            fmt::print("{:<6} {:>14.0f} {:>12.0f} {:>7} {:>12} {:>7} {:>12} {:>14}\n", l.query, l.events_per_s, flink,
                       ratio_text(l.events_per_s, flink), rw_text, ratio_text(l.events_per_s, rw), l.output_rows,
                       nested_text);
        } else {
            fmt::print("{:<6} {:>14} {:>12.0f} {:>7} {:>12} {:>7} {:>12} {:>14}  not supported yet: {}\n", l.query, "-",
                       flink, "-", rw_text, "-", "-", "-", l.why.substr(0, 110));
        }
        json += fmt::format("{}{{\"query\":\"{}\",\"ran\":{},\"events_per_s_per_core\":{:.0f},\"flink_per_core\":{:.0f},"
                            "\"ratio\":{:.2f},\"risingwave_per_core\":{:.0f},\"ratio_risingwave\":{:.2f},"
                            "\"output_rows\":{},\"nested_events_per_s_per_core\":{:.0f}}}",
                            first ? "" : ",", l.query, l.ran ? "true" : "false", l.events_per_s, flink,
                            l.ran && flink > 0 ? l.events_per_s / flink : 0.0, rw,
                            l.ran && rw > 0 ? l.events_per_s / rw : 0.0, l.output_rows, l.nested_events_per_s);
        first = false;
    }
    json += "]";
    if (parallelism > 1) {
        fmt::print("\nAs {} instances on {} threads joined by exchanges (per-kind tables) against one instance\n",
                   parallelism, parallelism);
        fmt::print("(CPU ratio: CPU seconds of the one instance's thread over those of the busiest instance's thread,\n"
                   "what the speed-up would be with a free core per instance)\n");
        fmt::print("{:<6} {:>14} {:>14} {:>7} {:>10}\n", "query", "1 inst. ev/s", fmt::format("{} inst. ev/s", parallelism),
                   "ratio", "CPU ratio");
        json += fmt::format(",\"parallelism\":{},\"parallel\":[", parallelism);
        bool first_p = true;
        for (const auto& l : lines) {
            if (!l.ran || l.parallel_events_per_s <= 0) continue;
            const double ratio = l.parallel_events_per_s / l.events_per_s;
            const double cpu_ratio = l.parallel_cpu_seconds > 0 ? l.cpu_seconds / l.parallel_cpu_seconds : 0;
            fmt::print("{:<6} {:>14.0f} {:>14.0f} {:>7.2f} {:>10.2f}\n", l.query, l.events_per_s, l.parallel_events_per_s,
                       ratio, cpu_ratio);
            json += fmt::format("{}{{\"query\":\"{}\",\"events_per_s\":{:.0f},\"parallel_events_per_s\":{:.0f},"
                                "\"ratio\":{:.3f},\"cpu_ratio\":{:.3f}}}",
                                first_p ? "" : ",", l.query, l.events_per_s, l.parallel_events_per_s, ratio, cpu_ratio);
            first_p = false;
        }
        json += "]";
    }
    json += "}";
    fmt::print("\n{}\n", json);
    if (!json_path.empty()) {
        std::ofstream(json_path) << json << "\n";
    }
    return 0;
}
