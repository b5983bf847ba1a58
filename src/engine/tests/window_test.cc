#include <gtest/gtest.h>

#include <algorithm>
#include <deque>
#include <random>

#include "engine/engine.h"

using namespace std::chrono_literals;

namespace runnel::engine {
namespace {

schema_ptr events_schema() {
    return make_schema({{"key", data_type::string()}, {"ts", data_type::int64()}, {"v", data_type::int64()}});
}

struct ev {
    std::string key;
    int64_t ts;
    int64_t v = 1;
};

batch events(const std::vector<ev>& es) {
    batch b(events_schema());
    for (const auto& e : es) b.append_row({value::of(e.key), value::of(e.ts), value::of(e.v)});
    return b;
}

struct run_result {
    std::vector<std::string> rows;
    std::vector<std::string> late;
    std::vector<int64_t> watermarks;
    uint64_t late_count = 0;
};

/// One batch per event: source → watermark(ts, bound) → key_by(key) → window → sink.
run_result run_window(const std::vector<ev>& es, window_spec w, std::vector<aggregate_spec> aggs,
                      std::chrono::milliseconds bound = 0ms, window_options opts = {}) {
    std::vector<batch> bs;
    for (const auto& e : es) bs.push_back(events({e}));
    pipeline p;
    run_result r;
    auto win = p.source(events_schema(), from_batches(std::move(bs)))
                 .watermark("ts", bound)
                 .key_by({"key"})
                 .window(w, opts)
                 .aggregate(std::move(aggs));
    win.sink([&](const batch& b) {
        for (size_t i = 0; i < b.num_rows(); ++i) r.rows.push_back(b.row_to_string(i));
    });
    win.late_rows().sink([&](const batch& b) {
        for (size_t i = 0; i < b.num_rows(); ++i) r.late.push_back(b.row_to_string(i));
    });
    auto ok = p.run();
    EXPECT_TRUE(ok) << (ok ? "" : ok.error().message);
    r.late_count = p.stage_at(win.stage_id()).metrics().late_rows;
    std::sort(r.rows.begin(), r.rows.end());
    return r;
}

std::vector<std::string> sorted(std::vector<std::string> v) {
    std::sort(v.begin(), v.end());
    return v;
}

TEST(window, tumbling_count_and_sum_by_key) {
    auto r = run_window({{"a", 1, 10}, {"a", 5, 20}, {"b", 7, 1}, {"a", 12, 5}, {"b", 25, 3}}, tumble(10ms),
                        {count(), sum("v")});
    EXPECT_EQ(r.rows, sorted({"(0, 10, 'a', 2, 30)", "(0, 10, 'b', 1, 1)", "(10, 20, 'a', 1, 5)",
                              "(20, 30, 'b', 1, 3)"}));
    EXPECT_TRUE(r.late.empty());
}

TEST(window, hopping_windows_assembled_from_panes) {
    auto r = run_window({{"a", 1, 1}, {"a", 6, 2}, {"a", 12, 4}}, hop(10ms, 5ms), {count(), sum("v")});
    EXPECT_EQ(r.rows, sorted({"(-5, 5, 'a', 1, 1)", "(0, 10, 'a', 2, 3)", "(5, 15, 'a', 2, 6)",
                              "(10, 20, 'a', 1, 4)"}));
}

TEST(window, hopping_with_slide_not_dividing_size_uses_gcd_panes) {
    // size 6, slide 4: panes of 2; windows [-4,2) [0,6) [4,10) [8,14)
    auto r = run_window({{"a", 1}, {"a", 5}, {"a", 9}}, hop(6ms, 4ms), {count()});
    EXPECT_EQ(r.rows, sorted({"(-4, 2, 'a', 1)", "(0, 6, 'a', 2)", "(4, 10, 'a', 2)", "(8, 14, 'a', 1)"}));
}

TEST(window, cumulative_windows_grow_then_reset) {
    auto r = run_window({{"a", 1, 1}, {"a", 6, 2}, {"a", 12, 4}}, cumulate(5ms, 10ms), {count(), sum("v")});
    EXPECT_EQ(r.rows, sorted({"(0, 5, 'a', 1, 1)", "(0, 10, 'a', 2, 3)", "(10, 15, 'a', 1, 4)",
                              "(10, 20, 'a', 1, 4)"}));
}

TEST(window, session_per_key_and_merge_when_a_row_bridges_two) {
    // a: [1,8) from 1 and 3, [10,15) from 10; then 7 bridges them into [1,15).
    auto r = run_window({{"a", 1}, {"a", 3}, {"a", 10}, {"b", 2}, {"a", 7}}, session(5ms), {count(), min("ts"), max("ts")},
                        10ms);
    EXPECT_EQ(r.rows, sorted({"(1, 15, 'a', 4, 1, 10)", "(2, 7, 'b', 1, 2, 2)"}));
}

TEST(window, sessions_close_on_watermark_and_reopen) {
    auto r = run_window({{"a", 1}, {"a", 2}, {"a", 20}, {"a", 22}}, session(5ms), {count()});
    EXPECT_EQ(r.rows, sorted({"(1, 7, 'a', 2)", "(20, 27, 'a', 2)"}));
}

TEST(window, global_window_without_key) {
    std::vector<batch> bs{events({{"a", 1}, {"b", 2}, {"c", 11}})};
    pipeline p;
    std::vector<std::string> rows;
    p.source(events_schema(), from_batches(std::move(bs)))
      .watermark("ts", 0ms)
      .window(tumble(10ms))
      .aggregate({count(), count_distinct("key")})
      .sink([&](const batch& b) {
          for (size_t i = 0; i < b.num_rows(); ++i) rows.push_back(b.row_to_string(i));
      });
    ASSERT_TRUE(p.run());
    EXPECT_EQ(sorted(rows), sorted({"(0, 10, 2, 2)", "(10, 20, 1, 1)"}));
}

TEST(window, late_rows_go_to_the_side_output_with_a_reason) {
    auto r = run_window({{"a", 1}, {"a", 15}, {"a", 3}, {"a", 12}}, tumble(10ms), {count()});
    EXPECT_EQ(r.rows, sorted({"(0, 10, 'a', 1)", "(10, 20, 'a', 2)"}));
    ASSERT_EQ(r.late.size(), 1u);
    EXPECT_NE(r.late[0].find("'a', 3, 1, 'late: last window ending 10 closed at watermark 14"), std::string::npos)
      << r.late[0];
    EXPECT_EQ(r.late_count, 1u);
}

TEST(window, allowed_lateness_keeps_windows_open) {
    window_options o;
    o.allowed_lateness = 5ms;
    auto r = run_window({{"a", 1}, {"a", 13}, {"a", 3}, {"a", 20}, {"a", 2}}, tumble(10ms), {count()}, 0ms, o);
    // 3 arrives at watermark 12 (< 9 + 5): counted. 2 arrives at watermark 19: window [0,10) fired at 14.
    EXPECT_EQ(r.rows, sorted({"(0, 10, 'a', 2)", "(10, 20, 'a', 1)", "(20, 30, 'a', 1)"}));
    EXPECT_EQ(r.late.size(), 1u);
}

TEST(window, late_session_row_that_cannot_join_an_open_session) {
    auto r = run_window({{"a", 1}, {"a", 30}, {"a", 2}, {"a", 28}}, session(5ms), {count()});
    // 2 arrives at watermark 29: its session [2,7) closed long ago. 28 joins the open [30,35).
    EXPECT_EQ(r.rows, sorted({"(1, 6, 'a', 1)", "(28, 35, 'a', 2)"}));
    EXPECT_EQ(r.late.size(), 1u);
}

TEST(window, null_event_time_is_routed_aside) {
    batch b(events_schema());
    b.append_row({value::of("a"), value::null(data_type::int64()), value::of(1)});
    b.append_row({value::of("a"), value::of(4), value::of(1)});
    pipeline p;
    std::vector<std::string> late, rows;
    auto w = p.source(events_schema(), from_batches({std::move(b)})).watermark("ts", 0ms).key_by({"key"})
               .window(tumble(10ms)).aggregate({count()});
    w.sink([&](const batch& x) { rows.push_back(x.row_to_string(0)); });
    w.late_rows().sink([&](const batch& x) { late.push_back(x.row_to_string(0)); });
    ASSERT_TRUE(p.run());
    EXPECT_EQ(rows, std::vector<std::string>{"(0, 10, 'a', 1)"});
    ASSERT_EQ(late.size(), 1u);
    EXPECT_NE(late[0].find("event time is NULL"), std::string::npos);
}

TEST(window, extreme_event_times_are_routed_aside_not_overflowed) {
    auto r = run_window({{"a", INT64_MAX, 1}, {"a", INT64_MIN, 1}, {"a", 5, 1}, {"a", INT64_MAX - 1, 1}}, hop(10ms, 3ms),
                        {count()}, 1000ms);
    EXPECT_EQ(r.late.size(), 3u);
    EXPECT_EQ(r.rows.size(), 3u); // the windows holding 5 start at -3, 0 and 3
    for (const auto& l : r.late) EXPECT_NE(l.find("out of range"), std::string::npos) << l;
    window_options o;
    o.allowed_lateness = std::chrono::milliseconds(INT64_MAX);
    EXPECT_FALSE(window_stage::make(events_schema(), "ts", {}, tumble(1ms), {count()}, o));
}

TEST(window, every_aggregate) {
    auto s = make_schema({{"k", data_type::int64()}, {"ts", data_type::timestamp()}, {"x", data_type::float64()},
                          {"s", data_type::string()}});
    batch b(s);
    auto row = [&](int64_t ts, std::optional<double> x, const char* str) {
        b.append_row({value::of(1), value::ts(ts), x ? value::of(*x) : value::null(data_type::float64()),
                      str ? value::of(str) : value::null(data_type::string())});
    };
    row(5, 3.0, "m");
    row(1, 1.0, "z");
    row(9, std::nullopt, "a");
    row(3, 2.0, nullptr);
    row(7, 2.0, "m");
    pipeline p;
    std::vector<std::string> out;
    p.source(s, from_batches({std::move(b)}))
      .watermark("ts", 100ms)
      .key_by({"k"})
      .window(tumble(10ms))
      .aggregate({count(), count("x"), sum("x"), min("s"), max("s"), avg("x"), count_distinct("x"),
                  first_value("s"), last_value("s"), percentile("x", 0.5).as("median"), max("x")})
      .sink([&](const batch& x) {
          for (size_t i = 0; i < x.num_rows(); ++i) out.push_back(x.row_to_string(i));
      });
    auto ok = p.run();
    ASSERT_TRUE(ok) << ok.error().message;
    // first_value is the value at the smallest event time (ts 1: 'z'), last at the largest (ts 9: 'a').
    EXPECT_EQ(out, std::vector<std::string>{"(0, 10, 1, 5, 4, 8, 'a', 'z', 2, 3, 'z', 'a', 2, 3)"});
}

TEST(window, aggregate_type_errors_name_the_column) {
    pipeline p;
    p.source(events_schema(), from_batches({})).watermark("ts", 0ms).key_by({"key"}).window(tumble(1s))
      .aggregate({sum("key")}).sink([](const batch&) {});
    auto r = p.run();
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, errc::type_mismatch);
    EXPECT_NE(r.error().message.find("column 'key' is string"), std::string::npos) << r.error().message;

    pipeline q;
    q.source(events_schema(), from_batches({})).key_by({"key"}).window(tumble(1s)).aggregate({count()})
      .sink([](const batch&) {});
    EXPECT_FALSE(q.check());
    pipeline h;
    h.source(events_schema(), from_batches({})).watermark("ts", 0ms).window(hop(1s, 2s)).aggregate({count()})
      .sink([](const batch&) {});
    EXPECT_EQ(h.check().error().code, errc::invalid_argument);
}

// ---- snapshot / restore ----

std::vector<std::string> drive(window_stage& w, const std::vector<batch>& bs, size_t from, size_t to,
                               const std::vector<int64_t>& wms) {
    std::vector<std::string> rows;
    stage_output out;
    auto collect = [&]() {
        for (auto& [port, m] : out.pending()) {
            if (port == 0) {
                if (auto* b = std::get_if<batch>(&m)) {
                    for (size_t i = 0; i < b->num_rows(); ++i) rows.push_back(b->row_to_string(i));
                }
            }
        }
        out.pending().clear();
    };
    for (size_t i = from; i < to; ++i) {
        w.on_batch(0, bs[i], out);
        w.on_watermark(model::event_time(wms[i]), out);
        collect();
    }
    return rows;
}

TEST(window, early_results_are_an_upsert_changelog_then_the_final_result) {
    // A source the test feeds by hand and a clock it moves by hand.
    int64_t now = 1'000'000;
    std::deque<batch> feed;
    bool done = false;
    pipeline_options po;
    po.clock = [&] { return model::processing_time(now); };
    pipeline p(po);
    std::vector<std::string> rows;
    window_options wo;
    wo.early_fire = 100ms;
    auto win = p.source(events_schema(),
                        [&]() -> source_poll {
                            if (!feed.empty()) {
                                auto b = std::move(feed.front());
                                feed.pop_front();
                                return source_poll::data(std::move(b));
                            }
                            return done ? source_poll::end() : source_poll::idle();
                        })
                 .watermark("ts", 0ms)
                 .key_by({"key"})
                 .window(tumble(1000ms), wo)
                 .aggregate({count()});
    win.sink([&](const batch& b) {
        for (size_t i = 0; i < b.num_rows(); ++i) rows.push_back(b.row_to_string(i));
    });
    auto drain = [&] {
        for (int i = 0; i < 20; ++i) ASSERT_TRUE(p.run_once());
    };
    feed.push_back(events({{"a", 100}, {"a", 200}, {"b", 300}}));
    drain();
    EXPECT_EQ(sorted(rows), (std::vector<std::string>{"+U(0, 1000, 'a', 2)", "+U(0, 1000, 'b', 1)"}));
    rows.clear();
    // A new row within the interval: nothing yet; once the interval has passed, the window
    // that changed sends its result again.
    feed.push_back(events({{"a", 400}}));
    drain();
    EXPECT_TRUE(rows.empty());
    now += 100;
    drain();
    EXPECT_EQ(sorted(rows), (std::vector<std::string>{"+U(0, 1000, 'a', 3)", "+U(0, 1000, 'b', 1)"}));
    rows.clear();
    // The watermark closes [0, 1000): its final result updates the early one; [1000, 2000),
    // which never sent an early result, closes with an insert.
    feed.push_back(events({{"c", 1500}}));
    feed.push_back(events({{"c", 2500}}));
    drain();
    EXPECT_EQ(sorted(rows), (std::vector<std::string>{"(1000, 2000, 'c', 1)", "+U(0, 1000, 'a', 3)",
                                                      "+U(0, 1000, 'b', 1)"}));
    rows.clear();
    now += 150;
    drain();
    EXPECT_EQ(rows, (std::vector<std::string>{"+U(2000, 3000, 'c', 1)"}));
    rows.clear();
    // Nothing changed: no update, however much time passes.
    now += 150;
    drain();
    EXPECT_TRUE(rows.empty());
    done = true;
    ASSERT_TRUE(p.run());
    EXPECT_EQ(rows, (std::vector<std::string>{"+U(2000, 3000, 'c', 1)"})) << "the final result of a window that "
                                                                            "sent an early one";
}

TEST(window, early_results_are_refused_for_sessions) {
    window_options wo;
    wo.early_fire = 100ms;
    auto w = window_stage::make(events_schema(), "ts", {"key"}, session(1000ms), {count()}, wo);
    ASSERT_FALSE(w);
    EXPECT_NE(w.error().message.find("early results"), std::string::npos);
}

TEST(window, snapshot_restore_mid_stream_gives_the_same_results) {
    std::mt19937_64 rng(7);
    auto s = events_schema();
    std::vector<batch> bs;
    std::vector<int64_t> wms;
    int64_t t = 0;
    for (int i = 0; i < 200; ++i) {
        batch b(s);
        for (int j = 0; j < 20; ++j) {
            int64_t ts = t + int64_t(rng() % 50);
            b.append_row({value::of("k" + std::to_string(rng() % 7)), value::of(ts), value::of(int64_t(rng() % 100))});
        }
        t += 13;
        bs.push_back(std::move(b));
        wms.push_back(t - 60);
    }
    std::vector<aggregate_spec> aggs{count(), sum("v"), min("key"), avg("v"), count_distinct("v"),
                                     first_value("v"), last_value("v"), percentile("v", 0.9)};
    for (auto w : {tumble(100ms), hop(100ms, 20ms), session(15ms), cumulate(25ms, 100ms)}) {
        auto mk = [&]() { return window_stage::make(s, "ts", {"key"}, w, aggs).value(); };
        auto whole = mk();
        auto expected = drive(*whole, bs, 0, bs.size(), wms);
        stage_output end;
        whole->on_watermark(end_of_time, end);

        auto first = mk();
        auto got = drive(*first, bs, 0, 100, wms);
        std::string snap = first->snapshot();
        first.reset();
        auto second = mk();
        ASSERT_TRUE(second->restore(snap));
        auto rest = drive(*second, bs, 100, bs.size(), wms);
        got.insert(got.end(), rest.begin(), rest.end());
        EXPECT_FALSE(expected.empty());
        EXPECT_EQ(got.size(), expected.size()) << int(w.kind);
        EXPECT_TRUE(got == expected) << int(w.kind);
    }
}

TEST(window, restore_rejects_damaged_or_foreign_snapshots) {
    auto s = events_schema();
    auto a = window_stage::make(s, "ts", {"key"}, tumble(10ms), {count(), sum("v")}).value();
    stage_output out;
    a->on_batch(0, events({{"a", 1, 2}, {"b", 3, 4}}), out);
    std::string snap = a->snapshot();
    auto b = window_stage::make(s, "ts", {"key"}, tumble(10ms), {count(), sum("v")}).value();
    for (size_t cut = 0; cut < snap.size(); ++cut) {
        auto r = b->restore(snap.substr(0, cut));
        ASSERT_FALSE(r) << cut;
        EXPECT_EQ(r.error().code, errc::corrupt_state);
    }
    auto other = window_stage::make(s, "ts", {"key"}, tumble(20ms), {count(), sum("v")}).value();
    EXPECT_FALSE(other->restore(snap));
    std::mt19937 rng(1);
    for (int i = 0; i < 2000; ++i) {
        std::string d = snap;
        d[rng() % d.size()] = char(rng());
        (void)b->restore(d); // must not crash
    }
    ASSERT_TRUE(b->restore(snap));
}

// ---- percentile sketch ----

TEST(sketch, rank_error_within_documented_bound) {
    for (uint64_t seed = 1; seed <= 10; ++seed) {
        std::mt19937_64 rng(seed);
        std::vector<double> xs;
        size_t n = 20000 + seed * 9000;
        quantile_sketch sk;
        for (size_t i = 0; i < n; ++i) {
            double x;
            switch (seed % 3) {
            case 0: x = std::uniform_real_distribution<double>(0, 1000)(rng); break;
            case 1: x = std::exponential_distribution<double>(0.01)(rng); break;
            default: x = double(i); break; // sorted input, the hard case for compactors
            }
            xs.push_back(x);
            sk.add(x);
        }
        std::sort(xs.begin(), xs.end());
        EXPECT_LT(sk.retained(), 800u);
        for (double q : {0.0, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99, 1.0}) {
            double v = sk.quantile(q);
            double lo = double(std::lower_bound(xs.begin(), xs.end(), v) - xs.begin());
            double hi = double(std::upper_bound(xs.begin(), xs.end(), v) - xs.begin());
            double target = q * double(n);
            double err = target < lo ? lo - target : target > hi ? target - hi : 0;
            EXPECT_LE(err / double(n), 0.015) << "seed " << seed << " q " << q;
        }
    }
}

TEST(sketch, merged_sketches_keep_the_bound_and_small_inputs_are_exact) {
    std::mt19937_64 rng(3);
    quantile_sketch all;
    std::vector<double> xs;
    for (int part = 0; part < 20; ++part) {
        quantile_sketch p;
        for (int i = 0; i < 5000; ++i) {
            double x = std::normal_distribution<double>(0, 1)(rng);
            xs.push_back(x);
            p.add(x);
        }
        all.merge(p);
    }
    std::sort(xs.begin(), xs.end());
    EXPECT_EQ(all.count(), xs.size());
    for (double q : {0.05, 0.5, 0.95}) {
        double v = all.quantile(q);
        double rank = double(std::lower_bound(xs.begin(), xs.end(), v) - xs.begin());
        EXPECT_LE(std::abs(rank - q * double(xs.size())) / double(xs.size()), 0.015);
    }
    quantile_sketch small;
    for (int i = 1; i <= 99; ++i) small.add(i);
    EXPECT_EQ(small.quantile(0.5), 50);
    EXPECT_EQ(small.quantile(1.0), 99);
}

} // namespace
} // namespace runnel::engine
