#include <gtest/gtest.h>

#include <boost/json.hpp>

#include "base/fail_point.h"
#include "broker/tests/broker_fixture.h"
#include "jobs/jobs.h"

namespace runnel::jobs {
namespace {

namespace json = boost::json;
using broker::testing::broker_fixture;

/// The window counts a topic holds: "key@window_start" → count, and how many rows said so.
struct output {
    std::map<std::string, int64_t> counts;
    std::map<std::string, int> rows;
    std::size_t total = 0;
};

class jobs_test : public broker_fixture {
protected:
    void TearDown() override {
        _jobs.reset();
        broker_fixture::TearDown();
    }

    /// Events to the partition their key hashes to, or with `spread`, round-robin (so one
    /// key's events reach every partition).
    void produce_events(const std::string& topic, int32_t partitions, const std::vector<std::pair<std::string, int64_t>>& evs,
                        bool spread = false) {
        std::vector<model::record_batch_builder> b(static_cast<std::size_t>(partitions));
        std::size_t n = 0;
        for (const auto& [k, ts] : evs) {
            auto v = fmt::format(R"({{"key":"{}","ts":{}}})", k, ts);
            auto part = spread ? int32_t(n++ % std::size_t(partitions)) : model::partition_for_key(k, partitions);
            b[std::size_t(part)].add(std::string_view(k), std::string_view(v),
                                                                       model::event_time(ts));
        }
        for (int32_t p = 0; p < partitions; ++p) {
            if (b[std::size_t(p)].empty()) continue;
            ASSERT_TRUE(produce({topic, model::partition_id(p)}, b[std::size_t(p)].build(), -1));
        }
    }
    /// Closes every window: an event far in the future on each partition.
    void close_all(const std::string& topic, int32_t partitions, int64_t ts) {
        std::vector<std::pair<std::string, int64_t>> evs;
        for (int i = 0; evs.size() < std::size_t(partitions) * 3 && i < 1000; ++i) evs.emplace_back(fmt::format("end{}", i), ts);
        produce_events(topic, partitions, evs);
    }

    /// Calls `f` with every record of `topic`, partition by partition, in offset order.
    template <class F>
    void for_each_record(const std::string& topic, F f) {
        auto t = _broker->topic(topic);
        if (!t) return;
        for (int32_t p = 0; p < t->config.partitions; ++p) {
            int64_t from = 0;
            for (;;) {
                auto r = wait<result<broker::fetch_result>>([&](auto done) {
                    _broker->fetch({topic, model::partition_id(p)}, model::offset(from), 1 << 20, _caller, done);
                });
                if (!r || r.value().data.batches == 0) break;
                auto span = r.value().data.bytes.span();
                std::size_t pos = 0;
                while (pos < span.size()) {
                    auto h = model::parse_batch_header(span.subspan(pos)).value();
                    auto records = model::decode_records(span.subspan(pos, h.size_bytes()));
                    ASSERT_TRUE(records) << records.error().message();
                    for (const auto& rec : records.value()) f(rec);
                    pos += h.size_bytes();
                }
                from = r.value().data.next_offset();
            }
        }
    }

    output read(const std::string& topic) {
        output out;
        for_each_record(topic, [&](const auto& rec) {
            std::string_view v(reinterpret_cast<const char*>(rec.value->data()), rec.value->size());
            auto o = json::parse(v).as_object();
            auto k = fmt::format("{}@{}", std::string(o["key"].as_string()), o["window_start"].as_int64());
            out.counts[k] = o["count"].as_int64();
            ++out.rows[k];
            ++out.total;
        });
        return out;
    }

    /// `topic` applied as an upsert table: the last value of each record key, a tombstone (null
    /// value) deleting the key; `tombstones` counts those.
    std::map<std::string, std::string> read_table(const std::string& topic, int* tombstones = nullptr) {
        std::map<std::string, std::string> table;
        for_each_record(topic, [&](const auto& rec) {
            std::string k(reinterpret_cast<const char*>(rec.key->data()), rec.key->size());
            if (!rec.value) {
                table.erase(k);
                if (tombstones) ++*tombstones;
                return;
            }
            table[k] = std::string(reinterpret_cast<const char*>(rec.value->data()), rec.value->size());
        });
        return table;
    }

    /// After three more checkpoints (nothing may be appended twice), "counts" holds every
    /// expected window once with its count.
    void expect_each_window_once(const std::map<std::string, int64_t>& expected) {
        auto ck = _jobs->status()[0].checkpoints;
        ASSERT_TRUE(eventually([&] { return _jobs->status()[0].checkpoints >= ck + 3; }));
        auto o = read("counts");
        for (const auto& [k, n] : expected) {
            EXPECT_EQ(o.counts[k], n) << k;
            EXPECT_EQ(o.rows[k], 1) << k << " appears more than once";
        }
        EXPECT_EQ(o.total, expected.size());
    }

    template <typename F>
    bool eventually(F cond, std::chrono::seconds limit = std::chrono::seconds(30)) {
        auto deadline = std::chrono::steady_clock::now() + limit;
        while (std::chrono::steady_clock::now() < deadline) {
            if (cond()) return true;
            _caller.run_until([] { return false; }, std::chrono::milliseconds(20));
        }
        return cond();
    }

    void start_jobs() {
        _jobs = std::make_unique<manager>(*_broker, *_shards, _dir / "jobs");
        ASSERT_TRUE(_jobs->start());
    }
    void restart() {
        _jobs->stop();
        _jobs.reset();
        shutdown();
        start();
        start_jobs();
    }

    job_definition counting(std::string mode = "exactly_once") {
        job_definition d;
        d.id = "counts";
        d.template_name = "windowed_count";
        d.params = {{"input", "events"}, {"output", "counts"}, {"window_ms", "1000"}, {"bound_ms", "200"},
                    {"delivery", mode},  {"output_partitions", "2"}};
        d.checkpoint_interval = std::chrono::milliseconds(50);
        return d;
    }

    std::unique_ptr<manager> _jobs;
};

TEST_F(jobs_test, windowed_counts_exactly_once_across_a_restart) {
    ASSERT_TRUE(create("events", 3).first);
    start_jobs();
    std::string why;
    ASSERT_TRUE(_jobs->submit(counting(), why)) << why;

    std::map<std::string, int64_t> expected;
    std::vector<std::pair<std::string, int64_t>> evs;
    for (int i = 0; i < 3000; ++i) {
        auto k = fmt::format("k{}", i % 7);
        int64_t ts = 1000 + i * 3 + (i % 5) * 37; // a little out of order
        evs.emplace_back(k, ts);
        ++expected[fmt::format("{}@{}", k, ts / 1000 * 1000)];
    }
    produce_events("events", 3, std::vector(evs.begin(), evs.begin() + 1500));
    // Restart in the middle: the job resumes from its checkpoint.
    ASSERT_TRUE(eventually([&] { return !_jobs->status().empty() && _jobs->status()[0].checkpoints >= 2; }));
    restart();
    produce_events("events", 3, std::vector(evs.begin() + 1500, evs.end()));
    close_all("events", 3, 1'000'000);
    ASSERT_TRUE(eventually([&] {
        auto o = read("counts");
        return o.counts.size() >= expected.size();
    })) << _jobs->status()[0].state << " " << _jobs->status()[0].error;
    expect_each_window_once(expected);
    auto st = _jobs->status()[0];
    EXPECT_EQ(st.state, "running");
    EXPECT_GT(st.last_checkpoint_id, 0u);
}

// Three instances on two shards, each key's events spread over every partition so that only
// the exchange brings them together: the same exact counts, across a restart in the middle,
// with checkpoints that cut all three instances at once.
TEST_F(jobs_test, parallel_instances_count_exactly_once_across_a_restart) {
    ASSERT_TRUE(create("events", 6).first);
    start_jobs();
    std::string why;
    auto def = counting();
    def.parallelism = 3;
    ASSERT_TRUE(_jobs->submit(def, why)) << why;
    EXPECT_EQ(_jobs->status()[0].parallelism, 3u);

    std::map<std::string, int64_t> expected;
    std::vector<std::pair<std::string, int64_t>> evs;
    for (int i = 0; i < 6000; ++i) {
        auto k = fmt::format("k{}", i % 23);
        int64_t ts = 1000 + i * 2 + (i % 7) * 41;
        evs.emplace_back(k, ts);
        ++expected[fmt::format("{}@{}", k, ts / 1000 * 1000)];
    }
    produce_events("events", 6, std::vector(evs.begin(), evs.begin() + 3000), true);
    ASSERT_TRUE(eventually([&] { return _jobs->status()[0].checkpoints >= 3; })) << _jobs->status()[0].error;
    restart();
    produce_events("events", 6, std::vector(evs.begin() + 3000, evs.end()), true);
    close_all("events", 6, 1'000'000);
    ASSERT_TRUE(eventually([&] { return read("counts").counts.size() >= expected.size(); }))
      << _jobs->status()[0].state << " " << _jobs->status()[0].error;
    expect_each_window_once(expected);
    auto st = _jobs->status()[0];
    EXPECT_EQ(st.state, "running") << st.error;
    // Every instance's rows are counted in the merged status: the window took in every event.
    uint64_t windowed = 0;
    for (const auto& stage : st.stages) {
        if (stage.name.ends_with(".window")) windowed = stage.rows_in;
    }
    EXPECT_GE(windowed, 3000u) << "rows since the restart, from all instances";
}

TEST_F(jobs_test, parallelism_beyond_the_input_partitions_is_refused) {
    ASSERT_TRUE(create("events", 2).first);
    start_jobs();
    std::string why;
    auto def = counting();
    def.parallelism = 3;
    EXPECT_FALSE(_jobs->submit(def, why));
    EXPECT_NE(why.find("at least 3 partitions"), std::string::npos) << why;
    EXPECT_TRUE(_jobs->status().empty());
}

// A crash after a checkpoint is durable but before (or while) its output is appended: the
// restarted job appends exactly what is missing.
TEST_F(jobs_test, output_of_a_durable_checkpoint_is_appended_once_after_a_crash) {
    ASSERT_TRUE(create("events", 3).first);
    start_jobs();
    std::string why;
    auto def = counting();
    def.params["output_partitions"] = "3";
    ASSERT_TRUE(_jobs->submit(def, why)) << why;
    std::map<std::string, int64_t> expected;
    auto feed = [&](int from, int to) {
        std::vector<std::pair<std::string, int64_t>> evs;
        for (int i = from; i < to; ++i) {
            auto k = fmt::format("k{}", i % 11);
            int64_t ts = 1000 + i * 5;
            evs.emplace_back(k, ts);
            ++expected[fmt::format("{}@{}", k, ts / 1000 * 1000)];
        }
        produce_events("events", 3, evs);
    };
    // First the partial release: every partition's first batch of an incarnation has sequence 0, so
    // recovery must tell them apart by partition.
    for (const char* point : {"log_sink.crash_mid_release", "log_sink.crash_before_release"}) {
        fail_point::arm(point);
        static int round = 0;
        feed(round * 2000, round * 2000 + 2000);
        ++round;
        ASSERT_TRUE(eventually([&] { return _jobs->status()[0].state == "failed"; })) << point;
        restart();
        ASSERT_TRUE(eventually([&] { return _jobs->status()[0].state == "running"; }));
    }
    fail_point::disarm_all();
    close_all("events", 3, 1'000'000);
    ASSERT_TRUE(eventually([&] { return read("counts").counts.size() >= expected.size(); }));
    auto ck = _jobs->status()[0].checkpoints;
    ASSERT_TRUE(eventually([&] { return _jobs->status()[0].checkpoints >= ck + 3; }));
    auto o = read("counts");
    for (const auto& [k, n] : expected) {
        EXPECT_EQ(o.counts[k], n) << k;
        EXPECT_EQ(o.rows[k], 1) << k << " appears " << o.rows[k] << " times";
    }
    EXPECT_EQ(o.total, expected.size());
}

TEST_F(jobs_test, an_updating_sql_query_upserts_by_primary_key_with_tombstones_across_a_restart) {
    ASSERT_TRUE(create("events", 2).first);
    start_jobs();
    job_definition d;
    d.id = "few";
    d.template_name = "sql";
    d.params = {{"sql", R"(
CREATE TABLE events (`key` STRING, ts BIGINT) WITH ('connector' = 'topic', 'topic' = 'events');
CREATE TABLE few (`key` STRING, n BIGINT, PRIMARY KEY (`key`) NOT ENFORCED)
  WITH ('connector' = 'topic', 'topic' = 'few', 'sink.partitions' = '2');
INSERT INTO few SELECT `key`, COUNT(*) FROM events GROUP BY `key` HAVING COUNT(*) < 3;
)"}};
    d.checkpoint_interval = std::chrono::milliseconds(50);
    std::string why;
    ASSERT_TRUE(_jobs->submit(d, why)) << why;
    std::map<std::string, int64_t> counts;
    auto feed = [&](int from, int to) {
        std::vector<std::pair<std::string, int64_t>> evs;
        for (int i = from; i < to; ++i) {
            auto k = fmt::format("k{}", (i * 7) % 13 % (i % 3 + 4));
            evs.emplace_back(k, i);
            ++counts[k];
        }
        produce_events("events", 2, evs);
    };
    // Keys counted fewer than 3 times are rows of the sink; the others were deleted.
    auto expected = [&] {
        std::map<std::string, std::string> t;
        for (const auto& [k, n] : counts) {
            if (n < 3) t[k] = fmt::format(R"({{"key":"{}","n":{}}})", k, n);
        }
        return t;
    };
    feed(0, 8);
    ASSERT_TRUE(eventually([&] { return read_table("few") == expected(); }));
    // The counts survive a restart in the job's checkpoint: more events continue them.
    restart();
    ASSERT_TRUE(eventually([&] { return _jobs->status()[0].state == "running"; }));
    feed(8, 40);
    ASSERT_TRUE(eventually([&] { return read_table("few") == expected(); }));
    int tombstones = 0;
    read_table("few", &tombstones);
    EXPECT_GT(tombstones, 0);
    EXPECT_LT(expected().size(), counts.size());
}

TEST_F(jobs_test, bad_definitions_are_refused_with_the_reason) {
    start_jobs();
    std::string why;
    auto d = counting();
    d.template_name = "nope";
    EXPECT_FALSE(_jobs->submit(d, why));
    EXPECT_EQ(why, "unknown template 'nope'");
    d = counting();
    d.params["window_ms"] = "soon";
    why.clear();
    EXPECT_FALSE(_jobs->submit(d, why));
    EXPECT_EQ(why, "parameter 'window_ms' must be an integer, not 'soon'");
    d = counting();
    d.id = "../x";
    why.clear();
    EXPECT_FALSE(_jobs->submit(d, why));
    EXPECT_NE(why.find("job id"), std::string::npos);
    why.clear();
    EXPECT_FALSE(job_definition::from_json("{\"id\":\"a\"}", why));
    EXPECT_EQ(why, "'template' must be a string");
}

TEST_F(jobs_test, definitions_round_trip_through_json) {
    auto d = counting();
    std::string why;
    auto back = job_definition::from_json(d.to_json(), why);
    ASSERT_TRUE(back) << why;
    EXPECT_EQ(back.value().id, d.id);
    EXPECT_EQ(back.value().params, d.params);
    EXPECT_EQ(back.value().checkpoint_interval, d.checkpoint_interval);
}

} // namespace
} // namespace runnel::jobs
