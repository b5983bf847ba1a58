// The exchange between parallel instances: rows of a key meet in one instance, watermarks are
// the minimum over the instances feeding it, and a stalled instance stops its neighbours.
#include "base/sanitizer.h"
#include "engine/engine.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <map>
#include <random>
#include <thread>

using namespace std::chrono_literals;

namespace runnel::engine {
namespace {

schema_ptr events_schema() {
    return make_schema(
        {{"key", data_type::int64()}, {"ts", data_type::int64()}, {"v", data_type::int64()}});
}

/// `n` events over 5,000 keys, in event-time order with jitter below the bound, cut in batches.
std::vector<batch> make_events(size_t n, uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::vector<batch> out;
    batch b(events_schema());
    for (size_t i = 0; i < n; ++i) {
        int64_t ts = int64_t(i) * 3 + int64_t(rng() % 200);
        b.append_row(
            {value::of(int64_t(rng() % 5000)), value::of(ts), value::of(int64_t(rng() % 100))});
        if (b.num_rows() == 500) {
            out.push_back(std::move(b));
            b = batch(events_schema());
        }
    }
    if (b.num_rows() > 0)
        out.push_back(std::move(b));
    return out;
}

/// Wakes one instance's thread: the exchange calls `wake` from other threads.
struct parker {
    std::mutex mu;
    std::condition_variable cv;
    bool woken = false;
    void wake() {
        std::lock_guard g(mu);
        woken = true;
        cv.notify_one();
    }
    void park() {
        std::unique_lock g(mu);
        cv.wait_for(g, 50ms,
                    [&] { return woken; }); // a bounded wait: the loop re-checks its pipeline
        woken = false;
    }
};

/// Runs every pipeline in turn on this thread until all have finished: the exchange needs no
/// threads of its own.
void drive_all(std::vector<std::unique_ptr<pipeline>>& ps) {
    for (bool done = false; !done;) {
        done = true;
        for (auto& p : ps) {
            auto r = p->run_once();
            ASSERT_TRUE(r) << r.error().message;
            done = done && r.value();
        }
    }
}

std::vector<std::string> sorted_rows(const std::vector<batch>& bs) {
    std::vector<std::string> out;
    for (const auto& b : bs) {
        for (size_t r = 0; r < b.num_rows(); ++r)
            out.push_back(b.row_to_string(r));
    }
    std::sort(out.begin(), out.end());
    return out;
}

/// Counts and sums per key in tumbling windows: one pipeline over everything.
std::vector<std::string> single(const std::vector<batch>& events) {
    pipeline p;
    std::vector<batch> got;
    p.source(events_schema(), from_batches(events))
        .watermark("ts", 250ms)
        .key_by({"key"})
        .window(tumble(1000ms))
        .aggregate({count(), sum("v")})
        .sink([&](const batch& b) { got.push_back(b); });
    EXPECT_TRUE(p.run());
    return sorted_rows(got);
}

/// The same with `n` instances on `n` threads: instance i reads every n-th batch, then the
/// exchange brings each key to its instance.
std::vector<std::string> parallel(const std::vector<batch>& events, uint32_t n,
                                  size_t* max_in_flight = nullptr,
                                  key_routing routing = key_routing::fnv1a) {
    exchange x(n, 4, routing);
    std::vector<std::unique_ptr<pipeline>> ps;
    std::vector<std::vector<batch>> got(n);
    std::vector<parker> parkers(n);
    for (uint32_t i = 0; i < n; ++i) {
        std::vector<batch> mine;
        for (size_t k = i; k < events.size(); k += n)
            mine.push_back(events[k]);
        ps.push_back(std::make_unique<pipeline>());
        x.set_waker(i, [&parkers, i] { parkers[i].wake(); });
        ps[i]
            ->source(events_schema(), from_batches(std::move(mine)))
            .watermark("ts", 250ms)
            .exchange(x, i, {"key"})
            .key_by({"key"})
            .window(tumble(1000ms))
            .aggregate({count(), sum("v")})
            .sink([&got, i](const batch& b) { got[i].push_back(b); });
        EXPECT_TRUE(ps[i]->check());
    }
    std::atomic<size_t> peak{0};
    std::vector<std::thread> threads;
    std::atomic<bool> failed{false};
    for (uint32_t i = 0; i < n; ++i) {
        threads.emplace_back([&, i] {
            for (;;) {
                auto r = ps[i]->run_once();
                if (!r) {
                    ADD_FAILURE() << r.error().message;
                    failed = true;
                    return;
                }
                if (r.value())
                    return;
                size_t f = x.in_flight();
                size_t prev = peak.load();
                while (f > prev && !peak.compare_exchange_weak(prev, f)) {
                }
                if (!ps[i]->made_progress())
                    parkers[i].park();
            }
        });
    }
    for (auto& t : threads)
        t.join();
    if (max_in_flight)
        *max_in_flight = peak;
    std::vector<batch> all;
    for (auto& g : got) {
        for (auto& b : g)
            all.push_back(std::move(b));
    }
    // Each key's windows come from exactly one instance.
    return sorted_rows(all);
}

TEST(exchange, parallel_windows_equal_one_pipeline) {
    auto events = make_events(200000, 7);
    auto want = single(events);
    ASSERT_GT(want.size(), 1000u);
    for (uint32_t n : {1u, 2u, 3u}) {
        size_t peak = 0;
        auto got = parallel(events, n, &peak);
        EXPECT_EQ(got, want) << n << " instances";
        // Every channel holds at most its capacity plus the one message a sink may add past it.
        EXPECT_LE(peak, size_t(n) * n * 5) << n << " instances";
    }
}

// A topic of one partition read by two instances: instance 1 reads no partition, so its
// watermark stage is idle from its first tick and the exchange leaves it out of the minimum.
// Instance 0's windows fire while both pipelines keep running (no input ends); without the
// idle status they would wait for instance 1 forever.
TEST(exchange, an_instance_that_reads_no_partition_holds_no_window_back) {
    const uint32_t n = 2;
    exchange x(n, 4, key_routing::columnar);
    std::vector<std::unique_ptr<pipeline>> ps;
    std::vector<std::vector<batch>> got(n);
    auto events = make_events(4000, 7);
    for (uint32_t i = 0; i < n; ++i) {
        auto left = std::make_shared<std::vector<batch>>(i == 0 ? events : std::vector<batch>{});
        auto next = std::make_shared<size_t>(0);
        ps.push_back(std::make_unique<pipeline>());
        watermark_options wo;
        wo.partitions = 1;
        wo.instances = int32_t(n);
        wo.instance = int32_t(i);
        ps[i]
            ->source(events_schema(),
                     [left, next]() {
                         // Never ends: a topic has no end.
                         return *next < left->size() ? source_poll::data((*left)[(*next)++]) : source_poll::idle();
                     })
            .watermark("ts", 250ms, wo)
            .exchange(x, i, {"key"})
            .key_by({"key"})
            .window(tumble(1000ms))
            .aggregate({count(), sum("v")})
            .sink([&got, i](const batch& b) { got[i].push_back(b); });
        ASSERT_TRUE(ps[i]->check());
    }
    // The events span 12 s of event time: windows up to 10 s close on instance 0's watermark.
    auto fired = [&] {
        size_t rows = 0;
        for (const auto& g : got) {
            for (const auto& b : g) rows += b.num_rows();
        }
        return rows;
    };
    for (int round = 0; round < 10000 && fired() < 1000; ++round) {
        for (auto& p : ps) {
            auto r = p->run_once();
            ASSERT_TRUE(r) << r.error().message;
            ASSERT_FALSE(r.value()); // nothing ends
        }
    }
    EXPECT_GE(fired(), 1000u);
    EXPECT_FALSE(got[0].empty());
    EXPECT_FALSE(got[1].empty()); // keys hashed to instance 1 are counted there
}

// Senders that go idle and active at random, with watermarks and rows between: every receiver's
// watermark only rises, never passes what some sender promised, never passes sender 0's (which
// is never idle, so it counts until it ends), ends with the end of time, and every row arrives.
TEST(exchange, idle_and_active_senders_at_random_keep_the_watermark_rules) {
    for (uint64_t seed = 1; seed <= uint64_t(test_rounds(40)); ++seed) {
        std::mt19937_64 rng(seed);
        const uint32_t n = 2 + uint32_t(rng() % 3);
        exchange x(n, 2 + rng() % 4, key_routing::columnar);
        std::vector<int64_t> promised(n, INT64_MIN); // each sender's last watermark sent
        int64_t promised_max = INT64_MIN;
        bool first_ended = false; // sender 0 binds the minimum until it ends
        size_t rows_sent = 0, rows_got = 0;
        std::vector<std::vector<int64_t>> got_wm(n);
        std::vector<std::unique_ptr<pipeline>> ps;
        for (uint32_t i = 0; i < n; ++i) {
            struct script {
                int steps = 0;
                bool idle = false;
                int64_t wm = 0;
                std::deque<source_poll> owed;
            };
            auto st = std::make_shared<script>();
            st->steps = 20 + int(rng() % 60);
            auto src = [st, i, &rng, &promised, &promised_max, &rows_sent, &first_ended]() -> source_poll {
                if (!st->owed.empty()) {
                    auto p = std::move(st->owed.front());
                    st->owed.pop_front();
                    return p;
                }
                if (st->steps-- <= 0) {
                    first_ended = first_ended || i == 0;
                    return source_poll::end();
                }
                const auto op = rng() % 20;
                if (op < 10) { // rows, at or after the watermark; an idle input turns active first
                    batch b(events_schema());
                    const size_t k = 1 + rng() % 30;
                    for (size_t r = 0; r < k; ++r)
                        b.append_row({value::of(int64_t(rng() % 50)), value::of(st->wm + int64_t(rng() % 100)),
                                      value::of(int64_t(1))});
                    rows_sent += k;
                    if (st->idle) {
                        st->idle = false;
                        st->owed.push_back(source_poll::data(std::move(b)));
                        return source_poll::marked(watermark_status::active);
                    }
                    return source_poll::data(std::move(b));
                }
                if (op < 15) {
                    st->wm += int64_t(rng() % 50);
                    promised[i] = std::max(promised[i], st->wm);
                    promised_max = std::max(promised_max, st->wm);
                    return source_poll::watermark(model::event_time(st->wm));
                }
                if (op < 18 && i != 0) {
                    st->idle = !st->idle;
                    return source_poll::marked(st->idle ? watermark_status::idle : watermark_status::active);
                }
                return source_poll::idle();
            };
            ps.push_back(std::make_unique<pipeline>());
            auto in = ps[i]->source(events_schema(), src);
            // A watermark stage would make its own; these scripts send theirs through as they are.
            in.exchange(x, i, {"key"}).sink([&rows_got](const batch& b) { rows_got += b.num_rows(); },
                                            [&, i](model::event_time t) {
                                                const int64_t w = t.value();
                                                if (w != end_of_time.value()) {
                                                    EXPECT_LE(w, promised_max) << "seed " << seed;
                                                    if (!first_ended) {
                                                        EXPECT_LE(w, promised[0]) << "seed " << seed;
                                                    }
                                                }
                                                if (!got_wm[i].empty()) {
                                                    EXPECT_GE(w, got_wm[i].back()) << "seed " << seed;
                                                }
                                                got_wm[i].push_back(w);
                                            });
            ASSERT_TRUE(ps[i]->check());
        }
        drive_all(ps);
        EXPECT_EQ(rows_got, rows_sent) << "seed " << seed;
        for (uint32_t i = 0; i < n; ++i) {
            ASSERT_FALSE(got_wm[i].empty()) << "seed " << seed;
            EXPECT_EQ(got_wm[i].back(), end_of_time.value()) << "seed " << seed;
        }
    }
}

TEST(exchange, rows_of_a_key_meet_in_the_instance_it_hashes_to) {
    auto events = make_events(20000, 3);
    exchange x(3, 4);
    std::vector<std::unique_ptr<pipeline>> ps;
    std::vector<std::vector<batch>> got(3);
    for (uint32_t i = 0; i < 3; ++i) {
        std::vector<batch> mine;
        for (size_t k = i; k < events.size(); k += 3)
            mine.push_back(events[k]);
        ps.push_back(std::make_unique<pipeline>());
        ps[i]
            ->source(events_schema(), from_batches(std::move(mine)))
            .exchange(x, i, {"key"})
            .sink([&got, i](const batch& b) { got[i].push_back(b); });
    }
    drive_all(ps);
    size_t rows = 0;
    for (uint32_t i = 0; i < 3; ++i) {
        for (const auto& b : got[i]) {
            rows += b.num_rows();
            auto dest = hash_partition(b, {0}, 3);
            for (auto d : dest)
                ASSERT_EQ(d, i);
        }
    }
    EXPECT_EQ(rows, 20000u);
}

TEST(exchange, a_stalled_instance_stops_the_sources_of_the_others) {
    auto events = make_events(100000, 5);
    exchange x(2, 4);
    std::vector<std::unique_ptr<pipeline>> ps;
    std::vector<size_t> taken(2, 0);
    bool open = false;
    for (uint32_t i = 0; i < 2; ++i) {
        std::vector<batch> mine;
        for (size_t k = i; k < events.size(); k += 2)
            mine.push_back(events[k]);
        auto remaining = std::make_shared<std::vector<batch>>(std::move(mine));
        auto pos = std::make_shared<size_t>(0);
        ps.push_back(std::make_unique<pipeline>());
        ps[i]
            ->source(events_schema(),
                     [remaining, pos, &taken, i]() -> source_poll {
                         if (*pos == remaining->size())
                             return source_poll::end();
                         ++taken[i];
                         return source_poll::data((*remaining)[(*pos)++]);
                     })
            .exchange(x, i, {"key"})
            .sink([](const batch&) {}, {},
                  [&open, i] { return i == 0 || open; }); // instance 1's sink is stalled
    }
    for (int pass = 0; pass < 2000; ++pass) {
        for (auto& p : ps)
            ASSERT_TRUE(p->run_once());
    }
    // Instance 0's rows for keys of instance 1 pile up in one channel; both sources stop.
    EXPECT_LT(taken[0], 60u);
    EXPECT_LT(taken[1], 60u);
    EXPECT_LE(x.in_flight(), 4u * 4u + 4u);
    open = true;
    drive_all(ps);
    EXPECT_EQ(taken[0] + taken[1], events.size());
    EXPECT_EQ(x.in_flight(), 0u);
}


// ---- the column-wise sender ----

/// A batch of every key type, with NULLs, short and long strings and -0.0.
schema_ptr mixed_schema() {
    return make_schema({{"i", data_type::int64()},
                        {"s", data_type::string()},
                        {"d", data_type::float64()},
                        {"b", data_type::boolean()},
                        {"t", data_type::timestamp()},
                        {"ts", data_type::int64()}});
}

batch make_mixed(std::mt19937_64& rng, size_t rows, int64_t& clock) {
    batch b(mixed_schema());
    const char* words[] = {"", "a", "bid", "https://www.nexmark.com/item.htm?query=1", "Baidu"};
    for (size_t r = 0; r < rows; ++r) {
        auto maybe_null = [&](value v) { return rng() % 7 == 0 ? value::null(v.type) : v; };
        double d = double(int64_t(rng() % 9) - 4);
        if (d == 0 && rng() % 2)
            d = -0.0;
        b.append_row({maybe_null(value::of(int64_t(rng() % 50) - 25)),
                      maybe_null(value::of(std::string(words[rng() % 5]))), maybe_null(value::of(d)),
                      maybe_null(value::of(rng() % 2 == 0)), maybe_null(value::ts(int64_t(rng() % 4))),
                      value::of(clock += int64_t(rng() % 3))});
    }
    return b;
}

/// What `hash_partition` must compute: FNV-1a over each row's encoded key, then the finaliser
/// (the routing that parallel jobs' checkpoints were split by; it must not change).
std::vector<uint32_t> reference_partition(const batch& b, const std::vector<size_t>& keys, uint32_t n) {
    std::vector<uint32_t> out;
    for (size_t r = 0; r < b.num_rows(); ++r) {
        std::string k;
        for (size_t c : keys)
            encode_key_part(b.col(c), r, k);
        uint64_t h = 1469598103934665603ULL;
        for (unsigned char ch : k)
            h = (h ^ ch) * 1099511628211ULL;
        h ^= h >> 33;
        h *= 0xff51afd7ed558ccdULL;
        h ^= h >> 33;
        h *= 0xc4ceb9fe1a85ec53ULL;
        h ^= h >> 33;
        out.push_back(uint32_t(h % n));
    }
    return out;
}

TEST(exchange, column_wise_hash_equals_the_row_encoding) {
    std::mt19937_64 rng(11);
    int64_t clock = 0;
    const std::vector<std::vector<size_t>> key_sets{{0}, {1}, {2}, {3}, {4}, {0, 1}, {1, 2, 3}, {4, 0, 2, 1}};
    for (int round = 0; round < 20; ++round) {
        auto b = make_mixed(rng, 1 + rng() % 300, clock);
        for (const auto& keys : key_sets) {
            for (uint32_t n : {1u, 2u, 3u, 4u, 7u, 8u}) {
                ASSERT_EQ(hash_partition(b, keys, n), reference_partition(b, keys, n))
                    << "keys of " << keys.size() << " columns, " << n << " shards";
            }
        }
    }
    // Rows with no NULL take the fast path of each type; it must agree too.
    batch dense(mixed_schema());
    for (int64_t i = 0; i < 500; ++i)
        dense.append_row({value::of(i * 7919 - 1000), value::of(std::to_string(i)),
                          value::of(double(i) / 3), value::of(i % 3 == 0), value::ts(i), value::of(i)});
    for (uint32_t n : {2u, 3u, 4u})
        EXPECT_EQ(hash_partition(dense, {0, 1, 2, 3, 4}, n), reference_partition(dense, {0, 1, 2, 3, 4}, n));
}

TEST(exchange, columnar_routing_is_a_function_of_the_key_values) {
    std::mt19937_64 rng(5);
    int64_t clock = 0;
    auto b = make_mixed(rng, 2000, clock);
    for (const std::vector<size_t>& keys : {std::vector<size_t>{0}, {1}, {2}, {3}, {1, 0}, {2, 4, 3}}) {
        for (uint32_t n : {2u, 3u, 5u}) {
            auto d = hash_partition(b, keys, n, key_routing::columnar);
            std::map<std::string, uint32_t> by_key;
            for (size_t r = 0; r < b.num_rows(); ++r) {
                ASSERT_LT(d[r], n);
                std::string k;
                for (size_t c : keys)
                    encode_key_part(b.col(c), r, k); // equal keys (-0.0 = 0.0) encode equally
                auto [it, fresh] = by_key.emplace(k, d[r]);
                ASSERT_EQ(it->second, d[r]) << "one key, two shards";
            }
        }
    }
    // Many integer keys spread evenly, and the assignment never changes (checkpoints rely on it).
    batch ints(events_schema());
    for (int64_t k = 0; k < 40000; ++k)
        ints.append_row({value::of(k), value::of(k), value::of(k)});
    auto d = hash_partition(ints, {0}, 4, key_routing::columnar);
    std::vector<size_t> per(4);
    for (auto x : d)
        ++per[x];
    for (auto p : per)
        EXPECT_NEAR(double(p), 10000.0, 400.0);
    EXPECT_EQ(std::vector<uint32_t>(d.begin(), d.begin() + 8), (std::vector<uint32_t>{3, 1, 2, 0, 1, 3, 0, 2}));
}

TEST(exchange, retaining_rows_in_place_equals_selecting_them) {
    std::mt19937_64 rng(17);
    int64_t clock = 0;
    for (int round = 0; round < 50; ++round) {
        auto b = make_mixed(rng, 1 + rng() % 200, clock);
        // Half the rounds without NULLs (the in-place paths), half with (rebuilt columns).
        batch dense(mixed_schema());
        for (size_t r = 0; r < b.num_rows(); ++r) {
            auto row = b.row(r);
            for (auto& v : row) {
                if (v.is_null() && round % 2 == 0)
                    v = v.type.id == type_id::string ? value::of("x") : v.type.id == type_id::float64 ? value::of(1.5)
                        : v.type.id == type_id::boolean ? value::of(true) : value{v.type, int64_t(7)};
            }
            dense.append_row(row, r % 3 == 0 ? row_kind::update_after : row_kind::insert);
        }
        std::vector<uint32_t> rows;
        for (uint32_t r = 0; r < dense.num_rows(); ++r) {
            if (rng() % 3 != 0)
                rows.push_back(r);
        }
        auto want = dense.select(rows.data(), rows.size());
        dense.retain(rows.data(), rows.size());
        ASSERT_EQ(dense.num_rows(), want.num_rows());
        for (size_t r = 0; r < want.num_rows(); ++r)
            ASSERT_EQ(dense.row_to_string(r), want.row_to_string(r));
    }
}

/// Rows (as text) that `n` instances joined by an exchange on `keys` deliver, each checked to
/// be at the instance its key hashes to; run on this thread, round-robin.
std::vector<std::string> exchanged(const std::vector<batch>& in, uint32_t n, const std::vector<std::string>& keys,
                                   size_t capacity, key_routing routing) {
    exchange x(n, capacity, routing);
    std::vector<std::unique_ptr<pipeline>> ps;
    std::vector<std::vector<batch>> got(n);
    for (uint32_t i = 0; i < n; ++i) {
        std::vector<batch> mine;
        for (size_t k = i; k < in.size(); k += n)
            mine.push_back(in[k]);
        ps.push_back(std::make_unique<pipeline>());
        ps[i]
            ->source(mixed_schema(), from_batches(std::move(mine)))
            .exchange(x, i, keys)
            .sink([&got, i](const batch& b) { got[i].push_back(b); });
    }
    drive_all(ps);
    EXPECT_EQ(x.in_flight(), 0u);
    std::vector<size_t> cols;
    for (const auto& k : keys)
        cols.push_back(*mixed_schema()->index_of(k));
    std::vector<batch> all;
    for (uint32_t i = 0; i < n; ++i) {
        for (auto& b : got[i]) {
            for (uint32_t d : hash_partition(b, cols, n, routing))
                EXPECT_EQ(d, i);
            all.push_back(std::move(b));
        }
    }
    return sorted_rows(all);
}

TEST(exchange, random_keys_and_batch_sizes_arrive_whole_at_their_instance) {
    std::mt19937_64 rng(23);
    int64_t clock = 0;
    const std::vector<std::vector<std::string>> key_sets{{"i"}, {"s"}, {"d", "b"}, {"t", "s", "i"}};
    for (int round = 0; round < test_rounds(12); ++round) {
        std::vector<batch> in;
        for (size_t k = 0, batches = 1 + rng() % 30; k < batches; ++k)
            in.push_back(make_mixed(rng, rng() % 4 == 0 ? 1 : 1 + rng() % 700, clock));
        auto want = sorted_rows(in);
        const auto& keys = key_sets[size_t(round) % key_sets.size()];
        for (uint32_t n : {1u, 2u, 3u, 4u}) {
            for (auto routing : {key_routing::fnv1a, key_routing::columnar}) {
                ASSERT_EQ(exchanged(in, n, keys, 1 + rng() % 4, routing), want)
                    << n << " instances, round " << round << ", routing " << int(routing);
            }
        }
    }
}

TEST(exchange, random_windows_on_many_threads_equal_one_pipeline) {
    std::mt19937_64 rng(31);
    for (int round = 0; round < 3; ++round) {
        // Batches of random sizes: rows of one key in one batch, many keys, and single rows.
        auto events = make_events(20000 + rng() % 20000, rng());
        std::vector<batch> cut;
        for (const auto& b : events) {
            for (size_t at = 0; at < b.num_rows();) {
                size_t k = std::min<size_t>(b.num_rows() - at, 1 + rng() % 600);
                std::vector<uint32_t> rows(k);
                for (size_t r = 0; r < k; ++r)
                    rows[r] = uint32_t(at + r);
                cut.push_back(b.select(rows.data(), k));
                at += k;
            }
        }
        auto want = single(cut);
        EXPECT_EQ(parallel(cut, 2), want) << "2 instances, round " << round;
        EXPECT_EQ(parallel(cut, 4, nullptr, key_routing::columnar), want) << "4 instances, round " << round;
    }
}

TEST(exchange, a_batch_for_one_instance_is_handed_over_without_a_copy) {
    // Every row has the same key, so each batch belongs to one instance as it is.
    batch b(events_schema());
    for (int64_t r = 0; r < 1000; ++r)
        b.append_row({value::of(int64_t(42)), value::of(r), value::of(r)});
    const int64_t* data = b.col(1).int64_data();
    const uint32_t owner = hash_partition(b, {0}, 2)[0];
    std::vector<batch> in;
    in.push_back(std::move(b));
    exchange x(2);
    std::vector<std::unique_ptr<pipeline>> ps;
    std::vector<const int64_t*> seen;
    for (uint32_t i = 0; i < 2; ++i) {
        ps.push_back(std::make_unique<pipeline>());
        ps[i]
            ->source(events_schema(), from_batches(i == 1 - owner ? std::move(in) : std::vector<batch>{}))
            .exchange(x, i, {"key"})
            .sink([&seen](const batch& got) { seen.push_back(got.col(1).int64_data()); });
    }
    drive_all(ps);
    ASSERT_EQ(seen.size(), 1u);
    EXPECT_EQ(seen[0], data); // the same buffer, moved from the other instance
}

TEST(exchange, wakes_a_receiver_only_when_it_found_nothing_to_take) {
    // Instance 0 reads batches whose keys all belong to instance 1; instance 1 reads nothing.
    uint32_t key_of_1 = 0;
    for (int64_t k = 0;; ++k) {
        batch probe(events_schema());
        probe.append_row({value::of(k), value::of(int64_t(0)), value::of(int64_t(0))});
        if (hash_partition(probe, {0}, 2)[0] == 1) {
            key_of_1 = uint32_t(k);
            break;
        }
    }
    auto next = std::make_shared<size_t>(0);
    auto allowed = std::make_shared<size_t>(0);
    exchange x(2, 8);
    std::vector<int> wakes(2, 0);
    x.set_waker(0, [&wakes] { ++wakes[0]; });
    x.set_waker(1, [&wakes] { ++wakes[1]; });
    std::vector<std::unique_ptr<pipeline>> ps;
    size_t received = 0;
    for (uint32_t i = 0; i < 2; ++i) {
        ps.push_back(std::make_unique<pipeline>());
        source_fn src = [] { return source_poll::idle(); };
        if (i == 0) {
            src = [next, allowed, key_of_1]() -> source_poll {
                if (*next == *allowed)
                    return source_poll::idle();
                ++*next;
                batch b(events_schema());
                for (int64_t r = 0; r < 10; ++r)
                    b.append_row({value::of(int64_t(key_of_1)), value::of(r), value::of(r)});
                return source_poll::data(std::move(b));
            };
        }
        ps[i]->source(events_schema(), src).exchange(x, i, {"key"}).sink([&received](const batch& b) {
            received += b.num_rows();
        });
    }
    auto run = [&](uint32_t i, int passes) {
        for (int k = 0; k < passes; ++k)
            ASSERT_TRUE(ps[i]->run_once());
    };
    *allowed = 3;
    run(0, 10);
    EXPECT_EQ(x.in_flight(), 3u);
    EXPECT_EQ(wakes[1], 0) << "instance 1 never looked, so it is not parked";
    run(1, 10);
    EXPECT_EQ(received, 30u);
    EXPECT_EQ(wakes[1], 0);
    // Instance 1 found its channels empty: the next batch for it wakes it, once.
    *allowed = 5;
    run(0, 10);
    EXPECT_EQ(wakes[1], 1);
    EXPECT_EQ(x.in_flight(), 2u);
    run(1, 10);
    EXPECT_EQ(received, 50u);
    EXPECT_EQ(wakes[0], 0);
}

} // namespace
} // namespace runnel::engine
