#include <filesystem>
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>

#include "sql/sql.h"

namespace runnel::sql {
namespace {

/// Parses `sql` as one statement, checks that printing it parses back to an equal tree and
/// that printing is stable, and returns the tree.
statement round_trip(std::string_view sql) {
    auto r = parse_statement(sql);
    if (!r.has_value()) {
        ADD_FAILURE() << sql << "\n" << format_error(sql, r.error());
        return {};
    }
    std::string printed = to_string(r.value());
    auto again = parse_statement(printed);
    if (!again.has_value()) {
        ADD_FAILURE() << "printed form does not parse:\n"
                      << printed << "\n"
                      << format_error(printed, again.error());
        return {};
    }
    EXPECT_EQ(again.value(), r.value()) << "original: " << sql << "\nprinted:  " << printed
                                        << "\nreprinted: " << to_string(again.value());
    EXPECT_EQ(to_string(again.value()), printed);
    return std::move(r).value();
}

const query& query_of(const statement& s) {
    if (auto* q = std::get_if<query_stmt>(&s.node)) {
        return q->body;
    }
    if (auto* i = std::get_if<insert_stmt>(&s.node)) {
        return i->body;
    }
    return std::get<create_view_stmt>(s.node).body;
}

expr expr_of(std::string_view sql) {
    auto r = parse_expression(sql);
    EXPECT_TRUE(r.has_value()) << sql << ": " << (r.has_value() ? "" : r.error().headline());
    if (!r.has_value()) {
        return {};
    }
    auto again = parse_expression(to_string(r.value()));
    EXPECT_TRUE(again.has_value()) << to_string(r.value());
    if (again.has_value()) {
        EXPECT_EQ(again.value(), r.value()) << sql << " printed as " << to_string(r.value());
    }
    return std::move(r).value();
}

std::string canonical(std::string_view sql) { return to_string(expr_of(sql)); }

TEST(sql_parser, create_table_with_everything) {
    auto s = round_trip(R"(
        CREATE TABLE IF NOT EXISTS orders (
          id BIGINT NOT NULL,
          `user` STRING COMMENT 'who ordered',
          amount DECIMAL(10, 2),
          ts BIGINT,
          et AS TO_TIMESTAMP_LTZ(ts, 3),
          offset_ BIGINT METADATA FROM 'offset' VIRTUAL,
          tags ARRAY<STRING>,
          WATERMARK FOR et AS et - INTERVAL '5' SECOND,
          PRIMARY KEY (id) NOT ENFORCED
        ) COMMENT 'orders as they arrive' WITH (
          'connector' = 'topic',
          'topic' = 'orders',
          'format' = 'json',
          'scan.startup.mode' = 'earliest-offset',
          'json.ignore-parse-errors' = 'true'
        ))");
    const auto& t = std::get<create_table_stmt>(s.node);
    EXPECT_TRUE(t.if_not_exists);
    ASSERT_EQ(t.columns.size(), 7u);
    EXPECT_EQ(t.columns[1].name, "user");
    EXPECT_EQ(t.columns[1].comment, "who ordered");
    EXPECT_EQ(to_string(t.columns[2].type), "DECIMAL(10, 2)");
    EXPECT_FALSE(t.columns[0].type.nullable);
    ASSERT_TRUE(t.columns[4].computed);
    EXPECT_EQ(to_string(*t.columns[4].computed), "TO_TIMESTAMP_LTZ(ts, 3)");
    EXPECT_TRUE(t.columns[5].metadata);
    EXPECT_TRUE(t.columns[5].is_virtual);
    EXPECT_EQ(t.columns[5].metadata_key, "offset");
    ASSERT_EQ(t.watermarks.size(), 1u);
    EXPECT_EQ(t.watermarks[0].column, "et");
    EXPECT_EQ(to_string(t.watermarks[0].strategy), "et - INTERVAL '5' SECOND");
    EXPECT_EQ(t.primary_key, std::vector<std::string>{"id"});
    ASSERT_EQ(t.options.size(), 5u);
    EXPECT_EQ(t.options[3].first, "scan.startup.mode");
    EXPECT_EQ(t.options[3].second, "earliest-offset");
    EXPECT_EQ(t.comment, "orders as they arrive");
}

TEST(sql_parser, every_flink_type_in_a_table) {
    auto s = round_trip("CREATE TEMPORARY TABLE t (a STRING, b VARCHAR(10), c BIGINT, d INT, e SMALLINT, "
                        "f TINYINT, g DOUBLE, h FLOAT, i DECIMAL(38, 18), j BOOLEAN, k TIMESTAMP(3), "
                        "l TIMESTAMP_LTZ(3), m DATE, n INT PRIMARY KEY NOT ENFORCED) WITH ('connector' = 'datagen')");
    const auto& t = std::get<create_table_stmt>(s.node);
    EXPECT_TRUE(t.temporary);
    EXPECT_EQ(t.columns.size(), 14u);
    EXPECT_EQ(t.primary_key, std::vector<std::string>{"n"});
    EXPECT_EQ(t.columns[11].type.kind, type_kind::timestamp_ltz);
}

TEST(sql_parser, views_inserts_and_other_statements) {
    auto v = round_trip("CREATE VIEW big AS SELECT * FROM orders WHERE amount > 100");
    EXPECT_FALSE(std::get<create_view_stmt>(v.node).materialized);
    auto mv = round_trip("CREATE MATERIALIZED VIEW totals AS SELECT `user`, SUM(amount) AS total FROM orders GROUP BY `user`");
    EXPECT_TRUE(std::get<create_view_stmt>(mv.node).materialized);
    auto rv = round_trip("CREATE OR REPLACE TEMPORARY VIEW big AS SELECT * FROM orders");
    EXPECT_TRUE(std::get<create_view_stmt>(rv.node).or_replace);
    EXPECT_TRUE(std::get<create_view_stmt>(rv.node).temporary);
    auto rmv = round_trip("CREATE OR REPLACE MATERIALIZED VIEW totals AS SELECT `user` FROM orders");
    EXPECT_TRUE(std::get<create_view_stmt>(rmv.node).or_replace);
    EXPECT_TRUE(std::get<create_view_stmt>(rmv.node).materialized);
    EXPECT_FALSE(std::get<create_view_stmt>(mv.node).or_replace);
    auto ins = round_trip("INSERT INTO sink (a, b) SELECT x, y FROM src");
    EXPECT_EQ(std::get<insert_stmt>(ins.node).columns.size(), 2u);
    round_trip("INSERT INTO sink VALUES (1, 'a'), (2, 'b')");
    round_trip("INSERT OVERWRITE sink SELECT * FROM src");
    auto d = round_trip("DROP TABLE IF EXISTS orders");
    EXPECT_TRUE(std::get<drop_stmt>(d.node).if_exists);
    EXPECT_EQ(std::get<drop_stmt>(round_trip("DROP VIEW v").node).object, object_kind::view);
    EXPECT_EQ(std::get<drop_stmt>(round_trip("DROP MATERIALIZED VIEW IF EXISTS mv").node).object,
              object_kind::materialized_view);
    EXPECT_EQ(std::get<show_stmt>(round_trip("SHOW TABLES").node).what, show_kind::tables);
    EXPECT_EQ(std::get<show_stmt>(round_trip("show jobs").node).what, show_kind::jobs);
    auto sc = round_trip("SHOW CREATE TABLE `odd name`");
    EXPECT_EQ(std::get<show_stmt>(sc.node).what, show_kind::create_table);
    EXPECT_EQ(std::get<show_stmt>(sc.node).name, qualified_name{"odd name"});
    EXPECT_EQ(std::get<show_stmt>(sc.node).name_pos.column, 19);
    EXPECT_EQ(std::get<show_stmt>(round_trip("SHOW CREATE VIEW db.v").node).what, show_kind::create_view);
    EXPECT_EQ(std::get<drop_stmt>(round_trip("DROP TABLE  t").node).name_pos.column, 13);
    EXPECT_EQ(std::get<stop_job_stmt>(round_trip("STOP JOB 'q5-1'").node).job_id, "q5-1");
    auto set = round_trip("SET 'pipeline.name' = 'nexmark q5'");
    EXPECT_EQ(std::get<set_stmt>(set.node).key, "pipeline.name");
    EXPECT_EQ(std::get<set_stmt>(set.node).value, "nexmark q5");
    round_trip("SET");
    round_trip("RESET 'pipeline.name'");
    auto ex = round_trip("EXPLAIN INSERT INTO sink SELECT * FROM src");
    const auto& inner = *std::get<explain_stmt>(ex.node).target;
    EXPECT_TRUE(std::holds_alternative<insert_stmt>(inner.node));
    round_trip("EXPLAIN PLAN FOR SELECT 1");
}

TEST(sql_parser, select_clauses) {
    auto s = round_trip("SELECT DISTINCT a, b AS bee, c cee, t.*, COUNT(*) FROM t WHERE a > 1 "
                        "GROUP BY a, b, c HAVING COUNT(*) > 2 ORDER BY a DESC, b ASC NULLS LAST LIMIT 10");
    const query& q = query_of(s);
    EXPECT_TRUE(q.select.distinct);
    ASSERT_EQ(q.select.items.size(), 5u);
    EXPECT_EQ(q.select.items[1].alias, "bee");
    EXPECT_EQ(q.select.items[2].alias, "cee");
    EXPECT_EQ(q.select.items[3].value.kind, expr_kind::star);
    EXPECT_EQ(q.select.items[3].value.names, qualified_name{"t"});
    EXPECT_EQ(q.select.group_by.size(), 3u);
    ASSERT_TRUE(q.select.having);
    ASSERT_EQ(q.order_by.size(), 2u);
    EXPECT_TRUE(q.order_by[0].descending);
    EXPECT_EQ(q.order_by[1].nulls_first, std::optional<bool>(false));
    ASSERT_TRUE(q.limit);
    EXPECT_EQ(q.limit->text, "10");
}

TEST(sql_parser, joins) {
    auto s = round_trip("SELECT * FROM a JOIN b ON a.id = b.id LEFT JOIN c ON c.k = b.k "
                        "RIGHT OUTER JOIN d USING (k) FULL JOIN e ON TRUE CROSS JOIN f, g");
    const query& q = query_of(s);
    ASSERT_EQ(q.select.from.size(), 2u);
    const table_ref& j = q.select.from[0];
    EXPECT_EQ(j.kind, table_ref_kind::join);
    EXPECT_EQ(j.join, join_kind::cross);
    EXPECT_EQ(j.left->join, join_kind::full);
    EXPECT_EQ(j.left->left->join, join_kind::right);
    EXPECT_EQ(j.left->left->using_columns, std::vector<std::string>{"k"});
    EXPECT_EQ(j.left->left->left->join, join_kind::left);
    EXPECT_EQ(j.left->left->left->left->join, join_kind::inner);
    round_trip("SELECT * FROM a INNER JOIN (b JOIN c ON b.x = c.x) ON a.y = b.y");
    round_trip("SELECT * FROM (SELECT a FROM t) AS s (x), (VALUES (1, 2)) AS v (p, q)");
}

TEST(sql_parser, temporal_join) {
    auto s = round_trip("SELECT o.id, r.rate FROM orders AS o JOIN rates FOR SYSTEM_TIME AS OF "
                        "o.proc_time AS r ON o.currency = r.currency");
    const table_ref& j = query_of(s).select.from[0];
    ASSERT_TRUE(j.right->system_time);
    EXPECT_EQ(to_string(*j.right->system_time), "o.proc_time");
    EXPECT_EQ(j.right->alias, "r");
}

TEST(sql_parser, window_table_functions) {
    auto s = round_trip("SELECT window_start, window_end, COUNT(*) FROM TABLE(TUMBLE(TABLE bid, "
                        "DESCRIPTOR(dateTime), INTERVAL '10' SECOND)) GROUP BY window_start, window_end");
    const table_ref& f = query_of(s).select.from[0];
    ASSERT_EQ(f.kind, table_ref_kind::function);
    EXPECT_EQ(f.function->names, qualified_name{"TUMBLE"});
    ASSERT_EQ(f.function->args.size(), 3u);
    EXPECT_EQ(f.function->args[0].kind, expr_kind::table_arg);
    EXPECT_EQ(f.function->args[1].kind, expr_kind::descriptor);
    EXPECT_EQ(f.function->args[2].kind, expr_kind::interval);
    EXPECT_EQ(f.function->args[2].unit, time_unit::second);

    auto hop = round_trip("SELECT * FROM TABLE(HOP(TABLE bid, DESCRIPTOR(ts), INTERVAL '2' SECOND, "
                          "INTERVAL '10' SECOND))");
    const expr& h = *query_of(hop).select.from[0].function;
    EXPECT_EQ(h.args[2].text, "2"); // slide before size
    EXPECT_EQ(h.args[3].text, "10");
    round_trip("SELECT * FROM TABLE(CUMULATE(TABLE bid, DESCRIPTOR(ts), INTERVAL '1' MINUTE, "
               "INTERVAL '1' HOUR))");
    auto sess = round_trip("SELECT * FROM TABLE(SESSION(TABLE bid PARTITION BY bidder, auction, "
                           "DESCRIPTOR(ts), INTERVAL '10' SECOND)) AS w");
    const expr& se = *query_of(sess).select.from[0].function;
    ASSERT_EQ(se.args.size(), 3u);
    EXPECT_EQ(se.args[0].args.size(), 2u); // two partition keys
    round_trip("SELECT * FROM TABLE(TUMBLE(DATA => TABLE bid, TIMECOL => DESCRIPTOR(ts), "
               "SIZE => INTERVAL '2' HOUR))");
}

TEST(sql_parser, legacy_group_windows) {
    round_trip("SELECT bidder, COUNT(*), SESSION_START(ts, INTERVAL '10' SECOND), "
               "SESSION_END(ts, INTERVAL '10' SECOND) FROM bid GROUP BY bidder, SESSION(ts, INTERVAL '10' SECOND)");
    round_trip("SELECT TUMBLE_START(ts, INTERVAL '1' MINUTE), TUMBLE_END(ts, INTERVAL '1' MINUTE) "
               "FROM bid GROUP BY TUMBLE(ts, INTERVAL '1' MINUTE)");
    round_trip("SELECT HOP_START(ts, INTERVAL '2' SECOND, INTERVAL '10' SECOND), HOP_END(ts, "
               "INTERVAL '2' SECOND, INTERVAL '10' SECOND) FROM bid GROUP BY HOP(ts, INTERVAL '2' "
               "SECOND, INTERVAL '10' SECOND)");
}

TEST(sql_parser, union_with_and_subqueries) {
    auto u = round_trip("SELECT a FROM x UNION ALL SELECT a FROM y UNION SELECT a FROM z");
    const query& q = query_of(u);
    EXPECT_EQ(q.kind, query_kind::union_);
    EXPECT_FALSE(q.union_all);
    EXPECT_TRUE(q.left->union_all);
    round_trip("SELECT a FROM x UNION ALL (SELECT a FROM y UNION SELECT a FROM z)");
    round_trip("(SELECT a FROM x ORDER BY a LIMIT 1) UNION ALL SELECT b FROM y ORDER BY 1");
    auto w = round_trip("WITH big AS (SELECT * FROM t WHERE v > 10), small (k) AS (SELECT k FROM u) "
                        "SELECT * FROM big JOIN small ON big.k = small.k");
    EXPECT_EQ(query_of(w).with.size(), 2u);
    EXPECT_EQ(query_of(w).with[1].columns, std::vector<std::string>{"k"});
    round_trip("SELECT * FROM t WHERE a IN (SELECT a FROM u) AND EXISTS (SELECT 1 FROM v WHERE v.a = t.a) "
               "AND b NOT IN (1, 2, 3) AND c = (SELECT MAX(c) FROM w)");
    round_trip("SELECT * FROM (SELECT * FROM t ORDER BY a LIMIT 3) ORDER BY b");
}

TEST(sql_parser, aggregates_and_over) {
    auto s = round_trip("SELECT COUNT(DISTINCT bidder) FILTER (WHERE price < 10000) AS r1, "
                        "COUNT(*) FILTER (WHERE price >= 1000000), ROW_NUMBER() OVER (PARTITION BY "
                        "auction ORDER BY price DESC, ts) AS rn, SUM(x) OVER (PARTITION BY k ORDER BY ts "
                        "ROWS BETWEEN 10 PRECEDING AND CURRENT ROW), AVG(y) OVER (ORDER BY ts RANGE "
                        "BETWEEN INTERVAL '1' HOUR PRECEDING AND CURRENT ROW) FROM bid");
    const auto& items = query_of(s).select.items;
    EXPECT_TRUE(items[0].value.distinct);
    ASSERT_TRUE(items[0].value.filter);
    EXPECT_EQ(to_string(*items[0].value.filter), "price < 10000");
    EXPECT_EQ(items[1].value.args[0].kind, expr_kind::star);
    ASSERT_TRUE(items[2].value.over);
    EXPECT_EQ(items[2].value.over->partition_by.size(), 1u);
    EXPECT_EQ(items[2].value.over->order_by.size(), 2u);
    EXPECT_TRUE(items[3].value.over->has_frame);
    EXPECT_EQ(items[3].value.over->start.kind, frame_bound_kind::preceding);
    EXPECT_FALSE(items[4].value.over->rows);
}

TEST(sql_parser, top_n) {
    round_trip("SELECT * FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY category ORDER BY sales "
               "DESC) AS rn FROM products) WHERE rn <= 3");
}

TEST(sql_parser, expressions) {
    EXPECT_EQ(canonical("a + b * c - d / e % f"), "a + b * c - d / e % f");
    EXPECT_EQ(canonical("(a + b) * c"), "(a + b) * c");
    EXPECT_EQ(canonical("a - (b - c)"), "a - (b - c)");
    EXPECT_EQ(canonical("a OR b AND NOT c"), "a OR b AND NOT c");
    EXPECT_EQ(canonical("(a OR b) AND c"), "(a OR b) AND c");
    EXPECT_EQ(canonical("- -x"), "- -x");
    EXPECT_EQ(canonical("-(+x)"), "- +x");
    EXPECT_EQ(canonical("-(a + 1)"), "-(a + 1)");
    EXPECT_EQ(canonical("a || 'x' || b"), "a || 'x' || b");
    EXPECT_EQ(canonical("a != b"), "a <> b");
    EXPECT_EQ(canonical("x NOT BETWEEN 1 AND 10"), "x NOT BETWEEN 1 AND 10");
    EXPECT_EQ(canonical("name LIKE 'a%' ESCAPE '!'"), "name LIKE 'a%' ESCAPE '!'");
    EXPECT_EQ(canonical("name NOT LIKE '%x'"), "name NOT LIKE '%x'");
    EXPECT_EQ(canonical("a IS NOT NULL AND b IS NULL"), "a IS NOT NULL AND b IS NULL");
    EXPECT_EQ(canonical("flag IS NOT TRUE"), "flag IS NOT TRUE");
    EXPECT_EQ(canonical("CASE WHEN a > 1 THEN 'big' WHEN a > 0 THEN 'small' ELSE 'none' END"),
              "CASE WHEN a > 1 THEN 'big' WHEN a > 0 THEN 'small' ELSE 'none' END");
    EXPECT_EQ(canonical("case x when 1 then 'one' end"), "CASE x WHEN 1 THEN 'one' END");
    EXPECT_EQ(canonical("CAST(price AS DECIMAL(10, 2))"), "CAST(price AS DECIMAL(10, 2))");
    EXPECT_EQ(canonical("TRY_CAST(s AS INT)"), "TRY_CAST(s AS INT)");
    EXPECT_EQ(canonical("INTERVAL '1' MINUTE"), "INTERVAL '1' MINUTE");
    EXPECT_EQ(canonical("INTERVAL '2' HOUR"), "INTERVAL '2' HOUR");
    EXPECT_EQ(canonical("INTERVAL '10' SECONDS"), "INTERVAL '10' SECOND");
    EXPECT_EQ(canonical("INTERVAL '1:30' MINUTE TO SECOND"), "INTERVAL '1:30' MINUTE TO SECOND");
    EXPECT_EQ(canonical("ts - INTERVAL '5' SECOND"), "ts - INTERVAL '5' SECOND");
    EXPECT_EQ(canonical("DATE '2024-01-02'"), "DATE '2024-01-02'");
    EXPECT_EQ(canonical("TIMESTAMP '2024-01-02 03:04:05.678'"), "TIMESTAMP '2024-01-02 03:04:05.678'");
    EXPECT_EQ(canonical("EXTRACT(HOUR FROM ts)"), "EXTRACT(HOUR FROM ts)");
    EXPECT_EQ(canonical("CURRENT_TIMESTAMP"), "CURRENT_TIMESTAMP");
    EXPECT_EQ(canonical("PROCTIME()"), "PROCTIME()");
    EXPECT_EQ(canonical("REGEXP_EXTRACT(url, '(&|^)channel_id=([^&]*)', 2)"),
              "REGEXP_EXTRACT(url, '(&|^)channel_id=([^&]*)', 2)");
    EXPECT_EQ(canonical("SPLIT_INDEX(url, '/', 3)"), "SPLIT_INDEX(url, '/', 3)");
    EXPECT_EQ(canonical("DATE_FORMAT(dateTime, 'yyyy-MM-dd')"), "DATE_FORMAT(dateTime, 'yyyy-MM-dd')");
    EXPECT_EQ(canonical("LEFT(s, 3)"), "LEFT(s, 3)");
    EXPECT_EQ(canonical("`select`.`from` + 1"), "`select`.`from` + 1");
    EXPECT_EQ(canonical("'it''s'"), "'it''s'");
    EXPECT_EQ(canonical("1.5e3 + .5 + 2."), "1.5e3 + .5 + 2.");
    EXPECT_EQ(canonical("NOT (a = b)"), "NOT a = b");
    EXPECT_EQ(canonical("(NOT a) = b"), "(NOT a) = b");
    EXPECT_EQ(canonical("a = b = c"), "a = b = c");
    EXPECT_EQ(canonical("a = (b = c)"), "a = (b = c)");
    EXPECT_EQ(canonical("(a BETWEEN 1 AND 2) = TRUE"), "a BETWEEN 1 AND 2 = TRUE");
    EXPECT_EQ(canonical("x BETWEEN (a AND b) AND c"), "x BETWEEN (a AND b) AND c");
    EXPECT_EQ(canonical("`CURRENT_DATE`"), "`CURRENT_DATE`");
    EXPECT_EQ(canonical("FLOOR(ts TO HOUR)"), "FLOOR(ts TO HOUR)");
    EXPECT_EQ(canonical("CEIL(ts TO MINUTE)"), "CEIL(ts TO MINUTE)");
    EXPECT_EQ(canonical("FLOOR(price / 100)"), "FLOOR(price / 100)");
    EXPECT_EQ(canonical("POSITION('/' IN url)"), "POSITION('/' IN url)");
    EXPECT_EQ(canonical("SUBSTRING(s FROM 2 FOR 3)"), "SUBSTRING(s FROM 2 FOR 3)");
    EXPECT_EQ(canonical("SUBSTRING(s, 2, 3)"), "SUBSTRING(s, 2, 3)");
    EXPECT_EQ(canonical("TRIM(LEADING '0' FROM s)"), "TRIM(LEADING '0' FROM s)");
    EXPECT_EQ(canonical("TRIM(FROM s)"), "TRIM(BOTH FROM s)");
    EXPECT_EQ(canonical("TRIM(' ' FROM s)"), "TRIM(BOTH ' ' FROM s)");
    EXPECT_EQ(canonical("TRIM(s)"), "TRIM(s)");
}

TEST(sql_parser, script_with_comments_and_empty_statements) {
    auto r = parse_script(R"(
        -- the source
        CREATE TABLE t (a INT) WITH ('connector' = 'datagen');;
        /* the
           query */
        SELECT a FROM t;
        ;
        SHOW TABLES
    )");
    ASSERT_TRUE(r.has_value()) << r.error().headline();
    ASSERT_EQ(r.value().size(), 3u);
    EXPECT_EQ(r.value()[1].pos.line, 6);
    EXPECT_EQ(r.value()[1].pos.column, 9);
    EXPECT_TRUE(parse_script("").has_value());
    EXPECT_TRUE(parse_script(" ; -- nothing").value().empty());
}

TEST(sql_parser, depth_limit_is_an_error_not_a_crash) {
    std::string deep(5000, '(');
    deep = "SELECT " + deep + "1";
    auto r = parse_statement(deep);
    ASSERT_FALSE(r.has_value());
    EXPECT_EQ(r.error().code, errc::too_complex);
    std::string minus(5000, '-');
    for (std::size_t i = 1; i < minus.size(); i += 2) {
        minus[i] = ' ';
    }
    EXPECT_EQ(parse_expression(minus + "1").error().code, errc::too_complex);
    std::string nots;
    for (int i = 0; i < 3000; ++i) {
        nots += "NOT ";
    }
    EXPECT_EQ(parse_expression(nots + "x").error().code, errc::too_complex);
}

TEST(sql_catalog, table_schema_checks_the_definition) {
    auto parse_table = [](std::string_view sql) {
        return std::get<create_table_stmt>(parse_statement(sql).value().node);
    };
    auto s = table_schema_from(parse_table(
      "CREATE TABLE t (id BIGINT, ts TIMESTAMP(3), et AS ts, WATERMARK FOR ts AS ts - INTERVAL '1' "
      "SECOND, PRIMARY KEY (id) NOT ENFORCED) WITH ('connector' = 'nexmark')"));
    ASSERT_TRUE(s.has_value());
    EXPECT_EQ(s.value().event_time_column, "ts");
    EXPECT_EQ(s.value().find_column("ID"), std::optional<std::size_t>(0));
    EXPECT_EQ(s.value().option("connector"), std::optional<std::string>("nexmark"));
    memory_catalog cat;
    cat.put(std::move(s).value());
    cat.add_function("TUMBLE");
    EXPECT_NE(cat.find_table({"t"}), nullptr);
    EXPECT_EQ(cat.find_table({"u"}), nullptr);
    EXPECT_TRUE(cat.has_function("tumble"));

    auto dup = table_schema_from(parse_table("CREATE TABLE t (a INT,\n  a STRING)"));
    ASSERT_FALSE(dup.has_value());
    EXPECT_EQ(dup.error().headline(), "line 2:3: column a is declared twice in table t");
    auto wm = table_schema_from(parse_table("CREATE TABLE t (a INT, WATERMARK FOR b AS b)"));
    EXPECT_EQ(wm.error().message, "WATERMARK FOR b: table t has no column b");
    auto wt = table_schema_from(parse_table("CREATE TABLE t (a INT, WATERMARK FOR a AS a)"));
    EXPECT_EQ(wt.error().message, "WATERMARK FOR a: the column is INT, but an event-time column "
                                  "must be TIMESTAMP(p) or TIMESTAMP_LTZ(p)");
    auto pk = table_schema_from(parse_table("CREATE TABLE t (a INT, PRIMARY KEY (b) NOT ENFORCED)"));
    EXPECT_EQ(pk.error().message, "PRIMARY KEY column b is not a column of table t");
    auto opt = table_schema_from(parse_table("CREATE TABLE t (a INT) WITH ('x' = '1', 'x' = '2')"));
    EXPECT_EQ(opt.error().message, "option 'x' is given twice in WITH (...)");
}

std::string read_file(const std::filesystem::path& p) {
    std::ifstream in(p, std::ios::binary);
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

TEST(sql_parser, every_nexmark_example_parses_and_round_trips) {
    std::filesystem::path dir = std::filesystem::path(RUNNEL_SOURCE_DIR) / "examples" / "nexmark";
    int files = 0;
    for (const auto& entry : std::filesystem::directory_iterator(dir)) {
        if (entry.path().extension() != ".sql") {
            continue;
        }
        ++files;
        std::string text = read_file(entry.path());
        auto script = parse_script(text);
        ASSERT_TRUE(script.has_value())
          << entry.path() << "\n" << format_error(text, script.error());
        bool has_insert = false;
        for (const statement& s : script.value()) {
            has_insert = has_insert || std::holds_alternative<insert_stmt>(s.node);
            std::string printed = to_string(s);
            auto again = parse_statement(printed);
            ASSERT_TRUE(again.has_value())
              << entry.path() << "\n" << format_error(printed, again.error());
            EXPECT_EQ(again.value(), s) << entry.path() << "\n" << printed;
            if (auto* t = std::get_if<create_table_stmt>(&s.node)) {
                auto schema = table_schema_from(*t);
                EXPECT_TRUE(schema.has_value()) << entry.path() << ": " << schema.error().headline();
            }
        }
        // nested.sql declares Flink's nested tables and views for the queries; it inserts nothing.
        EXPECT_TRUE(has_insert || entry.path().filename() == "nested.sql") << entry.path();
    }
    EXPECT_EQ(files, 22); // q0 .. q22 without q6 and q10, and nested.sql
}

} // namespace
} // namespace runnel::sql

namespace runnel::sql {
namespace {

TEST(keep_statements, blanks_the_others_and_keeps_every_position) {
    const std::string text = "CREATE TABLE a (x INT);\nSELECT 1;  -- a note\nINSERT INTO a\n  SELECT 2;\nSELECT 3;\n";
    auto script = parse_script(text);
    ASSERT_TRUE(script);
    ASSERT_EQ(script.value().size(), 4U);
    auto kept = keep_statements(text, script.value(), {true, false, true, false}, 2);
    EXPECT_EQ(kept, "CREATE TABLE a (x INT);\n                    \nINSERT INTO a\n  SELECT 2;\n");
    auto again = parse_script(kept);
    ASSERT_TRUE(again);
    ASSERT_EQ(again.value().size(), 2U);
    EXPECT_EQ(again.value()[1].pos.line, script.value()[2].pos.line);
    EXPECT_EQ(again.value()[1].pos.column, script.value()[2].pos.column);
    EXPECT_TRUE(std::holds_alternative<insert_stmt>(again.value()[1].node));
    // Nothing kept before the last statement: only it remains, where it was.
    EXPECT_EQ(keep_statements(text, script.value(), {false, false, false, true}, 3),
              "                       \n                    \n             \n           \nSELECT 3;\n");
}

} // namespace
} // namespace runnel::sql
