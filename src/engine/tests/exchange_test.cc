// The exchange between parallel instances: rows of a key meet in one instance, watermarks are
// the minimum over the instances feeding it, and a stalled instance stops its neighbours.
#include "engine/engine.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
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
                                  size_t* max_in_flight = nullptr) {
    exchange x(n, 4);
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

} // namespace
} // namespace runnel::engine
