// Randomised checks of planned window aggregations against a direct computation of the same
// query: random rows (keys and values with NULLs, event times out of order within the
// watermark's bound, so nothing is late), random TUMBLE and HOP sizes and WHERE thresholds.
// The planner and engine must give exactly the rows the definition of the query gives.

#include "engine/engine.h"
#include "sql/planner.h"
#include "sql/sql.h"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <map>
#include <optional>
#include <random>
#include <set>

namespace runnel::sql {
namespace {

namespace en = runnel::engine;

struct input_row {
    std::optional<std::string> k;
    std::optional<int64_t> v;
    int64_t ts;
};

/// One batch per row, in the given order.
class rows_connector final : public connector_factory {
public:
    explicit rows_connector(const std::vector<input_row>& rows)
        : _rows(rows) {}
    en::result<en::stream> source(en::pipeline& p, const table_schema&,
                                  const en::schema_ptr& columns) override {
        std::vector<en::batch> batches;
        for (const auto& r : _rows) {
            batches.push_back(en::make_batch(
                columns, {{r.k ? en::value::of(*r.k) : en::value::null(en::data_type::string()),
                           r.v ? en::value::of(*r.v) : en::value::null(en::data_type::int64()),
                           en::value::ts(r.ts)}}));
        }
        return p.source(columns, en::from_batches(std::move(batches)));
    }
    en::result<void> sink(en::stream, const table_schema&) override {
        return en::fail(en::errc::invalid_pipeline, "no sinks here");
    }

private:
    const std::vector<input_row>& _rows;
};

std::string render(const en::value& v) {
    if (v.is_null()) {
        return "NULL";
    }
    if (v.type.id == en::type_id::timestamp) {
        return fmt::format("{}", std::get<int64_t>(v.v));
    }
    if (auto* s = std::get_if<std::string>(&v.v)) {
        return *s;
    }
    return v.to_string();
}

struct accumulator {
    int64_t count = 0, count_v = 0, sum = 0;
    std::optional<int64_t> min, max;
    std::set<int64_t> distinct;
    void add(const input_row& r) {
        ++count;
        if (r.v) {
            ++count_v;
            sum += *r.v;
            min = min ? std::min(*min, *r.v) : *r.v;
            max = max ? std::max(*max, *r.v) : *r.v;
            distinct.insert(*r.v);
        }
    }
};

int64_t floor_div(int64_t a, int64_t b) {
    return a / b - ((a % b != 0) && ((a < 0) != (b < 0)));
}

TEST(planner_random, window_aggregates_match_their_definition) {
    const std::string_view ddl = "CREATE TABLE t (k STRING, v BIGINT, ts TIMESTAMP(3), "
                                 "WATERMARK FOR ts AS ts - INTERVAL '3' SECOND)";
    memory_catalog cat;
    auto ct = parse_statement(ddl);
    ASSERT_TRUE(ct);
    cat.put(table_schema_from(std::get<create_table_stmt>(ct.value().node)).value());
    std::mt19937_64 rng(20261202);
    for (int round = 0; round < 60; ++round) {
        // Rows: event time i*step + jitter with jitter below the 3 s bound, so no row is late.
        std::vector<input_row> rows;
        int n = 1 + int(rng() % 60);
        int64_t step = 100 + int64_t(rng() % 900);
        for (int i = 0; i < n; ++i) {
            input_row r;
            int kk = int(rng() % 4);
            if (kk < 3) {
                r.k = std::string(1, char('a' + kk));
            }
            if (rng() % 5 != 0) {
                r.v = int64_t(rng() % 21) - 10;
            }
            r.ts = 1'767'225'600'000 + i * step + int64_t(rng() % 3000);
            rows.push_back(r);
        }
        bool hop = rng() % 2 == 0;
        int64_t slide = 1000 * (1 + int64_t(rng() % 5));
        int64_t size = hop ? slide * (1 + int64_t(rng() % 3)) : slide;
        int64_t threshold = int64_t(rng() % 21) - 10;
        std::string window =
            hop ? fmt::format(
                      "HOP(TABLE t, DESCRIPTOR(ts), INTERVAL '{}' SECOND, INTERVAL '{}' SECOND)",
                      slide / 1000, size / 1000)
                : fmt::format("TUMBLE(TABLE t, DESCRIPTOR(ts), INTERVAL '{}' SECOND)", size / 1000);
        std::string sql = fmt::format(
            "SELECT window_start, window_end, k, COUNT(*), COUNT(v), SUM(v), MIN(v), MAX(v), "
            "COUNT(DISTINCT v), COUNT(*) FILTER (WHERE v > {}) FROM TABLE({}) "
            "WHERE v IS NULL OR v <> {} GROUP BY window_start, window_end, k",
            threshold, window, threshold);
        SCOPED_TRACE(sql);

        // The definition: every window [s, s + size) with s a multiple of the slide that holds
        // the row's event time, per key, over the rows the WHERE keeps.
        std::map<std::tuple<int64_t, std::string>, std::pair<accumulator, int64_t>> expected;
        for (const auto& r : rows) {
            if (r.v && *r.v == threshold) {
                continue;
            }
            for (int64_t s = floor_div(r.ts, slide) * slide; s > r.ts - size; s -= slide) {
                auto& [acc, above] = expected[{s, r.k ? *r.k : std::string("\x01")}];
                acc.add(r);
                above += (r.v && *r.v > threshold) ? 1 : 0;
            }
        }
        std::vector<std::string> want;
        for (const auto& [key, val] : expected) {
            const auto& [s, k] = key;
            const auto& [a, above] = val;
            auto opt = [](const std::optional<int64_t>& x) {
                return x ? fmt::format("{}", *x) : std::string("NULL");
            };
            want.push_back(fmt::format("{}, {}, {}, {}, {}, {}, {}, {}, {}, {}", s, s + size,
                                       k == "\x01" ? "NULL" : k, a.count, a.count_v,
                                       a.count_v ? fmt::format("{}", a.sum) : "NULL", opt(a.min),
                                       opt(a.max), a.distinct.size(), above));
        }
        std::sort(want.begin(), want.end());

        auto st = parse_statement(sql);
        ASSERT_TRUE(st) << st.error().headline();
        rows_connector conn(rows);
        en::pipeline p;
        planner pl(cat, conn);
        auto plan = pl.plan(st.value(), p);
        ASSERT_TRUE(plan) << plan.error().headline();
        std::vector<std::string> got;
        size_t late = 0;
        plan.value().output.sink([&](const en::batch& b) {
            for (size_t i = 0; i < b.num_rows(); ++i) {
                std::string line;
                for (const auto& v : b.row(i)) {
                    line += (line.empty() ? "" : ", ") + render(v);
                }
                got.push_back(line);
            }
        });
        plan.value().late[0].sink([&](const en::batch& b) { late += b.num_rows(); });
        ASSERT_TRUE(p.run());
        std::sort(got.begin(), got.end());
        EXPECT_EQ(late, 0u);
        EXPECT_EQ(got, want);
    }
}

} // namespace
} // namespace runnel::sql
