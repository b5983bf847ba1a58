#pragma once

#include <chrono>
#include <cstdint>

#include "base/base.h"

namespace runnel::storage {

/// The settings of one partition's log. Names follow Kafka's topic configs where one exists.
struct log_config {
    /// segment.bytes: roll to a new segment when the active one would grow past this.
    uint64_t segment_bytes = 1ull << 30;
    /// segment.ms: roll when the active segment is older than this (checked on append).
    std::chrono::milliseconds segment_age{std::chrono::hours(24 * 7)};
    /// retention.ms: delete whole sealed segments whose newest timestamp is older; < 0 keeps all.
    int64_t retention_ms = 7ll * 24 * 3600 * 1000;
    /// retention.bytes: delete the oldest sealed segments while the log is larger; < 0 keeps all.
    int64_t retention_bytes = -1;
    /// index.interval.bytes: one sparse index entry per this many bytes of batches.
    uint32_t index_interval_bytes = 4096;
    /// max.message.bytes: the largest batch the log accepts.
    uint32_t max_batch_bytes = 1048588;

    /// cleanup.policy holds `compact`: the log cleaner keeps the latest record per key.
    bool compact = false;
    /// min.cleanable.dirty.ratio: clean once the dirty part is at least this share of the log.
    double min_cleanable_dirty_ratio = 0.5;
    /// min.compaction.lag.ms: a segment whose newest record is younger is not cleaned yet.
    int64_t min_compaction_lag_ms = 0;
    /// max.compaction.lag.ms: a dirty segment whose newest record is older is cleaned whatever
    /// the ratio (and the active segment rolls once this old).
    int64_t max_compaction_lag_ms = INT64_MAX;
    /// delete.retention.ms: tombstones stay this long after their segment was first cleaned.
    int64_t delete_retention_ms = 86'400'000;

    /// Checks ranges (segments are addressed with 32-bit positions).
    result<void> validate() const;
};

} // namespace runnel::storage
