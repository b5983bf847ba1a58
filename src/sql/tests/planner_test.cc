// Unit tests of the planner's interface: type mapping, the connector seam (what it is given,
// how its failures are reported), the handles a plan returns, and EXPLAIN. What the plans
// compute is covered by the golden files in tests/sql/ (golden_test.cc).

#include "engine/engine.h"
#include "sql/planner.h"
#include "sql/sql.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

namespace runnel::sql {
namespace {

namespace en = runnel::engine;

std::unique_ptr<memory_catalog> catalog_of(std::string_view ddl) {
    auto cat = std::make_unique<memory_catalog>();
    auto script = parse_script(ddl);
    EXPECT_TRUE(script) << (script ? "" : script.error().headline());
    for (const auto& st : script.value()) {
        auto t = table_schema_from(std::get<create_table_stmt>(st.node));
        EXPECT_TRUE(t);
        cat->put(std::move(t).value());
    }
    return cat;
}

constexpr std::string_view ddl = R"(
CREATE TABLE bids (auction BIGINT, price DOUBLE, note STRING, ts TIMESTAMP(3),
                   doubled AS price * 2, WATERMARK FOR ts AS ts - INTERVAL '2' SECOND);
CREATE TABLE out_t (auction BIGINT, total DOUBLE);
)";

/// Records what the planner asks for; fails on request.
class recording_connectors final : public connector_factory {
public:
    en::result<en::stream> source(en::pipeline& p, const table_schema& t,
                                  const en::schema_ptr& columns) override {
        sources.push_back(t.name.back());
        source_schema = columns;
        if (fail_source) {
            return en::fail(en::errc::invalid_argument, "no such topic");
        }
        return p.source(columns, en::from_batches({en::make_batch(columns, rows)}));
    }
    en::result<void> sink(en::stream s, const table_schema& t) override {
        sinks.push_back(t.name.back());
        if (fail_sink) {
            return en::fail(en::errc::invalid_argument, "sink is read-only");
        }
        s.sink([this](const en::batch& b) {
            for (std::size_t i = 0; i < b.num_rows(); ++i) {
                sunk.push_back(b.row(i));
            }
        });
        return outcome::success();
    }

    en::result<en::stream> exchange(en::pipeline& p, en::stream s, const std::vector<std::string>& keys) override {
        (void)p;
        exchanges.push_back(keys);
        if (fail_exchange) {
            return en::fail(en::errc::invalid_argument, "no room for another exchange");
        }
        return s;
    }

    bool fail_source = false;
    bool fail_sink = false;
    bool fail_exchange = false;
    std::vector<std::vector<std::string>> exchanges;
    std::vector<std::string> sources, sinks;
    en::schema_ptr source_schema;
    std::vector<std::vector<en::value>> rows;
    std::vector<std::vector<en::value>> sunk;
};

statement parse(std::string_view sql) {
    auto s = parse_statement(sql);
    EXPECT_TRUE(s) << (s ? "" : s.error().headline());
    return s.value();
}

TEST(planner, engine_types) {
    EXPECT_EQ(engine_type(data_type::of(type_kind::int_)), en::data_type::int64());
    EXPECT_EQ(engine_type(data_type::of(type_kind::decimal)), en::data_type::float64());
    EXPECT_EQ(engine_type(data_type::of(type_kind::varchar)), en::data_type::string());
    EXPECT_EQ(engine_type(data_type::of(type_kind::timestamp_ltz)), en::data_type::timestamp());
    EXPECT_FALSE(engine_type(data_type::of(type_kind::date)));
    EXPECT_FALSE(engine_type(data_type::of(type_kind::array)));
}

TEST(planner, the_source_gets_the_physical_columns_only) {
    auto cat_p = catalog_of(ddl);
    const auto& cat = *cat_p;
    recording_connectors conn;
    en::pipeline p;
    planner pl(cat, conn);
    auto r = pl.plan(parse("SELECT auction, doubled FROM bids"), p);
    ASSERT_TRUE(r) << r.error().headline();
    ASSERT_EQ(conn.sources, std::vector<std::string>{"bids"});
    EXPECT_EQ(conn.source_schema->to_string(),
              "(auction bigint, price double, note string, ts timestamp(3))");
    EXPECT_EQ(r.value().columns, (std::vector<std::string>{"auction", "doubled"}));
    EXPECT_TRUE(r.value().late.empty());
}

TEST(planner, a_query_hands_back_its_output_and_late_rows) {
    auto cat_p = catalog_of(ddl);
    const auto& cat = *cat_p;
    recording_connectors conn;
    conn.rows = {{en::value::of(1), en::value::of(2.5), en::value::of("a"), en::value::ts(1'000)},
                 {en::value::of(1), en::value::of(4.0), en::value::of("b"), en::value::ts(9'000)}};
    en::pipeline p;
    planner pl(cat, conn);
    auto r = pl.plan(parse("SELECT window_end, auction, SUM(doubled) AS s "
                           "FROM TABLE(TUMBLE(TABLE bids, DESCRIPTOR(ts), INTERVAL '10' SECOND)) "
                           "GROUP BY window_start, window_end, auction"),
                     p);
    ASSERT_TRUE(r) << r.error().headline();
    ASSERT_EQ(r.value().late.size(), 1u);
    std::vector<std::vector<en::value>> out;
    r.value().output.sink([&](const en::batch& b) {
        for (std::size_t i = 0; i < b.num_rows(); ++i) {
            out.push_back(b.row(i));
        }
    });
    ASSERT_TRUE(p.run());
    ASSERT_EQ(out.size(), 1u);
    EXPECT_EQ(out[0][0], en::value::ts(10'000));
    EXPECT_EQ(out[0][1], en::value::of(1));
    EXPECT_EQ(out[0][2], en::value::of(13.0));
}

TEST(planner, a_select_without_from_is_one_row_of_constants) {
    auto cat_p = catalog_of(ddl);
    recording_connectors conn;
    en::pipeline p;
    planner pl(*cat_p, conn);
    auto r = pl.plan(parse("SELECT 1 + 2 AS x, 'a' AS s, UPPER('b')"), p);
    ASSERT_TRUE(r) << r.error().headline();
    EXPECT_TRUE(conn.sources.empty());
    EXPECT_EQ(r.value().columns, (std::vector<std::string>{"x", "s", "EXPR$2"}));
    std::vector<std::vector<en::value>> out;
    r.value().output.sink([&](const en::batch& b) {
        for (std::size_t i = 0; i < b.num_rows(); ++i) {
            out.push_back(b.row(i));
        }
    });
    ASSERT_TRUE(p.run());
    ASSERT_EQ(out.size(), 1u);
    EXPECT_EQ(out[0], (std::vector<en::value>{en::value::of(3), en::value::of("a"), en::value::of("B")}));
}

TEST(planner, a_select_star_without_from_points_at_the_star) {
    auto cat_p = catalog_of(ddl);
    recording_connectors conn;
    en::pipeline p;
    planner pl(*cat_p, conn);
    auto r = pl.plan(parse("SELECT 1,\n  *"), p);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().line, 2);
    EXPECT_EQ(r.error().column, 3);
    EXPECT_NE(r.error().message.find("needs a FROM"), std::string::npos) << r.error().message;
}

TEST(planner, insert_goes_to_the_sink_with_its_column_names) {
    auto cat_p = catalog_of(ddl);
    const auto& cat = *cat_p;
    recording_connectors conn;
    conn.rows = {{en::value::of(7), en::value::of(2.0), en::value::of("x"), en::value::ts(5)}};
    en::pipeline p;
    planner pl(cat, conn);
    auto r = pl.plan(parse("INSERT INTO out_t SELECT auction, price + 1 FROM bids"), p);
    ASSERT_TRUE(r) << r.error().headline();
    EXPECT_EQ(conn.sinks, std::vector<std::string>{"out_t"});
    EXPECT_EQ(r.value().columns, (std::vector<std::string>{"auction", "total"}));
    ASSERT_TRUE(p.run());
    ASSERT_EQ(conn.sunk.size(), 1u);
    EXPECT_EQ(conn.sunk[0][1], en::value::of(3.0));
}

TEST(planner, connector_failures_point_at_the_table) {
    auto cat_p = catalog_of(ddl);
    const auto& cat = *cat_p;
    recording_connectors conn;
    conn.fail_source = true;
    en::pipeline p;
    planner pl(cat, conn);
    auto r = pl.plan(parse("SELECT auction\nFROM bids"), p);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().headline(), "line 2:6: planner: table bids: no such topic");

    recording_connectors sink_fails;
    sink_fails.fail_sink = true;
    en::pipeline p2;
    planner pl2(cat, sink_fails);
    auto r2 = pl2.plan(parse("INSERT INTO out_t SELECT auction, price FROM bids"), p2);
    ASSERT_FALSE(r2);
    EXPECT_EQ(r2.error().headline(), "line 1:1: planner: sink out_t: sink is read-only");
}

TEST(planner, set_parallelism_default) {
    plan_options opts;
    auto set = [&](std::string_view text) {
        auto st = parse(text);
        return apply_setting(std::get<set_stmt>(st.node), st.pos, opts);
    };
    auto four = set("SET 'parallelism.default' = '4'");
    ASSERT_TRUE(four) << four.error().headline();
    EXPECT_TRUE(four.value());
    EXPECT_EQ(opts.parallelism, 4u);
    for (std::string_view bad : {"SET 'parallelism.default' = '0'", "SET 'parallelism.default' = 'two'",
                                 "SET 'parallelism.default' = '257'", "SET 'parallelism.default' = '4 '"}) {
        auto r = set(bad);
        ASSERT_FALSE(r) << bad;
        EXPECT_EQ(r.error().line, 1);
        EXPECT_EQ(r.error().column, 1);
        EXPECT_NE(r.error().message.find("'parallelism.default' is a number of instances from 1 to 256, not '"),
                  std::string::npos)
            << r.error().message;
    }
    EXPECT_EQ(opts.parallelism, 4u);
    auto other = set("SET 'pipeline.name' = 'x'");
    ASSERT_TRUE(other);
    EXPECT_FALSE(other.value());
}

TEST(planner, set_agg_phase_strategy) {
    plan_options opts;
    auto set = [&](std::string_view text) {
        auto st = parse(text);
        return apply_setting(std::get<set_stmt>(st.node), st.pos, opts);
    };
    EXPECT_EQ(opts.agg_phases, agg_phase_strategy::automatic);
    const std::pair<std::string_view, agg_phase_strategy> good[] = {
        {"SET 'table.optimizer.agg-phase-strategy' = 'ONE_PHASE'", agg_phase_strategy::one_phase},
        {"SET 'table.optimizer.agg-phase-strategy' = 'two_phase'", agg_phase_strategy::two_phase},
        {"SET 'table.optimizer.agg-phase-strategy' = 'AUTO'", agg_phase_strategy::automatic},
    };
    for (const auto& [text, want] : good) {
        auto r = set(text);
        ASSERT_TRUE(r) << r.error().headline();
        EXPECT_TRUE(r.value()) << text;
        EXPECT_EQ(opts.agg_phases, want) << text;
    }
    auto bad = set("SET 'table.optimizer.agg-phase-strategy' = 'THREE_PHASE'");
    ASSERT_FALSE(bad);
    EXPECT_EQ(bad.error().line, 1);
    EXPECT_EQ(bad.error().column, 1);
    EXPECT_EQ(bad.error().message,
              "'table.optimizer.agg-phase-strategy' is AUTO, ONE_PHASE or TWO_PHASE, not 'THREE_PHASE'");
    EXPECT_EQ(opts.agg_phases, agg_phase_strategy::automatic);
}

/// Plans `sql` with `opts` over `rows` (one batch of bids), runs it and returns its stages
/// and output rows.
struct ran_query {
    std::vector<std::string> stages;
    std::vector<std::vector<std::string>> exchanges;
    std::size_t late_outputs = 0;
    std::vector<std::vector<en::value>> rows;
};

ran_query run_query(std::string_view sql, plan_options opts, std::vector<std::vector<en::value>> rows) {
    auto cat_p = catalog_of(ddl);
    recording_connectors conn;
    conn.rows = std::move(rows);
    en::pipeline p;
    planner pl(*cat_p, conn, opts);
    auto r = pl.plan(parse(sql), p);
    EXPECT_TRUE(r) << r.error().headline();
    ran_query out;
    if (!r) {
        return out;
    }
    out.stages = r.value().stages;
    out.exchanges = conn.exchanges;
    out.late_outputs = r.value().late.size();
    r.value().output.sink([&](const en::batch& b) {
        for (std::size_t i = 0; i < b.num_rows(); ++i) {
            out.rows.push_back(b.row(i));
        }
    });
    EXPECT_TRUE(p.run());
    return out;
}

/// The index of the first stage line containing `part`, or the number of lines.
std::size_t stage_with(const std::vector<std::string>& stages, std::string_view part) {
    for (std::size_t i = 0; i < stages.size(); ++i) {
        if (stages[i].find(part) != std::string::npos) {
            return i;
        }
    }
    return stages.size();
}

std::vector<std::vector<en::value>> some_bids() {
    std::vector<std::vector<en::value>> rows;
    for (int i = 0; i < 12; ++i) {
        rows.push_back({en::value::of(int64_t(i % 3)), en::value::of(double(i)), en::value::of("n"),
                        en::value::ts(1'000 * i)});
    }
    return rows;
}

TEST(planner, a_splittable_aggregate_runs_in_two_phases_around_its_exchange) {
    plan_options two;
    two.parallelism = 2;
    two.agg_phases = agg_phase_strategy::two_phase;
    plan_options one_phase = two;
    one_phase.agg_phases = agg_phase_strategy::one_phase;
    plan_options one_instance;
    for (std::string_view sql :
         {"SELECT auction, COUNT(*) AS n, SUM(price) AS s, MIN(price) AS lo, AVG(price) AS mean FROM bids "
          "GROUP BY auction",
          "SELECT auction, window_end, COUNT(*) AS n, MAX(price) AS hi, AVG(price) AS mean "
          "FROM TABLE(HOP(TABLE bids, DESCRIPTOR(ts), INTERVAL '2' SECOND, INTERVAL '4' SECOND)) "
          "GROUP BY auction, window_start, window_end"}) {
        SCOPED_TRACE(sql);
        const bool window = std::string_view(sql).find("HOP") != std::string_view::npos;
        auto a = run_query(sql, two, some_bids());
        const auto local = stage_with(a.stages, "(local phase)");
        const auto exchange = stage_with(a.stages, "exchange by auction");
        const auto global = stage_with(a.stages, "(global phase)");
        EXPECT_LT(local, exchange);
        EXPECT_LT(exchange, global);
        EXPECT_LT(global, a.stages.size());
        EXPECT_EQ(a.exchanges, (std::vector<std::vector<std::string>>{{"auction"}}));
        // The local phase decides lateness; the global phase has no side output.
        EXPECT_EQ(a.late_outputs, window ? 1u : 0u);
        for (const auto& opts : {one_phase, one_instance}) {
            auto b = run_query(sql, opts, some_bids());
            EXPECT_EQ(stage_with(b.stages, "phase"), b.stages.size());
            // In one pipeline the two phases give the one-phase rows, changelog included.
            EXPECT_EQ(a.rows, b.rows);
        }
    }
}

TEST(planner, auto_splits_the_aggregates_where_two_phases_are_known_to_pay) {
    plan_options opts;
    opts.parallelism = 2;
    const std::string keyed_window = "SELECT auction, window_start, window_end, COUNT(*) AS n "
                                     "FROM TABLE(TUMBLE(TABLE bids, DESCRIPTOR(ts), INTERVAL '4' SECOND)) "
                                     "GROUP BY auction, window_start, window_end";
    const std::pair<std::string, bool> cases[] = {
        // Rows no window aggregated: a batch's repeated keys collapse into one partial row.
        {"SELECT auction, SUM(price) AS s FROM bids GROUP BY auction", true},
        // Without keys one phase would run in one instance.
        {"SELECT COUNT(*) AS n FROM bids", true},
        {"SELECT window_start, MAX(price) AS hi FROM TABLE(TUMBLE(TABLE bids, DESCRIPTOR(ts), INTERVAL '4' SECOND)) "
         "GROUP BY window_start, window_end",
         true},
        // A window by keys already gathers each key's rows of a pane.
        {keyed_window, false},
        // A GROUP BY of a window aggregate's rows would emit its changelog in smaller steps.
        {"SELECT window_start, window_end, MAX(n) AS top FROM (" + keyed_window + ") GROUP BY window_start, window_end",
         false},
    };
    for (const auto& [sql, split] : cases) {
        SCOPED_TRACE(sql);
        auto a = run_query(sql, opts, some_bids());
        EXPECT_EQ(stage_with(a.stages, "(local phase)") < a.stages.size(), split);
    }
    opts.agg_phases = agg_phase_strategy::two_phase;
    auto forced = run_query(keyed_window, opts, some_bids());
    EXPECT_LT(stage_with(forced.stages, "(local phase)"), forced.stages.size());
}

TEST(planner, aggregates_without_a_merge_form_stay_in_one_phase) {
    plan_options opts;
    opts.parallelism = 2;
    opts.agg_phases = agg_phase_strategy::two_phase;
    for (std::string_view sql : {
             "SELECT auction, COUNT(DISTINCT note) AS notes, COUNT(*) AS n FROM bids GROUP BY auction",
             "SELECT auction, window_start, LAST_VALUE(price) AS p "
             "FROM TABLE(TUMBLE(TABLE bids, DESCRIPTOR(ts), INTERVAL '4' SECOND)) GROUP BY auction, window_start, "
             "window_end",
             "SELECT auction, window_start, COUNT(*) AS n "
             "FROM TABLE(SESSION(TABLE bids PARTITION BY auction, DESCRIPTOR(ts), INTERVAL '4' SECOND)) "
             "GROUP BY auction, window_start, window_end",
             // The outer GROUP BY reads a changelog: another instance's partial cannot be retracted.
             "SELECT n, COUNT(*) AS c FROM (SELECT auction, COUNT(*) AS n FROM bids GROUP BY auction) GROUP BY n",
         }) {
        SCOPED_TRACE(sql);
        auto a = run_query(sql, opts, some_bids());
        const auto last = a.stages.size() - 1;
        for (std::size_t i = 0; i < a.stages.size(); ++i) {
            if (a.stages[i].starts_with("group-aggregate by n") || a.stages[i].find("session") != std::string::npos ||
                a.stages[i].find("last_value") != std::string::npos ||
                a.stages[i].find("count distinct") != std::string::npos) {
                EXPECT_EQ(a.stages[i].find("phase"), std::string::npos) << a.stages[i];
            }
        }
        EXPECT_EQ(a.stages[last], "output");
    }
}

TEST(planner, no_local_phase_where_the_rows_need_no_exchange) {
    plan_options opts;
    opts.parallelism = 2;
    // The join brings every row of an auction to one instance already.
    auto a = run_query("SELECT x.auction, COUNT(*) AS n FROM bids AS x JOIN bids AS y ON x.auction = y.auction "
                       "GROUP BY x.auction",
                       opts, some_bids());
    EXPECT_EQ(stage_with(a.stages, "phase"), a.stages.size());
    EXPECT_EQ(a.exchanges, (std::vector<std::vector<std::string>>{{"auction"}, {"auction"}}));
}

TEST(planner, one_instance_asks_for_no_exchange) {
    auto cat_p = catalog_of(ddl);
    recording_connectors conn;
    en::pipeline p;
    planner pl(*cat_p, conn);
    auto r = pl.plan(parse("SELECT auction, COUNT(*) AS n FROM bids GROUP BY auction"), p);
    ASSERT_TRUE(r) << r.error().headline();
    EXPECT_TRUE(conn.exchanges.empty());
    for (const auto& line : r.value().stages) {
        EXPECT_EQ(line.find("exchange"), std::string::npos) << line;
        EXPECT_EQ(line.find("parallelism"), std::string::npos) << line;
    }
}

TEST(planner, several_instances_exchange_before_keyed_operators_only) {
    auto cat_p = catalog_of(ddl);
    recording_connectors conn;
    en::pipeline p;
    plan_options opts;
    opts.parallelism = 2;
    planner pl(*cat_p, conn, opts);
    auto r = pl.plan(parse("SELECT a.auction, a.price, b.note FROM bids AS a JOIN bids AS b ON a.auction = b.auction "
                           "WHERE a.price > 1"),
                     p);
    ASSERT_TRUE(r) << r.error().headline();
    EXPECT_EQ(conn.exchanges, (std::vector<std::vector<std::string>>{{"auction"}, {"auction"}}));
    conn.exchanges.clear();
    en::pipeline p2;
    r = pl.plan(parse("SELECT auction, price FROM bids WHERE price > 1"), p2);
    ASSERT_TRUE(r) << r.error().headline();
    EXPECT_TRUE(conn.exchanges.empty());
    EXPECT_EQ(r.value().stages.front(),
              "parallelism 2: every instance runs the stages below on its share of the sources");
}

TEST(planner, an_exchange_that_fails_points_at_the_operator) {
    auto cat_p = catalog_of(ddl);
    recording_connectors conn;
    conn.fail_exchange = true;
    en::pipeline p;
    plan_options opts;
    opts.parallelism = 2;
    planner pl(*cat_p, conn, opts);
    auto r = pl.plan(parse("SELECT DISTINCT note FROM bids"), p);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().message, "planner: no room for another exchange");
    EXPECT_EQ(r.error().line, 1);
    EXPECT_EQ(r.error().column, 1);
}

TEST(planner, explain_lists_one_stage_per_line) {
    auto cat_p = catalog_of(ddl);
    const auto& cat = *cat_p;
    auto text = explain(parse("EXPLAIN SELECT note FROM bids WHERE price > 1"), cat);
    ASSERT_TRUE(text) << text.error().headline();
    EXPECT_EQ(text.value(),
              "source bids (auction bigint, price double, note string, ts timestamp(3))\n"
              "project auction, price, note, ts, doubled := (price * 2)\n"
              "watermark ts - 2000 ms\n"
              "filter (price > 1)\n"
              "project note\n"
              "output\n");
}

TEST(planner, refusals_are_errors_never_crashes) {
    auto cat_p = catalog_of(ddl);
    const auto& cat = *cat_p;
    // Statements that parse and bind, or fail to bind, across the refused constructs.
    const char* statements[] = {
        "SELECT auction FROM bids ORDER BY auction",
        "SELECT COUNT(*) FROM bids GROUP BY TUMBLE(ts, INTERVAL '1' SECOND), auction HAVING "
        "FIRST_VALUE(price) > 1 AND COUNT(*) OVER (PARTITION BY auction) > 1",
        "SELECT * FROM (SELECT auction, ROW_NUMBER() OVER (PARTITION BY auction ORDER BY price) AS "
        "rn FROM (SELECT auction, SUM(price) AS price FROM bids GROUP BY auction)) WHERE rn <= 2",
        "SELECT * FROM TABLE(TUMBLE(TABLE bids, DESCRIPTOR(ts), INTERVAL '1' SECOND))",
        "SELECT window_start, COUNT(*) FROM TABLE(TUMBLE(TABLE bids, DESCRIPTOR(ts), INTERVAL '0' "
        "SECOND)) "
        "GROUP BY window_start, window_end",
        "SELECT window_start, COUNT(*) FROM TABLE(TUMBLE(TABLE bids, DESCRIPTOR(ts), INTERVAL '-5' "
        "SECOND)) "
        "GROUP BY window_start, window_end",
        "SELECT window_start, COUNT(*) FROM TABLE(CUMULATE(TABLE bids, DESCRIPTOR(ts), INTERVAL "
        "'3' SECOND, "
        "INTERVAL '10' SECOND)) GROUP BY window_start, window_end",
        "SELECT window_start, COUNT(*) FROM TABLE(TUMBLE(TABLE bids, DESCRIPTOR(ts), INTERVAL "
        "'99999999999999' DAY)) "
        "GROUP BY window_start, window_end",
        "SELECT a.auction FROM bids a FULL JOIN bids b ON a.auction = b.auction",
        "SELECT a.auction FROM bids a JOIN bids b ON a.price > b.price",
        "INSERT INTO out_t SELECT auction FROM bids",
        "SELECT nope FROM bids",
        "SELECT auction FROM missing",
        "SHOW TABLES",
    };
    for (const char* sql : statements) {
        auto s = parse_statement(sql);
        ASSERT_TRUE(s) << sql;
        recording_connectors conn;
        en::pipeline p;
        planner pl(cat, conn);
        auto r = pl.plan(s.value(), p);
        EXPECT_FALSE(r) << sql;
        if (!r) {
            EXPECT_FALSE(r.error().message.empty()) << sql;
            EXPECT_GE(r.error().line, 1) << sql;
        }
    }
}

// Every statement of the parser's and binder's error goldens (src/sql/tests/errors/*.test),
// planned against the tables its case creates: whatever is wrong with it, planning returns a
// result or an error with a position, and never crashes (run under the sanitizers too).
TEST(planner, plans_every_statement_of_the_error_goldens) {
    std::size_t planned = 0;
    for (const auto& f : std::filesystem::directory_iterator(
             std::filesystem::path(RUNNEL_SOURCE_DIR) / "src" / "sql" / "tests" / "errors")) {
        std::ifstream in(f.path(), std::ios::binary);
        std::stringstream buf;
        buf << in.rdbuf();
        std::string text = buf.str();
        // Cases are "=== name", SQL lines, "---", expected output.
        std::size_t pos = 0;
        while ((pos = text.find("=== ", pos)) != std::string::npos) {
            std::size_t sql_begin = text.find('\n', pos);
            std::size_t sql_end = text.find("\n---\n", sql_begin);
            if (sql_begin == std::string::npos || sql_end == std::string::npos) {
                break;
            }
            std::string sql = text.substr(sql_begin + 1, sql_end - sql_begin - 1);
            pos = sql_end;
            auto script = parse_script(sql);
            if (!script) {
                continue;
            }
            memory_catalog cat;
            for (const auto& st : script.value()) {
                if (auto* ct = std::get_if<create_table_stmt>(&st.node)) {
                    if (auto t = table_schema_from(*ct)) {
                        cat.put(std::move(t).value());
                    }
                    continue;
                }
                recording_connectors conn;
                en::pipeline p;
                planner pl(cat, conn);
                auto r = pl.plan(st, p);
                ++planned;
                if (!r) {
                    EXPECT_FALSE(r.error().message.empty()) << sql;
                    EXPECT_GE(r.error().line, 1) << sql;
                }
            }
        }
    }
    EXPECT_GT(planned, 20u);
}

} // namespace
} // namespace runnel::sql

namespace runnel::sql {
namespace {

TEST(planner, nexmark_q8_is_a_window_join) {
    std::ifstream in(std::filesystem::path(RUNNEL_SOURCE_DIR) / "examples" / "nexmark" / "q8.sql", std::ios::binary);
    std::ostringstream text;
    text << in.rdbuf();
    auto script = parse_script(text.str());
    ASSERT_TRUE(script) << script.error().headline();
    memory_catalog cat;
    std::optional<std::string> plan;
    for (const auto& st : script.value()) {
        if (const auto* ct = std::get_if<create_table_stmt>(&st.node)) {
            auto t = table_schema_from(*ct);
            ASSERT_TRUE(t);
            cat.put(std::move(t).value());
        } else {
            auto e = explain(st, cat);
            ASSERT_TRUE(e) << e.error().headline();
            plan = e.value();
        }
    }
    ASSERT_TRUE(plan);
    EXPECT_NE(plan->find("window join per tumble(size 10000 ms) on id = seller (left windows in "
                         "starttime, endtime, right windows in starttime, endtime)\n"),
              std::string::npos)
        << *plan;
    EXPECT_EQ(plan->find("\njoin on"), std::string::npos) << *plan;
}

} // namespace
} // namespace runnel::sql
