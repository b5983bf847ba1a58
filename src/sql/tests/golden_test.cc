// Golden tests of the planner: each file in tests/sql/ runs SQL over rows given in the file
// and compares what comes out. One gtest per file. A file holds, in this order:
//
//     # Comment lines start with '#' (anywhere).
//     tables:
//     CREATE TABLE bids (...);           -- a script of CREATE TABLE / CREATE VIEW statements
//     CREATE TABLE out (...);
//
//     rows bids:                         -- input rows of a table, CSV in declared column order
//     1,apple,2026-01-01 00:00:01        -- (the engine's CSV decoder: an empty field is NULL,
//     2,pear,2026-01-01 00:00:03         --  timestamps as 'YYYY-MM-DD HH:MM:SS[.fff]'), or
//                                        -- JSON objects when the first row starts with '{'
//                                        -- (nested objects fill ROW columns)
//
//     === name of a case
//     SELECT ... / INSERT INTO out SELECT ...   (one statement, any number of lines)
//     --- output                         -- the rows of the query, or the rows the sink got
//     2026-01-01 00:00:00.000, apple, 3
//     --- late                           -- rows the windows dropped as late, with the reason
//     --- plan                           -- EXPLAIN: one stage per line
//     --- error                          -- format_error of the refusal (the statement must fail)
//     --- lateness 2000                  -- allowed lateness of windows in ms (no body)
//     --- parallelism 4                  -- plan for that many instances (no body); the test's
//                                        -- connectors run one, so the rows are those of one
//     --- set key value                  -- a planner option, as SET 'key' = 'value' (no body)
//     --- final                          -- a changelog applied: the rows a table would hold
//
// Rows are compared as sorted lists: the order windows fire in within one watermark is not
// part of the contract, and a sorted list is readable. Values print as: NULL, true/false,
// integers, doubles in shortest form with at least one decimal (20.0), strings bare,
// timestamps as 'YYYY-MM-DD HH:MM:SS.mmm'. Each table's rows enter one row per batch, so a
// watermark follows every row that advances it; late rows are therefore exactly those behind
// the watermark when they arrive. Several tables are read in turn, one row of each per pass
// of the pipeline's runner. When the inputs end, a final watermark fires every open window.
// A case without `--- late` expects no late rows; without `--- output` (and without
// `--- error`) expects no rows.
//
// An updating query (GROUP BY without a window, an unbounded Top-N, deduplication keeping the
// last row) outputs a changelog: its rows print as Flink prints them, `+I[...]`, `-U[...]`,
// `+U[...]`, `-D[...]`, and are compared in the order they came, which is part of the
// contract (one input row per batch makes it deterministic). `--- final` (optional) is that
// changelog applied to a table: upserts and deletes by the sink's PRIMARY KEY when it has
// one, otherwise +I/+U add a row and -U/-D take one equal row away; compared sorted.
//
// Run with RUNNEL_UPDATE_GOLDEN=1 to rewrite the expected sections from the current output
// (then read the diff: the files are the specification).

#include "engine/engine.h"
#include "sql/planner.h"
#include "jobs/catalog.h"
#include "sql/sql.h"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

namespace runnel::sql {
namespace {

namespace en = runnel::engine;

const std::filesystem::path golden_dir = std::filesystem::path(RUNNEL_SOURCE_DIR) / "tests" / "sql";

std::vector<std::string> lines_of(const std::string& text) {
    std::vector<std::string> out;
    std::istringstream in(text);
    std::string line;
    while (std::getline(in, line)) {
        if (!line.empty() && line.back() == '\r') {
            line.pop_back();
        }
        out.push_back(line);
    }
    return out;
}

std::string join(const std::vector<std::string>& lines, const char* sep = "\n") {
    std::string s;
    for (std::size_t i = 0; i < lines.size(); ++i) {
        s += (i ? sep : "") + lines[i];
    }
    return s;
}

/// A part of a case: its kind ("output", "late", "plan", "error", "lateness"), its argument
/// and body, and where the body sits in the file (for RUNNEL_UPDATE_GOLDEN).
struct section {
    std::string kind;
    std::string arg;
    std::vector<std::string> body;
    std::size_t begin = 0, end = 0;
};

struct golden_case {
    std::string name;
    std::string sql;
    std::vector<section> sections;
    const section* find(std::string_view kind) const {
        for (const auto& s : sections) {
            if (s.kind == kind) {
                return &s;
            }
        }
        return nullptr;
    }
};

struct golden_file {
    std::vector<std::string> lines;
    std::string tables;
    std::map<std::string, std::vector<std::string>> rows;
    std::vector<golden_case> cases;
};

bool is_comment(const std::string& l) {
    return l.starts_with("#");
}

bool top_header(const std::string& l) {
    return l == "tables:" || (l.starts_with("rows ") && l.ends_with(":")) || l.starts_with("=== ");
}

golden_file read_file(const std::filesystem::path& p) {
    std::ifstream in(p, std::ios::binary);
    std::ostringstream buf;
    buf << in.rdbuf();
    golden_file f;
    f.lines = lines_of(buf.str());
    const auto& L = f.lines;
    std::size_t i = 0;
    auto body_until = [&](auto stop) {
        std::vector<std::string> body;
        while (i < L.size() && !stop(L[i])) {
            if (!is_comment(L[i]) && !L[i].empty()) {
                body.push_back(L[i]);
            }
            ++i;
        }
        return body;
    };
    while (i < L.size()) {
        const std::string& l = L[i];
        if (l == "tables:") {
            ++i;
            f.tables = join(body_until(top_header));
        } else if (l.starts_with("rows ") && l.ends_with(":")) {
            std::string table = l.substr(5, l.size() - 6);
            ++i;
            f.rows[table] = body_until(top_header);
        } else if (l.starts_with("=== ")) {
            golden_case c;
            c.name = l.substr(4);
            ++i;
            c.sql = join(body_until(
                [](const std::string& x) { return top_header(x) || x.starts_with("--- "); }));
            while (i < L.size() && L[i].starts_with("--- ")) {
                section s;
                std::string head = L[i].substr(4);
                auto sp = head.find(' ');
                s.kind = head.substr(0, sp);
                s.arg = sp == std::string::npos ? "" : head.substr(sp + 1);
                s.begin = ++i;
                s.body = body_until(
                    [](const std::string& x) { return top_header(x) || x.starts_with("--- "); });
                s.end = i;
                c.sections.push_back(std::move(s));
            }
            f.cases.push_back(std::move(c));
        } else {
            ++i;
        }
    }
    return f;
}

std::string render(const en::value& v) {
    if (v.is_null()) {
        return "NULL";
    }
    if (v.type.id == en::type_id::timestamp) {
        return en::format_timestamp(std::get<int64_t>(v.v), v.type.unit);
    }
    if (auto* s = std::get_if<std::string>(&v.v)) {
        return *s;
    }
    if (auto* d = std::get_if<double>(&v.v)) {
        std::string t = fmt::format("{}", *d);
        // 20.0 prints as "20.0", never as an integer would.
        if (t.find_first_not_of("-0123456789") == std::string::npos) {
            t += ".0";
        }
        return t;
    }
    return v.to_string();
}

/// Rows as they came, with their kinds and rendered values.
struct collected {
    std::vector<en::row_kind> kinds;
    std::vector<std::vector<std::string>> rows;
};

void collect(const en::batch& b, collected& into) {
    for (std::size_t r = 0; r < b.num_rows(); ++r) {
        std::vector<std::string> parts;
        for (const auto& v : b.row(r)) {
            parts.push_back(render(v));
        }
        into.kinds.push_back(b.kind(r));
        into.rows.push_back(std::move(parts));
    }
}

/// The rows as text: sorted for an append-only stream, in order with their kinds for a
/// changelog.
std::vector<std::string> lines_of(const collected& c, bool changelog) {
    std::vector<std::string> out;
    for (std::size_t i = 0; i < c.rows.size(); ++i) {
        std::string text = join(c.rows[i], ", ");
        out.push_back(changelog ? fmt::format("{}[{}]", en::row_kind_name(c.kinds[i]), text) : text);
    }
    if (!changelog) {
        std::sort(out.begin(), out.end());
    }
    return out;
}

/// The changelog `c` applied: by the columns `key` when there are any, else as a multiset.
std::vector<std::string> applied(const collected& c, const std::vector<std::size_t>& key) {
    std::map<std::string, std::string> by_key;
    std::multiset<std::string> rows;
    for (std::size_t i = 0; i < c.rows.size(); ++i) {
        std::string text = join(c.rows[i], ", ");
        bool add = c.kinds[i] == en::row_kind::insert || c.kinds[i] == en::row_kind::update_after;
        if (!key.empty()) {
            std::string k;
            for (auto x : key) {
                k += c.rows[i][x] + "|";
            }
            if (add) {
                by_key[k] = text;
            } else {
                by_key.erase(k);
            }
        } else if (add) {
            rows.insert(text);
        } else if (auto it = rows.find(text); it != rows.end()) {
            rows.erase(it);
        } else {
            rows.insert("(retracted but never added) " + text);
        }
    }
    std::vector<std::string> out(rows.begin(), rows.end());
    for (const auto& [k, v] : by_key) {
        out.push_back(v);
    }
    std::sort(out.begin(), out.end());
    return out;
}

void collect(const en::batch& b, std::vector<std::string>& into) {
    for (std::size_t r = 0; r < b.num_rows(); ++r) {
        std::vector<std::string> parts;
        for (const auto& v : b.row(r)) {
            parts.push_back(render(v));
        }
        into.push_back(join(parts, ", "));
    }
}

/// Tables backed by the file's CSV rows (decoded by the engine's CSV decoder, one row per
/// batch); sinks that collect rendered rows by table name.
class test_connectors final : public connector_factory {
public:
    explicit test_connectors(const std::map<std::string, std::vector<std::string>>& rows)
        : _rows(rows) {}

    en::result<en::stream> source(en::pipeline& p, const table_schema& t,
                                  const en::schema_ptr& columns) override {
        auto raw = en::make_schema({{"value", en::data_type::string(), false}});
        std::vector<en::batch> batches;
        auto format = en::decode_format::csv;
        if (auto it = _rows.find(t.name.back()); it != _rows.end()) {
            for (const auto& line : it->second) {
                batches.push_back(en::make_batch(raw, {{en::value::of(line)}}));
            }
            if (!it->second.empty() && it->second[0].starts_with("{")) {
                format = en::decode_format::json;
            }
        }
        auto decoded = p.source(raw, en::from_batches(std::move(batches))).decode(format, columns);
        decoded.dead_letters().sink([this](const en::batch& b) { collect(b, dead_letters); });
        return decoded;
    }

    en::result<void> sink(en::stream rows, const table_schema& t) override {
        std::string name = t.name.back();
        sinks[name];
        auto& key = sink_keys[name];
        auto phys = physical_schema(t);
        for (const auto& k : t.primary_key) {
            if (auto i = phys ? phys.value()->index_of(k) : std::nullopt) {
                key.push_back(*i);
            }
        }
        rows.sink([this, name](const en::batch& b) { collect(b, sinks[name]); });
        return outcome::success();
    }

    std::map<std::string, collected> sinks;
    std::map<std::string, std::vector<std::size_t>> sink_keys;
    std::vector<std::string> dead_letters;

private:
    const std::map<std::string, std::vector<std::string>>& _rows;
};

/// What running one case produced, section by section.
std::map<std::string, std::vector<std::string>> run_case(const golden_file& f, const golden_case& c,
                                                         std::string& failure, bool& changelog) {
    std::map<std::string, std::vector<std::string>> got;
    memory_catalog cat(jobs::connector_check());
    auto script = parse_script(f.tables);
    if (!script) {
        failure = "tables: " + format_error(f.tables, script.error());
        return got;
    }
    for (const auto& st : script.value()) {
        auto declared = declare(st, cat);
        if (!declared) {
            failure = "tables: " + format_error(f.tables, declared.error());
            return got;
        }
        if (!declared.value()) {
            failure = "tables: only CREATE TABLE and CREATE VIEW belong there";
            return got;
        }
    }
    auto stmt = parse_statement(c.sql);
    if (!stmt) {
        got["error"] = lines_of(format_error(c.sql, stmt.error()));
        return got;
    }
    plan_options opts;
    if (const auto* l = c.find("lateness")) {
        opts.allowed_lateness = std::chrono::milliseconds(std::stoll(l->arg));
    }
    if (const auto* n = c.find("parallelism")) {
        opts.parallelism = uint32_t(std::stoul(n->arg));
    }
    if (const auto* s = c.find("set")) {
        // `--- set key value`: as `SET 'key' = 'value'` before the statement.
        auto sp = s->arg.find(' ');
        set_stmt set{false, s->arg.substr(0, sp), sp == std::string::npos ? "" : s->arg.substr(sp + 1)};
        auto applied = apply_setting(set, source_pos{}, opts);
        if (!applied || !applied.value()) {
            failure = "--- set: not a planner option: " + s->arg;
            return got;
        }
    }
    if (auto text = explain(stmt.value(), cat, opts)) {
        got["plan"] = lines_of(text.value());
    }
    test_connectors conn(f.rows);
    en::pipeline p;
    planner pl(cat, conn, opts);
    auto plan = pl.plan(stmt.value(), p);
    if (!plan) {
        got["error"] = lines_of(format_error(c.sql, plan.error()));
        return got;
    }
    collected output;
    std::vector<std::string> late;
    if (plan.value().output.schema_of()) {
        plan.value().output.sink([&](const en::batch& b) { collect(b, output); });
    }
    for (auto& l : plan.value().late) {
        l.sink([&](const en::batch& b) { collect(b, late); });
    }
    auto r = p.run();
    if (!r) {
        failure = "run: " + r.error().message;
        return got;
    }
    if (!conn.dead_letters.empty()) {
        failure = "rows that did not decode: " + join(conn.dead_letters, "; ");
    }
    std::vector<std::size_t> key;
    if (std::holds_alternative<insert_stmt>(stmt.value().node)) {
        const std::string& table = std::get<insert_stmt>(stmt.value().node).table.back();
        output = conn.sinks[table];
        key = conn.sink_keys[table];
    }
    changelog = !plan.value().updating.empty();
    std::sort(late.begin(), late.end());
    got["output"] = lines_of(output, changelog);
    got["final"] = applied(output, key);
    got["late"] = late;
    return got;
}

class golden : public ::testing::TestWithParam<std::filesystem::path> {};

TEST_P(golden, file) {
    golden_file f = read_file(GetParam());
    ASSERT_FALSE(f.cases.empty()) << "no cases in " << GetParam();
    bool update = std::getenv("RUNNEL_UPDATE_GOLDEN") != nullptr;
    // Replacements of section bodies, by their line range, for RUNNEL_UPDATE_GOLDEN.
    std::vector<std::tuple<std::size_t, std::size_t, std::vector<std::string>>> edits;
    for (const auto& c : f.cases) {
        SCOPED_TRACE("case: " + c.name);
        std::string failure;
        bool changelog = false;
        auto got = run_case(f, c, failure, changelog);
        EXPECT_TRUE(failure.empty()) << failure;
        bool wants_error = c.find("error") != nullptr;
        if (!wants_error && got.count("error")) {
            ADD_FAILURE() << "unexpected error:\n" << join(got["error"]);
        }
        for (const char* kind : {"output", "late", "error", "plan", "final"}) {
            const section* s = c.find(kind);
            std::string k = kind;
            if (!s && (k == "plan" || k == "final" || (k == "error" && !got.count("error")))) {
                continue;
            }
            if (k != "error" && k != "plan" && wants_error) {
                continue;
            }
            std::vector<std::string> expected = s ? s->body : std::vector<std::string>{};
            std::vector<std::string> actual = got[k];
            if ((k == "output" && !changelog) || k == "late" || k == "final") {
                std::sort(expected.begin(), expected.end());
            }
            if (expected != actual) {
                if (update && s) {
                    edits.emplace_back(s->begin, s->end, actual);
                }
                ADD_FAILURE() << "--- " << k << " differs\nexpected:\n"
                              << join(expected) << "\nactual:\n"
                              << join(actual);
            }
        }
    }
    if (update && !edits.empty()) {
        std::vector<std::string> out;
        std::size_t i = 0;
        std::sort(edits.begin(), edits.end());
        for (auto& [b, e, body] : edits) {
            while (i < b) {
                out.push_back(f.lines[i++]);
            }
            for (auto& l : body) {
                out.push_back(l);
            }
            // Keep the blank line that separated the section from what follows.
            if (e > b && f.lines[e - 1].empty()) {
                out.emplace_back();
            }
            i = e;
        }
        while (i < f.lines.size()) {
            out.push_back(f.lines[i++]);
        }
        std::ofstream(GetParam(), std::ios::binary) << join(out) << "\n";
    }
}

std::vector<std::filesystem::path> golden_files() {
    std::vector<std::filesystem::path> files;
    for (const auto& e : std::filesystem::directory_iterator(golden_dir)) {
        if (e.path().extension() == ".test") {
            files.push_back(e.path());
        }
    }
    std::sort(files.begin(), files.end());
    return files;
}

INSTANTIATE_TEST_SUITE_P(sql, golden, ::testing::ValuesIn(golden_files()),
                         [](const ::testing::TestParamInfo<std::filesystem::path>& info) {
                             std::string n = info.param.stem().string();
                             for (char& ch : n) {
                                 if (!std::isalnum(static_cast<unsigned char>(ch))) {
                                     ch = '_';
                                 }
                             }
                             return n;
                         });

} // namespace
} // namespace runnel::sql
