// nexmark_check: the two halves of the Nexmark result check (tests/nexmark/README.md).
//
//     nexmark_check dump --events N --out DIR [--option key=value ...]
//         Writes person.csv, auction.csv and bid.csv: every event of the first N events of
//         the stream the nexmark connector produces with those options, read through the
//         connector's own row reader.
//     nexmark_check run --events N --query examples/nexmark/qK.sql --out FILE [--option ...]
//         Plans the query's INSERT with every nexmark table bounded to N events (the options
//         override the tables' own), the INSERT's target replaced by a collecting sink, runs it
//         to the end of the stream (the final watermark closes every window), applies the
//         changelog the sink received and writes the final rows. With `--nested FILE` the
//         query's nexmark tables of one kind (person, auction, bid) are left out and FILE's
//         statements (examples/nexmark/nested.sql: one table of every event, views per kind)
//         declared first instead; the left-out tables' options apply to FILE's tables.
//         With `--parallelism N` the query runs as N instances on N threads joined by the
//         planner's exchanges: instance i generates the events n with n % N == i and reads the
//         file tables if it is instance 0; every instance's sink rows go to one table.
//
// CSV: RFC 4180 quoting; integers in decimal; timestamps as epoch milliseconds; doubles in the
// shortest form that reads back to the same double; booleans as 1/0; NULL as \N (unquoted).
// The dump's header names the columns; the result's header is `name:type` with type one of
// int64, float64, string, timestamp, boolean, so a reader can type the fields.
//
// Exit codes: 0 done; 2 the query does not parse, declare or plan (the message on stdout);
// 1 anything else (bad arguments, files, a failed run, a retraction of a row the sink never
// had).

#include "connect/nexmark/rows.h"
#include "final_table.h"
#include "sql/catalog.h"
#include "sql/parser.h"
#include "sql/planner.h"

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <atomic>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <vector>

namespace {

namespace en = runnel::engine;
namespace sql = runnel::sql;
namespace nx = runnel::connect::nexmark;
using runnel::nexmark_check::csv_row;
using runnel::nexmark_check::final_table;

/// `key=value` pairs given with --option, over which the tables' own options are overridden.
std::map<std::string, std::string> parse_options(const std::vector<std::string>& pairs) {
    std::map<std::string, std::string> out;
    for (const auto& p : pairs) {
        auto eq = p.find('=');
        if (eq == std::string::npos) {
            throw CLI::ValidationError("--option", "expects key=value, got " + p);
        }
        out[p.substr(0, eq)] = p.substr(eq + 1);
    }
    return out;
}

std::string read_text(const std::filesystem::path& p) {
    std::ifstream in(p, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

// ---- dump ------------------------------------------------------------------------------

struct kind_columns {
    const char* kind;
    std::vector<en::field> fields;
};

const std::vector<kind_columns>& kinds() {
    static const std::vector<kind_columns> k = {
        {"person",
         {{"id", en::data_type::int64()},
          {"name", en::data_type::string()},
          {"emailAddress", en::data_type::string()},
          {"creditCard", en::data_type::string()},
          {"city", en::data_type::string()},
          {"state", en::data_type::string()},
          {"dateTime", en::data_type::timestamp()},
          {"extra", en::data_type::string()}}},
        {"auction",
         {{"id", en::data_type::int64()},
          {"itemName", en::data_type::string()},
          {"description", en::data_type::string()},
          {"initialBid", en::data_type::int64()},
          {"reserve", en::data_type::int64()},
          {"dateTime", en::data_type::timestamp()},
          {"expires", en::data_type::timestamp()},
          {"seller", en::data_type::int64()},
          {"category", en::data_type::int64()},
          {"extra", en::data_type::string()}}},
        {"bid",
         {{"auction", en::data_type::int64()},
          {"bidder", en::data_type::int64()},
          {"price", en::data_type::int64()},
          {"channel", en::data_type::string()},
          {"url", en::data_type::string()},
          {"dateTime", en::data_type::timestamp()},
          {"extra", en::data_type::string()}}},
    };
    return k;
}

int dump(int64_t events, const std::filesystem::path& dir,
         std::map<std::string, std::string> options) {
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    options["events.num"] = std::to_string(events);
    for (const auto& k : kinds()) {
        options["event"] = k.kind;
        auto r = nx::row_reader::make(options, en::make_schema(k.fields));
        if (!r) {
            fmt::print(stderr, "nexmark_check: {}: {}\n", k.kind, r.error().message);
            return 1;
        }
        auto path = dir / (std::string(k.kind) + ".csv");
        std::ofstream out(path, std::ios::binary);
        std::string header;
        for (const auto& f : k.fields) {
            header += (header.empty() ? "" : ",") + f.name;
        }
        out << header << "\n";
        int64_t rows = 0;
        auto& reader = r.value();
        while (!reader.done()) {
            auto b = reader.next();
            for (std::size_t i = 0; i < b.num_rows(); ++i) {
                out << csv_row(b.row(i)) << "\n";
            }
            rows += int64_t(b.num_rows());
        }
        out.flush();
        if (!out) {
            fmt::print(stderr, "nexmark_check: cannot write {}\n", path.string());
            return 1;
        }
        fmt::print(stderr, "{}: {} rows\n", path.string(), rows);
    }
    return 0;
}

// ---- run -------------------------------------------------------------------------------

/// What the instances of a run share: the exchanges between them and the sink's table (each
/// key's changes come from one instance, in order; the lock keeps the table whole).
struct shared_run {
    explicit shared_run(uint32_t parallelism)
        : exchanges(parallelism) {}
    en::exchange_set exchanges;
    std::mutex mu;
    std::unique_ptr<final_table> table;
    uint64_t dead_letters = 0;
};

/// Nexmark tables read from the generator, CSV file tables (`'connector' = 'file'`) read whole,
/// and the INSERT's target collected into a `final_table`, whatever its connector. One per
/// instance, used on the thread that plans it.
class check_connectors final : public sql::connector_factory {
public:
    check_connectors(std::map<std::string, std::string> overrides, sql::qualified_name target,
                     shared_run& run, uint32_t instance)
        : _overrides(std::move(overrides))
        , _target(std::move(target))
        , _run(run)
        , _instance(instance) {}

    en::result<en::stream> exchange(en::pipeline& p, en::stream s,
                                    const std::vector<std::string>& keys) override {
        (void)p;
        return _run.exchanges.exchange(std::move(s), _instance, keys, en::key_routing::columnar);
    }

    en::result<en::stream> source(en::pipeline& p, const sql::table_schema& t,
                                  const en::schema_ptr& columns) override {
        auto connector = t.option("connector").value_or("");
        if (connector == "nexmark") {
            std::map<std::string, std::string> opts(t.options.begin(), t.options.end());
            for (const auto& [k, v] : _overrides) {
                opts[k] = v;
            }
            auto r = nx::row_reader::make(opts, columns);
            if (!r) {
                return r.error();
            }
            r.value().slice(_instance, _run.exchanges.parallelism());
            auto reader = std::make_shared<nx::row_reader>(std::move(r).value());
            return p.source(columns, [reader]() -> en::source_poll {
                if (reader->done()) {
                    return en::source_poll::end();
                }
                auto b = reader->next();
                if (b.num_rows() == 0) {
                    return reader->done() ? en::source_poll::end() : en::source_poll::idle();
                }
                return en::source_poll::data(std::move(b));
            });
        }
        if (connector == "file" && t.option("format").value_or("csv") == "csv") {
            auto path = t.option("path").value_or("");
            std::ifstream in(path, std::ios::binary);
            if (!in) {
                return en::error(en::errc::invalid_argument, fmt::format("cannot read {}", path));
            }
            auto raw = en::make_schema({{"value", en::data_type::string(), false}});
            std::vector<en::batch> batches;
            en::batch b(raw);
            std::string line;
            while (_instance == 0 && std::getline(in, line)) {
                if (!line.empty() && line.back() == '\r') {
                    line.pop_back();
                }
                if (line.empty()) {
                    continue;
                }
                b.append_row({en::value::of(line)});
                if (b.num_rows() == 4096) {
                    batches.push_back(std::move(b));
                    b = en::batch(raw);
                }
            }
            if (b.num_rows() > 0) {
                batches.push_back(std::move(b));
            }
            auto decoded = p.source(raw, en::from_batches(std::move(batches)))
                               .decode(en::decode_format::csv, columns);
            decoded.dead_letters().sink([this](const en::batch& d) {
                std::lock_guard g(_run.mu);
                _run.dead_letters += d.num_rows();
            });
            return decoded;
        }
        return en::error(en::errc::invalid_argument,
                         fmt::format("table {}: connector '{}' is not read by nexmark_check",
                                     t.name.back(), connector));
    }

    /// A file table ends after its rows: a lookup join reads it whole first.
    bool bounded(const sql::table_schema& t) override {
        return t.option("connector").value_or("") == "file";
    }

    en::result<void> sink(en::stream rows, const sql::table_schema& t) override {
        if (t.name != _target) {
            return en::error(en::errc::invalid_argument,
                             fmt::format("table {} is not the INSERT's target", t.name.back()));
        }
        auto columns = rows.schema_of();
        if (!columns) {
            return en::error(en::errc::invalid_argument, "the sink's rows have no schema");
        }
        std::vector<std::size_t> key;
        for (const auto& k : t.primary_key) {
            auto i = columns->index_of(k);
            if (!i) {
                return en::error(en::errc::invalid_argument,
                                 fmt::format("primary key column {} is not in the sink", k));
            }
            key.push_back(*i);
        }
        {
            std::lock_guard g(_run.mu);
            if (!_run.table) {
                _run.table = std::make_unique<final_table>(columns, std::move(key));
            }
        }
        rows.sink([this](const en::batch& b) {
            std::lock_guard g(_run.mu);
            _run.table->apply(b);
        });
        return runnel::outcome::success();
    }

private:
    std::map<std::string, std::string> _overrides;
    sql::qualified_name _target;
    shared_run& _run;
    uint32_t _instance;
};

int run(int64_t events, const std::filesystem::path& query, const std::filesystem::path& out,
        std::map<std::string, std::string> overrides, const std::string& nested, uint32_t parallelism) {
    std::string text = read_text(query);
    if (text.empty()) {
        fmt::print(stderr, "nexmark_check: cannot read {}\n", query.string());
        return 1;
    }
    overrides["events.num"] = std::to_string(events);
    auto script = sql::parse_script(text);
    if (!script) {
        fmt::print("{}\n", sql::format_error(text, script.error()));
        return 2;
    }
    sql::memory_catalog cat;
    std::string nested_text;
    if (!nested.empty()) {
        nested_text = read_text(nested);
        auto setup = sql::parse_script(nested_text);
        if (nested_text.empty() || !setup) {
            fmt::print(stderr, "nexmark_check: cannot read {}\n", nested);
            return 1;
        }
        for (const auto& st : setup.value()) {
            if (auto d = sql::declare(st, cat); !d) {
                fmt::print("{}\n", sql::format_error(nested_text, d.error()));
                return 2;
            }
        }
    }
    const sql::statement* insert = nullptr;
    for (const auto& st : script.value()) {
        if (auto* t = std::get_if<sql::create_table_stmt>(&st.node); t && !nested.empty()) {
            std::map<std::string, std::string> opts(t->options.begin(), t->options.end());
            if (opts["connector"] == "nexmark" && opts.contains("event")) {
                for (const auto& [k, v] : opts) {
                    if (k != "event" && k != "connector") {
                        overrides.emplace(k, v);
                    }
                }
                continue;
            }
        }
        auto declared = sql::declare(st, cat);
        if (!declared) {
            fmt::print("{}\n", sql::format_error(text, declared.error()));
            return 2;
        }
        if (!declared.value() && std::holds_alternative<sql::insert_stmt>(st.node)) {
            if (insert) {
                fmt::print(stderr, "nexmark_check: {} has more than one INSERT\n", query.string());
                return 1;
            }
            insert = &st;
        }
    }
    if (!insert) {
        fmt::print(stderr, "nexmark_check: {} has no INSERT INTO\n", query.string());
        return 1;
    }
    shared_run shared(parallelism);
    std::vector<std::unique_ptr<check_connectors>> conns;
    std::vector<std::unique_ptr<en::pipeline>> pipelines;
    std::atomic<uint64_t> late{0};
    sql::plan_options opts;
    opts.parallelism = parallelism;
    for (uint32_t i = 0; i < parallelism; ++i) {
        conns.push_back(std::make_unique<check_connectors>(
            overrides, std::get<sql::insert_stmt>(insert->node).table, shared, i));
        pipelines.push_back(std::make_unique<en::pipeline>());
        sql::planner pl(cat, *conns.back(), opts);
        auto plan = pl.plan(*insert, *pipelines.back());
        if (!plan) {
            fmt::print("{}\n", sql::format_error(text, plan.error()));
            return 2;
        }
        for (auto& l : plan.value().late) {
            l.sink([&late](const en::batch& b) { late += b.num_rows(); });
        }
    }
    if (!shared.table) {
        fmt::print(stderr, "nexmark_check: the planner gave the sink no rows\n");
        return 1;
    }
    std::vector<en::pipeline*> instances;
    for (auto& p : pipelines) {
        instances.push_back(p.get());
    }
    auto r = parallelism == 1 ? pipelines[0]->run() : en::run_parallel(instances, shared.exchanges);
    if (!r) {
        fmt::print(stderr, "nexmark_check: run: {}\n", r.error().message);
        return 1;
    }
    const auto& t = *shared.table;
    fmt::print(stderr, "{}: {} changes, {} final rows, {} late rows, {} undecodable file rows\n",
               query.string(), t.changes, t.size(), late.load(), shared.dead_letters);
    std::ofstream file(out, std::ios::binary);
    t.write(file);
    file.flush();
    if (!file) {
        fmt::print(stderr, "nexmark_check: cannot write {}\n", out.string());
        return 1;
    }
    if (t.unmatched_retractions > 0) {
        fmt::print(stderr,
                   "nexmark_check: {} retractions of rows the sink did not hold, the first: {}\n",
                   t.unmatched_retractions, t.first_unmatched);
        return 1;
    }
    return 0;
}

} // namespace

int main(int argc, char** argv) {
    CLI::App app{
        "nexmark_check: dump a Nexmark stream as CSV, or run a Nexmark query to its final result"};
    app.require_subcommand(1);
    int64_t events = 200'000;
    std::string out, query, nested;
    std::vector<std::string> option_pairs;
    uint32_t parallelism = 1;

    auto* dump_cmd = app.add_subcommand(
        "dump", "write person.csv, auction.csv and bid.csv of the first N events");
    dump_cmd->add_option("--events", events, "events of the stream (every kind)")
        ->check(CLI::Range(int64_t{1}, int64_t{1'000'000'000}));
    dump_cmd->add_option("--out", out, "directory for the CSV files")->required();
    dump_cmd->add_option("--option", option_pairs,
                         "generator option key=value (as in a nexmark table's WITH)");

    auto* run_cmd = app.add_subcommand(
        "run", "run one query to the end of the stream and write its final rows");
    run_cmd->add_option("--events", events, "events of the stream (every kind)")
        ->check(CLI::Range(int64_t{1}, int64_t{1'000'000'000}));
    run_cmd->add_option("--query", query, "a q*.sql file: CREATE TABLEs and one INSERT")
        ->required();
    run_cmd->add_option("--out", out, "CSV file for the final rows")->required();
    run_cmd->add_option("--option", option_pairs,
                        "option key=value overriding every nexmark table's");
    run_cmd->add_option("--nested", nested,
                        "a script of the nested shape replacing the query's per-kind tables");
    run_cmd->add_option("--parallelism", parallelism, "instances, each on its own thread")
        ->check(CLI::Range(1u, 64u));

    CLI11_PARSE(app, argc, argv);
    try {
        auto options = parse_options(option_pairs);
        if (dump_cmd->parsed()) {
            return dump(events, out, options);
        }
        return run(events, query, out, options, nested, parallelism);
    } catch (const CLI::Error& e) {
        return app.exit(e);
    }
}
