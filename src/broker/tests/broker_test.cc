#include <gtest/gtest.h>

#include <unistd.h>

#include <random>

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

TEST(topic_config, compression_type_and_flush_settings) {
    topic_config c;
    std::string why;
    EXPECT_EQ(c.to_map().at("compression.type"), "producer");
    EXPECT_FALSE(c.stored_compression()) << "producer keeps the producer's codec";
    for (auto [name, codec] : {std::pair{"uncompressed", model::compression::none},
                               std::pair{"gzip", model::compression::gzip},
                               std::pair{"snappy", model::compression::snappy},
                               std::pair{"lz4", model::compression::lz4}, std::pair{"zstd", model::compression::zstd}}) {
        ASSERT_TRUE(c.set("compression.type", name, why)) << why;
        EXPECT_EQ(c.stored_compression(), codec) << name;
    }
    EXPECT_FALSE(c.set("compression.type", "brotli", why));
    EXPECT_NE(why.find("producer, uncompressed, gzip, snappy, lz4 or zstd"), std::string::npos) << why;
    EXPECT_FALSE(c.set("compression.type", "ZSTD", why)) << "Kafka's values are lower case";
    ASSERT_TRUE(c.set("flush.ms", "12345678", why)) << why;
    EXPECT_FALSE(c.set("flush.messages", "0", why));
    auto back = topic_config::parse(c.serialize(), why);
    ASSERT_TRUE(back) << why;
    EXPECT_EQ(back.value(), c);
    ASSERT_TRUE(c.reset("compression.type", why)) << why;
    EXPECT_EQ(c.compression_type, "producer");
    // A topic.conf written before these configs existed reads with their defaults.
    back = topic_config::parse("partitions=2\nretention.ms=1000\n", why);
    ASSERT_TRUE(back) << why;
    EXPECT_EQ(back.value().compression_type, "producer");
}

/// Runs `fn` on `tp`'s owner and hands its result back through `caller`.
template <typename F>
std::invoke_result_t<F&> on_owner(broker& b, manual_executor& caller, const model::topic_partition& tp, F fn) {
    using T = std::invoke_result_t<F&>;
    std::shared_ptr<std::optional<T>> out = std::make_shared<std::optional<T>>();
    b.owner_of(tp).post([&caller, &fn, out] {
        auto v = std::make_shared<T>(fn());
        caller.post([out, v] { out->emplace(std::move(*v)); });
    });
    EXPECT_TRUE(caller.run_until([&] { return out->has_value(); }));
    return std::move(**out);
}

/// The batches of `tp` from offset 0, as stored.
std::vector<std::vector<std::byte>> stored_batches(broker& b, manual_executor& caller, const model::topic_partition& tp) {
    std::vector<std::vector<std::byte>> out;
    auto f = on_owner(b, caller, tp, [&] { return b.fetch_local(tp, offset(0), 16 << 20); });
    EXPECT_TRUE(f);
    auto bytes = f.value().data.bytes.span();
    while (!bytes.empty()) {
        auto h = model::validate_batch(bytes);
        EXPECT_TRUE(h);
        if (!h) {
            break;
        }
        out.emplace_back(bytes.begin(), bytes.begin() + static_cast<long>(h.value().size_bytes()));
        bytes = bytes.subspan(h.value().size_bytes());
    }
    return out;
}

TEST_F(broker_test, compression_type_recompresses_produced_batches) {
    ASSERT_TRUE(create("zipped", 1).first);
    std::optional<std::pair<result<void>, std::string>> out;
    _broker->alter_config("zipped", {{"compression.type", "zstd"}}, _caller,
                          [&](result<void> r, std::string why) { out.emplace(r, why); });
    ASSERT_TRUE(_caller.run_until([&] { return out.has_value(); }));
    ASSERT_TRUE(out->first) << out->second;
    model::topic_partition tp{"zipped", model::partition_id(0)};
    auto id = wait<result<broker::producer_identity>>([&](auto d) { _broker->init_producer_id(_caller, d); });
    ASSERT_TRUE(id);
    const int64_t pid = id.value().id;
    const int16_t epoch = id.value().epoch;
    model::record_batch_builder builder;
    builder.set_producer(pid, epoch, 0);
    builder.add("a", "one", model::event_time(5000)).add("b", "two", model::event_time(4000));
    auto plain = builder.build();
    std::string why;
    ASSERT_TRUE(produce(tp, plain, -1));
    // Same producer and sequence again would be a duplicate: the next sequence.
    builder.set_producer(pid, epoch, 2);
    builder.add("c", "three", model::event_time(6000)).add("d", "four", model::event_time(7000));
    auto second = builder.build();
    auto second_gz = model::recompress_batch(second.bytes(), second.header(), model::compression::gzip, 1 << 20, why);
    ASSERT_TRUE(second_gz) << why;
    auto pr = produce(tp, model::record_batch::from_bytes(byte_buffer::copy_of(*second_gz)).value(), -1);
    ASSERT_TRUE(pr) << pr.error().message();
    EXPECT_EQ(pr.value().base, offset(2));
    auto batches = stored_batches(*_broker, _caller, tp);
    ASSERT_EQ(batches.size(), 2u);
    for (std::size_t i = 0; i < batches.size(); ++i) {
        auto h = model::validate_batch(batches[i]).value();
        EXPECT_EQ(h.compression(), model::compression::zstd) << i;
        EXPECT_EQ(h.producer_id, pid);
        EXPECT_EQ(h.producer_epoch, epoch);
        EXPECT_EQ(h.base_sequence, i == 0 ? 0 : 2);
        EXPECT_EQ(h.base_offset, offset(static_cast<int64_t>(2 * i)));
        EXPECT_EQ(h.max_timestamp, model::event_time(i == 0 ? 5000 : 7000));
        std::vector<std::byte> inflated;
        auto recs = model::decode_records(*model::uncompressed_batch(batches[i], h, 1 << 20, inflated, why)).value();
        ASSERT_EQ(recs.size(), 2u);
        EXPECT_EQ(recs[0].offset_value, offset(static_cast<int64_t>(2 * i)));
    }
    // A retry of the first batch is still recognised as a duplicate after recompression.
    auto retry = produce(tp, plain, -1);
    ASSERT_TRUE(retry) << retry.error().message();
    EXPECT_EQ(retry.value().base, offset(0));
    EXPECT_EQ(stored_batches(*_broker, _caller, tp).size(), 2u);
}

TEST_F(broker_test, max_timestamp_is_the_first_record_holding_the_largest_timestamp) {
    ASSERT_TRUE(create("times", 1).first);
    model::topic_partition tp{"times", model::partition_id(0)};
    auto empty = on_owner(*_broker, _caller, tp, [&] { return _broker->max_timestamp_local(tp); });
    ASSERT_TRUE(empty);
    EXPECT_FALSE(empty.value()) << "an empty partition has none";
    // Batches with pseudo-random timestamps, some compressed, and the largest one repeated.
    std::mt19937_64 rng(7);
    std::vector<std::pair<int64_t, int64_t>> all; // offset, timestamp
    int64_t next = 0;
    for (int b = 0; b < 40; ++b) {
        std::vector<int64_t> ts;
        const int n = 1 + static_cast<int>(rng() % 5);
        for (int r = 0; r < n; ++r) {
            ts.push_back(1'000'000 + static_cast<int64_t>(rng() % 5000));
        }
        if (b == 17 || b == 30) {
            ts[static_cast<std::size_t>(n - 1)] = 2'000'000; // the largest, twice: the first wins
        }
        auto batch = make_batch(static_cast<uint64_t>(b), 20, n, ts);
        if (b % 3 != 0) {
            std::string why;
            auto packed = model::recompress_batch(batch.bytes(), batch.header(),
                                                  b % 3 == 1 ? model::compression::lz4 : model::compression::gzip,
                                                  1 << 20, why);
            ASSERT_TRUE(packed) << why;
            batch = model::record_batch::from_bytes(byte_buffer::copy_of(*packed)).value();
        }
        ASSERT_TRUE(produce(tp, batch, 1));
        for (auto t : ts) {
            all.emplace_back(next++, t);
        }
    }
    // The brute-force answer: scan every record.
    auto best = all.front();
    for (const auto& rec : all) {
        if (rec.second > best.second) {
            best = rec;
        }
    }
    auto found = on_owner(*_broker, _caller, tp, [&] { return _broker->max_timestamp_local(tp); });
    ASSERT_TRUE(found);
    ASSERT_TRUE(found.value());
    EXPECT_EQ(found.value()->offset, offset(best.first));
    EXPECT_EQ(found.value()->timestamp, model::event_time(best.second));
    EXPECT_EQ(best.second, 2'000'000);
}

TEST_F(broker_test, dynamic_broker_configs_replace_alter_and_survive_a_restart) {
    auto alter = [&](std::vector<std::pair<std::string, std::optional<std::string>>> changes, bool replace) {
        std::optional<std::pair<result<void>, std::string>> out;
        _broker->alter_dynamic_configs(std::move(changes), replace, _caller,
                                       [&](result<void> r, std::string why) { out.emplace(r, why); });
        EXPECT_TRUE(_caller.run_until([&] { return out.has_value(); }));
        return *out;
    };
    EXPECT_TRUE(_broker->dynamic_configs().empty());
    ASSERT_TRUE(alter({{"background.threads", "9"}, {"log.cleanup.policy", "delete,compact"}}, false).first);
    ASSERT_TRUE(alter({{"background.threads", std::nullopt}}, false).first);
    EXPECT_EQ(_broker->dynamic_configs(), (std::map<std::string, std::string>{{"log.cleanup.policy", "delete,compact"}}));
    ASSERT_TRUE(alter({{"sasl.kerberos.min.time.before.relogin", "58000"}}, true).first);
    EXPECT_EQ(_broker->dynamic_configs(),
              (std::map<std::string, std::string>{{"sasl.kerberos.min.time.before.relogin", "58000"}}));
    auto bad = alter({{"a", "line\nbreak"}}, false);
    EXPECT_EQ(bad.first.error(), errc::invalid_config);
    EXPECT_EQ(alter({{"big", std::string(70'000, 'x')}}, false).first.error(), errc::invalid_config);
    shutdown();
    start();
    EXPECT_EQ(_broker->dynamic_configs(),
              (std::map<std::string, std::string>{{"sasl.kerberos.min.time.before.relogin", "58000"}}));
}

} // namespace
} // namespace runnel::broker
