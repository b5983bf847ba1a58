#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <set>

#include "engine/engine.h"

using namespace std::chrono_literals;

namespace runnel::engine {
namespace {

schema_ptr side_schema(const char* key, const char* time, const char* payload) {
    return make_schema({{key, data_type::int64()}, {time, data_type::timestamp()}, {payload, data_type::string()}});
}

struct row {
    int64_t key, ts;
    std::string payload;
};

/// Rows in time order, shuffled within `bound` ms, one per batch.
std::vector<batch> shuffled(schema_ptr s, std::vector<row> rows, int64_t bound, std::mt19937_64& rng) {
    // Arrival order is time plus a random delay under the bound: out of order, never beyond it.
    std::vector<std::pair<int64_t, row>> keyed;
    for (auto& r : rows) keyed.emplace_back(r.ts + (bound > 0 ? int64_t(rng() % uint64_t(bound)) : 0), std::move(r));
    std::stable_sort(keyed.begin(), keyed.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
    rows.clear();
    for (auto& [k, r] : keyed) rows.push_back(std::move(r));
    std::vector<batch> out;
    for (const auto& r : rows) out.push_back(make_batch(s, {{value::of(r.key), value::ts(r.ts), value::of(r.payload)}}));
    return out;
}

std::vector<std::string> run_join(std::vector<batch> left, std::vector<batch> right, join_spec spec, uint64_t* late = nullptr) {
    pipeline p;
    auto l = p.source(side_schema("a_id", "a_ts", "a_name"), from_batches(std::move(left))).watermark("a_ts", 20ms);
    auto r = p.source(side_schema("b_id", "b_ts", "b_name"), from_batches(std::move(right))).watermark("b_ts", 20ms);
    std::vector<std::string> out;
    auto j = l.join(r, std::move(spec));
    j.sink([&](const batch& b) {
        for (size_t i = 0; i < b.num_rows(); ++i) out.push_back(b.row_to_string(i));
    });
    auto ok = p.run();
    EXPECT_TRUE(ok) << (ok ? "" : ok.error().message);
    if (late) *late = p.stage_at(j.stage_id()).metrics().late_rows;
    std::sort(out.begin(), out.end());
    return out;
}

std::string joined(const row& a, const row* b) {
    auto s = make_batch(joined_schema(*side_schema("a_id", "a_ts", "a_name"), *side_schema("b_id", "b_ts", "b_name"), true),
                        {{value::of(a.key), value::ts(a.ts), value::of(a.payload),
                          b ? value::of(b->key) : value::null(data_type::int64()),
                          b ? value::ts(b->ts) : value::null(data_type::timestamp()),
                          b ? value::of(b->payload) : value::null(data_type::string())}});
    return s.row_to_string(0);
}

TEST(join, interval_and_left_interval_joins_equal_a_nested_loop) {
    for (uint64_t seed = 1; seed <= 30; ++seed) {
        std::mt19937_64 rng(seed);
        std::vector<row> as, bs;
        for (int i = 0; i < 60; ++i) as.push_back({int64_t(rng() % 8), int64_t(rng() % 2000), fmt::format("a{}", i)});
        for (int i = 0; i < 200; ++i) bs.push_back({int64_t(rng() % 8), int64_t(rng() % 2000), fmt::format("b{}", i)});
        const int64_t lower = int64_t(rng() % 100) - 50, upper = lower + int64_t(rng() % 200);
        for (auto type : {join_type::inner, join_type::left}) {
            std::vector<std::string> want;
            for (const auto& a : as) {
                bool any = false;
                for (const auto& b : bs) {
                    if (a.key == b.key && b.ts - a.ts >= lower && b.ts - a.ts <= upper) {
                        want.push_back(joined(a, &b));
                        any = true;
                    }
                }
                if (!any && type == join_type::left) want.push_back(joined(a, nullptr));
            }
            std::sort(want.begin(), want.end());
            join_spec spec{{"a_id"}, {"b_id"}, type, join_spec::bounds{"a_ts", "b_ts", std::chrono::milliseconds(lower),
                                                                       std::chrono::milliseconds(upper)}};
            uint64_t late = 0;
            auto got = run_join(shuffled(side_schema("a_id", "a_ts", "a_name"), as, 20, rng),
                                shuffled(side_schema("b_id", "b_ts", "b_name"), bs, 20, rng), spec, &late);
            EXPECT_EQ(late, 0u) << "seed " << seed;
            ASSERT_EQ(got, want) << "seed " << seed << " bounds [" << lower << ", " << upper << "] type " << int(type);
        }
    }
}

TEST(join, regular_join_emits_every_match_once) {
    std::mt19937_64 rng(5);
    std::vector<row> as, bs;
    for (int i = 0; i < 50; ++i) as.push_back({int64_t(rng() % 5), int64_t(i * 10), fmt::format("a{}", i)});
    for (int i = 0; i < 50; ++i) bs.push_back({int64_t(rng() % 5), int64_t(i * 10 + 3), fmt::format("b{}", i)});
    std::vector<std::string> want;
    for (const auto& a : as) {
        for (const auto& b : bs) {
            if (a.key == b.key) want.push_back(joined(a, &b));
        }
    }
    std::sort(want.begin(), want.end());
    auto got = run_join(shuffled(side_schema("a_id", "a_ts", "a_name"), as, 0, rng),
                        shuffled(side_schema("b_id", "b_ts", "b_name"), bs, 0, rng), join_spec{{"a_id"}, {"b_id"}, join_type::inner, std::nullopt});
    // The inner join's right columns are not nullable, but the strings print the same.
    EXPECT_EQ(got, want);
}

TEST(join, regular_join_applies_retractions_of_either_side) {
    auto ls = make_schema({{"k", data_type::int64()}, {"a", data_type::string()}});
    auto rs = make_schema({{"j", data_type::int64()}, {"b", data_type::string()}});
    std::mt19937_64 rng(4);
    std::vector<batch> left, right;
    std::vector<std::pair<int64_t, std::string>> live_l, live_r;
    auto step = [&](std::vector<batch>& in, std::vector<std::pair<int64_t, std::string>>& live, schema_ptr s) {
        if (!live.empty() && rng() % 3 == 0) {
            size_t at = rng() % live.size();
            auto b = make_batch(s, {{value::of(live[at].first), value::of(live[at].second)}});
            b.set_row_kinds({rng() % 2 ? row_kind::delete_row : row_kind::update_before});
            in.push_back(std::move(b));
            live.erase(live.begin() + long(at));
            return;
        }
        std::pair<int64_t, std::string> r{int64_t(rng() % 5), fmt::format("v{}", rng() % 4)};
        in.push_back(make_batch(s, {{value::of(r.first), value::of(r.second)}}));
        live.push_back(r);
    };
    for (int i = 0; i < 300; ++i) {
        step(left, live_l, ls);
        step(right, live_r, rs);
    }
    pipeline p;
    auto l = p.source(ls, from_batches(std::move(left)));
    auto r = p.source(rs, from_batches(std::move(right)));
    std::multiset<std::string> table;
    l.join(r, join_spec{{"k"}, {"j"}, join_type::inner, std::nullopt}).sink([&](const batch& b) {
        for (size_t i = 0; i < b.num_rows(); ++i) {
            auto text = make_batch(b.schema_of(), {b.row(i)}).row_to_string(0);
            if (b.kind(i) == row_kind::insert) {
                table.insert(text);
            } else {
                ASSERT_EQ(b.kind(i), row_kind::delete_row);
                auto it = table.find(text);
                ASSERT_NE(it, table.end()) << text;
                table.erase(it);
            }
        }
    });
    ASSERT_TRUE(p.run());
    std::multiset<std::string> want;
    auto js = joined_schema(*ls, *rs, false);
    for (auto& [k, a] : live_l) {
        for (auto& [j, b] : live_r) {
            if (k == j) want.insert(make_batch(js, {{value::of(k), value::of(a), value::of(j), value::of(b)}}).row_to_string(0));
        }
    }
    EXPECT_EQ(table, want);
}

TEST(join, interval_join_state_is_dropped_behind_the_watermark) {
    std::vector<batch> as, bs;
    for (int i = 0; i < 5000; ++i) {
        as.push_back(make_batch(side_schema("a_id", "a_ts", "a_name"), {{value::of(int64_t(i % 10)), value::ts(i), value::of("a")}}));
        bs.push_back(make_batch(side_schema("b_id", "b_ts", "b_name"), {{value::of(int64_t(i % 10)), value::ts(i), value::of("b")}}));
    }
    pipeline p;
    auto l = p.source(side_schema("a_id", "a_ts", "a_name"), from_batches(std::move(as))).watermark("a_ts", 0ms);
    auto r = p.source(side_schema("b_id", "b_ts", "b_name"), from_batches(std::move(bs))).watermark("b_ts", 0ms);
    auto j = l.join(r, join_spec{{"a_id"}, {"b_id"}, join_type::inner, join_spec::bounds{"a_ts", "b_ts", 0ms, 10ms}});
    size_t rows = 0, max_held = 0;
    j.sink([&](const batch& b) {
        rows += b.num_rows();
        max_held = std::max(max_held, static_cast<join_stage&>(p.stage_at(j.stage_id())).held_rows());
    });
    ASSERT_TRUE(p.run());
    EXPECT_EQ(rows, 5000u + 4990u); // same key every 10 ms: d = 0 and d = 10
    EXPECT_LT(max_held, 200u);
}

TEST(join, lookup_join_sees_the_table_as_it_is_and_ignores_its_watermark) {
    auto table_schema = make_schema({{"id", data_type::int64()}, {"name", data_type::string()}});
    auto stream_schema = make_schema({{"ref", data_type::int64()}, {"ts", data_type::timestamp()}});
    // The table arrives first (a compacted topic read from the start), with an update and a delete.
    batch table = make_batch(table_schema, {{value::of(int64_t(1)), value::of("one")},
                                            {value::of(int64_t(2)), value::of("two")},
                                            {value::of(int64_t(1)), value::of("uno")},
                                            {value::of(int64_t(3)), value::of("three")}});
    batch removal = make_batch(table_schema, {{value::of(int64_t(3)), value::of("three")}});
    removal.set_row_kinds({row_kind::delete_row});
    std::deque<batch> tq{table, removal};
    std::vector<batch> events = {make_batch(stream_schema, {{value::of(int64_t(1)), value::ts(5)},
                                                            {value::of(int64_t(2)), value::ts(6)},
                                                            {value::of(int64_t(3)), value::ts(7)},
                                                            {value::of(int64_t(9)), value::ts(8)}})};
    for (auto type : {join_type::inner, join_type::left}) {
        pipeline p;
        auto tq2 = tq;
        bool stream_started = false;
        auto t = p.source(table_schema, [&]() {
            if (!tq2.empty()) {
                auto b = std::move(tq2.front());
                tq2.pop_front();
                return source_poll::data(std::move(b));
            }
            return source_poll::idle(); // a table never ends
        });
        auto s = p.source(stream_schema, [&, ev = events]() mutable {
            if (!tq2.empty()) return source_poll::idle(); // the table first
            if (!stream_started) {
                stream_started = true;
                return source_poll::data(ev[0]);
            }
            return source_poll::end();
        });
        std::vector<std::string> rows, counts;
        auto j = s.watermark("ts", 0ms).lookup_join(t, {"ref"}, {"id"}, type);
        j.sink([&](const batch& b) {
            for (size_t i = 0; i < b.num_rows(); ++i) rows.push_back(b.row_to_string(i));
        });
        // A window after the join fires although the table has no watermark.
        j.window(tumble(100ms)).aggregate({count()}).sink([&](const batch& b) {
            for (size_t i = 0; i < b.num_rows(); ++i) counts.push_back(b.row_to_string(i));
        });
        for (int i = 0; i < 100; ++i) ASSERT_TRUE(p.run_once());
        if (type == join_type::inner) {
            EXPECT_EQ(rows, (std::vector<std::string>{"(1, 5, 1, 'uno')", "(2, 6, 2, 'two')"}));
            EXPECT_EQ(counts, (std::vector<std::string>{"(0, 100, 2)"}));
        } else {
            EXPECT_EQ(rows, (std::vector<std::string>{"(1, 5, 1, 'uno')", "(2, 6, 2, 'two')", "(3, 7, NULL, NULL)",
                                                      "(9, 8, NULL, NULL)"}));
        }
    }
}

TEST(join, lookup_join_of_a_bounded_table_reads_it_whole_first) {
    auto table_schema = make_schema({{"id", data_type::int64()}, {"name", data_type::string()}});
    auto stream_schema = make_schema({{"ref", data_type::int64()}, {"ts", data_type::timestamp()}});
    for (bool table_first : {false, true}) {
        pipeline p;
        // The stream is ready at once; the table comes one row per poll, with idle polls between.
        std::vector<batch> events;
        for (int i = 0; i < 40; ++i) events.push_back(make_batch(stream_schema, {{value::of(int64_t(i % 10)), value::ts(i)}}));
        auto s = p.source(stream_schema, from_batches(std::move(events)));
        int polls = 0;
        auto t = p.source(table_schema, [&]() {
            ++polls;
            if (polls > 20) return source_poll::end();
            if (polls % 2) return source_poll::idle();
            int64_t id = polls / 2 - 1;
            return source_poll::data(make_batch(table_schema, {{value::of(id), value::of(fmt::format("n{}", id))}}));
        });
        size_t rows = 0;
        auto j = s.lookup_join(t, {"ref"}, {"id"}, join_type::inner, table_first);
        j.sink([&](const batch& b) { rows += b.num_rows(); });
        ASSERT_TRUE(p.run());
        if (table_first) {
            EXPECT_EQ(rows, 40u); // every stream row saw all ten table rows
            EXPECT_EQ(static_cast<lookup_join_stage&>(p.stage_at(j.stage_id())).table_rows(), 10u);
        } else {
            EXPECT_LT(rows, 40u); // early stream rows found part of the table
        }
    }
}

TEST(join, lookup_join_keeps_the_latest_row_per_key_through_compaction_and_snapshots) {
    auto table_schema = make_schema({{"id", data_type::int64()}, {"name", data_type::string()}});
    auto stream_schema = make_schema({{"ref", data_type::int64()}, {"ts", data_type::timestamp()}});
    auto a = lookup_join_stage::make(stream_schema, table_schema, {"ref"}, {"id"}, join_type::left).value();
    stage_output out;
    // 3000 updates of ten keys (compacted on the way), then key 3 deleted.
    for (int i = 0; i < 3000; ++i) {
        a->on_batch(1, make_batch(table_schema, {{value::of(int64_t(i % 10)), value::of(fmt::format("v{}", i))}}), out);
    }
    auto del = make_batch(table_schema, {{value::of(int64_t(3)), value::of("v2993")}});
    del.set_row_kinds({row_kind::delete_row});
    a->on_batch(1, del, out);
    EXPECT_EQ(a->table_rows(), 9u);
    auto probe = make_batch(stream_schema, {{value::of(int64_t(2)), value::ts(1)},
                                            {value::of(int64_t(3)), value::ts(2)},
                                            {value::null(data_type::int64()), value::ts(3)},
                                            {value::of(int64_t(9)), value::ts(4)}});
    const std::vector<std::string> want = {"(2, 1, 2, 'v2992')", "(3, 2, NULL, NULL)", "(NULL, 3, NULL, NULL)",
                                           "(9, 4, 9, 'v2999')"};
    auto rows_of = [](stage_output& o) {
        std::vector<std::string> rows;
        for (auto& [port, m] : o.pending()) {
            if (auto* x = std::get_if<batch>(&m)) {
                for (size_t i = 0; i < x->num_rows(); ++i) rows.push_back(x->row_to_string(i));
            }
        }
        o.pending().clear();
        return rows;
    };
    a->on_batch(0, probe, out);
    EXPECT_EQ(rows_of(out), want);
    auto b = lookup_join_stage::make(stream_schema, table_schema, {"ref"}, {"id"}, join_type::left).value();
    auto bytes = a->snapshot();
    ASSERT_TRUE(b->restore(bytes));
    EXPECT_EQ(b->table_rows(), 9u);
    b->on_batch(0, probe, out);
    EXPECT_EQ(rows_of(out), want);
    EXPECT_FALSE(b->restore(bytes.substr(0, bytes.size() - 2)));
}

/// A versioned table's rows: key, time, payload; `deleted` marks a delete row.
struct versioned_row {
    int64_t key, ts;
    std::string payload;
    bool deleted = false;
};

TEST(join, temporal_join_equals_the_version_valid_at_each_time) {
    for (uint64_t seed = 1; seed <= 30; ++seed) {
        std::mt19937_64 rng(seed);
        std::vector<row> as;
        std::vector<versioned_row> bs;
        for (int i = 0; i < 80; ++i) as.push_back({int64_t(rng() % 6), int64_t(rng() % 2000), fmt::format("a{}", i)});
        // Distinct version times, so the version valid at a time is unique.
        std::vector<int64_t> times(2000);
        for (int64_t i = 0; i < 2000; ++i) times[size_t(i)] = i;
        std::shuffle(times.begin(), times.end(), rng);
        for (int i = 0; i < 150; ++i) {
            bool del = rng() % 8 == 0;
            bs.push_back({int64_t(rng() % 5), times[size_t(i)], del ? "del" : fmt::format("v{}", i), del});
        }
        for (auto type : {join_type::inner, join_type::left}) {
            std::vector<std::string> want;
            for (const auto& a : as) {
                const versioned_row* best = nullptr;
                for (const auto& b : bs) {
                    if (b.key == a.key && b.ts <= a.ts && (!best || b.ts > best->ts)) best = &b;
                }
                if (best && best->deleted) best = nullptr;
                row br = best ? row{best->key, best->ts, best->payload} : row{};
                if (best) want.push_back(joined(a, &br));
                else if (type == join_type::left) want.push_back(joined(a, nullptr));
            }
            std::sort(want.begin(), want.end());
            std::vector<row> plain;
            for (const auto& b : bs) plain.push_back({b.key, b.ts, b.payload});
            auto left = shuffled(side_schema("a_id", "a_ts", "a_name"), as, 20, rng);
            auto right = shuffled(side_schema("b_id", "b_ts", "b_name"), plain, 20, rng);
            for (auto& b : right) {
                if (b.col(2).string_at(0) == "del") b.set_row_kinds({row_kind::delete_row});
            }
            pipeline p;
            auto l = p.source(side_schema("a_id", "a_ts", "a_name"), from_batches(std::move(left))).watermark("a_ts", 20ms);
            auto r = p.source(side_schema("b_id", "b_ts", "b_name"), from_batches(std::move(right))).watermark("b_ts", 20ms);
            auto j = l.temporal_join(r, {"a_id"}, {"b_id"}, type);
            std::vector<std::string> got;
            size_t max_versions = 0;
            int64_t last_wm = INT64_MIN;
            bool late_output = false;
            j.sink(
                [&](const batch& b) {
                    auto& st = static_cast<temporal_join_stage&>(p.stage_at(j.stage_id()));
                    max_versions = std::max(max_versions, st.versions_held());
                    for (size_t i = 0; i < b.num_rows(); ++i) {
                        got.push_back(b.row_to_string(i));
                        late_output = late_output || b.col(1).int64_at(i) <= last_wm;
                    }
                },
                [&](model::event_time wm) { last_wm = wm.value(); });
            ASSERT_TRUE(p.run());
            std::sort(got.begin(), got.end());
            ASSERT_EQ(got, want) << "seed " << seed << " type " << int(type);
            EXPECT_EQ(p.stage_at(j.stage_id()).metrics().late_rows, 0u) << "seed " << seed;
            EXPECT_FALSE(late_output) << "seed " << seed; // released rows are ahead of the watermark
            EXPECT_LT(max_versions, 60u) << "seed " << seed; // old versions are dropped as the watermark passes
            EXPECT_EQ(static_cast<temporal_join_stage&>(p.stage_at(j.stage_id())).waiting_rows(), 0u);
        }
    }
}

TEST(join, temporal_join_releases_rows_in_time_order_and_keeps_its_state) {
    auto rates = side_schema("cur", "rts", "rate");
    auto orders = side_schema("oc", "ots", "oid");
    auto make = [&] { return temporal_join_stage::make(orders, rates, {"oc"}, {"cur"}, "ots", "rts", join_type::left).value(); };
    auto a = make();
    stage_output out;
    a->on_batch(1, make_batch(rates, {{value::of(int64_t(1)), value::ts(0), value::of("r0")},
                                      {value::of(int64_t(1)), value::ts(10), value::of("r10")}}), out);
    a->on_batch(0, make_batch(orders, {{value::of(int64_t(1)), value::ts(12), value::of("late-ish")},
                                       {value::of(int64_t(1)), value::ts(5), value::of("early")},
                                       {value::of(int64_t(2)), value::ts(7), value::of("nokey")}}), out);
    EXPECT_TRUE(out.pending().empty()); // nothing before the watermark
    auto bytes = a->snapshot();
    auto b = make();
    ASSERT_TRUE(b->restore(bytes));
    EXPECT_EQ(b->waiting_rows(), 3u);
    EXPECT_EQ(b->versions_held(), 2u);
    // A delete at 11 ends the key: the row at 12 finds no rate.
    auto del = make_batch(rates, {{value::of(int64_t(1)), value::ts(11), value::of("r10")}});
    del.set_row_kinds({row_kind::delete_row});
    b->on_batch(1, del, out);
    b->on_watermark(model::event_time(20), out);
    std::vector<std::string> rows;
    for (auto& [port, m] : out.pending()) {
        if (auto* x = std::get_if<batch>(&m)) {
            for (size_t i = 0; i < x->num_rows(); ++i) rows.push_back(x->row_to_string(i));
        }
    }
    EXPECT_EQ(rows, (std::vector<std::string>{"(1, 5, 'early', 1, 0, 'r0')", "(2, 7, 'nokey', NULL, NULL, NULL)",
                                              "(1, 12, 'late-ish', NULL, NULL, NULL)"}));
    EXPECT_EQ(b->waiting_rows(), 0u);
    EXPECT_EQ(b->versions_held(), 0u); // deleted before the watermark: nothing can join it
    EXPECT_FALSE(b->restore(bytes.substr(0, bytes.size() - 3)));
}

TEST(join, snapshot_restore_keeps_both_sides) {
    auto spec = join_spec{{"a_id"}, {"b_id"}, join_type::left, join_spec::bounds{"a_ts", "b_ts", -5ms, 5ms}};
    auto a = join_stage::make(side_schema("a_id", "a_ts", "a_name"), side_schema("b_id", "b_ts", "b_name"), spec).value();
    stage_output out;
    a->on_batch(0, make_batch(side_schema("a_id", "a_ts", "a_name"), {{value::of(int64_t(1)), value::ts(10), value::of("x")}}), out);
    a->on_batch(1, make_batch(side_schema("b_id", "b_ts", "b_name"), {{value::of(int64_t(2)), value::ts(11), value::of("y")}}), out);
    auto bytes = a->snapshot();
    auto b = join_stage::make(side_schema("a_id", "a_ts", "a_name"), side_schema("b_id", "b_ts", "b_name"), spec).value();
    ASSERT_TRUE(b->restore(bytes));
    EXPECT_EQ(b->held_rows(), 2u);
    stage_output o2;
    b->on_batch(1, make_batch(side_schema("b_id", "b_ts", "b_name"), {{value::of(int64_t(1)), value::ts(12), value::of("z")}}), o2);
    ASSERT_EQ(o2.pending().size(), 1u);
    EXPECT_EQ(std::get<batch>(o2.pending()[0].second).row_to_string(0), "(1, 10, 'x', 1, 12, 'z')");
    EXPECT_FALSE(b->restore(bytes.substr(0, bytes.size() - 3)));
}

TEST(join, mistakes_are_reported_with_the_column) {
    pipeline p;
    auto l = p.source(side_schema("a_id", "a_ts", "a_name"), from_batches({}));
    auto r = p.source(side_schema("b_id", "b_ts", "b_name"), from_batches({}));
    l.join(r, join_spec{{"a_name"}, {"b_id"}, join_type::inner, std::nullopt}).sink([](const batch&) {});
    auto c = p.check();
    ASSERT_FALSE(c);
    EXPECT_EQ(c.error().message, "join: key 'a_name' is string but 'b_id' is bigint");
    EXPECT_FALSE(join_stage::make(side_schema("a", "t", "x"), side_schema("b", "u", "y"), join_spec{{"a"}, {"b"}, join_type::left, std::nullopt}));
    EXPECT_FALSE(join_stage::make(side_schema("a", "t", "x"), side_schema("b", "u", "y"), join_spec{{"nope"}, {"b"}, join_type::inner, std::nullopt}));
}

} // namespace
} // namespace runnel::engine
