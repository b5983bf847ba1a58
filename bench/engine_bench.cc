// engine_bench: events/s per core of the stream engine on an in-memory, Nexmark-shaped bid
// stream, each query measured side by side with a hand-written single-threaded C++ loop that
// computes the same result on the same batches (the COST baseline). Both must agree on the
// output (row count and a checksum) or the line is marked MISMATCH. Prints a table, then one
// JSON document (also to --json FILE).
//
//   engine_bench [--events 2000000] [--runs 3] [--threads 1,2] [--query NAME] [--json out.json]
//
// Each query runs on one thread and, for every other count given to --threads, as that many
// instances on as many threads ("x2"): a keyed query brings rows to their key's instance through
// `engine::exchange`, a stateless one runs its instances side by side. "vs 1 thread" is the
// events/s of the line against the same query's one-thread line. "channel count" is a query of
// four keys; "channel count 2-phase" is the same query whose instances pre-aggregate before the
// exchange (a local and a global window stage), against the same one-thread plan. Under callgrind
// (`valgrind --tool=callgrind --instr-atstart=no`) only the engine's runs are counted.

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <boost/unordered/unordered_flat_map.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <functional>
#include <condition_variable>
#include <map>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "engine/engine.h"

#if __has_include(<valgrind/callgrind.h>)
#include <valgrind/callgrind.h>
#endif

using namespace std::chrono_literals;

namespace runnel::bench {
namespace {

using namespace runnel::engine;
using steady = std::chrono::steady_clock;

constexpr int64_t auctions = 100'000;
constexpr int64_t bidders = 10'000;
constexpr int64_t bound_ms = 100; // watermark out-of-orderness
constexpr int64_t jitter_ms = 50; // actual disorder in the stream
constexpr double filter_price = 5'000;

schema_ptr bid_schema() {
    return make_schema({{"auction", data_type::int64(), false},
                        {"bidder", data_type::int64(), false},
                        {"price", data_type::float64(), false},
                        {"channel", data_type::string(), false},
                        {"url", data_type::string(), false},
                        {"ts", data_type::timestamp(), false}});
}

/// Bids at 10 per millisecond of event time, up to `jitter_ms` out of order, in batches of 4096.
std::vector<batch> make_bids(size_t n) {
    std::mt19937_64 rng(42);
    const char* channels[] = {"Google", "Facebook", "Baidu", "Apple"};
    std::vector<batch> out;
    auto s = bid_schema();
    std::string url;
    for (size_t i = 0; i < n;) {
        batch b(s);
        size_t m = std::min<size_t>(4096, n - i);
        for (auto& c : b.columns()) c.reserve(m);
        for (size_t k = 0; k < m; ++k, ++i) {
            int64_t ts = 1'700'000'000'000 + int64_t(i / 10) - int64_t(rng() % jitter_ms);
            // Nexmark: a few hot auctions get most bids; here half the bids go to 1% of them.
            int64_t auction = (rng() % 2) ? int64_t(rng() % (auctions / 100)) : int64_t(rng() % auctions);
            b.mutable_col(0).push_int64(auction);
            b.mutable_col(1).push_int64(int64_t(rng() % bidders));
            b.mutable_col(2).push_float64(double(100 + rng() % 10'000));
            b.mutable_col(3).push_string(channels[rng() % 4]);
            url = fmt::format("https://www.nexmark.com/item.htm?query=1&channel_id={}", rng() % 1'000'000);
            b.mutable_col(4).push_string(url);
            b.mutable_col(5).push_int64(ts);
        }
        b.seal();
        out.push_back(std::move(b));
    }
    return out;
}

/// What both implementations report, to check they computed the same thing.
struct answer {
    uint64_t rows = 0;
    double checksum = 0;
    bool operator==(const answer& o) const {
        return rows == o.rows && std::abs(checksum - o.checksum) <= 1e-9 * std::max(1.0, std::abs(checksum));
    }
};

// ---- the engine side ----

/// Adds the stages of `query` after `src` and sinks its output into `a`. `keyed(s, key)` is
/// where a keyed query brings each row to the instance of its key (the exchange); with one
/// instance it returns `s`. Stateless queries need no exchange. Keyed queries first keep only
/// the columns their window reads (what a planner's column pruning does: the exchange then
/// carries no column nobody reads), on one thread as on several, so the pipelines differ only
/// by the exchange.
/// False with --all-columns: keyed queries carry every column (no pruning before the window).
bool prune_columns = true;

/// `s` with only the columns `names` (or all of them, with --all-columns).
stream pruned(stream s, const std::vector<std::string>& names) {
    if (!prune_columns) return s;
    std::vector<named_expr> cols;
    for (const auto& n : names) cols.push_back(as(col(n), n));
    return s.project(cols);
}

/// `parallel`: the query runs as one of several instances (`keyed` is an exchange).
void build_query(const std::string& query, stream src, answer& a,
                 const std::function<stream(stream, std::string)>& keyed, bool parallel) {
    auto count_sink = [&a](size_t col) {
        return [&a, col](const batch& b) {
            a.rows += b.num_rows();
            const column& c = b.col(col);
            if (c.type().id == type_id::float64) {
                const double* x = c.float64_data();
                for (size_t i = 0; i < b.num_rows(); ++i) a.checksum += x[i];
            } else {
                const int64_t* x = c.int64_data();
                for (size_t i = 0; i < b.num_rows(); ++i) a.checksum += double(x[i]);
            }
        };
    };
    if (query == "pass-through") {
        src.sink(count_sink(0));
    } else if (query == "filter+project") {
        src.filter(col("price") > filter_price)
          .project({as(col("auction"), "auction"), as(col("price") * 0.9, "price_eur"), as(col("bidder"), "bidder"),
                    as(col("ts"), "ts")})
          .sink(count_sink(1));
    } else if (query == "tumbling count") {
        keyed(pruned(src.watermark("ts", std::chrono::milliseconds(bound_ms)), {"auction", "ts"}), "auction")
          .key_by({"auction"})
          .window(tumble(10s))
          .aggregate({count()})
          .sink(count_sink(3));
    } else if (query == "channel count" || query == "channel count 2-phase") {
        // Four keys: a one-phase exchange sends every row to the instance of its channel (and
        // may give one instance three of the four); the two-phase plan pre-aggregates each
        // instance's rows per pane and channel before the exchange and merges the partials
        // after it. On one thread both are the one-phase plan.
        const std::vector<aggregate_spec> aggs{count(), sum("price")};
        auto s = pruned(src.watermark("ts", std::chrono::milliseconds(bound_ms)), {"channel", "price", "ts"});
        stream out;
        if (query == "channel count 2-phase" && parallel) {
            window_options local, global;
            local.phase = agg_phase::local;
            global.phase = agg_phase::global;
            out = keyed(s.key_by({"channel"}).window(tumble(10s), local).aggregate(aggs), "channel")
                    .key_by({"channel"})
                    .window(tumble(10s), global)
                    .aggregate(aggs);
        } else {
            out = keyed(s, "channel").key_by({"channel"}).window(tumble(10s)).aggregate(aggs);
        }
        out.sink(count_sink(3));
    } else if (query == "hopping sum") {
        keyed(pruned(src.watermark("ts", std::chrono::milliseconds(bound_ms)), {"auction", "price", "ts"}),
              "auction")
          .key_by({"auction"})
          .window(hop(10s, 1s))
          .aggregate({sum("price")})
          .sink(count_sink(3));
    } else if (query == "session count") {
        keyed(pruned(src.watermark("ts", std::chrono::milliseconds(bound_ms)), {"bidder", "ts"}), "bidder")
          .key_by({"bidder"})
          .window(session(500ms))
          .aggregate({count()})
          .sink(count_sink(3));
    }
}

answer run_engine(const std::string& query, std::vector<batch> input) {
    answer a;
    pipeline p;
    build_query(query, p.source(bid_schema(), from_batches(std::move(input))), a,
                [](stream s, const std::string&) { return s; }, false);
    auto r = p.run();
    if (!r) {
        fmt::print(stderr, "engine_bench: {}: {}\n", query, r.error().message);
        std::exit(1);
    }
    return a;
}

/// `query` with `n` instances on `n` threads: instance i takes every n-th batch, and a keyed
/// query's exchange brings each key to the instance it hashes to. A thread with nothing to do
/// parks until the exchange wakes it (or 1 ms passes).
answer run_engine_parallel(const std::string& query, std::vector<batch> input, uint32_t n, key_routing routing) {
    exchange_set xs(n);
    std::vector<std::unique_ptr<pipeline>> ps;
    std::vector<pipeline*> instances;
    std::vector<answer> part(n);
    for (uint32_t i = 0; i < n; ++i) {
        std::vector<batch> mine;
        for (size_t k = i; k < input.size(); k += n) mine.push_back(std::move(input[k]));
        ps.push_back(std::make_unique<pipeline>());
        instances.push_back(ps.back().get());
        build_query(query, ps[i]->source(bid_schema(), from_batches(std::move(mine))), part[i],
                    [&xs, i, routing](stream s, const std::string& key) { return xs.exchange(s, i, {key}, routing); },
                    true);
    }
    if (auto r = run_parallel(instances, xs); !r) {
        fmt::print(stderr, "engine_bench: {} x{}: {}\n", query, n, r.error().message);
        std::exit(1);
    }
    answer a;
    for (const auto& p : part) {
        a.rows += p.rows;
        a.checksum += p.checksum;
    }
    return a;
}

// ---- the hand-written loops ----

int64_t floor_div(int64_t a, int64_t b) { return a / b - ((a % b != 0) && ((a < 0) != (b < 0))); }

/// Watermark of the bounded-out-of-orderness kind, after a batch.
struct wm_tracker {
    int64_t max_ts = INT64_MIN;
    void see(const column& ts, size_t n) {
        const int64_t* t = ts.int64_data();
        for (size_t i = 0; i < n; ++i) max_ts = std::max(max_ts, t[i]);
    }
    int64_t wm() const { return max_ts == INT64_MIN ? INT64_MIN : max_ts - bound_ms - 1; }
};

answer hand_pass_through(std::vector<batch> in) {
    answer a;
    for (auto& owned : in) {
        const batch b = std::move(owned); // each side owns and frees its input, as the pipeline does
        a.rows += b.num_rows();
        const int64_t* x = b.col(0).int64_data();
        for (size_t i = 0; i < b.num_rows(); ++i) a.checksum += double(x[i]);
    }
    return a;
}

answer hand_filter_project(std::vector<batch> in) {
    answer a;
    std::vector<int64_t> auction, bidder, ts;
    std::vector<double> eur;
    for (auto& owned : in) {
        const batch b = std::move(owned); // each side owns and frees its input, as the pipeline does
        auction.clear(), bidder.clear(), ts.clear(), eur.clear();
        const double* price = b.col(2).float64_data();
        for (size_t i = 0; i < b.num_rows(); ++i) {
            if (price[i] > filter_price) {
                auction.push_back(b.col(0).int64_at(i));
                eur.push_back(price[i] * 0.9);
                bidder.push_back(b.col(1).int64_at(i));
                ts.push_back(b.col(5).int64_at(i));
            }
        }
        a.rows += eur.size();
        for (double e : eur) a.checksum += e;
    }
    return a;
}

answer hand_tumbling_count(std::vector<batch> in) {
    answer a;
    const int64_t size = 10'000;
    std::map<int64_t, boost::unordered_flat_map<int64_t, int64_t>> windows;
    wm_tracker wm;
    auto fire = [&](int64_t w) {
        while (!windows.empty() && windows.begin()->first + size - 1 <= w) {
            for (const auto& [k, c] : windows.begin()->second) {
                ++a.rows;
                a.checksum += double(c);
            }
            windows.erase(windows.begin());
        }
    };
    boost::unordered_flat_map<int64_t, int64_t>* cur = nullptr;
    int64_t cur_start = INT64_MIN;
    for (auto& owned : in) {
        const batch b = std::move(owned); // each side owns and frees its input, as the pipeline does
        const int64_t* auction = b.col(0).int64_data();
        const int64_t* ts = b.col(5).int64_data();
        for (size_t i = 0; i < b.num_rows(); ++i) {
            int64_t start = floor_div(ts[i], size) * size;
            if (start != cur_start) {
                cur = &windows[start];
                cur_start = start;
            }
            ++(*cur)[auction[i]];
        }
        wm.see(b.col(5), b.num_rows());
        fire(wm.wm());
        cur_start = INT64_MIN;
    }
    fire(INT64_MAX);
    return a;
}

answer hand_channel_count(std::vector<batch> in) {
    answer a;
    const int64_t size = 10'000;
    struct acc {
        int64_t n = 0;
        double price = 0;
    };
    std::map<int64_t, std::map<std::string, acc, std::less<>>> windows;
    wm_tracker wm;
    auto fire = [&](int64_t w) {
        while (!windows.empty() && windows.begin()->first + size - 1 <= w) {
            for (const auto& [k, c] : windows.begin()->second) {
                ++a.rows;
                a.checksum += double(c.n);
            }
            windows.erase(windows.begin());
        }
    };
    for (auto& owned : in) {
        const batch b = std::move(owned); // each side owns and frees its input, as the pipeline does
        const column& channel = b.col(3);
        const double* price = b.col(2).float64_data();
        const int64_t* ts = b.col(5).int64_data();
        for (size_t i = 0; i < b.num_rows(); ++i) {
            auto& w = windows[floor_div(ts[i], size) * size];
            auto it = w.find(channel.string_at(i));
            if (it == w.end()) it = w.emplace(std::string(channel.string_at(i)), acc{}).first;
            ++it->second.n;
            it->second.price += price[i];
        }
        wm.see(b.col(5), b.num_rows());
        fire(wm.wm());
    }
    fire(INT64_MAX);
    return a;
}

answer hand_hopping_sum(std::vector<batch> in) {
    // Panes of one slide (1 s); a window is the sum of its 10 panes.
    answer a;
    const int64_t size = 10'000, slide = 1'000;
    std::map<int64_t, boost::unordered_flat_map<int64_t, double>> panes;
    int64_t fired = INT64_MIN; // every window ending at or before this has fired
    wm_tracker wm;
    boost::unordered_flat_map<int64_t, double> window;
    auto fire = [&](int64_t w) {
        while (!panes.empty()) {
            int64_t first = panes.begin()->first;
            int64_t end = std::max(floor_div(first, slide) * slide + slide, fired + slide);
            if (w != INT64_MAX && end - 1 > w) break;
            window.clear();
            for (auto it = panes.lower_bound(end - size); it != panes.end() && it->first < end; ++it) {
                for (const auto& [k, v] : it->second) window[k] += v;
            }
            for (const auto& [k, v] : window) {
                ++a.rows;
                a.checksum += v;
            }
            fired = end;
            while (!panes.empty() && panes.begin()->first < end + slide - size) panes.erase(panes.begin());
        }
    };
    for (auto& owned : in) {
        const batch b = std::move(owned); // each side owns and frees its input, as the pipeline does
        const int64_t* auction = b.col(0).int64_data();
        const double* price = b.col(2).float64_data();
        const int64_t* ts = b.col(5).int64_data();
        int64_t cur_start = INT64_MIN;
        boost::unordered_flat_map<int64_t, double>* cur = nullptr;
        for (size_t i = 0; i < b.num_rows(); ++i) {
            int64_t p = floor_div(ts[i], slide) * slide;
            if (p != cur_start) {
                cur = &panes[p];
                cur_start = p;
            }
            (*cur)[auction[i]] += price[i];
        }
        wm.see(b.col(5), b.num_rows());
        fire(wm.wm());
    }
    fire(INT64_MAX);
    return a;
}

answer hand_session_count(std::vector<batch> in) {
    answer a;
    const int64_t gap = 500;
    struct sess {
        int64_t start, end, count;
    };
    boost::unordered_flat_map<int64_t, std::vector<sess>> open;
    std::multimap<int64_t, int64_t> timers; // end → key, checked lazily
    wm_tracker wm;
    auto fire = [&](int64_t w) {
        // A session closes once a row at its end could no longer join it: end ≤ watermark.
        while (!timers.empty() && (w == INT64_MAX || timers.begin()->first <= w)) {
            auto [end, key] = *timers.begin();
            timers.erase(timers.begin());
            auto it = open.find(key);
            if (it == open.end()) continue;
            auto& v = it->second;
            for (size_t k = 0; k < v.size();) {
                if (v[k].end == end) {
                    ++a.rows;
                    a.checksum += double(v[k].count);
                    v[k] = v.back();
                    v.pop_back();
                } else {
                    ++k;
                }
            }
            if (v.empty()) open.erase(it);
        }
    };
    for (auto& owned : in) {
        const batch b = std::move(owned); // each side owns and frees its input, as the pipeline does
        const int64_t* bidder = b.col(1).int64_data();
        const int64_t* ts = b.col(5).int64_data();
        for (size_t i = 0; i < b.num_rows(); ++i) {
            auto& v = open[bidder[i]];
            sess s{ts[i], ts[i] + gap, 1};
            for (size_t k = 0; k < v.size();) {
                if (v[k].start <= s.end && s.start <= v[k].end) { // sessions that touch merge
                    s.start = std::min(s.start, v[k].start);
                    s.end = std::max(s.end, v[k].end);
                    s.count += v[k].count;
                    v[k] = v.back();
                    v.pop_back();
                } else {
                    ++k;
                }
            }
            v.push_back(s);
            timers.emplace(s.end, bidder[i]); // stale entries are skipped when they fire
        }
        wm.see(b.col(5), b.num_rows());
        fire(wm.wm());
    }
    fire(INT64_MAX);
    return a;
}

struct result_line {
    std::string query;
    uint32_t threads = 1;
    double engine_eps = 0;
    double hand_eps = 0;
    bool agree = false;
    answer engine_answer;
    double vs_one_thread = 0; ///< engine events/s against the same query on one thread (0: not run)
};

/// Under `valgrind --tool=callgrind --instr-atstart=no`, counts instructions only while the
/// engine runs (not while the input is generated or copied, nor the hand-written loops); a
/// no-op otherwise.
void engine_instructions(bool on) {
#if __has_include(<valgrind/callgrind.h>)
    if (on) {
        CALLGRIND_START_INSTRUMENTATION;
    } else {
        CALLGRIND_STOP_INSTRUMENTATION;
    }
#else
    (void)on;
#endif
}

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
}

} // namespace
} // namespace runnel::bench

int main(int argc, char** argv) {
    using namespace runnel::bench;
    size_t events = 2'000'000;
    int runs = 3;
    std::string json_path, only;
    CLI::App app{"engine_bench: stream engine vs hand-written loops on an in-memory bid stream"};
    app.add_option("--events", events, "bids in the stream")->check(CLI::Range(10'000, 100'000'000));
    app.add_option("--runs", runs, "runs per query; the median is reported")->check(CLI::Range(1, 20));
    app.add_option("--json", json_path, "also write the JSON document here");
    app.add_option("--query", only, "run only this query (for profiling)");
    std::vector<uint32_t> threads{1, 2};
    app.add_option("--threads", threads,
                   "instance counts to run each query with, e.g. 1,2 (more than one: one thread per instance, "
                   "keyed queries joined by the exchange)")
      ->delimiter(',')
      ->check(CLI::Range(1, 64));
    bool all_columns = false;
    app.add_flag("--all-columns", all_columns, "keyed queries carry every column to their window (no pruning)");
    std::string routing_name = "columnar";
    app.add_option("--routing", routing_name,
                   "how the exchange assigns keys to instances: columnar (for new dataflows) or fnv1a (what "
                   "parallel jobs' checkpoints are split by)")
      ->check(CLI::IsMember({"columnar", "fnv1a"}));
    CLI11_PARSE(app, argc, argv);

    prune_columns = !all_columns;
    const auto routing = routing_name == "fnv1a" ? runnel::engine::key_routing::fnv1a
                                                 : runnel::engine::key_routing::columnar;
    fmt::print("generating {} bids…\n", events);
    auto bids = make_bids(events);

    struct query {
        std::string name;
        std::function<answer(std::vector<runnel::engine::batch>)> hand;
    };
    std::vector<query> queries{{"pass-through", hand_pass_through},
                               {"filter+project", hand_filter_project},
                               {"tumbling count", hand_tumbling_count},
                               {"channel count", hand_channel_count},
                               {"channel count 2-phase", hand_channel_count},
                               {"hopping sum", hand_hopping_sum},
                               {"session count", hand_session_count}};
    std::vector<result_line> lines;
    for (const auto& q : queries) {
        if (!only.empty() && q.name != only) continue;
        double one_thread = 0;
        for (uint32_t n : threads) {
            result_line l;
            l.query = n > 1 ? fmt::format("{} x{}", q.name, n) : q.name;
            l.threads = n;
            std::vector<double> e, h;
            answer ea, ha;
            for (int r = 0; r < runs; ++r) {
                // Each side gets its own copy (not timed) and frees every batch once done with it.
                auto copy = bids;
                engine_instructions(true);
                auto t0 = steady::now();
                ea = n > 1 ? run_engine_parallel(q.name, std::move(copy), n, routing)
                           : run_engine(q.name, std::move(copy));
                auto t1 = steady::now();
                engine_instructions(false);
                copy = bids;
                auto t2 = steady::now();
                ha = q.hand(std::move(copy));
                auto t3 = steady::now();
                e.push_back(double(events) / std::chrono::duration<double>(t1 - t0).count());
                h.push_back(double(events) / std::chrono::duration<double>(t3 - t2).count());
            }
            l.engine_eps = median(e);
            l.hand_eps = median(h);
            l.agree = ea == ha;
            l.engine_answer = ea;
            if (n == 1) one_thread = l.engine_eps;
            l.vs_one_thread = one_thread > 0 ? l.engine_eps / one_thread : 0;
            lines.push_back(l);
        }
    }

    fmt::print("\n{:<26} {:>8} {:>14} {:>14} {:>12} {:>14} {:>12} {:>12}  {}\n", "query", "threads", "engine ev/s",
               "per core", "vs 1 thread", "hand loop ev/s", "engine/hand", "output rows", "check");
    for (const auto& l : lines) {
        fmt::print("{:<26} {:>8} {:>14.0f} {:>14.0f} {:>12} {:>14.0f} {:>12.2f} {:>12} {}\n", l.query, l.threads,
                   l.engine_eps, l.engine_eps / l.threads,
                   l.vs_one_thread > 0 ? fmt::format("{:.2f}", l.vs_one_thread) : std::string("-"), l.hand_eps,
                   l.engine_eps / l.hand_eps, l.engine_answer.rows, l.agree ? "same result" : "MISMATCH");
    }
    std::string json = fmt::format("{{\"benchmark\":\"engine\",\"events\":{},\"runs\":{},\"queries\":[", events, runs);
    for (size_t i = 0; i < lines.size(); ++i) {
        const auto& l = lines[i];
        json += fmt::format("{}{{\"query\":\"{}\",\"threads\":{},\"engine_events_per_s\":{:.0f},"
                            "\"engine_events_per_s_per_core\":{:.0f},\"vs_one_thread\":{:.3f},\"hand_events_per_s\":{:.0f},"
                            "\"ratio\":{:.3f},\"output_rows\":{},\"same_result\":{}}}",
                            i ? "," : "", l.query, l.threads, l.engine_eps, l.engine_eps / l.threads, l.vs_one_thread, l.hand_eps,
                            l.engine_eps / l.hand_eps,
                            l.engine_answer.rows, l.agree ? "true" : "false");
    }
    json += "]}";
    fmt::print("\n{}\n", json);
    if (!json_path.empty()) {
        FILE* f = std::fopen(json_path.c_str(), "w");
        if (!f) {
            fmt::print(stderr, "engine_bench: cannot write {}\n", json_path);
            return 1;
        }
        std::fputs(json.c_str(), f);
        std::fputc('\n', f);
        std::fclose(f);
    }
    bool all = std::all_of(lines.begin(), lines.end(), [](const result_line& l) { return l.agree; });
    return all ? 0 : 1;
}
