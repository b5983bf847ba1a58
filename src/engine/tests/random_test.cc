// Streaming windows against a batch computation: for many seeds, events are shuffled within
// the out-of-orderness bound and fed in random batch sizes; every window kind must give exactly
// what a direct computation over the sorted events gives.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <random>
#include <set>

#include <fmt/format.h>

#include "base/sanitizer.h"
#include "engine/engine.h"

using namespace std::chrono_literals;

namespace runnel::engine {
namespace {

struct event {
    std::string key;
    int64_t ts;
    int64_t v;
};

struct acc {
    int64_t count = 0, sum = 0, min = INT64_MAX, max = INT64_MIN;
    std::set<int64_t> distinct;
    int64_t first_ts = INT64_MAX, first = 0, last_ts = INT64_MIN, last = 0;

    void add(const event& e) {
        ++count;
        sum += e.v;
        min = std::min(min, e.v);
        max = std::max(max, e.v);
        distinct.insert(e.v);
        if (e.ts < first_ts) first_ts = e.ts, first = e.v;
        if (e.ts > last_ts) last_ts = e.ts, last = e.v;
    }
};

using window_key = std::tuple<int64_t, int64_t, std::string>;

/// Window rows as `batch::row_to_string` prints them; `quote`: string keys (else the key is
/// already the text of a bigint or NULL).
std::vector<std::string> rows_of(const std::map<window_key, acc>& m, bool quote) {
    std::vector<std::string> out;
    for (const auto& [k, a] : m) {
        std::string key = quote ? "'" + std::get<2>(k) + "'" : std::get<2>(k);
        out.push_back(fmt::format("({}, {}, {}, {}, {}, {}, {}, {}, {}, {})", std::get<0>(k), std::get<1>(k), key,
                                  a.count, a.sum, a.min, a.max, a.distinct.size(), a.first, a.last));
    }
    std::sort(out.begin(), out.end());
    return out;
}

int64_t floor_div(int64_t a, int64_t b) { return a / b - ((a % b != 0) && ((a < 0) != (b < 0))); }

/// The straightforward answer: every window each event belongs to, one at a time.
std::vector<std::string> batch_answer(std::vector<event> es, const window_spec& w, bool quote = true) {
    std::map<window_key, acc> m;
    if (w.kind == window_kind::session) {
        std::stable_sort(es.begin(), es.end(), [](const event& a, const event& b) {
            return std::tie(a.key, a.ts) < std::tie(b.key, b.ts);
        });
        size_t i = 0;
        while (i < es.size()) {
            size_t j = i + 1;
            while (j < es.size() && es[j].key == es[i].key && es[j].ts - es[j - 1].ts <= w.gap) ++j;
            acc a;
            for (size_t k = i; k < j; ++k) a.add(es[k]);
            m[{es[i].ts, es[j - 1].ts + w.gap, es[i].key}] = a;
            i = j;
        }
        return rows_of(m, quote);
    }
    for (const auto& e : es) {
        if (w.kind == window_kind::cumulative) {
            int64_t p = floor_div(e.ts, w.size) * w.size;
            for (int64_t end = p + w.slide; end <= p + w.size; end += w.slide) {
                if (e.ts < end) m[{p, end, e.key}].add(e);
            }
        } else {
            for (int64_t start = floor_div(e.ts, w.slide) * w.slide; start > e.ts - w.size; start -= w.slide) {
                m[{start, start + w.size, e.key}].add(e);
            }
        }
    }
    return rows_of(m, quote);
}

schema_ptr event_schema(bool int_keys = false) {
    return make_schema({{"key", int_keys ? data_type::int64() : data_type::string()},
                        {"ts", data_type::timestamp()},
                        {"v", data_type::int64()}});
}

/// With `int_keys` the key column is a bigint: each event's key is the text of one, or "NULL".
std::vector<std::string> stream_answer(const std::vector<event>& delivered, const window_spec& w, int64_t bound,
                                       std::mt19937_64& rng, uint64_t& late, bool int_keys = false) {
    std::vector<batch> bs;
    for (size_t i = 0; i < delivered.size();) {
        size_t n = 1 + rng() % 64;
        batch b(event_schema(int_keys));
        for (size_t k = i; k < std::min(delivered.size(), i + n); ++k) {
            const std::string& key = delivered[k].key;
            value kv = !int_keys         ? value::of(key)
                       : key == "NULL" ? value::null(data_type::int64())
                                         : value::of(int64_t(std::stoll(key)));
            b.append_row({kv, value::ts(delivered[k].ts), value::of(delivered[k].v)});
        }
        i += n;
        bs.push_back(std::move(b));
    }
    pipeline p(pipeline_options{.queue_capacity = 1 + rng() % 4});
    std::vector<std::string> out;
    auto win = p.source(event_schema(int_keys), from_batches(std::move(bs)))
                 .watermark("ts", std::chrono::milliseconds(bound))
                 .key_by({"key"})
                 .window(w)
                 .aggregate({count(), sum("v"), min("v"), max("v"), count_distinct("v"), first_value("v"),
                             last_value("v")});
    win.sink([&](const batch& b) {
        for (size_t i = 0; i < b.num_rows(); ++i) out.push_back(b.row_to_string(i));
    });
    auto r = p.run();
    EXPECT_TRUE(r) << (r ? "" : r.error().message);
    late = p.stage_at(win.stage_id()).metrics().late_rows;
    std::sort(out.begin(), out.end());
    return out;
}

/// Delivers `sorted` shuffled within `bound` (each event at ts + u, u in [0, bound], so none
/// is late) and checks a tumbling, hopping, session and cumulative window of random sizes
/// against the batch answer; `int_key` runs the window stage's integral-key path.
void check_every_window_kind(uint64_t seed, const std::vector<event>& sorted, int64_t bound, std::mt19937_64& rng,
                             bool int_key) {
    std::vector<std::pair<int64_t, size_t>> order;
    for (size_t i = 0; i < sorted.size(); ++i) {
        order.push_back({sorted[i].ts + int64_t(rng() % uint64_t(bound + 1)), i});
    }
    std::sort(order.begin(), order.end());
    std::vector<event> delivered;
    for (auto [d, i] : order) delivered.push_back(sorted[i]);

    int64_t size = 10 + int64_t(rng() % 90);
    int64_t slide = 1 + int64_t(rng() % uint64_t(size));
    int64_t step = 2 + int64_t(rng() % 20);
    std::vector<window_spec> specs{
      tumble(std::chrono::milliseconds(size)),
      hop(std::chrono::milliseconds(size), std::chrono::milliseconds(slide)),
      session(std::chrono::milliseconds(1 + rng() % 20)),
      cumulate(std::chrono::milliseconds(step), std::chrono::milliseconds(step * int64_t(1 + rng() % 6))),
    };
    for (const auto& w : specs) {
        uint64_t late = 0;
        auto got = stream_answer(delivered, w, bound, rng, late, int_key);
        auto want = batch_answer(sorted, w, !int_key);
        EXPECT_EQ(late, 0u) << "seed " << seed << " kind " << int(w.kind);
        ASSERT_EQ(got.size(), want.size()) << "seed " << seed << " kind " << int(w.kind) << " size " << w.size
                                           << " slide " << w.slide << " gap " << w.gap;
        for (size_t i = 0; i < got.size(); ++i) {
            ASSERT_EQ(got[i], want[i]) << "seed " << seed << " kind " << int(w.kind);
        }
    }
}

TEST(randomized, windows_equal_a_batch_computation_over_sorted_input) {
    for (uint64_t seed = 1; seed <= uint64_t(test_rounds(100)); ++seed) {
        std::mt19937_64 rng(seed);
        int64_t bound = 1 + int64_t(rng() % 40);
        size_t n = 500 + rng() % 1500;
        size_t keys = 1 + rng() % 12;
        std::vector<event> sorted;
        int64_t t = int64_t(rng() % 1000) - 500; // some negative event times too
        for (size_t i = 0; i < n; ++i) {
            t += 1 + int64_t(rng() % 4); // distinct times, so first/last are well defined
            sorted.push_back({"k" + std::to_string(rng() % keys), t, int64_t(rng() % 60)});
        }
        check_every_window_kind(seed, sorted, bound, rng, false);
        if (::testing::Test::HasFatalFailure()) return;
    }
}

// The same with a bigint key (the window stage's integral-key path): many keys, spread over
// the whole int64 range so that hash tables grow, collide, drop and reuse entries as panes come
// and go, and a few NULL keys among them.
TEST(randomized, windows_with_bigint_keys_equal_a_batch_computation) {
    for (uint64_t seed = 1; seed <= uint64_t(test_rounds(20)); ++seed) {
        std::mt19937_64 rng(seed);
        int64_t bound = 1 + int64_t(rng() % 40);
        size_t n = 2000 + rng() % 3000;
        size_t keys = 1 + rng() % 500;
        std::vector<int64_t> key_values;
        for (size_t k = 0; k < keys; ++k) {
            switch (rng() % 4) {
            case 0: key_values.push_back(int64_t(k)); break;
            case 1: key_values.push_back(-(int64_t(k) << 32)); break; // differ only in high bits
            case 2: key_values.push_back(int64_t(rng())); break;
            default: key_values.push_back(k % 2 ? INT64_MIN + int64_t(k) : INT64_MAX - int64_t(k)); break;
            }
        }
        std::vector<event> sorted;
        int64_t t = int64_t(rng() % 1000) - 500;
        for (size_t i = 0; i < n; ++i) {
            t += 1 + int64_t(rng() % 4);
            std::string key = rng() % 50 == 0 ? "NULL" : std::to_string(key_values[rng() % keys]);
            sorted.push_back({key, t, int64_t(rng() % 60)});
        }
        check_every_window_kind(seed, sorted, bound, rng, true);
        if (::testing::Test::HasFatalFailure()) return;
    }
}

} // namespace
} // namespace runnel::engine
