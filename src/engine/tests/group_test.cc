#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <random>
#include <set>

#include "engine/engine.h"

namespace runnel::engine {
namespace {

schema_ptr bid_schema() {
    return make_schema({{"auction", data_type::int64()}, {"bidder", data_type::string()}, {"price", data_type::int64()}});
}

std::vector<std::string> rows_of(const batch& b) {
    std::vector<std::string> out;
    for (size_t i = 0; i < b.num_rows(); ++i) out.push_back(b.row_to_string(i));
    return out;
}

/// Runs `b` through `s` and returns what it emitted (one batch or none).
std::vector<std::string> feed(stage& s, batch b) {
    stage_output out;
    s.on_batch(0, std::move(b), out);
    std::vector<std::string> rows;
    for (auto& [port, m] : out.pending()) {
        for (auto& r : rows_of(std::get<batch>(m))) rows.push_back(r);
    }
    return rows;
}

batch with_kinds(schema_ptr s, const std::vector<std::vector<value>>& rows, std::vector<row_kind> kinds) {
    auto b = make_batch(std::move(s), rows);
    b.set_row_kinds(std::move(kinds));
    return b;
}

/// A changelog applied to a table: rows by their text, counted.
class materialized {
public:
    void apply(const batch& b) {
        for (size_t i = 0; i < b.num_rows(); ++i) {
            auto text = make_batch(b.schema_of(), {b.row(i)}).row_to_string(0);
            auto k = b.kind(i);
            if (k == row_kind::insert || k == row_kind::update_after) {
                ++_rows[text];
            } else {
                auto it = _rows.find(text);
                ASSERT_NE(it, _rows.end()) << "retracts a row it never added: " << text;
                if (--it->second == 0) _rows.erase(it);
            }
        }
    }
    std::map<std::string, int> rows() const { return _rows; }

private:
    std::map<std::string, int> _rows;
};

TEST(group, emits_one_change_per_key_and_batch) {
    auto g = group_stage::make(bid_schema(), {"auction"}, {count(), sum("price").as("total"), max("price").as("top")}).value();
    auto s = bid_schema();
    // Three rows of auction 1 in one batch: one insert with the result after all three (a
    // batch of inserts only carries no kinds and prints without +I).
    EXPECT_EQ(feed(*g, make_batch(s, {{value::of(1), value::of("a"), value::of(10)},
                                      {value::of(2), value::of("b"), value::of(7)},
                                      {value::of(1), value::of("b"), value::of(30)},
                                      {value::of(1), value::of("c"), value::of(20)}})),
              (std::vector<std::string>{"(1, 3, 60, 30)", "(2, 1, 7, 7)"}));
    // An update: the old result retracted, then the new one.
    EXPECT_EQ(feed(*g, make_batch(s, {{value::of(2), value::of("a"), value::of(9)}})),
              (std::vector<std::string>{"-U(2, 1, 7, 7)", "+U(2, 2, 16, 9)"}));
    // Taking back the row that is the maximum: MAX falls back to the next value.
    EXPECT_EQ(feed(*g, with_kinds(s, {{value::of(1), value::of("b"), value::of(30)}}, {row_kind::delete_row})),
              (std::vector<std::string>{"-U(1, 3, 60, 30)", "+U(1, 2, 30, 20)"}));
    // A change that leaves the result as it was emits nothing.
    EXPECT_TRUE(feed(*g, with_kinds(s, {{value::of(2), value::of("a"), value::of(9)}, {value::of(2), value::of("z"), value::of(9)}},
                                    {row_kind::update_before, row_kind::update_after}))
                  .empty());
    // Every row of a key taken back: a delete, and the group is gone.
    EXPECT_EQ(g->groups(), 2u);
    EXPECT_EQ(feed(*g, with_kinds(s, {{value::of(2), value::of("z"), value::of(9)}, {value::of(2), value::of("b"), value::of(7)}},
                                  {row_kind::delete_row, row_kind::delete_row})),
              (std::vector<std::string>{"-D(2, 2, 16, 9)"}));
    EXPECT_EQ(g->groups(), 1u);
    // A retraction of a key that does not exist is ignored.
    EXPECT_TRUE(feed(*g, with_kinds(s, {{value::of(9), value::of("a"), value::of(1)}}, {row_kind::delete_row})).empty());
    // The key comes back as a new group.
    EXPECT_EQ(feed(*g, make_batch(s, {{value::of(2), value::of("q"), value::of(3)}})),
              (std::vector<std::string>{"(2, 1, 3, 3)"}));
}

TEST(group, nulls_and_a_global_aggregate) {
    auto s = make_schema({{"k", data_type::string()}, {"v", data_type::float64()}});
    auto g = group_stage::make(s, {}, {count(), count("v"), sum("v"), avg("v"), min("v"), count_distinct("v")}).value();
    EXPECT_EQ(feed(*g, make_batch(s, {{value::of("a"), value::null(data_type::float64())}})),
              (std::vector<std::string>{"(1, 0, NULL, NULL, NULL, 0)"}));
    EXPECT_EQ(feed(*g, make_batch(s, {{value::of("a"), value::of(2.0)}, {value::of("b"), value::of(4.0)}, {value::of("c"), value::of(2.0)}})),
              (std::vector<std::string>{"-U(1, 0, NULL, NULL, NULL, 0)", "+U(4, 3, 8, 2.6666666666666665, 2, 2)"}));
    EXPECT_EQ(feed(*g, with_kinds(s, {{value::of("a"), value::of(2.0)}, {value::of("b"), value::of(4.0)}, {value::of("c"), value::of(2.0)}},
                                  {row_kind::delete_row, row_kind::delete_row, row_kind::delete_row})),
              (std::vector<std::string>{"-U(4, 3, 8, 2.6666666666666665, 2, 2)", "+U(1, 0, NULL, NULL, NULL, 0)"}));
}

TEST(group, random_changelog_input_matches_a_direct_computation) {
    std::mt19937_64 rng(17);
    auto s = bid_schema();
    auto g = group_stage::make(s, {"auction"},
                               {count(), count("bidder").as("bidders"), sum("price"), min("price"), max("price"),
                                avg("price"), count_distinct("bidder").as("distinct_bidders"), min("bidder").as("first_bidder")})
               .value();
    std::vector<std::vector<value>> live; // rows added and not yet taken back
    materialized out;
    for (int round = 0; round < 300; ++round) {
        std::vector<std::vector<value>> rows;
        std::vector<row_kind> kinds;
        size_t n = 1 + rng() % 12;
        for (size_t i = 0; i < n; ++i) {
            if (!live.empty() && rng() % 3 == 0) {
                size_t at = rng() % live.size();
                rows.push_back(live[at]);
                kinds.push_back(rng() % 2 ? row_kind::delete_row : row_kind::update_before);
                live.erase(live.begin() + long(at));
                continue;
            }
            std::vector<value> r{value::of(int64_t(rng() % 6)),
                                 rng() % 9 == 0 ? value::null(data_type::string()) : value::of(fmt::format("p{}", rng() % 5)),
                                 rng() % 11 == 0 ? value::null(data_type::int64()) : value::of(int64_t(rng() % 100) - 20)};
            rows.push_back(r);
            kinds.push_back(rng() % 2 ? row_kind::insert : row_kind::update_after);
            live.push_back(r);
        }
        stage_output o;
        g->on_batch(0, with_kinds(s, rows, kinds), o);
        for (auto& [port, m] : o.pending()) {
            auto& b = std::get<batch>(m);
            // Once per key and batch: no key twice among the new results.
            std::set<std::string> keys;
            for (size_t i = 0; i < b.num_rows(); ++i) {
                if (b.kind(i) == row_kind::insert || b.kind(i) == row_kind::update_after) {
                    EXPECT_TRUE(keys.insert(b.col(0).value_at(i).to_string()).second);
                }
            }
            out.apply(b);
        }
        ASSERT_TRUE(g->failure().empty());
    }
    // The direct computation over the rows still live.
    std::map<int64_t, std::vector<const std::vector<value>*>> by_key;
    for (const auto& r : live) by_key[std::get<int64_t>(r[0].v)].push_back(&r);
    batch want(g->output_schema(0));
    for (const auto& [k, rs] : by_key) {
        int64_t cnt = 0, sum = 0, nprice = 0;
        std::optional<int64_t> lo, hi;
        std::set<std::string> distinct;
        std::optional<std::string> first;
        for (const auto* r : rs) {
            if (!(*r)[1].is_null()) {
                ++cnt;
                auto b = std::get<std::string>((*r)[1].v);
                distinct.insert(b);
                if (!first || b < *first) first = b;
            }
            if (!(*r)[2].is_null()) {
                int64_t p = std::get<int64_t>((*r)[2].v);
                sum += p;
                ++nprice;
                lo = lo ? std::min(*lo, p) : p;
                hi = hi ? std::max(*hi, p) : p;
            }
        }
        auto opt = [](std::optional<int64_t> v) { return v ? value::of(*v) : value::null(data_type::int64()); };
        want.append_row({value::of(k), value::of(int64_t(rs.size())), value::of(cnt),
                         nprice ? value::of(sum) : value::null(data_type::int64()), opt(lo), opt(hi),
                         nprice ? value::of(double(sum) / double(nprice)) : value::null(data_type::float64()),
                         value::of(int64_t(distinct.size())), first ? value::of(*first) : value::null(data_type::string())});
    }
    materialized direct;
    direct.apply(want);
    EXPECT_EQ(out.rows(), direct.rows());
    EXPECT_EQ(g->groups(), by_key.size());
}

TEST(group, snapshot_restore_continues_where_it_stopped) {
    auto s = bid_schema();
    auto make = [&] {
        return group_stage::make(s, {"auction"}, {count(), max("price"), count_distinct("bidder"), avg("price")}).value();
    };
    std::vector<batch> in;
    std::mt19937_64 rng(5);
    for (int i = 0; i < 40; ++i) {
        in.push_back(with_kinds(s, {{value::of(int64_t(rng() % 4)), value::of(fmt::format("b{}", rng() % 3)), value::of(int64_t(rng() % 50))}},
                                {row_kind::insert}));
    }
    // Take back a few rows of the first half in the second half.
    for (int i = 0; i < 10; i += 3) {
        auto r = in[size_t(i)].row(0);
        in.push_back(with_kinds(s, {r}, {row_kind::delete_row}));
    }
    auto whole = make();
    std::vector<std::string> all;
    for (auto& b : in) {
        for (auto& r : feed(*whole, b)) all.push_back(r);
    }
    auto first = make();
    std::vector<std::string> split;
    size_t half = in.size() / 2;
    for (size_t i = 0; i < half; ++i) {
        for (auto& r : feed(*first, in[i])) split.push_back(r);
    }
    auto second = make();
    ASSERT_TRUE(second->restore(first->snapshot()));
    EXPECT_EQ(second->snapshot(), first->snapshot());
    for (size_t i = half; i < in.size(); ++i) {
        for (auto& r : feed(*second, in[i])) split.push_back(r);
    }
    EXPECT_EQ(split, all);
    // Damaged or foreign snapshots are refused.
    auto snap = first->snapshot();
    EXPECT_FALSE(make()->restore(snap.substr(0, snap.size() - 3)));
    EXPECT_FALSE(make()->restore("junk"));
    EXPECT_FALSE(group_stage::make(s, {"auction"}, {count()}).value()->restore(snap));
}

TEST(group, distinct_integers_survive_a_snapshot) {
    // COUNT(DISTINCT) of an integer column counts by value; its snapshot keeps the key bytes.
    auto s = bid_schema();
    auto make = [&] { return group_stage::make(s, {"bidder"}, {count_distinct("auction"), count_distinct("price")}).value(); };
    std::vector<batch> in;
    std::mt19937_64 rng(11);
    for (int i = 0; i < 60; ++i) {
        in.push_back(with_kinds(s, {{value::of(int64_t(rng() % 6) - 3), value::of(fmt::format("b{}", rng() % 2)), value::of(int64_t(rng() % 5))}},
                                {row_kind::insert}));
    }
    for (int i = 0; i < 30; i += 4) {
        auto r = in[size_t(i)].row(0);
        in.push_back(with_kinds(s, {r}, {row_kind::delete_row}));
    }
    auto whole = make();
    std::vector<std::string> all;
    for (auto& b : in) {
        for (auto& r : feed(*whole, b)) all.push_back(r);
    }
    auto first = make();
    std::vector<std::string> split;
    size_t half = in.size() / 2;
    for (size_t i = 0; i < half; ++i) {
        for (auto& r : feed(*first, in[i])) split.push_back(r);
    }
    auto second = make();
    ASSERT_TRUE(second->restore(first->snapshot()));
    EXPECT_EQ(second->snapshot(), first->snapshot());
    for (size_t i = half; i < in.size(); ++i) {
        for (auto& r : feed(*second, in[i])) split.push_back(r);
    }
    EXPECT_EQ(split, all);
}

TEST(group, append_only_input_and_mistakes) {
    auto s = bid_schema();
    group_options append_only;
    append_only.retractions = false;
    auto g = group_stage::make(s, {"auction"}, {min("price")}, append_only).value();
    EXPECT_EQ(feed(*g, make_batch(s, {{value::of(1), value::of("a"), value::of(5)}, {value::of(1), value::of("a"), value::of(3)}})),
              (std::vector<std::string>{"(1, 3)"}));
    EXPECT_TRUE(g->failure().empty());
    feed(*g, with_kinds(s, {{value::of(1), value::of("a"), value::of(3)}}, {row_kind::delete_row}));
    EXPECT_NE(g->failure().find("retraction"), std::string::npos) << g->failure();

    EXPECT_FALSE(group_stage::make(s, {"nope"}, {count()}));
    EXPECT_FALSE(group_stage::make(s, {"auction"}, {}));
    EXPECT_FALSE(group_stage::make(s, {"auction"}, {first_value("price")}));
    EXPECT_FALSE(group_stage::make(s, {"auction"}, {sum("bidder")}));
    EXPECT_FALSE(group_stage::make(s, {"auction"}, {count().as("auction")}));
}

TEST(group, two_levels_of_aggregation_retract_through) {
    // Highest price per auction, then the average of those per category (Nexmark q4's shape).
    auto s = make_schema({{"auction", data_type::int64()}, {"category", data_type::int64()}, {"price", data_type::int64()}});
    std::mt19937_64 rng(11);
    std::vector<batch> in;
    std::map<int64_t, int64_t> category_of, best;
    for (int i = 0; i < 400; ++i) {
        int64_t a = int64_t(rng() % 30);
        if (!category_of.count(a)) category_of[a] = int64_t(rng() % 4);
        int64_t p = int64_t(rng() % 1000);
        best[a] = std::max(best.count(a) ? best[a] : INT64_MIN, p);
        in.push_back(make_batch(s, {{value::of(a), value::of(category_of[a]), value::of(p)}}));
    }
    pipeline p;
    materialized out;
    p.source(s, from_batches(std::move(in)))
      .key_by({"auction", "category"})
      .aggregate({max("price").as("final")}, group_options{false})
      .key_by({"category"})
      .aggregate({avg("final").as("avg_final"), count().as("auctions")})
      .sink([&](const batch& b) { out.apply(b); });
    ASSERT_TRUE(p.run());
    std::map<int64_t, std::pair<double, int64_t>> per_cat;
    for (auto [a, b] : best) {
        per_cat[category_of[a]].first += double(b);
        ++per_cat[category_of[a]].second;
    }
    batch want(make_schema({{"category", data_type::int64()}, {"avg_final", data_type::float64()}, {"auctions", data_type::int64()}}));
    for (auto [c, sn] : per_cat) want.append_row({value::of(c), value::of(sn.first / double(sn.second)), value::of(sn.second)});
    materialized direct;
    direct.apply(want);
    EXPECT_EQ(out.rows(), direct.rows());
}

TEST(group, upsert_drops_update_before_that_an_update_after_of_its_key_follows) {
    auto s = make_schema({{"k", data_type::int64()}, {"v", data_type::int64()}});
    auto u = upsert_stage::make(s, {"k"}).value();
    auto out = feed(*u, with_kinds(s,
                                   {{value::of(1), value::of(1)}, {value::of(1), value::of(2)},  // replaced
                                    {value::of(2), value::of(5)},                                 // lone: a delete
                                    {value::of(3), value::of(1)}, {value::of(4), value::of(1)},  // other key follows
                                    {value::of(5), value::of(0)}, {value::of(6), value::of(6)}},
                                   {row_kind::update_before, row_kind::update_after, row_kind::update_before,
                                    row_kind::update_before, row_kind::update_after, row_kind::delete_row, row_kind::insert}));
    EXPECT_EQ(out, (std::vector<std::string>{"+U(1, 2)", "-D(2, 5)", "-D(3, 1)", "+U(4, 1)", "-D(5, 0)", "+I(6, 6)"}));
    EXPECT_FALSE(upsert_stage::make(s, {}));
    EXPECT_FALSE(upsert_stage::make(s, {"nope"}));
}

} // namespace
} // namespace runnel::engine
