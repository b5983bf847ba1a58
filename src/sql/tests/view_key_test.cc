// The key of a materialized view, derived from its query.

#include <gtest/gtest.h>

#include "sql/catalog.h"
#include "sql/parser.h"

namespace runnel::sql {
namespace {

std::vector<std::string> key_of(std::string_view select, const std::vector<std::string>& columns) {
    auto st = parse_statement(select);
    EXPECT_TRUE(st) << select;
    return materialized_view_key(std::get<query_stmt>(st.value().node).body, columns);
}

using names = std::vector<std::string>;

TEST(view_key, window_aggregate_is_keyed_by_bounds_and_group_columns) {
    EXPECT_EQ(key_of("SELECT u, window_start, window_end, COUNT(*) AS n FROM TABLE(TUMBLE(TABLE t, DESCRIPTOR(ts), "
                     "INTERVAL '1' SECOND)) GROUP BY u, window_start, window_end",
                     {"u", "window_start", "window_end", "n"}),
              (names{"u", "window_start", "window_end"}));
}

TEST(view_key, legacy_group_window_bounds_and_expressions_are_keys) {
    EXPECT_EQ(key_of("SELECT TUMBLE_START(ts, INTERVAL '1' MINUTE) AS s, LOWER(c) AS lc, SUM(p) AS total FROM t "
                     "GROUP BY TUMBLE(ts, INTERVAL '1' MINUTE), LOWER(c)",
                     {"s", "lc", "total"}),
              (names{"s", "lc"}));
}

TEST(view_key, global_aggregate_is_one_row) {
    EXPECT_EQ(key_of("SELECT COUNT(*) AS n, MAX(p) AS top FROM t", {"n", "top"}), names{});
}

TEST(view_key, top_n_is_keyed_by_partition_and_rank) {
    EXPECT_EQ(key_of("SELECT a, p, rn FROM (SELECT a, p, ROW_NUMBER() OVER (PARTITION BY a ORDER BY p DESC) AS rn "
                     "FROM t) WHERE rn <= 3",
                     {"a", "p", "rn"}),
              (names{"a", "rn"}));
    // Without the row number in the output, rows are told apart by all their columns.
    EXPECT_EQ(key_of("SELECT a, p FROM (SELECT a, p, ROW_NUMBER() OVER (PARTITION BY a ORDER BY p DESC) AS rn "
                     "FROM t) WHERE rn <= 3",
                     {"a", "p"}),
              (names{"a", "p"}));
}

TEST(view_key, plain_query_is_keyed_by_every_column) {
    EXPECT_EQ(key_of("SELECT a, b * 2 AS c FROM t WHERE b > 1", {"a", "c"}), (names{"a", "c"}));
}

} // namespace
} // namespace runnel::sql
