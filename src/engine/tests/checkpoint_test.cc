#include <gtest/gtest.h>

#include <fstream>

#include "engine/engine.h"

using namespace std::chrono_literals;

namespace runnel::engine {
namespace {

std::filesystem::path fresh_dir(const char* name) {
    auto d = std::filesystem::temp_directory_path() / fmt::format("runnel-ckpt-{}-{}", name, ::getpid());
    std::filesystem::remove_all(d);
    return d;
}

checkpoint make(uint64_t id) {
    checkpoint c;
    c.id = id;
    c.parts["sources"] = fmt::format("offsets of {}", id);
    c.parts["stage.3"] = std::string(1000, char('a' + id % 26));
    c.parts["empty"] = "";
    return c;
}

TEST(checkpoint_store, round_trip_and_only_the_newest_are_kept) {
    auto dir = fresh_dir("keep");
    checkpoint_store store(dir, 2);
    EXPECT_FALSE(store.latest().value().has_value());
    for (uint64_t id = 1; id <= 5; ++id) ASSERT_TRUE(store.write(make(id)));
    auto got = store.latest().value();
    ASSERT_TRUE(got.has_value());
    EXPECT_EQ(got->id, 5u);
    EXPECT_EQ(got->parts, make(5).parts);
    size_t files = 0;
    for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator(dir)) ++files;
    EXPECT_EQ(files, 2u);
    std::filesystem::remove_all(dir);
}

TEST(checkpoint_store, a_torn_or_damaged_newest_falls_back_to_the_previous) {
    auto dir = fresh_dir("torn");
    checkpoint_store store(dir, 3);
    ASSERT_TRUE(store.write(make(7)));
    ASSERT_TRUE(store.write(make(8)));
    auto newest = dir / "00000000000000000008.ckpt";
    auto size = std::filesystem::file_size(newest);
    std::filesystem::resize_file(newest, size / 2); // torn
    EXPECT_EQ(store.latest().value()->id, 7u);
    ASSERT_TRUE(store.write(make(9)));
    {
        std::fstream f(dir / "00000000000000000009.ckpt", std::ios::in | std::ios::out | std::ios::binary);
        f.seekp(30);
        f.put('X'); // a flipped byte in the middle
    }
    EXPECT_EQ(store.latest().value()->id, 7u);
    std::filesystem::remove_all(dir);
}

TEST(checkpoint_store, decode_rejects_garbage_with_a_reason) {
    EXPECT_FALSE(checkpoint_store::decode(""));
    EXPECT_FALSE(checkpoint_store::decode("RNCK not really"));
    auto bytes = checkpoint_store::encode(make(3));
    for (size_t cut = 0; cut < bytes.size(); cut += 7) EXPECT_FALSE(checkpoint_store::decode(bytes.substr(0, cut)));
    auto c = checkpoint_store::decode(bytes);
    ASSERT_TRUE(c);
    EXPECT_EQ(c.value().id, 3u);
}

schema_ptr event_schema() {
    return make_schema({{"k", data_type::string(), false}, {"ts", data_type::timestamp(), false}});
}

batch events(int32_t partition, std::vector<std::pair<std::string, int64_t>> rows) {
    batch b(event_schema());
    for (auto& [k, t] : rows) b.append_row({value::of(k), value::ts(t)});
    b.set_source_partition(partition);
    return b;
}

/// A source over batches that, unlike `from_batches`, never ends: it answers idle once they
/// are taken, as a log source does when it has caught up.
source_fn endless(std::vector<batch> in) {
    auto q = std::make_shared<std::deque<batch>>(std::make_move_iterator(in.begin()), std::make_move_iterator(in.end()));
    return [q]() {
        if (q->empty()) return source_poll::idle();
        auto b = std::move(q->front());
        q->pop_front();
        return source_poll::data(std::move(b));
    };
}

void run_until_quiet(pipeline& p) {
    for (int i = 0; i < 1000; ++i) {
        ASSERT_TRUE(p.run_once());
        if (p.quiescent() && i > 10) return;
    }
    FAIL() << "the pipeline never drained";
}

// A job restored from a snapshot taken at a quiescent point produces what an uninterrupted
// run produces: window state and per-partition watermarks both come back.
TEST(pipeline_snapshot, restored_run_equals_uninterrupted_run) {
    std::vector<batch> first = {events(0, {{"a", 1000}, {"b", 1500}}), events(1, {{"a", 1200}}),
                                events(0, {{"a", 2500}, {"b", 9000}})};
    std::vector<batch> second = {events(1, {{"b", 9500}}), events(0, {{"a", 21000}}), events(1, {{"a", 21000}}),
                                 events(0, {{"b", 40000}}), events(1, {{"b", 40000}})};
    auto build = [](pipeline& p, std::vector<batch> in, std::vector<std::string>& out) {
        watermark_options wo;
        wo.partitions = 2;
        p.source(event_schema(), endless(std::move(in)))
          .watermark("ts", 1s, wo)
          .key_by({"k"})
          .window(tumble(10s))
          .aggregate({count()})
          .sink([&](const batch& b) {
              for (size_t i = 0; i < b.num_rows(); ++i) out.push_back(b.row_to_string(i));
          });
    };
    std::vector<std::string> whole, part1, part2;
    {
        std::vector<batch> all = first;
        for (auto& b : second) all.push_back(b);
        pipeline p;
        build(p, all, whole);
        run_until_quiet(p);
    }
    std::vector<std::string> state;
    {
        pipeline p;
        build(p, first, part1);
        run_until_quiet(p);
        state = p.snapshot();
    }
    {
        pipeline p;
        build(p, second, part2);
        ASSERT_TRUE(p.restore(state));
        run_until_quiet(p);
    }
    // Windows [0,10s) of a (3 rows) and b (2+1), and [20s,30s) of a; [40s,50s) stays open.
    EXPECT_EQ(whole.size(), 3u);
    std::vector<std::string> resumed = part1;
    resumed.insert(resumed.end(), part2.begin(), part2.end());
    std::sort(whole.begin(), whole.end());
    std::sort(resumed.begin(), resumed.end());
    EXPECT_EQ(resumed, whole);
    // Without the snapshot the second half alone misses the rows of the first.
    std::vector<std::string> fresh;
    {
        pipeline p;
        build(p, second, fresh);
        run_until_quiet(p);
    }
    std::sort(fresh.begin(), fresh.end());
    EXPECT_NE(fresh, whole);
}

struct gate {
    bool open = false;
};

// A sink that is not ready holds batches back; queues stay within their bounds and the source
// is not polled beyond them.
TEST(pipeline_backpressure, a_sink_that_is_not_ready_stops_the_source) {
    pipeline_options o;
    o.queue_capacity = 4;
    pipeline p(o);
    size_t polled = 0, delivered = 0;
    gate g;
    p.source(event_schema(),
             [&]() {
                 ++polled;
                 return source_poll::data(events(0, {{"x", int64_t(polled)}}));
             })
      .filter(col("k") == lit("x"))
      .sink([&](const batch& b) { delivered += b.num_rows(); }, {}, [&] { return g.open; });
    for (int i = 0; i < 1000; ++i) ASSERT_TRUE(p.run_once());
    EXPECT_EQ(delivered, 0u);
    EXPECT_LE(p.queued_messages(), p.queue_capacity());
    EXPECT_LE(polled, 2 * o.queue_capacity + 2);
    g.open = true;
    for (int i = 0; i < 1000; ++i) ASSERT_TRUE(p.run_once());
    EXPECT_GT(delivered, 900u);
}

} // namespace
} // namespace runnel::engine
