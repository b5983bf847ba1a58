#include <filesystem>
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>

#include "sql/sql.h"

namespace runnel::sql {
namespace {

/// Runs a script through the parser and the binder, filling a catalog from its CREATE
/// statements; returns the output columns of the last statement.
relation_type run(std::string_view sql, memory_catalog& cat) {
    auto script = parse_script(sql);
    if (!script.has_value()) {
        ADD_FAILURE() << format_error(sql, script.error());
        return {};
    }
    relation_type last;
    for (const statement& s : script.value()) {
        binder b(cat);
        auto r = b.bind(s);
        if (!r.has_value()) {
            ADD_FAILURE() << format_error(sql, r.error());
            return {};
        }
        last = r.value();
        if (auto* t = std::get_if<create_table_stmt>(&s.node)) {
            cat.put(table_schema_from(*t).value());
        } else if (auto* v = std::get_if<create_view_stmt>(&s.node)) {
            table_schema view;
            view.name = v->name;
            view.kind = relation_kind::view;
            view.definition = box<query>(v->body);
            cat.put(std::move(view));
        }
    }
    return last;
}

std::string shape(const relation_type& r) {
    std::string s;
    for (const auto& c : r.columns) {
        s += (s.empty() ? "" : ", ") + c.name + " " + to_string(c.type);
    }
    return s;
}

constexpr std::string_view bid_table =
  "CREATE TABLE bid (auction BIGINT, bidder BIGINT, price BIGINT, channel STRING, url STRING, "
  "ts TIMESTAMP(3), WATERMARK FOR ts AS ts - INTERVAL '4' SECOND);\n";

TEST(sql_binder, output_columns_and_types) {
    memory_catalog cat;
    std::string sql = std::string(bid_table) +
                      "SELECT auction, price * 0.908 AS euros, COUNT(*) AS n, AVG(price), "
                      "MAX(channel) AS top, SUM(price) FROM bid GROUP BY auction, price";
    EXPECT_EQ(shape(run(sql, cat)),
              "auction BIGINT, euros DECIMAL(22, 3), n BIGINT NOT NULL, EXPR$3 BIGINT, top STRING, "
              "EXPR$5 BIGINT");
}

TEST(sql_binder, keyword_forms_of_functions) {
    memory_catalog cat;
    std::string sql = std::string(bid_table) +
                      "SELECT FLOOR(ts TO HOUR) AS h, POSITION('/' IN url) AS p, SUBSTRING(url FROM "
                      "9 FOR 3) AS s, TRIM(LEADING 'h' FROM url) AS t FROM bid";
    EXPECT_EQ(shape(run(sql, cat)), "h TIMESTAMP(3), p INT, s STRING, t STRING");
}

TEST(sql_binder, window_table_functions_add_window_columns) {
    memory_catalog cat;
    std::string sql = std::string(bid_table) +
                      "SELECT window_start, window_end, window_time, COUNT(*) FROM TABLE(TUMBLE(TABLE "
                      "bid, DESCRIPTOR(ts), INTERVAL '10' SECOND)) GROUP BY window_start, window_end, "
                      "window_time";
    EXPECT_EQ(shape(run(sql, cat)),
              "window_start TIMESTAMP(3) NOT NULL, window_end TIMESTAMP(3) NOT NULL, window_time "
              "TIMESTAMP(3) NOT NULL, EXPR$3 BIGINT NOT NULL");
}

TEST(sql_binder, legacy_windows_views_ctes_and_subqueries) {
    memory_catalog cat;
    std::string sql = std::string(bid_table) +
                      "CREATE VIEW cheap AS SELECT * FROM bid WHERE price < 100;\n"
                      "WITH per AS (SELECT bidder, COUNT(*) AS n, SESSION_START(ts, INTERVAL '10' "
                      "SECOND) AS s FROM cheap GROUP BY bidder, SESSION(ts, INTERVAL '10' SECOND)) "
                      "SELECT p.bidder, p.n, p.s FROM per AS p WHERE p.n > (SELECT AVG(n) FROM per) "
                      "AND p.bidder IN (SELECT bidder FROM bid) ORDER BY n DESC LIMIT 5";
    EXPECT_EQ(shape(run(sql, cat)), "bidder BIGINT, n BIGINT NOT NULL, s TIMESTAMP(3) NOT NULL");
}

TEST(sql_binder, computed_columns_get_types) {
    memory_catalog cat;
    auto r = run("CREATE TABLE t (ms BIGINT, ts AS TO_TIMESTAMP_LTZ(ms, 3), WATERMARK FOR ts AS ts "
                 "- INTERVAL '1' SECOND)",
                 cat);
    EXPECT_EQ(shape(r), "ms BIGINT, ts TIMESTAMP_LTZ(3)");
}

TEST(sql_binder, every_nexmark_example_binds) {
    std::filesystem::path dir = std::filesystem::path(RUNNEL_SOURCE_DIR) / "examples" / "nexmark";
    for (const auto& entry : std::filesystem::directory_iterator(dir)) {
        if (entry.path().extension() != ".sql") {
            continue;
        }
        std::ifstream in(entry.path(), std::ios::binary);
        std::ostringstream text;
        text << in.rdbuf();
        memory_catalog cat;
        SCOPED_TRACE(entry.path().filename().string());
        run(text.str(), cat);
    }
}

} // namespace
} // namespace runnel::sql
