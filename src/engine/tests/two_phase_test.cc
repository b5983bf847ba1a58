// Two-phase aggregation: a local window or group stage that emits partial accumulators, then a
// global one that merges them, must give what the single-phase stage gives over the same rows,
// late rows included, in one pipeline and across instances joined by the exchange.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <random>

#include "engine/engine.h"

using namespace std::chrono_literals;

namespace runnel::engine {
namespace {
namespace tp { // the unity build joins this file with others: its helpers' names stay apart

schema_ptr rows_schema() {
    return make_schema({{"key", data_type::string()},
                        {"ik", data_type::int64()},
                        {"ts", data_type::int64()},
                        {"v", data_type::int64()},
                        {"d", data_type::float64()},
                        {"s", data_type::string()}});
}

/// `n` rows over `keys` keys (some NULL), event times rising by about 2 ms a row with up to
/// `jitter` ms of disorder, values with NULLs; doubles are quarters, so sums are exact in any
/// order. Cut into batches of 1 to `max_batch` rows.
std::vector<batch> random_rows(size_t n, int keys, int64_t jitter, size_t max_batch, uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::vector<batch> out;
    batch b(rows_schema());
    size_t cut = 1 + rng() % max_batch;
    for (size_t i = 0; i < n; ++i) {
        int k = int(rng() % keys);
        bool null_key = rng() % 50 == 0;
        value key = null_key ? value::null(data_type::string()) : value::of("k" + std::to_string(k));
        value ik = null_key ? value::null(data_type::int64()) : value::of(int64_t(k * 7919 - 300));
        int64_t ts = int64_t(i) * 2 + 1000 - int64_t(rng() % (jitter + 1));
        value v = rng() % 10 == 0 ? value::null(data_type::int64()) : value::of(int64_t(rng() % 2001) - 1000);
        value d = rng() % 10 == 0 ? value::null(data_type::float64()) : value::of(double(int64_t(rng() % 4001) - 2000) / 4);
        value s = rng() % 10 == 0 ? value::null(data_type::string()) : value::of("s" + std::to_string(rng() % 97));
        b.append_row({key, ik, value::of(ts), v, d, s});
        if (b.num_rows() == cut) {
            out.push_back(std::move(b));
            b = batch(rows_schema());
            cut = 1 + rng() % max_batch;
        }
    }
    if (b.num_rows() > 0) out.push_back(std::move(b));
    return out;
}

std::vector<aggregate_spec> splittable_aggs() {
    return {count().as("n"), count("v").as("nv"), sum("v"), sum("d"), min("v"), max("v"),
            min("s"),        max("d"),            avg("v"), avg("d")};
}

std::vector<std::string> rows_of(const std::vector<batch>& bs) {
    std::vector<std::string> out;
    for (const auto& b : bs) {
        for (size_t r = 0; r < b.num_rows(); ++r) out.push_back(b.row_to_string(r));
    }
    return out;
}

std::vector<std::string> sorted(std::vector<std::string> v) {
    std::sort(v.begin(), v.end());
    return v;
}

struct window_run {
    std::vector<std::string> rows; ///< sorted
    std::vector<std::string> late; ///< in order
    uint64_t late_count = 0;
    uint64_t partial_rows = 0; ///< rows the local stage emitted
    uint64_t input_rows = 0;
};

/// source → watermark → window, either one single-phase stage or a local and a global one.
window_run run_window(const std::vector<batch>& in, const std::string& key, window_spec w, int64_t bound,
                      window_options opts, bool two_phase, size_t max_partial_groups = 65536) {
    pipeline p;
    window_run r;
    std::vector<batch> got, late;
    auto src = p.source(rows_schema(), from_batches(in)).watermark("ts", std::chrono::milliseconds(bound));
    stream result, first;
    if (!two_phase) {
        result = first = src.key_by({key}).window(w, opts).aggregate(splittable_aggs());
    } else {
        window_options local = opts, global = opts;
        local.phase = agg_phase::local;
        local.max_partial_groups = max_partial_groups;
        global.phase = agg_phase::global;
        first = src.key_by({key}).window(w, local).aggregate(splittable_aggs());
        result = first.key_by({key}).window(w, global).aggregate(splittable_aggs());
        result.late_rows().sink([](const batch& b) { ADD_FAILURE() << "a late partial: " << b.row_to_string(0); });
    }
    result.sink([&](const batch& b) { got.push_back(b); });
    first.late_rows().sink([&](const batch& b) { late.push_back(b); });
    auto ok = p.run();
    EXPECT_TRUE(ok) << (ok ? "" : ok.error().message);
    r.rows = sorted(rows_of(got));
    r.late = rows_of(late);
    r.late_count = p.stage_at(first.stage_id()).metrics().late_rows;
    r.partial_rows = p.stage_at(first.stage_id()).metrics().rows_out;
    r.input_rows = p.stage_at(first.stage_id()).metrics().rows_in;
    return r;
}

TEST(two_phase, windows_equal_the_single_phase_stage_over_random_rows_with_late_ones) {
    struct shape {
        window_spec w;
        const char* name;
    };
    const shape shapes[] = {{tumble(100ms), "tumble"}, {hop(100ms, 25ms), "hop"}, {hop(90ms, 60ms), "hop 90/60"},
                            {cumulate(20ms, 100ms), "cumulate"}};
    uint64_t seed = 1;
    for (const auto& sh : shapes) {
        for (const char* key : {"key", "ik"}) {
            for (int64_t lateness : {0, 30}) {
                ++seed;
                // Jitter beyond the watermark's bound makes late rows.
                auto in = random_rows(1200, 1 + int(seed % 40), 300, 64, seed);
                window_options opts;
                opts.allowed_lateness = std::chrono::milliseconds(lateness);
                auto want = run_window(in, key, sh.w, 40, opts, false);
                auto got = run_window(in, key, sh.w, 40, opts, true);
                auto small = run_window(in, key, sh.w, 40, opts, true, 3); // partials sent early, often
                SCOPED_TRACE(fmt::format("{} by {}, lateness {}", sh.name, key, lateness));
                ASSERT_GT(want.rows.size(), 20u);
                EXPECT_GT(want.late_count, 0u);
                EXPECT_EQ(got.rows, want.rows);
                EXPECT_EQ(got.late, want.late);
                EXPECT_EQ(got.late_count, want.late_count);
                EXPECT_EQ(small.rows, want.rows);
                EXPECT_EQ(small.late, want.late);
            }
        }
    }
}

TEST(two_phase, a_local_window_sends_one_partial_per_pane_and_key) {
    // 4 keys, 2 ms a row: a 100 ms pane holds about 50 rows, and leaves as at most 4 partials
    // (more only when a pane is flushed and then receives an allowed-late row).
    auto in = random_rows(20000, 4, 10, 500, 99);
    auto got = run_window(in, "key", tumble(100ms), 40, {}, true);
    auto want = run_window(in, "key", tumble(100ms), 40, {}, false);
    EXPECT_EQ(got.rows, want.rows);
    ASSERT_EQ(got.input_rows, 20000u);
    EXPECT_LE(got.partial_rows, want.rows.size());
    EXPECT_LT(got.partial_rows * 8, got.input_rows);
}

/// source → watermark → local → exchange → global on `n` instances, driven on this thread.
std::vector<std::string> parallel_window(const std::vector<batch>& in, uint32_t n, bool two_phase,
                                         uint64_t* exchanged) {
    exchange x(n, 4, key_routing::columnar);
    std::vector<std::unique_ptr<pipeline>> ps;
    std::vector<batch> got;
    std::vector<size_t> senders;
    for (uint32_t i = 0; i < n; ++i) {
        std::vector<batch> mine;
        for (size_t k = i; k < in.size(); k += n) mine.push_back(in[k]);
        ps.push_back(std::make_unique<pipeline>());
        auto s = ps[i]->source(rows_schema(), from_batches(std::move(mine))).watermark("ts", 150ms);
        stream keyed;
        if (two_phase) {
            window_options local;
            local.phase = agg_phase::local;
            window_options global;
            global.phase = agg_phase::global;
            keyed = s.key_by({"key"})
                      .window(tumble(1000ms), local)
                      .aggregate(splittable_aggs())
                      .exchange(x, i, {"key"});
            keyed.key_by({"key"}).window(tumble(1000ms), global).aggregate(splittable_aggs()).sink([&](const batch& b) {
                got.push_back(b);
            });
        } else {
            keyed = s.exchange(x, i, {"key"});
            keyed.key_by({"key"}).window(tumble(1000ms)).aggregate(splittable_aggs()).sink([&](const batch& b) {
                got.push_back(b);
            });
        }
        EXPECT_TRUE(ps[i]->check());
    }
    for (bool done = false; !done;) {
        done = true;
        for (auto& p : ps) {
            auto r = p->run_once();
            EXPECT_TRUE(r);
            if (!r) return {};
            done = done && r.value();
        }
    }
    *exchanged = 0;
    for (uint32_t i = 0; i < n; ++i) {
        for (size_t id = 0; id < ps[i]->num_stages(); ++id) {
            if (std::string(ps[i]->stage_at(id).name()) == "exchange") *exchanged += ps[i]->stage_at(id).metrics().rows_in;
        }
    }
    return sorted(rows_of(got));
}

TEST(two_phase, windows_across_instances_equal_one_pipeline) {
    // Jitter below the bound: no row is late in any instance, so every plan sees every row.
    auto in = random_rows(20000, 6, 100, 300, 5);
    auto want = run_window(in, "key", tumble(1000ms), 150, {}, false);
    ASSERT_EQ(want.late_count, 0u);
    for (uint32_t n : {1u, 2u, 3u}) {
        uint64_t rows_single = 0, rows_two = 0;
        EXPECT_EQ(parallel_window(in, n, false, &rows_single), want.rows) << n << " instances, one phase";
        EXPECT_EQ(parallel_window(in, n, true, &rows_two), want.rows) << n << " instances, two phases";
        EXPECT_EQ(rows_single, 20000u);
        EXPECT_LT(rows_two * 8, rows_single) << n << " instances: partials, not rows, cross the exchange";
    }
}

TEST(two_phase, window_mistakes_are_reported) {
    auto s = rows_schema();
    window_options local;
    local.phase = agg_phase::local;
    EXPECT_FALSE(window_stage::make(s, "ts", {"key"}, session(10ms), {count()}, local));
    EXPECT_FALSE(window_stage::make(s, "ts", {"key"}, tumble(10ms), {count_distinct("v")}, local));
    EXPECT_FALSE(window_stage::make(s, "ts", {"key"}, tumble(10ms), {first_value("v")}, local));
    window_options early = local;
    early.early_fire = 10ms;
    EXPECT_FALSE(window_stage::make(s, "ts", {"key"}, tumble(10ms), {count()}, early));
    // A global stage needs a local stage's partial columns.
    window_options global;
    global.phase = agg_phase::global;
    EXPECT_FALSE(window_stage::make(s, "ts", {"key"}, tumble(10ms), {sum("v")}, global));
    auto l = window_stage::make(s, "ts", {"key"}, tumble(10ms), {avg("v"), sum("d")}, local);
    ASSERT_TRUE(l);
    EXPECT_EQ(l.value()->output_schema(0)->to_string(), window_stage::make(s, "ts", {"key"}, tumble(10ms),
                                                                           {avg("v"), sum("d")}, local)
                                                            .value()
                                                            ->output_schema(0)
                                                            ->to_string());
    auto partials = l.value()->output_schema(0);
    EXPECT_TRUE(window_stage::make(partials, pane_start_column, {"key"}, tumble(10ms), {avg("v"), sum("d")}, global));
    EXPECT_FALSE(window_stage::make(partials, pane_start_column, {"key"}, tumble(10ms), {sum("d"), avg("d")}, global));
    // A single-phase snapshot does not restore into a local stage.
    auto one = window_stage::make(s, "ts", {"key"}, tumble(10ms), {avg("v"), sum("d")});
    ASSERT_TRUE(one);
    EXPECT_FALSE(l.value()->restore(one.value()->snapshot()));
    EXPECT_TRUE(l.value()->restore(l.value()->snapshot()));
}

// ---- group aggregates ----

/// source → group aggregate, single-phase or local then global; the changelog in order.
std::vector<std::string> run_group(const std::vector<batch>& in, const std::vector<std::string>& keys, bool two_phase) {
    pipeline p;
    std::vector<batch> got;
    auto src = p.source(rows_schema(), from_batches(in));
    stream out;
    if (!two_phase) {
        out = src.group_aggregate(keys, splittable_aggs());
    } else {
        group_options local, global;
        local.phase = agg_phase::local;
        global.phase = agg_phase::global;
        out = src.group_aggregate(keys, splittable_aggs(), local).group_aggregate(keys, splittable_aggs(), global);
    }
    out.sink([&](const batch& b) { got.push_back(b); });
    auto ok = p.run();
    EXPECT_TRUE(ok) << (ok ? "" : ok.error().message);
    std::vector<std::string> rows;
    for (const auto& b : got) {
        for (size_t r = 0; r < b.num_rows(); ++r) rows.push_back(std::string(row_kind_name(b.kind(r))) + b.row_to_string(r));
    }
    return rows;
}

TEST(two_phase, group_aggregates_equal_the_single_phase_changelog) {
    for (uint64_t seed = 1; seed <= 4; ++seed) {
        auto in = random_rows(1500, 1 + int(seed * 7 % 50), 0, 200, seed);
        for (const auto& keys : std::vector<std::vector<std::string>>{{"key"}, {"ik"}, {"key", "s"}, {}}) {
            SCOPED_TRACE(fmt::format("seed {}, {} keys", seed, keys.size()));
            auto want = run_group(in, keys, false);
            ASSERT_GT(want.size(), 10u);
            EXPECT_EQ(run_group(in, keys, true), want);
        }
    }
}

/// The table a changelog leaves behind: the rows still inserted, counted by their text.
std::map<std::string, int> final_table(const std::vector<batch>& changes) {
    std::map<std::string, int> t;
    for (const auto& b : changes) {
        for (size_t r = 0; r < b.num_rows(); ++r) {
            int d = b.kind(r) == row_kind::insert || b.kind(r) == row_kind::update_after ? 1 : -1;
            auto text = make_batch(b.schema_of(), {b.row(r)}).row_to_string(0); // without the kind
            if ((t[text] += d) == 0) t.erase(text);
        }
    }
    return t;
}

TEST(two_phase, group_aggregates_across_instances_leave_the_table_of_one_pipeline) {
    auto in = random_rows(20000, 9, 0, 300, 17);
    std::vector<batch> one;
    {
        pipeline p;
        p.source(rows_schema(), from_batches(in)).group_aggregate({"key"}, splittable_aggs()).sink([&](const batch& b) {
            one.push_back(b);
        });
        ASSERT_TRUE(p.run());
    }
    const auto want = final_table(one);
    ASSERT_EQ(want.size(), 10u); // 9 keys and NULL
    for (uint32_t n : {2u, 3u}) {
        exchange x(n, 4, key_routing::columnar);
        std::vector<std::unique_ptr<pipeline>> ps;
        std::vector<batch> got;
        group_options local, global;
        local.phase = agg_phase::local;
        global.phase = agg_phase::global;
        for (uint32_t i = 0; i < n; ++i) {
            std::vector<batch> mine;
            for (size_t k = i; k < in.size(); k += n) mine.push_back(in[k]);
            ps.push_back(std::make_unique<pipeline>());
            ps[i]->source(rows_schema(), from_batches(std::move(mine)))
              .group_aggregate({"key"}, splittable_aggs(), local)
              .exchange(x, i, {"key"})
              .group_aggregate({"key"}, splittable_aggs(), global)
              .sink([&](const batch& b) { got.push_back(b); });
            ASSERT_TRUE(ps[i]->check());
        }
        for (bool done = false; !done;) {
            done = true;
            for (auto& p : ps) {
                auto r = p->run_once();
                ASSERT_TRUE(r) << r.error().message;
                done = done && r.value();
            }
        }
        EXPECT_EQ(final_table(got), want) << n << " instances";
    }
}

TEST(two_phase, a_local_group_stage_takes_append_only_input) {
    auto s = rows_schema();
    auto st = group_local_stage::make(s, {"key"}, {count(), sum("v")});
    ASSERT_TRUE(st);
    stage_output out;
    st.value()->on_batch(0, make_batch(s, {{value::of("a"), value::of(1), value::of(1), value::of(5), value::of(1.0), value::of("x")},
                                           {value::of("a"), value::of(1), value::of(2), value::of(6), value::of(1.0), value::of("x")},
                                           {value::of("b"), value::of(2), value::of(3), value::of(7), value::of(1.0), value::of("x")}}),
                         out);
    ASSERT_EQ(out.pending().size(), 1u);
    auto rows = rows_of({std::get<batch>(out.pending()[0].second)});
    EXPECT_EQ(rows, (std::vector<std::string>{"('a', 2, 11)", "('b', 1, 7)"}));
    EXPECT_TRUE(st.value()->failure().empty());
    auto retraction = make_batch(s, {{value::of("a"), value::of(1), value::of(1), value::of(5), value::of(1.0), value::of("x")}});
    retraction.set_row_kinds({row_kind::delete_row});
    st.value()->on_batch(0, std::move(retraction), out);
    EXPECT_NE(st.value()->failure(), "");
    EXPECT_FALSE(group_local_stage::make(s, {"key"}, {count_distinct("v")}));
    group_options global;
    global.phase = agg_phase::global;
    EXPECT_FALSE(group_stage::make(s, {"key"}, {sum("v")}, global));
}

} // namespace tp
} // namespace
} // namespace runnel::engine
