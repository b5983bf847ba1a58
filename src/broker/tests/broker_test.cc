#include <gtest/gtest.h>

#include <unistd.h>

#include "broker/broker.h"
#include "net/net.h"
#include "broker/tests/broker_fixture.h"
#include "storage/tests/log_fixture.h"

namespace runnel::broker {
namespace {

using model::offset;
using storage::testing::make_batch;

using broker_test = testing::broker_fixture;

TEST_F(broker_test, create_produce_fetch_and_reload) {
    auto [r, why] = create("orders", 3);
    ASSERT_TRUE(r) << why;
    EXPECT_EQ(create("orders", 3).first.error(), errc::topic_already_exists);
    EXPECT_EQ(create("bad/name", 1).first.error(), errc::invalid_topic);
    EXPECT_EQ(create("zero", 0).first.error(), errc::invalid_partitions);
    ASSERT_TRUE(_broker->topic("orders"));
    EXPECT_EQ(_broker->topic("orders")->config.partitions, 3);

    for (int32_t p = 0; p < 3; ++p) {
        model::topic_partition tp{"orders", model::partition_id(p)};
        for (uint64_t i = 0; i < 5; ++i) {
            auto b = make_batch(i + 10 * static_cast<uint64_t>(p), 50, 2);
            auto pr = produce(tp, b, i % 2 ? -1 : 1);
            ASSERT_TRUE(pr) << pr.error().message();
            EXPECT_EQ(pr.value().base, offset(static_cast<int64_t>(2 * i)));
        }
        auto f = wait<result<fetch_result>>([&](auto d) { _broker->fetch(tp, offset(4), 1 << 20, _caller, d); });
        ASSERT_TRUE(f);
        EXPECT_EQ(f.value().data.batches, 3u);
        EXPECT_EQ(f.value().high_watermark, offset(10));
        auto o = wait<result<offsets_result>>([&](auto d) { _broker->offsets(tp, _caller, d); });
        EXPECT_EQ(o.value().high_watermark, offset(10));
        auto t = wait<result<std::optional<broker::time_match>>>([&](auto d) {
            _broker->offset_for_time(tp, model::event_time(1'700'000'000'000 + 10 * p + 3), _caller, d);
        });
        ASSERT_TRUE(t.value());
        EXPECT_EQ(t.value()->offset, offset(6));
        EXPECT_EQ(t.value()->timestamp, model::event_time(1'700'000'000'000 + 10 * p + 3)) << "offset 6's own";
    }
    model::topic_partition missing{"orders", model::partition_id(7)};
    auto b = make_batch(1, 10);
    EXPECT_EQ(produce(missing, b, 1).error(), errc::unknown_topic_or_partition);

    // A corrupt batch is refused before it reaches any log.
    auto bytes = byte_buffer::copy_of(b.bytes());
    bytes.data()[bytes.size() - 1] ^= std::byte{1};
    auto bad = wait<result<produce_result>>([&](auto d) {
        _broker->produce({"orders", model::partition_id(0)}, bytes.span(), 1, _caller, d);
    });
    EXPECT_EQ(bad.error(), errc::corrupt_message);

    shutdown();
    start();
    ASSERT_TRUE(_broker->topic("orders"));
    auto o = wait<result<offsets_result>>([&](auto d) { _broker->offsets({"orders", model::partition_id(2)}, _caller, d); });
    EXPECT_EQ(o.value().high_watermark, offset(10));
}

TEST_F(broker_test, delete_records_moves_the_log_start_durably) {
    ASSERT_TRUE(create("trim", 1).first);
    model::topic_partition tp{"trim", model::partition_id(0)};
    for (uint64_t i = 0; i < 10; ++i) {
        auto b = make_batch(i, 50, 2);
        ASSERT_TRUE(produce(tp, b, -1));
    }
    auto del = [&](model::topic_partition p, offset o) {
        return wait<result<offset>>([&](auto d) { _broker->delete_records(p, o, _caller, d); });
    };
    // Offset 7 lies inside the batch [6, 7]: the start is 7, reads from 6 are out of range.
    auto r = del(tp, offset(7));
    ASSERT_TRUE(r) << r.error().message();
    EXPECT_EQ(r.value(), offset(7));
    EXPECT_EQ(del(tp, offset(21)).error(), errc::offset_out_of_range);
    EXPECT_EQ(del(tp, offset(-2)).error(), errc::offset_out_of_range);
    EXPECT_EQ(del({"trim", model::partition_id(1)}, offset(0)).error(), errc::unknown_topic_or_partition);
    EXPECT_EQ(del({"nope", model::partition_id(0)}, offset(0)).error(), errc::unknown_topic_or_partition);
    auto o = wait<result<offsets_result>>([&](auto d) { _broker->offsets(tp, _caller, d); });
    EXPECT_EQ(o.value().log_start, offset(7));
    auto f = wait<result<fetch_result>>([&](auto d) { _broker->fetch(tp, offset(6), 1 << 20, _caller, d); });
    EXPECT_EQ(f.error(), errc::offset_out_of_range);
    // A batch straddling the start is served whole, as in Kafka.
    f = wait<result<fetch_result>>([&](auto d) { _broker->fetch(tp, offset(7), 1 << 20, _caller, d); });
    ASSERT_TRUE(f);
    EXPECT_EQ(f.value().log_start, offset(7));
    EXPECT_EQ(f.value().data.batches, 7u);

    shutdown();
    start();
    o = wait<result<offsets_result>>([&](auto d) { _broker->offsets(tp, _caller, d); });
    EXPECT_EQ(o.value().log_start, offset(7));
    // -1 is the high watermark.
    r = del(tp, offset(-1));
    ASSERT_TRUE(r);
    EXPECT_EQ(r.value(), offset(20));
    o = wait<result<offsets_result>>([&](auto d) { _broker->offsets(tp, _caller, d); });
    EXPECT_EQ(o.value().log_start, offset(20));
    EXPECT_EQ(o.value().high_watermark, offset(20));
}

TEST_F(broker_test, watch_wakes_on_produce_and_not_after_cancel) {
    ASSERT_TRUE(create("events", 2).first);
    model::topic_partition tp{"events", model::partition_id(1)};
    bool woke = false;
    auto w = _broker->watch_for_data(_caller, [&] { woke = true; });
    _broker->add_to_watch(w, tp, offset(0));
    auto b = make_batch(1, 10);
    ASSERT_TRUE(produce(tp, b, 1));
    EXPECT_TRUE(_caller.run_until([&] { return woke; }));

    // Already past the offset: wakes at once.
    bool again = false;
    auto w2 = _broker->watch_for_data(_caller, [&] { again = true; });
    _broker->add_to_watch(w2, tp, offset(0));
    EXPECT_TRUE(_caller.run_until([&] { return again; }));

    bool never = false;
    auto w3 = _broker->watch_for_data(_caller, [&] { never = true; });
    _broker->add_to_watch(w3, tp, offset(1));
    w3.cancel();
    ASSERT_TRUE(produce(tp, b, 1));
    _caller.poll();
    EXPECT_FALSE(never);
}

TEST_F(broker_test, alter_config_partitions_and_delete) {
    ASSERT_TRUE(create("logs", 1).first);
    std::optional<std::pair<result<void>, std::string>> out;
    auto done = [&](result<void> r, std::string why) { out.emplace(r, why); };
    _broker->alter_config("logs", {{"retention.ms", "1000"}, {"segment.bytes", "1048576"}}, _caller, done);
    ASSERT_TRUE(_caller.run_until([&] { return out.has_value(); }));
    ASSERT_TRUE(out->first) << out->second;
    EXPECT_EQ(_broker->topic("logs")->config.retention_ms, 1000);

    out.reset();
    _broker->alter_config("logs", {{"retention.ms", "1"}, {"no.such", "1"}}, _caller, done);
    ASSERT_TRUE(_caller.run_until([&] { return out.has_value(); }));
    EXPECT_EQ(out->first.error(), errc::invalid_config);
    EXPECT_NE(out->second.find("no.such"), std::string::npos);
    EXPECT_EQ(_broker->topic("logs")->config.retention_ms, 1000) << "all or nothing";

    out.reset();
    _broker->create_partitions("logs", 4, _caller, done);
    ASSERT_TRUE(_caller.run_until([&] { return out.has_value(); }));
    ASSERT_TRUE(out->first) << out->second;
    auto b = make_batch(1, 10);
    EXPECT_TRUE(produce({"logs", model::partition_id(3)}, b, -1));

    std::optional<result<void>> deleted;
    _broker->delete_topic("logs", _caller, [&](result<void> r) { deleted = r; });
    ASSERT_TRUE(_caller.run_until([&] { return deleted.has_value(); }));
    EXPECT_TRUE(*deleted);
    EXPECT_FALSE(_broker->topic("logs"));
    EXPECT_FALSE(std::filesystem::exists(_dir / "topics" / "logs"));
    EXPECT_EQ(produce({"logs", model::partition_id(0)}, b, 1).error(), errc::unknown_topic_or_partition);
}

TEST_F(broker_test, idempotent_retries_are_deduplicated_across_a_restart) {
    ASSERT_TRUE(create("idem", 1).first);
    auto id = wait<result<broker::producer_identity>>([&](auto d) { _broker->init_producer_id(_caller, d); });
    ASSERT_TRUE(id);
    model::topic_partition tp{"idem", model::partition_id(0)};
    auto make = [&](int32_t seq) {
        model::record_batch_builder b;
        b.set_producer(id.value().id, id.value().epoch, seq);
        b.add("k", fmt::format("v{}", seq), model::event_time(1));
        return b.build();
    };
    auto b0 = make(0);
    auto b1 = make(1);
    ASSERT_EQ(produce(tp, b0, -1).value().base, offset(0));
    ASSERT_EQ(produce(tp, b1, -1).value().base, offset(1));
    EXPECT_EQ(produce(tp, b1, -1).value().base, offset(1)) << "a retry lands once";
    auto b3 = make(3);
    EXPECT_EQ(produce(tp, b3, -1).error(), errc::out_of_order_sequence);

    shutdown();
    start();
    EXPECT_EQ(produce(tp, b1, -1).value().base, offset(1)) << "still a duplicate after restart";
    auto b2 = make(2);
    EXPECT_EQ(produce(tp, b2, -1).value().base, offset(2));
    auto o = wait<result<offsets_result>>([&](auto d) { _broker->offsets(tp, _caller, d); });
    EXPECT_EQ(o.value().high_watermark, offset(3));

    auto next = wait<result<broker::producer_identity>>([&](auto d) { _broker->init_producer_id(_caller, d); });
    EXPECT_GT(next.value().id, id.value().id) << "ids are never handed out twice across restarts";
    EXPECT_EQ(next.value().epoch, 0);
}

TEST(topic_config, round_trips_and_explains_bad_values) {
    topic_config c;
    c.partitions = 6;
    std::string why;
    ASSERT_TRUE(c.set("retention.bytes", "1000", why));
    ASSERT_TRUE(c.set("cleanup.policy", "compact", why));
    auto back = topic_config::parse(c.serialize(), why);
    ASSERT_TRUE(back) << why;
    EXPECT_EQ(back.value(), c);
    EXPECT_FALSE(c.set("retention.ms", "soon", why));
    EXPECT_NE(why.find("retention.ms"), std::string::npos);
    // The compaction configs, with Kafka's ranges.
    ASSERT_TRUE(c.set("min.cleanable.dirty.ratio", "0.25", why)) << why;
    ASSERT_TRUE(c.set("min.compaction.lag.ms", "1000", why)) << why;
    ASSERT_TRUE(c.set("max.compaction.lag.ms", "60000", why)) << why;
    ASSERT_TRUE(c.set("delete.retention.ms", "0", why)) << why;
    ASSERT_TRUE(c.set("cleanup.policy", "delete,compact", why)) << why;
    EXPECT_FALSE(c.set("min.cleanable.dirty.ratio", "1.5", why));
    EXPECT_FALSE(c.set("min.cleanable.dirty.ratio", "half", why));
    EXPECT_FALSE(c.set("max.compaction.lag.ms", "0", why));
    EXPECT_FALSE(c.set("delete.retention.ms", "-1", why));
    EXPECT_FALSE(c.set("cleanup.policy", "", why));
    back = topic_config::parse(c.serialize(), why);
    ASSERT_TRUE(back) << why;
    EXPECT_EQ(back.value(), c);
    EXPECT_TRUE(c.compacted());
    auto lc = c.log_config();
    EXPECT_TRUE(lc.compact);
    EXPECT_EQ(lc.min_cleanable_dirty_ratio, 0.25);
    EXPECT_EQ(lc.delete_retention_ms, 0);
    EXPECT_EQ(lc.retention_ms, c.retention_ms) << "compact,delete also deletes by time";
    EXPECT_EQ(topic_config{}.to_map().at("max.compaction.lag.ms"), "9223372036854775807");
    EXPECT_EQ(topic_config{}.to_map().at("min.cleanable.dirty.ratio"), "0.5");
    std::string name_why;
    EXPECT_TRUE(valid_topic_name("a.b_c-9", name_why));
    EXPECT_FALSE(valid_topic_name("..", name_why));
    EXPECT_FALSE(valid_topic_name(std::string(250, 'a'), name_why));
    EXPECT_FALSE(valid_topic_name("has space", name_why));
}

} // namespace
} // namespace runnel::broker
