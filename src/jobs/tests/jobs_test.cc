#include <gtest/gtest.h>

#include <boost/json.hpp>

#include <fstream>
#include <sstream>

#include "base/fail_point.h"
#include "broker/tests/broker_fixture.h"
#include "connect/options/options.h"
#include "jobs/jobs.h"
#include "jobs/table_connectors.h"

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
    void started(const std::vector<executor*>& ex) override {
        broker::group_config cfg;
        cfg.offsets_partitions = 2;
        _groups = std::make_unique<broker::group_coordinator>(*_broker, cfg, ex);
        ASSERT_TRUE(_groups->start());
        ASSERT_TRUE(eventually([&] { return _groups->loaded(); }));
    }
    void stopped() override { _groups.reset(); }

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
            // window_start as SQL shows a TIMESTAMP; the counts are keyed by its epoch ms.
            const auto start = engine::parse_timestamp(o["window_start"].as_string(), engine::time_unit::millis);
            auto k = fmt::format("{}@{}", std::string(o["key"].as_string()), start.value_or(-1));
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
        _jobs = std::make_unique<manager>(*_broker, *_shards, _dir / "jobs", _groups.get());
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

    /// A SQL job checkpointing every 50 ms.
    static job_definition sql(std::string id, std::string text) {
        job_definition d;
        d.id = std::move(id);
        d.template_name = "sql";
        d.params = {{"sql", std::move(text)}};
        d.checkpoint_interval = std::chrono::milliseconds(50);
        return d;
    }

    /// The values of `topic`'s records, in partition then offset order.
    std::vector<std::string> values(const std::string& topic) {
        std::vector<std::string> out;
        for_each_record(topic, [&](const auto& rec) {
            out.emplace_back(reinterpret_cast<const char*>(rec.value->data()), rec.value->size());
        });
        return out;
    }

    /// The offset `group` committed for partition 0 of `topic` (-1: none).
    int64_t committed(const std::string& group, const std::string& topic) {
        auto r = wait<broker::offsets_fetch_result>([&](auto done) {
            _groups->fetch_offsets(group, std::vector<model::topic_partition>{{topic, model::partition_id(0)}}, _caller,
                                   done);
        });
        return r.partitions.empty() ? -1 : r.partitions[0].value.offset;
    }

    job_status status_of(const std::string& id) {
        for (auto& st : _jobs->status()) {
            if (st.id == id) return st;
        }
        return {};
    }

    static std::string slurp(const std::filesystem::path& p) {
        std::ifstream in(p, std::ios::binary);
        return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    }

    /// `n` events keyed k0…k(keys-1), `step_ms` apart from 1000 ms, each moved later by
    /// (i % 5) × `jitter_ms` (a little out of order), and the count each `counting()` window
    /// (key@window start) must get.
    struct windowed_input {
        std::vector<std::pair<std::string, int64_t>> events;
        std::map<std::string, int64_t> expected;
    };
    static windowed_input windowed_events(int n, int keys, int64_t step_ms, int64_t jitter_ms) {
        windowed_input in;
        for (int i = 0; i < n; ++i) {
            auto k = fmt::format("k{}", i % keys);
            int64_t ts = 1000 + i * step_ms + (i % 5) * jitter_ms;
            in.events.emplace_back(k, ts);
            ++in.expected[fmt::format("{}@{}", k, ts / 1000 * 1000)];
        }
        return in;
    }

    std::unique_ptr<broker::group_coordinator> _groups;
    std::unique_ptr<manager> _jobs;
};

TEST_F(jobs_test, windowed_counts_exactly_once_across_a_restart) {
    ASSERT_TRUE(create("events", 3).first);
    start_jobs();
    std::string why;
    ASSERT_TRUE(_jobs->submit(counting(), why)) << why;

    auto [evs, expected] = windowed_events(3000, 7, 3, 37);
    produce_events("events", 3, std::vector(evs.begin(), evs.begin() + 1500));
    // Restart in the middle: the job resumes from its checkpoint.
    ASSERT_TRUE(eventually([&] { return !_jobs->status().empty() && _jobs->status()[0].checkpoints >= 2; }));
    restart();
    produce_events("events", 3, std::vector(evs.begin() + 1500, evs.end()));
    close_all("events", 3, 1'000'000);
    ASSERT_TRUE(eventually([&, &expected = expected] {
        auto o = read("counts");
        return o.counts.size() >= expected.size();
    })) << _jobs->status()[0].state << " " << _jobs->status()[0].error;
    expect_each_window_once(expected);
    auto st = _jobs->status()[0];
    EXPECT_EQ(st.state, "running");
    EXPECT_GT(st.last_checkpoint_id, 0u);
}

// replace: a definition that cannot start leaves the old job running from its own checkpoints;
// one that starts takes its place with no state of the old one. A server stopped between
// moving the old job aside and storing the new one puts the old one back at its next start.
TEST_F(jobs_test, replace_swaps_a_job_or_keeps_the_old_one) {
    ASSERT_TRUE(create("events", 3).first);
    start_jobs();
    std::string why;
    ASSERT_TRUE(_jobs->submit(counting(), why)) << why;
    ASSERT_TRUE(eventually([&] { return status_of("counts").checkpoints >= 2; }));
    const auto old_checkpoints = status_of("counts").last_checkpoint_id;

    auto broken = counting();
    broken.params["window_ms"] = "zero";
    EXPECT_FALSE(_jobs->replace(broken, why, {}));
    EXPECT_NE(why.find("window_ms"), std::string::npos) << why;
    ASSERT_TRUE(eventually([&] { return status_of("counts").state == "running"; })) << status_of("counts").error;
    ASSERT_TRUE(eventually([&] { return status_of("counts").last_checkpoint_id > old_checkpoints; }))
        << "the old job resumes from its checkpoints";
    EXPECT_FALSE(std::filesystem::exists(_dir / "jobs" / "counts~replaced"));

    auto changed = counting();
    changed.params["window_ms"] = "2000";
    why.clear();
    ASSERT_TRUE(_jobs->replace(changed, why, {})) << why;
    ASSERT_TRUE(eventually([&] { return status_of("counts").state == "running"; })) << status_of("counts").error;
    EXPECT_FALSE(std::filesystem::exists(_dir / "jobs" / "counts~replaced"));
    {
        std::ifstream in(_dir / "jobs" / "counts" / "job.json");
        std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        EXPECT_NE(text.find("\"2000\""), std::string::npos) << text;
    }

    // As if the server stopped in the middle of a replacement: only the moved-aside directory.
    _jobs->stop();
    _jobs.reset();
    std::filesystem::rename(_dir / "jobs" / "counts", _dir / "jobs" / "counts~replaced");
    start_jobs();
    EXPECT_EQ(status_of("counts").id, "counts");
    EXPECT_TRUE(std::filesystem::exists(_dir / "jobs" / "counts" / "job.json"));
    EXPECT_FALSE(std::filesystem::exists(_dir / "jobs" / "counts~replaced"));
}

// Stop keeps the job listed, stopped, across a restart of the server; restart resumes it from
// its last checkpoint, and every window is still written once. The last checkpoints are listed.
TEST_F(jobs_test, a_stopped_job_stays_stopped_and_restarts_from_its_checkpoint_exactly_once) {
    ASSERT_TRUE(create("events", 3).first);
    start_jobs();
    std::string why;
    ASSERT_TRUE(_jobs->submit(counting(), why)) << why;
    auto [evs, expected] = windowed_events(2000, 5, 4, 0);
    produce_events("events", 3, std::vector(evs.begin(), evs.begin() + 1000));
    ASSERT_TRUE(eventually([&] { return status_of("counts").checkpoints >= 3; }));
    auto st = status_of("counts");
    ASSERT_FALSE(st.recent_checkpoints.empty());
    EXPECT_LE(st.recent_checkpoints.size(), job_status::max_recent_checkpoints);
    EXPECT_EQ(st.recent_checkpoints.back().id, st.last_checkpoint_id);
    for (std::size_t i = 1; i < st.recent_checkpoints.size(); ++i)
        EXPECT_LT(st.recent_checkpoints[i - 1].id, st.recent_checkpoints[i].id);

    ASSERT_TRUE(_jobs->pause("counts"));
    EXPECT_EQ(status_of("counts").state, "stopped");
    EXPECT_EQ(_jobs->pause("nope").error(), std::errc::no_such_file_or_directory);
    restart();
    EXPECT_EQ(status_of("counts").state, "stopped");
    produce_events("events", 3, std::vector(evs.begin() + 1000, evs.end()));
    ASSERT_TRUE(_jobs->restart("counts", why)) << why;
    close_all("events", 3, 1'000'000);
    ASSERT_TRUE(eventually([&, &expected = expected] { return read("counts").counts.size() >= expected.size(); }))
        << status_of("counts").state << " " << status_of("counts").error;
    expect_each_window_once(expected);
    EXPECT_EQ(status_of("counts").state, "running");
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
    // The operator graph names the key exchange: the sending stage of each instance feeds the
    // source that receives every instance's rows of its keys. Every other edge is a queue on one
    // shard.
    const auto hash = std::find_if(st.edges.begin(), st.edges.end(), [](const auto& e) { return e.kind == "hash"; });
    ASSERT_NE(hash, st.edges.end());
    ASSERT_LT(hash->to, st.stages.size());
    EXPECT_TRUE(st.stages[hash->from].name.ends_with(".exchange")) << st.stages[hash->from].name;
    EXPECT_TRUE(st.stages[hash->to].name.ends_with(".source")) << st.stages[hash->to].name;
    EXPECT_EQ(hash->keys, std::vector<std::string>{"key"});
    for (const auto& e : st.edges) {
        EXPECT_LT(e.from, e.to) << e.kind;
        EXPECT_TRUE(e.kind == "forward" || e.kind == "side" || e.kind == "hash") << e.kind;
    }
}

// Three instances over two partitions: the third reads none, is idle, and holds no window
// back; it still counts the keys the exchange brings it.
TEST_F(jobs_test, an_instance_beyond_the_input_partitions_is_idle) {
    ASSERT_TRUE(create("events", 2).first);
    start_jobs();
    std::string why;
    auto def = counting();
    def.parallelism = 3;
    ASSERT_TRUE(_jobs->submit(def, why)) << why;
    std::map<std::string, int64_t> expected;
    std::vector<std::pair<std::string, int64_t>> evs;
    for (int i = 0; i < 2000; ++i) {
        auto k = fmt::format("k{}", i % 17);
        int64_t ts = 1000 + i * 3;
        evs.emplace_back(k, ts);
        ++expected[fmt::format("{}@{}", k, ts / 1000 * 1000)];
    }
    produce_events("events", 2, evs, true);
    close_all("events", 2, 1'000'000);
    ASSERT_TRUE(eventually([&] { return read("counts").counts.size() >= expected.size(); }))
      << _jobs->status()[0].state << " " << _jobs->status()[0].error;
    expect_each_window_once(expected);
    EXPECT_EQ(_jobs->status()[0].state, "running") << _jobs->status()[0].error;
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
        auto& failed = metrics::default_registry().counter_("runnel_pipelines_failed_total", "");
        const auto failed_before = failed.value();
        fail_point::arm(point);
        static int round = 0;
        feed(round * 2000, round * 2000 + 2000);
        ++round;
        ASSERT_TRUE(eventually([&] { return _jobs->status()[0].state == "failed"; })) << point;
        EXPECT_EQ(failed.value(), failed_before + 1) << "the failure shows in /metrics";
        const auto failure = _jobs->status()[0].error;
        restart();
        ASSERT_TRUE(eventually([&] { return _jobs->status()[0].state == "running"; }));
        // The failure before the restart is still told, beside the running job.
        EXPECT_EQ(_jobs->status()[0].last_error, failure) << point;
        EXPECT_GT(_jobs->status()[0].last_error_ms, 0) << point;
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

TEST_F(jobs_test, a_datagen_table_with_a_number_of_rows_feeds_a_tumbling_count) {
    start_jobs();
    // 1000 rows, one every 100 ms of event time: ten 10-second windows of 100 rows each.
    auto d = sql("gen", R"(
CREATE TABLE gen (id BIGINT, k INT, note STRING, ts AS TO_TIMESTAMP_LTZ(id * 100, 3),
  WATERMARK FOR ts AS ts - INTERVAL '1' SECOND)
  WITH ('connector' = 'datagen', 'number-of-rows' = '1000', 'rows-per-second' = '0', 'seed' = '7',
        'fields.id.kind' = 'sequence', 'fields.id.start' = '0', 'fields.id.end' = '100000',
        'fields.k.min' = '0', 'fields.k.max' = '3', 'fields.note.length' = '4');
CREATE TABLE counts (window_start TIMESTAMP(3), n BIGINT, low INT, high INT)
  WITH ('connector' = 'topic', 'topic' = 'counts');
INSERT INTO counts SELECT window_start, COUNT(*), MIN(k), MAX(k)
  FROM TABLE(TUMBLE(TABLE gen, DESCRIPTOR(ts), INTERVAL '10' SECOND)) GROUP BY window_start, window_end;
)");
    std::string why;
    why.clear();
    ASSERT_TRUE(_jobs->submit(d, why)) << why;
    ASSERT_TRUE(eventually([&] { return values("counts").size() >= 10; }));
    auto rows = values("counts");
    std::sort(rows.begin(), rows.end());
    ASSERT_EQ(rows.size(), 10u);
    for (int w = 0; w < 10; ++w) {
        EXPECT_EQ(rows[std::size_t(w)],
                  fmt::format(R"({{"window_start":"1970-01-01 00:{:02}:{:02}.000","n":100,"low":0,"high":3}})",
                              w * 10 / 60, w * 10 % 60));
    }
}

/// Per key and one-second window, the count of topic `events` into topic `counts`.
constexpr const char* windowed_counts_sql = R"(
CREATE TABLE events (`key` STRING, ts BIGINT, t AS TO_TIMESTAMP_LTZ(ts, 3), WATERMARK FOR t AS t - INTERVAL '1' SECOND)
  WITH ('connector' = 'topic', 'topic' = 'events');
CREATE TABLE counts (`key` STRING, window_start TIMESTAMP(3), `count` BIGINT)
  WITH ('connector' = 'topic', 'topic' = 'counts', 'sink.partitions' = '2');
INSERT INTO counts SELECT `key`, window_start, COUNT(*)
  FROM TABLE(TUMBLE(TABLE events, DESCRIPTOR(t), INTERVAL '1' SECOND)) GROUP BY `key`, window_start, window_end;
)";

// The windowed count as SQL, as three instances: every key's events reach every partition, so
// only the planner's exchange brings them together; a restart resumes every instance.
TEST_F(jobs_test, a_parallel_sql_job_counts_each_window_once_across_a_restart) {
    ASSERT_TRUE(create("events", 6).first);
    start_jobs();
    auto def = sql("counts", windowed_counts_sql);
    def.parallelism = 3;
    std::string why;
    ASSERT_TRUE(_jobs->submit(def, why)) << why;
    auto in = windowed_events(6000, 23, 2, 41);
    produce_events("events", 6, std::vector(in.events.begin(), in.events.begin() + 3000), true);
    ASSERT_TRUE(eventually([&] { return _jobs->status()[0].checkpoints >= 3; })) << _jobs->status()[0].error;
    restart();
    produce_events("events", 6, std::vector(in.events.begin() + 3000, in.events.end()), true);
    close_all("events", 6, 1'000'000);
    ASSERT_TRUE(eventually([&] { return read("counts").counts.size() >= in.expected.size(); }))
      << _jobs->status()[0].state << " " << _jobs->status()[0].error;
    expect_each_window_once(in.expected);
    const auto st = _jobs->status()[0];
    EXPECT_EQ(st.parallelism, 3u);
    EXPECT_EQ(st.state, "running") << st.error;
    const auto hash = std::find_if(st.edges.begin(), st.edges.end(), [](const auto& e) { return e.kind == "hash"; });
    ASSERT_NE(hash, st.edges.end());
    EXPECT_EQ(hash->keys, std::vector<std::string>{"key"});
}

// Three instances over a topic of two partitions: instance 2 reads none, so its watermark is
// idle and holds no window back; the exchange still gives it the keys it owns.
TEST_F(jobs_test, a_parallel_sql_job_over_fewer_partitions_than_instances_counts_each_window_once) {
    ASSERT_TRUE(create("events", 2).first);
    start_jobs();
    auto def = sql("counts", windowed_counts_sql);
    def.parallelism = 3;
    std::string why;
    ASSERT_TRUE(_jobs->submit(def, why)) << why;
    auto in = windowed_events(3000, 23, 2, 41);
    produce_events("events", 2, in.events, true);
    close_all("events", 2, 1'000'000);
    ASSERT_TRUE(eventually([&] { return read("counts").counts.size() >= in.expected.size(); }))
      << _jobs->status()[0].state << " " << _jobs->status()[0].error;
    expect_each_window_once(in.expected);
    EXPECT_EQ(_jobs->status()[0].state, "running") << _jobs->status()[0].error;
}

// A generated table is split between the instances (row i to instance i % 2): together they
// give the one-instance rows, and a global window aggregate meets in one instance.
TEST_F(jobs_test, a_parallel_datagen_sql_job_gives_the_rows_of_one_instance) {
    start_jobs();
    auto d = sql("gen", R"(
CREATE TABLE gen (id BIGINT, k INT, ts AS TO_TIMESTAMP_LTZ(id * 100, 3), WATERMARK FOR ts AS ts - INTERVAL '1' SECOND)
  WITH ('connector' = 'datagen', 'number-of-rows' = '1001', 'rows-per-second' = '0', 'seed' = '7',
        'fields.id.kind' = 'sequence', 'fields.id.start' = '0', 'fields.id.end' = '100000',
        'fields.k.min' = '0', 'fields.k.max' = '3');
CREATE TABLE counts (window_start TIMESTAMP(3), n BIGINT, ids BIGINT, low INT, high INT)
  WITH ('connector' = 'topic', 'topic' = 'counts');
INSERT INTO counts SELECT window_start, COUNT(*), SUM(id), MIN(k), MAX(k)
  FROM TABLE(TUMBLE(TABLE gen, DESCRIPTOR(ts), INTERVAL '10' SECOND)) GROUP BY window_start, window_end;
)");
    d.parallelism = 2;
    std::string why;
    ASSERT_TRUE(_jobs->submit(d, why)) << why;
    ASSERT_TRUE(eventually([&] { return values("counts").size() >= 11; })) << status_of("gen").error;
    auto rows = values("counts");
    std::sort(rows.begin(), rows.end());
    ASSERT_EQ(rows.size(), 11u);
    for (int w = 0; w < 10; ++w) {
        const int64_t ids = (w * 100 + w * 100 + 99) * 100 / 2; // ids w*100 … w*100+99
        EXPECT_EQ(rows[std::size_t(w)],
                  fmt::format(R"({{"window_start":"1970-01-01 00:{:02}:{:02}.000","n":100,"ids":{},"low":0,"high":3}})",
                              w * 10 / 60, w * 10 % 60, ids));
    }
    EXPECT_NE(rows[10].find(R"("window_start":"1970-01-01 00:01:40.000","n":1,"ids":1000)"), std::string::npos)
        << rows[10];
}

// A materialized view kept by two instances: each key's rows reach the view from one instance.
TEST_F(jobs_test, a_parallel_materialized_view_holds_every_key_once) {
    start_jobs();
    auto d = sql("gen_counts", R"(
CREATE TABLE gen (id BIGINT, k INT)
  WITH ('connector' = 'datagen', 'number-of-rows' = '1000', 'rows-per-second' = '0', 'seed' = '3',
        'fields.id.kind' = 'sequence', 'fields.id.start' = '0', 'fields.id.end' = '100000',
        'fields.k.min' = '0', 'fields.k.max' = '5');
CREATE MATERIALIZED VIEW gen_counts AS SELECT k, COUNT(*) AS n, SUM(id) AS ids FROM gen GROUP BY k;
)");
    d.parallelism = 2;
    std::string why;
    ASSERT_TRUE(_jobs->submit(d, why)) << why;
    auto total = [] {
        auto v = default_views().find("gen_counts");
        int64_t n = 0, ids = 0;
        if (!v) return std::pair<int64_t, int64_t>{0, 0};
        for (const auto& [key, row] : v->rows().rows) {
            auto o = json::parse(row).as_object();
            n += o["n"].as_int64();
            ids += o["ids"].as_int64();
        }
        return std::pair<int64_t, int64_t>{n, ids};
    };
    ASSERT_TRUE(eventually([&] { return total().first == 1000; })) << status_of("gen_counts").error;
    EXPECT_EQ(total().second, 999 * 1000 / 2);
    EXPECT_EQ(default_views().find("gen_counts")->size(), 6u);
    ASSERT_TRUE(_jobs->remove("gen_counts"));
    default_views().drop("gen_counts");
}

// One file, one writer: at two instances every row reaches the instance that writes the file,
// once, and the other writes nothing.
TEST_F(jobs_test, a_parallel_sql_job_writes_its_file_from_one_instance) {
    start_jobs();
    const auto out = _dir / "ids.csv";
    auto d = sql("ids", fmt::format(R"(
CREATE TABLE gen (id BIGINT) WITH ('connector' = 'datagen', 'number-of-rows' = '1000', 'rows-per-second' = '0',
  'fields.id.kind' = 'sequence', 'fields.id.start' = '0', 'fields.id.end' = '999');
CREATE TABLE ids (id BIGINT) WITH ('connector' = 'file', 'path' = '{}', 'format' = 'csv');
INSERT INTO ids SELECT id FROM gen WHERE id % 2 = 0;
)",
                                     out.string()));
    d.parallelism = 2;
    std::string why;
    ASSERT_TRUE(_jobs->submit(d, why)) << why;
    auto ids = [&] {
        std::vector<int64_t> v;
        std::istringstream s(slurp(out));
        for (std::string l; std::getline(s, l);) v.push_back(std::stoll(l));
        std::sort(v.begin(), v.end());
        return v;
    };
    ASSERT_TRUE(eventually([&] { return ids().size() >= 500; })) << status_of("ids").error;
    std::vector<int64_t> expected;
    for (int64_t i = 0; i < 1000; i += 2) expected.push_back(i);
    EXPECT_EQ(ids(), expected);
}

TEST_F(jobs_test, datagen_options_are_checked_naming_the_table_and_option) {
    start_jobs();
    std::string why;
    why.clear();
    EXPECT_FALSE(_jobs->submit(sql("bad", R"(
CREATE TABLE gen (id BIGINT) WITH ('connector' = 'datagen', 'fields.id.kind' = 'sequence', 'fields.id.start' = '1');
CREATE TABLE sink (id BIGINT) WITH ('connector' = 'blackhole');
INSERT INTO sink SELECT id FROM gen;
)"),
                               why));
    EXPECT_NE(why.find("table gen: a sequence needs 'fields.id.start' and 'fields.id.end'"), std::string::npos) << why;
    why.clear();
    EXPECT_FALSE(_jobs->submit(sql("bad2", R"(
CREATE TABLE gen (id BIGINT) WITH ('connector' = 'datagen', 'rows-per-sec' = '5');
CREATE TABLE sink (id BIGINT) WITH ('connector' = 'blackhole');
INSERT INTO sink SELECT id FROM gen;
)"),
                               why));
    EXPECT_NE(why.find("table gen: option 'rows-per-sec' is not one the datagen connector reads; did you mean 'rows-per-second'?"), std::string::npos) << why;
}

TEST_F(jobs_test, files_in_a_directory_are_read_in_name_order_aggregated_and_written_to_a_file) {
    const auto in = _dir / "in";
    std::filesystem::create_directories(in);
    {
        std::ofstream(in / "b.json") << R"({"k":"a","ts":12000})" "\n" R"({"k":"b","ts":15000})" "\n";
        std::ofstream(in / "a.json") << R"({"k":"a","ts":1000})" "\n\n" R"({"k":"a","ts":2000})" "\n"
                                     << "not json\n" R"({"k":"b","ts":9000})";
        std::ofstream(in / "_partial.json") << R"({"k":"z","ts":1})" "\n";
    }
    const auto out = _dir / "out.csv";
    start_jobs();
    auto d = sql("files", fmt::format(R"(
CREATE TABLE events (k STRING, ts BIGINT, t AS TO_TIMESTAMP_LTZ(ts, 3), WATERMARK FOR t AS t)
  WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'json', 'json.ignore-parse-errors' = 'true');
CREATE TABLE counts (k STRING, window_start TIMESTAMP(3), n BIGINT)
  WITH ('connector' = 'file', 'path' = '{}', 'format' = 'csv');
INSERT INTO counts SELECT k, window_start, COUNT(*)
  FROM TABLE(TUMBLE(TABLE events, DESCRIPTOR(t), INTERVAL '10' SECOND)) GROUP BY k, window_start, window_end;
)",
                                      in.string(), out.string()));
    std::string why;
    why.clear();
    ASSERT_TRUE(_jobs->submit(d, why)) << why;
    // The source ends, its final watermark closes every window, and a checkpoint writes them.
    auto lines = [&] {
        std::vector<std::string> v;
        std::istringstream s(slurp(out));
        for (std::string l; std::getline(s, l);) v.push_back(l);
        std::sort(v.begin(), v.end());
        return v;
    };
    const std::vector<std::string> expected = {"a,1970-01-01 00:00:00.000,2", "a,1970-01-01 00:00:10.000,1",
                                               "b,1970-01-01 00:00:00.000,1", "b,1970-01-01 00:00:10.000,1"};
    ASSERT_TRUE(eventually([&] { return lines().size() >= expected.size(); }));
    // Later checkpoints add nothing.
    auto ck = status_of("files").checkpoints;
    ASSERT_TRUE(eventually([&] { return status_of("files").checkpoints >= ck + 3; }));
    EXPECT_EQ(lines(), expected);

    // The file it wrote reads back as a table: the windows' counts summed per key.
    const auto totals = _dir / "totals.json";
    auto back = sql("back", fmt::format(R"(
CREATE TABLE counts (k STRING, window_start TIMESTAMP(3), n BIGINT)
  WITH ('connector' = 'file', 'path' = '{}', 'format' = 'csv');
CREATE TABLE totals (k STRING, n BIGINT, w TIMESTAMP(3)) WITH ('connector' = 'file', 'path' = '{}', 'format' = 'json');
INSERT INTO totals SELECT k, n, window_start FROM counts WHERE n > 1;
)",
                                        out.string(), totals.string()));
    why.clear();
    ASSERT_TRUE(_jobs->submit(back, why)) << why;
    ASSERT_TRUE(eventually([&] { return !slurp(totals).empty(); }));
    auto ck2 = status_of("back").checkpoints;
    ASSERT_TRUE(eventually([&] { return status_of("back").checkpoints >= ck2 + 2; }));
    EXPECT_EQ(slurp(totals), "{\"k\":\"a\",\"n\":2,\"w\":\"1970-01-01 00:00:00.000\"}\n");
}

TEST_F(jobs_test, file_connector_errors_name_the_table_and_the_problem) {
    start_jobs();
    std::string why;
    int n = 0;
    auto job = [&](const std::string& source_opts, const std::string& sink_opts) {
        return sql(fmt::format("bad{}", n++), fmt::format(R"(
CREATE TABLE src (k STRING) WITH ({});
CREATE TABLE dst (k STRING, n BIGINT, PRIMARY KEY (k) NOT ENFORCED) WITH ({});
INSERT INTO dst SELECT k, COUNT(*) FROM src GROUP BY k;
)",
                                      source_opts, sink_opts));
    };
    const auto missing = (_dir / "nope.json").string();
    why.clear();
    EXPECT_FALSE(_jobs->submit(job(fmt::format("'connector' = 'file', 'path' = '{}', 'format' = 'json'", missing),
                                   "'connector' = 'blackhole'"),
                               why));
    EXPECT_NE(why.find(fmt::format("table src: path '{}' does not exist", missing)), std::string::npos) << why;
    std::ofstream(_dir / "in.json") << "{}\n";
    const auto in = (_dir / "in.json").string();
    why.clear();
    EXPECT_FALSE(_jobs->submit(
        job(fmt::format("'connector' = 'file', 'path' = '{}'", in), "'connector' = 'blackhole'"), why));
    EXPECT_NE(why.find("table src: the file connector needs option 'format'"), std::string::npos) << why;
    why.clear();
    EXPECT_FALSE(_jobs->submit(job(fmt::format("'connector' = 'file', 'path' = '{}', 'format' = 'json', 'paht' = 'x'", in),
                                   "'connector' = 'blackhole'"),
                               why));
    EXPECT_NE(why.find("table src: option 'paht' is not one the file connector reads; did you mean 'path'?"), std::string::npos) << why;
    why.clear();
    EXPECT_FALSE(_jobs->submit(job(fmt::format("'connector' = 'file', 'path' = '{}', 'format' = 'json'", in),
                                   fmt::format("'connector' = 'file', 'path' = '{}', 'format' = 'json'",
                                               (_dir / "o.json").string())),
                               why));
    EXPECT_NE(why.find("table dst: a file sink takes only inserts, and the query updates its rows"), std::string::npos)
        << why;
}

TEST_F(jobs_test, a_topic_table_starts_at_a_timestamp) {
    ASSERT_TRUE(create("events", 1).first);
    std::vector<std::pair<std::string, int64_t>> evs;
    for (int i = 0; i < 10; ++i) evs.emplace_back(fmt::format("k{}", i), 1000 + i * 100);
    produce_events("events", 1, evs);
    start_jobs();
    auto d = sql("late", R"(
CREATE TABLE events (`key` STRING, ts BIGINT) WITH ('connector' = 'topic', 'topic' = 'events',
  'scan.startup.mode' = 'timestamp', 'scan.startup.timestamp-millis' = '1450');
CREATE TABLE picked (`key` STRING) WITH ('connector' = 'topic', 'topic' = 'picked');
INSERT INTO picked SELECT `key` FROM events;
)");
    std::string why;
    why.clear();
    ASSERT_TRUE(_jobs->submit(d, why)) << why;
    const std::vector<std::string> expected = {R"({"key":"k5"})", R"({"key":"k6"})", R"({"key":"k7"})",
                                               R"({"key":"k8"})", R"({"key":"k9"})"};
    ASSERT_TRUE(eventually([&] { return values("picked").size() >= expected.size(); }));
    auto ck = _jobs->status()[0].checkpoints;
    ASSERT_TRUE(eventually([&] { return _jobs->status()[0].checkpoints >= ck + 2; }));
    EXPECT_EQ(values("picked"), expected);

    why.clear();

    EXPECT_FALSE(_jobs->submit(sql("nots", R"(
CREATE TABLE events (`key` STRING) WITH ('connector' = 'topic', 'topic' = 'events', 'scan.startup.mode' = 'timestamp');
CREATE TABLE sink (`key` STRING) WITH ('connector' = 'blackhole');
INSERT INTO sink SELECT `key` FROM events;
)"),
                               why));
    EXPECT_NE(why.find("table events: 'scan.startup.mode' = 'timestamp' needs 'scan.startup.timestamp-millis'"),
              std::string::npos)
        << why;
}

TEST_F(jobs_test, a_second_job_in_the_same_group_continues_where_the_first_stopped) {
    ASSERT_TRUE(create("events", 1).first);
    auto feed = [&](int from, int to) {
        std::vector<std::pair<std::string, int64_t>> evs;
        for (int i = from; i < to; ++i) evs.emplace_back(fmt::format("k{}", i), i);
        produce_events("events", 1, evs);
    };
    feed(0, 6);
    start_jobs();
    auto job = [&](const std::string& id) {
        return sql(id, fmt::format(R"(
CREATE TABLE events (`key` STRING, ts BIGINT) WITH ('connector' = 'topic', 'topic' = 'events',
  'scan.startup.mode' = 'group-offsets', 'properties.group.id' = 'readers');
CREATE TABLE seen (`key` STRING) WITH ('connector' = 'topic', 'topic' = '{}');
INSERT INTO seen SELECT `key` FROM events;
)",
                                   id));
    };
    std::string why;
    // No committed offsets yet: the first job starts at the earliest (Flink's default reset).
    why.clear();
    ASSERT_TRUE(_jobs->submit(job("first"), why)) << why;
    ASSERT_TRUE(eventually([&] { return values("first").size() >= 6; }));
    // Each durable checkpoint commits the offsets it holds.
    ASSERT_TRUE(eventually([&] { return committed("readers", "events") == 6; }));
    ASSERT_TRUE(_jobs->remove("first"));
    feed(6, 9);
    why.clear();
    ASSERT_TRUE(_jobs->submit(job("second"), why)) << why;
    ASSERT_TRUE(eventually([&] { return values("second").size() >= 3; }));
    ASSERT_TRUE(eventually([&] { return committed("readers", "events") == 9; }));
    EXPECT_EQ(values("second"), (std::vector<std::string>{R"({"key":"k6"})", R"({"key":"k7"})", R"({"key":"k8"})"}));
    EXPECT_EQ(values("first").size(), 6u);

    why.clear();

    EXPECT_FALSE(_jobs->submit(sql("nogroup", R"(
CREATE TABLE events (`key` STRING) WITH ('connector' = 'topic', 'topic' = 'events', 'scan.startup.mode' = 'group-offsets');
CREATE TABLE sink (`key` STRING) WITH ('connector' = 'blackhole');
INSERT INTO sink SELECT `key` FROM events;
)"),
                               why));
    EXPECT_NE(why.find("table events: 'scan.startup.mode' = 'group-offsets' needs 'properties.group.id'"),
              std::string::npos)
        << why;
}

TEST_F(jobs_test, bad_definitions_are_refused_with_the_reason) {
    start_jobs();
    std::string why;
    auto d = counting();
    d.template_name = "nope";
    EXPECT_FALSE(_jobs->submit(d, why));
    EXPECT_TRUE(why.starts_with("unknown template 'nope' (known: ")) << why;
    EXPECT_NE(why.find("windowed_count"), std::string::npos) << why;
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

TEST_F(jobs_test, a_stored_job_that_cannot_be_built_is_failed_with_its_reason) {
    std::filesystem::create_directories(_dir / "jobs" / "gone");
    {
        std::ofstream out(_dir / "jobs" / "gone" / "job.json");
        out << R"({"id":"gone","template":"vanished","params":{}})";
    }
    start_jobs();
    auto st = status_of("gone");
    EXPECT_EQ(st.state, "failed");
    EXPECT_TRUE(st.error.starts_with("unknown template 'vanished' (known: ")) << st.error;
}

TEST_F(jobs_test, side_output_topics_appear_with_their_first_row_and_go_with_the_job) {
    start_jobs();
    ASSERT_TRUE(create("raw", 1).first);
    std::string why;
    auto text = R"(
CREATE TABLE raw (`key` STRING, ts TIMESTAMP(3), WATERMARK FOR ts AS ts) WITH ('connector' = 'topic', 'topic' = 'raw');
CREATE TABLE sink (`key` STRING) WITH ('connector' = 'blackhole');
INSERT INTO sink SELECT `key` FROM raw;
)";
    ASSERT_TRUE(_jobs->submit(sql("copy", text), why)) << why;
    produce_events("raw", 1, {{"a", 1000}});
    ASSERT_TRUE(eventually([&] { return status_of("copy").checkpoints >= 3; }));
    EXPECT_FALSE(_broker->topic("copy.dead")) << "a dead-letter topic without a dead letter";
    model::record_batch_builder b;
    b.add(std::nullopt, std::string_view("not json"), model::event_time(2000));
    ASSERT_TRUE(produce({"raw", model::partition_id(0)}, b.build(), -1));
    ASSERT_TRUE(eventually([&] { return values("copy.dead").size() == 1; }));
    ASSERT_TRUE(_jobs->remove("copy"));
    EXPECT_FALSE(_broker->topic("copy.dead"));
    // Kept on request when it holds records.
    ASSERT_TRUE(_jobs->submit(sql("copy2", text), why)) << why;
    ASSERT_TRUE(eventually([&] { return values("copy2.dead").size() == 1; }));
    ASSERT_TRUE(_jobs->remove("copy2", true));
    EXPECT_TRUE(_broker->topic("copy2.dead"));
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
// Each connector the registry says can be read or written has its factory, found by its id or
// any alias in any case; an unknown name has none.
TEST(table_connectors, every_connector_that_reads_or_writes_has_its_factory) {
    for (const auto& c : connect::connector_registry::global().all()) {
        if (c.source || c.sink) {
            EXPECT_NE(find_table_connector(c.id), nullptr) << c.id;
        }
        for (const auto& a : c.aliases) EXPECT_EQ(find_table_connector(a), find_table_connector(c.id)) << a;
    }
    EXPECT_NE(find_table_connector("FileSystem"), nullptr);
    EXPECT_EQ(find_table_connector("FileSystem"), find_table_connector("file"));
    EXPECT_EQ(find_table_connector("kafka"), find_table_connector("topic"));
    EXPECT_EQ(find_table_connector("no-such-connector"), nullptr);
    EXPECT_EQ(find_table_connector(""), nullptr);
}

} // namespace runnel::jobs
