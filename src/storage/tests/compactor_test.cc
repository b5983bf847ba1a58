// The log cleaner: latest record per key, offsets kept, gaps readable, tombstones after
// delete.retention.ms, compressed and control batches, and a crash at each step of the swap.

#include <gtest/gtest.h>

#include <map>

#include "storage/tests/log_fixture.h"

namespace runnel::storage {
namespace {

using model::offset;
namespace L = model::batch_layout;

struct rec {
    int64_t offset;
    std::optional<std::string> key;
    std::optional<std::string> value;
    bool operator==(const rec&) const = default;
};

log_config compact_config() {
    log_config cfg;
    cfg.segment_bytes = 1024; // a few batches per segment
    cfg.index_interval_bytes = 128;
    cfg.compact = true;
    cfg.delete_retention_ms = 3'600'000;
    return cfg;
}

std::string str(std::span<const std::byte> b) { return {reinterpret_cast<const char*>(b.data()), b.size()}; }

/// `b`'s records section compressed with `c`, with header fields updated and a fresh CRC.
model::record_batch compressed(const model::record_batch& b, model::compression c) {
    std::string why;
    auto body = model::compress_records(c, b.bytes().subspan(L::header_size), why);
    EXPECT_TRUE(body) << why;
    std::vector<std::byte> out(L::header_size + body->size());
    std::memcpy(out.data(), b.bytes().data(), L::header_size);
    std::memcpy(out.data() + L::header_size, body->data(), body->size());
    write_be<int16_t>(out.data() + L::attributes, static_cast<int16_t>(b.header().attributes | static_cast<int16_t>(c)));
    write_be<int32_t>(out.data() + L::length, static_cast<int32_t>(out.size() - L::length_field_end));
    write_be<uint32_t>(out.data() + L::crc, model::compute_batch_crc(out));
    auto r = model::record_batch::from_bytes(byte_buffer::copy_of(out));
    EXPECT_TRUE(r);
    return std::move(r).value();
}

/// A transaction marker (control batch: transactional, control, one record with key
/// version 0 type 1 = COMMIT).
model::record_batch commit_marker(int64_t producer_id) {
    model::record_batch_builder b;
    const char key[4] = {0, 0, 0, 1};
    const char value[6] = {0, 0, 0, 0, 0, 0};
    b.add(std::string_view(key, 4), std::string_view(value, 6), model::event_time(1'700'000'000'000));
    b.set_producer(producer_id, 0, -1);
    auto batch = b.build();
    std::vector<std::byte> bytes(batch.bytes().begin(), batch.bytes().end());
    write_be<int16_t>(bytes.data() + L::attributes, int16_t{0x30});
    write_be<uint32_t>(bytes.data() + L::crc, model::compute_batch_crc(bytes));
    return std::move(model::record_batch::from_bytes(byte_buffer::copy_of(bytes))).value();
}

class compactor_test : public testing::log_fixture {
protected:
    /// Appends one batch of (key, value) records, tombstones where the value is nullopt.
    offset put(partition_log& log, std::vector<std::pair<std::string, std::optional<std::string>>> kv,
               model::compression c = model::compression::none) {
        model::record_batch_builder b;
        for (auto& [k, v] : kv) {
            b.add(k, v, model::event_time(1'700'000'000'000 + log.next_offset()()));
        }
        auto batch = b.build();
        if (c != model::compression::none) {
            batch = compressed(batch, c);
        }
        auto r = log.append(batch);
        EXPECT_TRUE(r) << r.error().message();
        for (std::size_t i = 0; i < kv.size(); ++i) {
            _written.push_back(rec{r.value().base() + static_cast<int64_t>(i), kv[i].first, kv[i].second});
        }
        return r.value().base;
    }

    /// Every record from the log's start, in offset order, with the codec of each batch.
    std::vector<rec> records(partition_log& log, std::vector<model::compression>* codecs = nullptr) {
        std::vector<rec> out;
        for (auto& bytes : read_all(log, log.start_offset())) {
            auto h = model::validate_batch(bytes);
            EXPECT_TRUE(h);
            if (codecs && h.value().record_count > 0) { // an empty batch says "uncompressed"
                codecs->push_back(h.value().compression());
            }
            std::vector<std::byte> storage;
            std::string why;
            auto plain = model::uncompressed_batch(bytes, h.value(), 1 << 20, storage, why);
            EXPECT_TRUE(plain) << why;
            auto recs = model::decode_records(*plain);
            EXPECT_TRUE(recs);
            for (auto& r : recs.value()) {
                out.push_back(rec{r.offset_value(), r.key ? std::optional(str(*r.key)) : std::nullopt,
                                  r.value ? std::optional(str(*r.value)) : std::nullopt});
            }
        }
        return out;
    }

    /// Runs one cleaning in place of the cleaner thread; false when none was due.
    bool clean(partition_log& log, cleaner_limits limits = {0, 0}) {
        if (limits.dedupe_buffer_bytes == 0) {
            limits.dedupe_buffer_bytes = 1 << 20;
        }
        auto plan = log.plan_compaction(model::processing_now());
        if (!plan) {
            return false;
        }
        auto out = compact_segments(*plan, limits);
        const bool good = out.has_value();
        log.install_compaction(std::move(out));
        drain();
        return good;
    }

    /// Every record read is one that was written at that offset, with the same key and value.
    void expect_unchanged(const std::vector<rec>& got) {
        std::map<int64_t, rec> by_offset;
        for (auto& r : _written) {
            by_offset[r.offset] = r;
        }
        for (auto& r : got) {
            ASSERT_TRUE(by_offset.contains(r.offset)) << r.offset;
            EXPECT_EQ(by_offset[r.offset], r) << r.offset;
        }
    }

    /// The latest value written of each key before `end`.
    std::map<std::string, std::optional<std::string>> latest(int64_t end = INT64_MAX) const {
        std::map<std::string, std::optional<std::string>> m;
        for (auto& r : _written) {
            if (r.offset < end && r.key) {
                m[*r.key] = r.value;
            }
        }
        return m;
    }

    /// Writes 12 rounds over 5 keys, some deleted, then seals everything.
    void fill(partition_log& log, model::compression c = model::compression::none) {
        for (int round = 0; round < 12; ++round) {
            std::vector<std::pair<std::string, std::optional<std::string>>> kv;
            for (int k = 0; k < 5; ++k) {
                std::optional<std::string> v = fmt::format("value-{}-{}-{}", k, round, std::string(20, 'x'));
                if (round == 7 && k == 2) {
                    v = std::nullopt; // a delete; key-2 is written again later
                }
                if (round == 11 && k == 4) {
                    v = std::nullopt; // a delete that stays the latest
                }
                kv.emplace_back(fmt::format("key-{}", k), v);
            }
            put(log, kv, c);
        }
        log.roll_if_due(model::processing_time(INT64_MAX / 2));
    }

    std::vector<rec> _written;
};

TEST_F(compactor_test, keeps_latest_record_per_key_at_its_offset) {
    auto log = open(compact_config());
    fill(*log);
    const auto before = records(*log);
    ASSERT_EQ(before.size(), 60u);
    ASSERT_TRUE(clean(*log));
    auto after = records(*log);
    expect_unchanged(after);
    // Each key once, with its latest value (the delete of key-4 stays: delete.retention.ms).
    std::map<std::string, std::optional<std::string>> seen;
    for (auto& r : after) {
        ASSERT_TRUE(r.key);
        EXPECT_FALSE(seen.contains(*r.key)) << *r.key;
        seen[*r.key] = r.value;
    }
    EXPECT_EQ(seen, latest());
    EXPECT_EQ(log->cleaned_upto(), log->active_segment_base());
    EXPECT_EQ(log->next_offset(), offset(60));

    // Reopened (recovery checks the gaps below the cleaned point) it reads the same.
    ASSERT_TRUE(close(*log));
    log.reset();
    log = open(compact_config());
    EXPECT_FALSE(log->recovery().corrupt);
    EXPECT_EQ(records(*log), after);
}

TEST_F(compactor_test, a_read_in_a_gap_returns_the_next_record) {
    auto log = open(compact_config());
    fill(*log);
    ASSERT_TRUE(clean(*log));
    auto after = records(*log);
    ASSERT_GE(after.size(), 2u);
    // Offset 0 was superseded: reading there starts at the first record kept.
    auto r = log->read(offset(after[0].offset - 1 >= 0 ? after[0].offset - 1 : 0), 1 << 20);
    ASSERT_TRUE(r) << r.error().message();
    ASSERT_GT(r.value().batches, 0u);
    auto h = model::parse_batch_header(r.value().bytes.span());
    ASSERT_TRUE(h);
    EXPECT_LE(h.value().base_offset(), after[0].offset);
    EXPECT_GE(h.value().last_offset()(), after[0].offset);
}

TEST_F(compactor_test, tombstones_go_after_delete_retention_on_a_later_cleaning) {
    auto cfg = compact_config();
    cfg.delete_retention_ms = 0;
    auto log = open(cfg);
    fill(*log);
    ASSERT_TRUE(clean(*log));
    auto first = records(*log);
    EXPECT_TRUE(std::any_of(first.begin(), first.end(), [](auto& r) { return !r.value; }))
      << "the first cleaning keeps tombstones";
    // Due at once (retention 0): the next cleaning drops them.
    ASSERT_TRUE(clean(*log));
    auto second = records(*log);
    expect_unchanged(second);
    for (auto& r : second) {
        EXPECT_TRUE(r.value) << "tombstone of " << r.key.value_or("") << " at " << r.offset;
    }
    auto want = latest();
    std::erase_if(want, [](auto& kv) { return !kv.second; });
    EXPECT_EQ(second.size(), want.size());
}

TEST_F(compactor_test, compressed_batches_keep_their_codec) {
    for (auto c : {model::compression::gzip, model::compression::snappy, model::compression::lz4,
                   model::compression::zstd}) {
        SCOPED_TRACE(static_cast<int>(c));
        _written.clear();
        auto log = open(compact_config(), fmt::format("c{}", static_cast<int>(c)));
        fill(*log, c);
        ASSERT_TRUE(clean(*log));
        std::vector<model::compression> codecs;
        auto after = records(*log, &codecs);
        expect_unchanged(after);
        EXPECT_EQ(after.size(), latest().size());
        for (auto got : codecs) {
            EXPECT_EQ(got, c);
        }
    }
}

TEST_F(compactor_test, control_batches_and_keyless_records) {
    auto log = open(compact_config());
    fill(*log);
    auto marker = commit_marker(7);
    auto at = log->append(marker);
    ASSERT_TRUE(at);
    fill(*log);
    ASSERT_TRUE(clean(*log));
    // The marker is still there, byte for byte.
    auto r = log->read(at.value().base, 1 << 20);
    ASSERT_TRUE(r);
    auto h = model::parse_batch_header(r.value().bytes.span());
    ASSERT_TRUE(h);
    EXPECT_EQ(h.value().base_offset, at.value().base);
    EXPECT_TRUE(h.value().is_control());
}

TEST_F(compactor_test, offset_map_bound_cleans_in_steps) {
    auto log = open(compact_config());
    fill(*log);
    // Room for about two keys: each cleaning covers part of the dirty range.
    cleaner_limits small{150, 0};
    int runs = 0;
    while (clean(*log, small) && runs < 100) {
        ++runs;
    }
    EXPECT_GT(runs, 1);
    EXPECT_EQ(log->cleaned_upto(), log->active_segment_base());
    auto after = records(*log);
    expect_unchanged(after);
    std::map<std::string, std::optional<std::string>> seen;
    for (auto& r : after) {
        seen[*r.key] = r.value;
    }
    EXPECT_EQ(seen, latest());
}

TEST_F(compactor_test, dirty_ratio_and_compaction_lag_gate_cleaning) {
    auto cfg = compact_config();
    cfg.min_compaction_lag_ms = 3'600'000; // records are from 2023: old enough
    auto log = open(cfg);
    fill(*log);
    ASSERT_TRUE(clean(*log));
    // Nothing dirty now: no cleaning is due.
    EXPECT_FALSE(log->plan_compaction(model::processing_now()));
    cfg.compact = false;
    ASSERT_TRUE(log->set_config(cfg));
    put(*log, {{"key-0", "x"}});
    log->roll_if_due(model::processing_time(INT64_MAX / 2));
    EXPECT_FALSE(log->plan_compaction(model::processing_now())) << "not compacted";
}

/// A crash at each step of a cleaning leaves a log where every offset reads what was
/// written, and the next open finishes or rolls back the swap.
TEST_F(compactor_test, crash_at_each_step_leaves_a_valid_log) {
    for (const char* point : {"cleaner.after_write", "cleaner.after_checkpoint", "cleaner.swap_before_log_rename",
                              "cleaner.swap_after_log_rename"}) {
        SCOPED_TRACE(point);
        _written.clear();
        const std::string sub = std::string("crash-") + point;
        auto log = open(compact_config(), sub);
        fill(*log);
        ASSERT_TRUE(flush(*log));
        fail_point::arm(point);
        clean(*log);
        fail_point::disarm_all();
        // The running log still reads every offset as written.
        expect_unchanged(records(*log));
        log.reset(); // what a crash leaves: no close
        log = open(compact_config(), sub);
        ASSERT_TRUE(log);
        EXPECT_FALSE(log->recovery().corrupt) << log->recovery().corrupt->reason;
        auto after = records(*log);
        expect_unchanged(after);
        for (const auto& e : std::filesystem::directory_iterator(dir(sub))) {
            EXPECT_FALSE(e.path().string().ends_with(".cleaned")) << e.path();
        }
        // Every key's latest value is there; a cleaning now completes.
        std::map<std::string, std::optional<std::string>> seen;
        for (auto& r : after) {
            seen[*r.key] = r.value;
        }
        EXPECT_EQ(seen, latest());
        log->roll_if_due(model::processing_time(INT64_MAX / 2));
        put(*log, {{"key-0", "y"}});
        log->roll_if_due(model::processing_time(INT64_MAX / 2));
        clean(*log);
        expect_unchanged(records(*log));
    }
}

TEST_F(compactor_test, emptied_segment_keeps_an_empty_last_batch) {
    auto log = open(compact_config());
    // Segment one: only key-a; segment two: key-a again. Cleaning empties segment one.
    for (int i = 0; i < 6; ++i) {
        put(*log, {{"key-a", std::string(200, 'a')}});
    }
    log->roll_if_due(model::processing_time(INT64_MAX / 2));
    put(*log, {{"key-a", "last"}});
    log->roll_if_due(model::processing_time(INT64_MAX / 2));
    ASSERT_TRUE(clean(*log));
    auto after = records(*log);
    ASSERT_EQ(after.size(), 1u);
    EXPECT_EQ(after[0].value, "last");
    expect_unchanged(after);
    // Every sealed segment still ends at its last offset: a read at any offset moves on.
    for (int64_t o = 0; o < after[0].offset; ++o) {
        auto r = log->read(offset(o), 1 << 20);
        ASSERT_TRUE(r);
        ASSERT_GT(r.value().batches, 0u) << o;
        EXPECT_GT(r.value().next_offset, offset(o));
    }
    ASSERT_TRUE(close(*log));
    log = open(compact_config());
    EXPECT_EQ(records(*log), after);
}

} // namespace
} // namespace runnel::storage
