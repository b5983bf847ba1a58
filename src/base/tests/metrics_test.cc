#include "base/base.h"

#include <gtest/gtest.h>

#include <thread>

namespace runnel::metrics {
namespace {

TEST(metrics, counter_family_renders_labels_sorted_with_help_and_type) {
    registry r;
    auto& reqs = r.counters("http_requests_total", "Requests served", {"route", "status"});
    reqs.with({"/v1/topics", "200"}).inc();
    reqs.with({"/v1/topics", "200"}).inc(2);
    reqs.with({"/v1/health", "404"}).inc();
    EXPECT_EQ(r.render(),
              "# HELP http_requests_total Requests served\n"
              "# TYPE http_requests_total counter\n"
              "http_requests_total{route=\"/v1/health\",status=\"404\"} 1\n"
              "http_requests_total{route=\"/v1/topics\",status=\"200\"} 3\n");
}

TEST(metrics, registering_again_returns_the_same_family) {
    registry r;
    auto& a = r.counters("x_total", "x");
    auto& b = r.counters("x_total", "x");
    EXPECT_EQ(&a, &b);
    a.with({}).inc();
    EXPECT_EQ(b.with({}).value(), 1u);
}

TEST(metrics, gauge_goes_up_and_down_and_prints_fractions) {
    registry r;
    auto& g = r.gauge_("clients", "Connected clients");
    g.add(3);
    g.sub(1);
    EXPECT_EQ(g.value(), 2);
    auto& f = r.gauge_("ratio", "A fraction");
    f.set(0.25);
    auto text = r.render();
    EXPECT_NE(text.find("clients 2\n"), std::string::npos) << text;
    EXPECT_NE(text.find("ratio 0.25\n"), std::string::npos) << text;
}

TEST(metrics, histogram_buckets_are_cumulative_with_inf_sum_and_count) {
    registry r;
    auto& h = r.histograms("latency_seconds", "Latency", {"route"}, {0.1, 1}).with({"/a"});
    h.observe(0.05);
    h.observe(0.1); // on the bound: le is inclusive
    h.observe(0.5);
    h.observe(7);
    EXPECT_EQ(r.render(),
              "# HELP latency_seconds Latency\n"
              "# TYPE latency_seconds histogram\n"
              "latency_seconds_bucket{route=\"/a\",le=\"0.1\"} 2\n"
              "latency_seconds_bucket{route=\"/a\",le=\"1\"} 3\n"
              "latency_seconds_bucket{route=\"/a\",le=\"+Inf\"} 4\n"
              "latency_seconds_sum{route=\"/a\"} 7.65\n"
              "latency_seconds_count{route=\"/a\"} 4\n");
}

TEST(metrics, exponential_bounds) {
    auto b = histogram::exponential(0.001, 10, 4);
    ASSERT_EQ(b.size(), 4u);
    EXPECT_DOUBLE_EQ(b[3], 1.0);
}

TEST(metrics, label_values_are_escaped) {
    EXPECT_EQ(escape_label_value("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    registry r;
    r.counters("odd_total", "help with \\ and\nnewline", {"v"}).with({"x\"y"}).inc();
    EXPECT_EQ(r.render(), "# HELP odd_total help with \\\\ and\\nnewline\n# TYPE odd_total counter\n"
                          "odd_total{v=\"x\\\"y\"} 1\n");
}

TEST(metrics, collectors_run_at_scrape_time_and_stop_with_their_handle) {
    registry r;
    int calls = 0;
    double size = 10;
    {
        auto handle = r.add_collector([&](sample_sink& s) {
            ++calls;
            s.gauge("partition_size_bytes", "Bytes", {{"topic", "t"}, {"partition", "0"}}, size);
            s.gauge("partition_size_bytes", "Bytes", {{"topic", "t"}, {"partition", "1"}}, size * 2);
        });
        r.counter_("a_total", "first").inc();
        r.counter_("z_total", "last").inc();
        size = 42;
        auto text = r.render();
        EXPECT_EQ(calls, 1);
        EXPECT_EQ(text,
                  "# HELP a_total first\n# TYPE a_total counter\na_total 1\n"
                  "# HELP partition_size_bytes Bytes\n# TYPE partition_size_bytes gauge\n"
                  "partition_size_bytes{topic=\"t\",partition=\"0\"} 42\n"
                  "partition_size_bytes{topic=\"t\",partition=\"1\"} 84\n"
                  "# HELP z_total last\n# TYPE z_total counter\nz_total 1\n");
    }
    EXPECT_EQ(r.render().find("partition_size_bytes"), std::string::npos);
    EXPECT_EQ(calls, 1);
}

TEST(metrics, special_values) {
    EXPECT_EQ(format_value(std::numeric_limits<double>::infinity()), "+Inf");
    EXPECT_EQ(format_value(-std::numeric_limits<double>::infinity()), "-Inf");
    EXPECT_EQ(format_value(std::nan("")), "NaN");
    EXPECT_EQ(format_value(123456789), "123456789");
}

TEST(metrics, updates_from_many_threads_add_up) {
    registry r;
    auto& c = r.counter_("hits_total", "hits");
    auto& h = r.histograms("h", "h", {}, {1}).with({});
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
        threads.emplace_back([&] {
            for (int i = 0; i < 100000; ++i) {
                c.inc();
                h.observe(0.5);
            }
        });
    }
    for (auto& t : threads) {
        t.join();
    }
    EXPECT_EQ(c.value(), 400000u);
    EXPECT_EQ(h.read().count, 400000u);
    EXPECT_EQ(h.read().counts[0], 400000u);
}

} // namespace
} // namespace runnel::metrics
