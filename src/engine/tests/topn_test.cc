#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <random>

#include "engine/engine.h"

using namespace std::chrono_literals;

namespace runnel::engine {
namespace {

top_n_spec spec_of(std::vector<std::string> keys, std::string order_by, bool descending, size_t n,
                   std::string window_end) {
    top_n_spec s;
    s.partition_keys = std::move(keys);
    s.order_by = std::move(order_by);
    s.descending = descending;
    s.n = n;
    s.window_end = std::move(window_end);
    return s;
}

schema_ptr ev_schema() { return make_schema({{"item", data_type::int64()}, {"ts", data_type::timestamp()}}); }

TEST(top_n, window_top_n_emits_each_window_once_with_ranks) {
    std::mt19937_64 rng(3);
    std::vector<std::vector<value>> rows;
    // In window w item i appears (i + w) % 6 + 1 times: distinct counts, known top 2.
    for (int w = 0; w < 5; ++w) {
        for (int i = 0; i < 6; ++i) {
            for (int k = 0; k < (i + w) % 6 + 1; ++k) rows.push_back({value::of(int64_t(i)), value::ts(w * 10 + int64_t(rng() % 10))});
        }
    }
    std::sort(rows.begin(), rows.end(), [](const auto& a, const auto& b) { return std::get<int64_t>(a[1].v) < std::get<int64_t>(b[1].v); });
    pipeline p;
    std::vector<std::string> out;
    p.source(ev_schema(), from_batches({make_batch(ev_schema(), rows)}))
      .watermark("ts", 0ms)
      .key_by({"item"})
      .window(tumble(10ms))
      .aggregate({count()})
      .top_n(spec_of({"window_start", "window_end"}, "count", true, 2, "window_end"))
      .sink([&](const batch& b) {
          ASSERT_FALSE(b.has_row_kinds());
          for (size_t i = 0; i < b.num_rows(); ++i) out.push_back(b.row_to_string(i));
      });
    ASSERT_TRUE(p.run());
    std::vector<std::string> want;
    for (int w = 0; w < 5; ++w) {
        std::vector<std::pair<int64_t, int64_t>> c; // (count, item)
        for (int i = 0; i < 6; ++i) c.emplace_back((i + w) % 6 + 1, i);
        std::sort(c.rbegin(), c.rend());
        for (int r = 0; r < 2; ++r) {
            want.push_back(fmt::format("({}, {}, {}, {}, {})", w * 10, w * 10 + 10, c[size_t(r)].second, c[size_t(r)].first, r + 1));
        }
    }
    std::sort(out.begin(), out.end());
    std::sort(want.begin(), want.end());
    EXPECT_EQ(out, want);
}

TEST(top_n, unbounded_top_n_changelog_applies_to_the_true_top) {
    auto s = make_schema({{"user", data_type::string()}, {"score", data_type::float64()}});
    std::mt19937_64 rng(9);
    std::vector<std::vector<value>> rows;
    std::map<std::string, std::vector<double>> all;
    for (int i = 0; i < 500; ++i) {
        auto u = fmt::format("u{}", rng() % 7);
        double sc = double(rng() % 100000) + i * 1e-6; // distinct
        rows.push_back({value::of(u), value::of(sc)});
        all[u].push_back(sc);
    }
    pipeline p;
    std::map<std::string, std::string> state; // row text -> present
    std::vector<batch> in;
    for (size_t i = 0; i < rows.size(); i += 37) {
        in.push_back(make_batch(s, std::vector(rows.begin() + long(i), rows.begin() + long(std::min(rows.size(), i + 37)))));
    }
    p.source(s, from_batches(std::move(in))).top_n(spec_of({"user"}, "score", true, 3, "")).sink([&](const batch& b) {
        ASSERT_TRUE(b.has_row_kinds());
        for (size_t i = 0; i < b.num_rows(); ++i) {
            auto text = batch(s, {b.col(0), b.col(1)}).row_to_string(i);
            if (b.kind(i) == row_kind::insert) {
                ASSERT_FALSE(state.count(text)) << text;
                state[text] = "";
            } else {
                ASSERT_EQ(b.kind(i), row_kind::delete_row);
                ASSERT_EQ(state.erase(text), 1u) << text;
            }
        }
    });
    ASSERT_TRUE(p.run());
    std::map<std::string, std::string> want;
    for (auto& [u, scores] : all) {
        std::sort(scores.rbegin(), scores.rend());
        for (size_t r = 0; r < std::min<size_t>(3, scores.size()); ++r) {
            want[make_batch(s, {{value::of(u), value::of(scores[r])}}).row_to_string(0)] = "";
        }
    }
    EXPECT_EQ(state, want);
}

TEST(top_n, ranked_changelog_keyed_by_rank_applies_to_the_true_top) {
    auto s = make_schema({{"user", data_type::string()}, {"score", data_type::int64()}, {"at", data_type::int64()}});
    std::mt19937_64 rng(21);
    std::vector<batch> in;
    std::map<std::string, std::vector<std::pair<int64_t, int64_t>>> all; // user -> (score, at)
    for (int i = 0; i < 400; ++i) {
        auto u = fmt::format("u{}", rng() % 5);
        int64_t sc = int64_t(rng() % 20), at = int64_t(rng() % 50); // many ties on score
        in.push_back(make_batch(s, {{value::of(u), value::of(sc), value::of(at)}}));
        all[u].emplace_back(sc, at);
    }
    auto spec = spec_of({"user"}, "score", true, 4, "");
    spec.then_by = {{"at", false}};
    spec.rank_column = true;
    std::map<std::pair<std::string, int64_t>, std::pair<int64_t, int64_t>> table; // (user, rank) -> row
    pipeline p;
    p.source(s, from_batches(std::move(in))).top_n(spec).sink([&](const batch& b) {
        for (size_t i = 0; i < b.num_rows(); ++i) {
            auto key = std::make_pair(std::get<std::string>(b.col(0).value_at(i).v), b.col(3).int64_at(i));
            auto row = std::make_pair(b.col(1).int64_at(i), b.col(2).int64_at(i));
            switch (b.kind(i)) {
            case row_kind::insert:
                ASSERT_FALSE(table.count(key));
                table[key] = row;
                break;
            case row_kind::update_before:
                ASSERT_EQ(table.at(key), row);
                table.erase(key);
                break;
            case row_kind::update_after:
                ASSERT_FALSE(table.count(key));
                table[key] = row;
                break;
            case row_kind::delete_row: FAIL() << "ranks are never deleted";
            }
        }
    });
    ASSERT_TRUE(p.run());
    std::map<std::pair<std::string, int64_t>, std::pair<int64_t, int64_t>> want;
    for (auto& [u, rows] : all) {
        // Score descending, then `at` ascending, then arrival (stable).
        std::stable_sort(rows.begin(), rows.end(), [](const auto& a, const auto& b) {
            return a.first != b.first ? a.first > b.first : a.second < b.second;
        });
        for (size_t r = 0; r < std::min<size_t>(4, rows.size()); ++r) want[{u, int64_t(r + 1)}] = rows[r];
    }
    EXPECT_EQ(table, want);
}

TEST(top_n, one_row_per_key_replaces_with_updates_and_ties_can_go_to_the_later_row) {
    auto s = make_schema({{"k", data_type::string()}, {"ts", data_type::int64()}, {"v", data_type::string()}});
    auto spec = spec_of({"k"}, "ts", true, 1, "");
    spec.later_wins_ties = true;
    auto t = top_n_stage::make(s, spec).value();
    stage_output out;
    t->on_batch(0, make_batch(s, {{value::of("x"), value::of(int64_t(5)), value::of("a")},
                                  {value::of("x"), value::of(int64_t(5)), value::of("b")},
                                  {value::of("x"), value::of(int64_t(4)), value::of("c")}}), out);
    ASSERT_EQ(out.pending().size(), 1u);
    auto& b = std::get<batch>(out.pending()[0].second);
    std::vector<std::string> rows;
    for (size_t i = 0; i < b.num_rows(); ++i) rows.push_back(b.row_to_string(i));
    EXPECT_EQ(rows, (std::vector<std::string>{"+I('x', 5, 'a')", "-U('x', 5, 'a')", "+U('x', 5, 'b')"}));
}

TEST(top_n, snapshot_restore_and_mistakes) {
    auto s = make_schema({{"k", data_type::string()}, {"v", data_type::int64()}, {"name", data_type::string()}});
    auto a = top_n_stage::make(s, spec_of({"k"}, "v", false, 2, "")).value();
    stage_output out;
    a->on_batch(0, make_batch(s, {{value::of("x"), value::of(int64_t(5)), value::of("five")},
                                  {value::of("x"), value::of(int64_t(3)), value::of("three")}}), out);
    auto b = top_n_stage::make(s, spec_of({"k"}, "v", false, 2, "")).value();
    ASSERT_TRUE(b->restore(a->snapshot()));
    stage_output o2;
    b->on_batch(0, make_batch(s, {{value::of("x"), value::of(int64_t(1)), value::of("one")}}), o2);
    ASSERT_EQ(o2.pending().size(), 1u);
    auto& changes = std::get<batch>(o2.pending()[0].second);
    ASSERT_EQ(changes.num_rows(), 2u);
    EXPECT_EQ(changes.row_to_string(0), "-D('x', 5, 'five')");
    EXPECT_EQ(changes.row_to_string(1), "+I('x', 1, 'one')");
    EXPECT_FALSE(b->restore("junk"));
    auto bad = top_n_stage::make(s, spec_of({"k"}, "name", true, 1, ""));
    ASSERT_FALSE(bad);
    EXPECT_EQ(bad.error().message, "top-n: 'name' is string; ordering needs a number or a timestamp");
    EXPECT_FALSE(top_n_stage::make(s, spec_of({"nope"}, "v", true, 1, "")));
    EXPECT_FALSE(top_n_stage::make(s, spec_of({"k"}, "v", true, 0, "")));
}

} // namespace
} // namespace runnel::engine
