#include <gtest/gtest.h>

#include <algorithm>
#include <random>

#include "engine/engine.h"

using namespace std::chrono_literals;

namespace runnel::engine {
namespace {

schema_ptr wj_side(const char* key, const char* time, const char* payload) {
    return make_schema({{key, data_type::int64()}, {time, data_type::timestamp()}, {payload, data_type::string()}});
}

struct wj_row {
    std::optional<int64_t> key;
    int64_t ts;
    std::string payload;
};

std::vector<value> values_of(const wj_row& r) {
    return {r.key ? value::of(*r.key) : value::null(data_type::int64()), value::ts(r.ts), value::of(r.payload)};
}

window_join_spec assigned(window_spec w, window_join_type type, std::vector<std::string> lk = {"a_id"},
                          std::vector<std::string> rk = {"b_id"}) {
    window_join_spec s;
    s.left.keys = std::move(lk);
    s.left.time = "a_ts";
    s.left.assign = w;
    s.right.keys = std::move(rk);
    s.right.time = "b_ts";
    s.right.assign = w;
    s.type = type;
    return s;
}

std::vector<std::string> rows_of(stage_output& out, size_t port = 0) {
    std::vector<std::string> rows;
    for (auto& [p, m] : out.pending()) {
        if (auto* b = std::get_if<batch>(&m); b && p == port) {
            for (size_t i = 0; i < b->num_rows(); ++i) rows.push_back(b->row_to_string(i));
        }
    }
    out.pending().clear();
    return rows;
}

/// Runs a window join in a pipeline: rows arrive one per batch in the given order, the two
/// sides in turn, each side's watermark `bound` ms behind its largest time.
std::vector<std::string> run(const std::vector<wj_row>& left, const std::vector<wj_row>& right, window_join_spec spec,
                             int64_t bound, uint64_t* late = nullptr) {
    std::vector<batch> lb, rb;
    for (const auto& r : left) lb.push_back(make_batch(wj_side("a_id", "a_ts", "a_name"), {values_of(r)}));
    for (const auto& r : right) rb.push_back(make_batch(wj_side("b_id", "b_ts", "b_name"), {values_of(r)}));
    pipeline p;
    auto l = p.source(wj_side("a_id", "a_ts", "a_name"), from_batches(std::move(lb))).watermark("a_ts", std::chrono::milliseconds(bound));
    auto r = p.source(wj_side("b_id", "b_ts", "b_name"), from_batches(std::move(rb))).watermark("b_ts", std::chrono::milliseconds(bound));
    auto j = l.window_join(r, std::move(spec));
    std::vector<std::string> out;
    j.sink([&](const batch& b) {
        EXPECT_FALSE(b.has_row_kinds()); // append-only
        for (size_t i = 0; i < b.num_rows(); ++i) out.push_back(b.row_to_string(i));
    });
    auto ok = p.run();
    EXPECT_TRUE(ok) << (ok ? "" : ok.error().message);
    if (late) *late = p.stage_at(j.stage_id()).metrics().late_rows;
    EXPECT_EQ(static_cast<window_join_stage&>(p.stage_at(j.stage_id())).open_windows(), 0u);
    std::sort(out.begin(), out.end());
    return out;
}

TEST(window_join, tumbling_windows_join_per_window_with_every_outer_type) {
    // Window [0, 10): keys 1 (both), 2 (left only), 3 (right only); window [10, 20): key 1 on
    // the left only, key 1 on the right in the window before: no match across windows.
    std::vector<wj_row> l = {{1, 2, "a"}, {2, 5, "b"}, {1, 12, "c"}};
    std::vector<wj_row> r = {{1, 7, "x"}, {1, 8, "z"}, {3, 9, "y"}};
    auto out = run(l, r, assigned(tumble(10ms), window_join_type::inner), 0);
    EXPECT_EQ(out, (std::vector<std::string>{"(1, 2, 'a', 0, 10, 9, 1, 7, 'x', 0, 10, 9)",
                                             "(1, 2, 'a', 0, 10, 9, 1, 8, 'z', 0, 10, 9)"}));
    out = run(l, r, assigned(tumble(10ms), window_join_type::left), 0);
    EXPECT_EQ(out, (std::vector<std::string>{"(1, 12, 'c', 10, 20, 19, NULL, NULL, NULL, NULL, NULL, NULL)",
                                             "(1, 2, 'a', 0, 10, 9, 1, 7, 'x', 0, 10, 9)",
                                             "(1, 2, 'a', 0, 10, 9, 1, 8, 'z', 0, 10, 9)",
                                             "(2, 5, 'b', 0, 10, 9, NULL, NULL, NULL, NULL, NULL, NULL)"}));
    out = run(l, r, assigned(tumble(10ms), window_join_type::right), 0);
    EXPECT_EQ(out, (std::vector<std::string>{"(1, 2, 'a', 0, 10, 9, 1, 7, 'x', 0, 10, 9)",
                                             "(1, 2, 'a', 0, 10, 9, 1, 8, 'z', 0, 10, 9)",
                                             "(NULL, NULL, NULL, NULL, NULL, NULL, 3, 9, 'y', 0, 10, 9)"}));
    out = run(l, r, assigned(tumble(10ms), window_join_type::full), 0);
    EXPECT_EQ(out.size(), 5u);
}

TEST(window_join, carried_windows_without_keys_pair_every_row_of_a_window) {
    // Rows that carry their window (a window aggregation's output), joined on the window only.
    auto ls = make_schema({{"ws", data_type::timestamp()}, {"we", data_type::timestamp()}, {"n", data_type::int64()}});
    auto rs = make_schema({{"s", data_type::timestamp()}, {"e", data_type::timestamp()}, {"m", data_type::int64()}});
    window_join_spec spec;
    spec.left.window_start = "ws";
    spec.left.window_end = "we";
    spec.right.window_start = "s";
    spec.right.window_end = "e";
    spec.condition = col("n") < col("m");
    auto st = window_join_stage::make(ls, rs, spec).value();
    EXPECT_EQ(st->output_schema(0)->to_string(), window_join_schema(*ls, *rs, spec)->to_string());
    stage_output out;
    st->on_batch(0, make_batch(ls, {{value::ts(0), value::ts(10), value::of(1)}, {value::ts(0), value::ts(10), value::of(5)},
                                    {value::ts(10), value::ts(20), value::of(1)}}), out);
    st->on_batch(1, make_batch(rs, {{value::ts(0), value::ts(10), value::of(3)}, {value::ts(0), value::ts(10), value::of(4)},
                                    {value::ts(10), value::ts(20), value::of(0)}}), out);
    st->on_watermark(model::event_time(8), out);
    EXPECT_TRUE(rows_of(out).empty());
    st->on_watermark(model::event_time(9), out); // window [0, 10) closes at 9
    EXPECT_EQ(rows_of(out), (std::vector<std::string>{"(0, 10, 1, 0, 10, 3)", "(0, 10, 1, 0, 10, 4)"}));
    EXPECT_EQ(st->held_rows(), 2u);
    st->on_watermark(end_of_time, out);
    EXPECT_TRUE(rows_of(out).empty()); // 1 < 0 is false
    EXPECT_EQ(st->open_windows(), 0u);
}

TEST(window_join, hopping_windows_put_a_row_in_each_of_its_windows) {
    // hop(size 10, slide 5): t = 7 is in [0, 10) and [5, 15); t = 12 in [5, 15) and [10, 20).
    std::vector<wj_row> l = {{1, 7, "a"}};
    std::vector<wj_row> r = {{1, 12, "x"}};
    auto out = run(l, r, assigned(hop(10ms, 5ms), window_join_type::full), 0);
    EXPECT_EQ(out, (std::vector<std::string>{"(1, 7, 'a', 0, 10, 9, NULL, NULL, NULL, NULL, NULL, NULL)",
                                             "(1, 7, 'a', 5, 15, 14, 1, 12, 'x', 5, 15, 14)",
                                             "(NULL, NULL, NULL, NULL, NULL, NULL, 1, 12, 'x', 10, 20, 19)"}));
}

TEST(window_join, late_rows_are_counted_and_routed_aside) {
    auto st = window_join_stage::make(wj_side("a_id", "a_ts", "a_name"), wj_side("b_id", "b_ts", "b_name"),
                                      assigned(tumble(10ms), window_join_type::left))
                .value();
    stage_output out;
    st->on_batch(0, make_batch(wj_side("a_id", "a_ts", "a_name"), {values_of({1, 3, "a"})}), out);
    st->on_watermark(model::event_time(12), out);
    EXPECT_EQ(rows_of(out), (std::vector<std::string>{"(1, 3, 'a', 0, 10, 9, NULL, NULL, NULL, NULL, NULL, NULL)"}));
    // [0, 10) closed at 9: a right row at 5 comes too late; one at 11 is in time.
    st->on_batch(1, make_batch(wj_side("b_id", "b_ts", "b_name"), {values_of({1, 5, "x"}), values_of({1, 11, "y"})}), out);
    EXPECT_EQ(st->metrics().late_rows, 1u);
    EXPECT_EQ(rows_of(out, 1),
              (std::vector<std::string>{"(NULL, NULL, NULL, NULL, NULL, NULL, 1, 5, 'x', NULL, NULL, NULL, 'late: window "
                                        "ending 10 closed at watermark 12 (allowed lateness 0 ms)')"}));
    EXPECT_EQ(st->held_rows(), 1u);
}

TEST(window_join, allowed_lateness_keeps_windows_open) {
    auto spec = assigned(tumble(10ms), window_join_type::inner);
    spec.allowed_lateness = 5ms;
    auto st = window_join_stage::make(wj_side("a_id", "a_ts", "a_name"), wj_side("b_id", "b_ts", "b_name"), spec).value();
    stage_output out;
    st->on_batch(0, make_batch(wj_side("a_id", "a_ts", "a_name"), {values_of({1, 3, "a"})}), out);
    st->on_watermark(model::event_time(13), out);
    st->on_batch(1, make_batch(wj_side("b_id", "b_ts", "b_name"), {values_of({1, 5, "x"})}), out);
    EXPECT_EQ(st->metrics().late_rows, 0u);
    st->on_watermark(model::event_time(14), out);
    EXPECT_EQ(rows_of(out), (std::vector<std::string>{"(1, 3, 'a', 0, 10, 9, 1, 5, 'x', 0, 10, 9)"}));
}

TEST(window_join, snapshot_restore_keeps_the_open_windows) {
    auto make = [] {
        return window_join_stage::make(wj_side("a_id", "a_ts", "a_name"), wj_side("b_id", "b_ts", "b_name"),
                                       assigned(hop(10ms, 5ms), window_join_type::full))
          .value();
    };
    auto a = make();
    stage_output out;
    a->on_batch(0, make_batch(wj_side("a_id", "a_ts", "a_name"), {values_of({1, 7, "a"}), values_of({std::nullopt, 8, "n"})}), out);
    a->on_batch(1, make_batch(wj_side("b_id", "b_ts", "b_name"), {values_of({1, 12, "x"})}), out);
    a->on_watermark(model::event_time(3), out);
    auto bytes = a->snapshot();
    auto b = make();
    ASSERT_TRUE(b->restore(bytes));
    EXPECT_EQ(b->open_windows(), a->open_windows());
    EXPECT_EQ(b->held_rows(), a->held_rows());
    EXPECT_EQ(b->snapshot(), bytes);
    // Restored, a row behind the restored watermark is still late, and the rest joins alike.
    stage_output o1, o2;
    for (auto* s : {a.get(), b.get()}) {
        auto& o = s == a.get() ? o1 : o2;
        s->on_batch(1, make_batch(wj_side("b_id", "b_ts", "b_name"), {values_of({1, -20, "old"}), values_of({1, 9, "y"})}), o);
        s->on_watermark(end_of_time, o);
    }
    auto ra = rows_of(o1), rb = rows_of(o2);
    EXPECT_EQ(ra, rb);
    EXPECT_EQ(ra.size(), 6u);
    EXPECT_EQ(b->metrics().late_rows, 1u);
    EXPECT_FALSE(b->restore(bytes.substr(0, bytes.size() - 3)));
    EXPECT_FALSE(b->restore("nonsense"));
}

TEST(window_join, mistakes_are_reported) {
    auto l = wj_side("a_id", "a_ts", "a_name"), r = wj_side("b_id", "b_ts", "b_name");
    auto spec = assigned(tumble(10ms), window_join_type::inner, {"a_name"}, {"b_id"});
    EXPECT_EQ(window_join_stage::make(l, r, spec).error().message, "window join: key 'a_name' is string but 'b_id' is bigint");
    spec = assigned(session(10ms), window_join_type::inner);
    EXPECT_FALSE(window_join_stage::make(l, r, spec));
    spec = assigned(tumble(10ms), window_join_type::inner);
    spec.right.assign.reset();
    spec.right.window_start = "b_name";
    spec.right.window_end = "b_ts";
    EXPECT_EQ(window_join_stage::make(l, r, spec).error().message,
              "window join: window start column 'b_name' is string, not a timestamp");
}

/// What the window join of `l` and `r` must output, computed window by window from all rows.
std::vector<std::string> expected(const std::vector<wj_row>& l, const std::vector<wj_row>& r, const window_join_spec& spec,
                                  const std::vector<std::pair<int64_t, int64_t>>& windows, schema_ptr out) {
    const bool keep_l = spec.type == window_join_type::left || spec.type == window_join_type::full;
    const bool keep_r = spec.type == window_join_type::right || spec.type == window_join_type::full;
    auto in = [](const wj_row& x, int64_t s, int64_t e) { return x.ts >= s && x.ts < e; };
    std::vector<std::string> res;
    auto side_vals = [](const wj_row* x, int64_t s, int64_t e, std::vector<value>& v) {
        if (x) {
            auto a = values_of(*x);
            v.insert(v.end(), a.begin(), a.end());
            v.push_back(value::ts(s));
            v.push_back(value::ts(e));
            v.push_back(value::ts(e - 1));
        } else {
            v.push_back(value::null(data_type::int64()));
            v.push_back(value::null(data_type::timestamp()));
            v.push_back(value::null(data_type::string()));
            for (int i = 0; i < 3; ++i) v.push_back(value::null(data_type::timestamp()));
        }
    };
    for (auto [s, e] : windows) {
        std::vector<uint8_t> rm(r.size(), 0);
        for (const auto& a : l) {
            if (!in(a, s, e)) continue;
            bool matched = false;
            for (size_t j = 0; j < r.size(); ++j) {
                const auto& b = r[j];
                if (!in(b, s, e) || !a.key || !b.key || *a.key != *b.key || a.payload > b.payload) continue;
                matched = true;
                rm[j] = 1;
                std::vector<value> v;
                side_vals(&a, s, e, v);
                side_vals(&b, s, e, v);
                res.push_back(make_batch(out, {v}).row_to_string(0));
            }
            if (!matched && keep_l) {
                std::vector<value> v;
                side_vals(&a, s, e, v);
                side_vals(nullptr, s, e, v);
                res.push_back(make_batch(out, {v}).row_to_string(0));
            }
        }
        for (size_t j = 0; keep_r && j < r.size(); ++j) {
            if (rm[j] || !in(r[j], s, e)) continue;
            std::vector<value> v;
            side_vals(nullptr, s, e, v);
            side_vals(&r[j], s, e, v);
            res.push_back(make_batch(out, {v}).row_to_string(0));
        }
    }
    std::sort(res.begin(), res.end());
    return res;
}

TEST(window_join, random_out_of_order_input_matches_a_direct_computation) {
    constexpr int64_t bound = 30;
    for (uint64_t seed = 1; seed <= 6; ++seed) {
        std::mt19937_64 rng(seed);
        const window_spec w = seed % 3 == 0 ? tumble(50ms) : seed % 3 == 1 ? hop(60ms, 20ms) : cumulate(25ms, 100ms);
        // Rows in time order, each arriving up to `bound` ms late: out of order within the bound.
        auto gen = [&](const std::string& tag) {
            std::vector<std::pair<int64_t, wj_row>> keyed;
            for (int i = 0; i < 300; ++i) {
                int64_t ts = int64_t(rng() % 1000);
                std::optional<int64_t> key;
                if (rng() % 20 != 0) key = int64_t(rng() % 8);
                keyed.push_back({ts + int64_t(rng() % bound), wj_row{key, ts, tag + std::to_string(rng() % 10)}});
            }
            std::stable_sort(keyed.begin(), keyed.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
            std::vector<wj_row> rows;
            for (auto& [k, r] : keyed) rows.push_back(r);
            return rows;
        };
        auto l = gen(""), r = gen("");
        std::vector<std::pair<int64_t, int64_t>> windows; // every window that holds a row, as (start, end)
        for (const auto* v : {&l, &r}) {
            for (const auto& x : *v) {
                // All windows of the spec that contain x.ts, enumerated from their definition.
                if (w.kind == window_kind::tumbling) {
                    int64_t s = x.ts / w.size * w.size;
                    windows.emplace_back(s, s + w.size);
                } else if (w.kind == window_kind::hopping) {
                    for (int64_t s = -w.size; s <= x.ts; s += w.slide) {
                        if (s <= x.ts && x.ts < s + w.size) windows.emplace_back(s, s + w.size);
                    }
                } else {
                    int64_t p = x.ts / w.size * w.size;
                    for (int64_t e = p + w.slide; e <= p + w.size; e += w.slide) {
                        if (x.ts < e) windows.emplace_back(p, e);
                    }
                }
            }
        }
        std::sort(windows.begin(), windows.end());
        windows.erase(std::unique(windows.begin(), windows.end()), windows.end());
        for (auto type : {window_join_type::inner, window_join_type::left, window_join_type::right, window_join_type::full}) {
            auto spec = assigned(w, type);
            spec.condition = col("a_name") <= col("b_name");
            auto out_schema = window_join_schema(*wj_side("a_id", "a_ts", "a_name"), *wj_side("b_id", "b_ts", "b_name"), spec);
            uint64_t late = 99;
            auto got = run(l, r, spec, bound, &late);
            auto want = expected(l, r, spec, windows, out_schema);
            EXPECT_EQ(late, 0u) << "seed " << seed;
            EXPECT_GT(want.size(), 100u) << "seed " << seed;
            ASSERT_EQ(got.size(), want.size()) << "seed " << seed << " type " << int(type);
            EXPECT_EQ(got, want) << "seed " << seed << " type " << int(type);
        }
    }
}

} // namespace
} // namespace runnel::engine
