#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "base/base.h"
#include "broker/errc.h"
#include "storage/storage.h"

namespace runnel::broker {

/// Checks a topic name as Kafka does: 1–249 characters of [a-zA-Z0-9._-], not "." or "..".
/// `why` says what is wrong.
bool valid_topic_name(std::string_view name, std::string& why);

/// The settings of one topic, as Kafka names them. Stored in `<data>/topics/<topic>/topic.conf`
/// as `key=value` lines (our own format).
struct topic_config {
    int32_t partitions = 1;
    std::string cleanup_policy = "delete"; ///< "delete", "compact", "compact,delete" or "delete,compact"
    int64_t retention_ms = 7ll * 24 * 3600 * 1000;
    int64_t retention_bytes = -1;
    int64_t segment_bytes = 1ll << 30;
    int64_t segment_ms = 7ll * 24 * 3600 * 1000;
    int32_t max_message_bytes = 1048588;
    double min_cleanable_dirty_ratio = 0.5;
    int64_t min_compaction_lag_ms = 0;
    int64_t max_compaction_lag_ms = INT64_MAX;
    int64_t delete_retention_ms = 86'400'000;
    /// How batches are stored: "producer" keeps the producer's codec; "uncompressed", "gzip",
    /// "snappy", "lz4" or "zstd" makes the broker recompress every produced batch into it.
    std::string compression_type = "producer";
    /// Kafka's forced-flush settings. Kept and shown for tools; the log syncs by `acks`
    /// (acks=all answers after a group-committed fsync), so they change nothing here.
    int64_t flush_messages = INT64_MAX;
    int64_t flush_ms = INT64_MAX;

    /// The codec produced batches are stored in, or nothing to keep the producer's.
    std::optional<model::compression> stored_compression() const noexcept;

    /// cleanup.policy holds `compact`: records need keys and the log cleaner keeps the latest per key.
    bool compacted() const noexcept { return cleanup_policy.find("compact") != std::string::npos; }

    /// The topic-level configs with their current values, for DescribeConfigs.
    std::map<std::string, std::string> to_map() const;

    /// Sets one config by its Kafka name; unknown names and bad values fail with
    /// `invalid_config` and a reason in `why`.
    result<void> set(std::string_view key, std::string_view value, std::string& why);
    /// Restores a default (IncrementalAlterConfigs DELETE).
    result<void> reset(std::string_view key, std::string& why);

    storage::log_config log_config() const;

    std::string serialize() const;
    static result<topic_config> parse(std::string_view text, std::string& why);

    bool operator==(const topic_config&) const = default;
};

} // namespace runnel::broker
