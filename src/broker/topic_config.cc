#include "broker/topic_config.h"

#include <algorithm>
#include <charconv>

namespace runnel::broker {

const char* errc_message(errc e) noexcept {
    switch (e) {
    case errc::success:
        return "success";
    case errc::unknown_topic_or_partition:
        return "unknown topic or partition";
    case errc::invalid_topic:
        return "invalid topic name";
    case errc::topic_already_exists:
        return "topic already exists";
    case errc::invalid_partitions:
        return "invalid number of partitions";
    case errc::invalid_replication_factor:
        return "invalid replication factor";
    case errc::invalid_config:
        return "invalid topic configuration";
    case errc::corrupt_message:
        return "record batch failed its checks";
    case errc::invalid_record:
        return "record batch breaks the rules for produced batches";
    case errc::message_too_large:
        return "record batch is larger than max.message.bytes";
    case errc::offset_out_of_range:
        return "offset out of range";
    case errc::storage_error:
        return "storage error";
    case errc::storage_full:
        return "the disk is full (no space left on device)";
    case errc::storage_failed:
        return "an fsync of the partition failed; it takes no writes until the server restarts";
    case errc::storage_corrupt:
        return "the partition holds a corrupt batch in durable data";
    case errc::shutting_down:
        return "broker is shutting down";
    case errc::coordinator_loading:
        return "the group coordinator is loading offsets";
    case errc::coordinator_not_available:
        return "the group coordinator is not available";
    case errc::invalid_group_id:
        return "invalid group id";
    case errc::group_id_not_found:
        return "group not found";
    case errc::non_empty_group:
        return "the group has members";
    case errc::unknown_member_id:
        return "unknown member id";
    case errc::illegal_generation:
        return "illegal generation";
    case errc::rebalance_in_progress:
        return "the group is rebalancing";
    case errc::member_id_required:
        return "join again with the member id given";
    case errc::fenced_instance_id:
        return "a newer member with this group.instance.id replaced this one";
    case errc::producer_fenced:
        return "a newer producer with this transactional id fenced this one";
    case errc::invalid_txn_state:
        return "the request does not fit the state of the transaction";
    case errc::invalid_producer_id_mapping:
        return "the producer id does not belong to the transactional id";
    case errc::invalid_transaction_timeout:
        return "transaction.timeout.ms is above the broker's --kafka-transaction-max-timeout-ms";
    case errc::concurrent_transactions:
        return "the previous transaction of this transactional id is still completing";
    case errc::transactional_id_not_found:
        return "unknown transactional id";
    case errc::operation_not_attempted:
        return "not attempted: another partition of the request failed";
    case errc::inconsistent_group_protocol:
        return "no protocol in common with the group";
    case errc::invalid_session_timeout:
        return "session timeout outside the allowed range";
    case errc::group_subscribed_to_topic:
        return "the group is subscribed to this topic";
    case errc::offset_metadata_too_large:
        return "offset metadata too large";
    case errc::invalid_request:
        return "invalid request";
    case errc::fenced_member_epoch:
        return "the member epoch is fenced; the member must rejoin";
    case errc::stale_member_epoch:
        return "the member epoch is not the member's current one";
    case errc::unreleased_instance_id:
        return "the instance id is still used by another member";
    case errc::unsupported_assignor:
        return "unsupported server assignor";
    case errc::group_max_size_reached:
        return "the group has reached its maximum size";
    case errc::out_of_order_sequence:
        return "out of order sequence number for this producer";
    case errc::duplicate_sequence:
        return "batch is older than the producer's last five";
    case errc::invalid_producer_epoch:
        return "producer epoch is older than the current one";
    case errc::unknown_producer_id:
        return "no state for this producer id on the partition";
    }
    return "unknown broker error";
}

bool valid_topic_name(std::string_view name, std::string& why) {
    if (name.empty()) {
        why = "topic name is empty";
        return false;
    }
    if (name == "." || name == "..") {
        why = "topic name cannot be '.' or '..'";
        return false;
    }
    if (name.size() > 249) {
        why = "topic name is longer than 249 characters";
        return false;
    }
    for (char c : name) {
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.'
                  || c == '_' || c == '-';
        if (!ok) {
            why = fmt::format("topic name '{}' has a character outside [a-zA-Z0-9._-]", name);
            return false;
        }
    }
    return true;
}

namespace {

/// Parses a whole number (or, for a double `out`, a decimal) with nothing around it.
template <typename T>
bool parse_int(std::string_view s, T& out) {
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
    return ec == std::errc() && end == s.data() + s.size();
}

} // namespace

std::map<std::string, std::string> topic_config::to_map() const {
    return {
      {"cleanup.policy", cleanup_policy},
      {"retention.ms", std::to_string(retention_ms)},
      {"retention.bytes", std::to_string(retention_bytes)},
      {"segment.bytes", std::to_string(segment_bytes)},
      {"segment.ms", std::to_string(segment_ms)},
      {"max.message.bytes", std::to_string(max_message_bytes)},
      {"min.cleanable.dirty.ratio", fmt::format("{}", min_cleanable_dirty_ratio)},
      {"min.compaction.lag.ms", std::to_string(min_compaction_lag_ms)},
      {"max.compaction.lag.ms", std::to_string(max_compaction_lag_ms)},
      {"delete.retention.ms", std::to_string(delete_retention_ms)},
      {"compression.type", compression_type},
      {"flush.messages", std::to_string(flush_messages)},
      {"flush.ms", std::to_string(flush_ms)},
    };
}

namespace {

/// compression.type's values other than "producer", with the codec each stores batches in.
constexpr std::pair<std::string_view, model::compression> stored_codecs[] = {
  {"uncompressed", model::compression::none}, {"gzip", model::compression::gzip},
  {"snappy", model::compression::snappy},     {"lz4", model::compression::lz4},
  {"zstd", model::compression::zstd},
};

} // namespace

std::optional<model::compression> topic_config::stored_compression() const noexcept {
    for (const auto& [name, codec] : stored_codecs) {
        if (compression_type == name) {
            return codec;
        }
    }
    return std::nullopt;
}

result<void> topic_config::set(std::string_view key, std::string_view value, std::string& why) {
    auto bad = [&](std::string_view expected) -> result<void> {
        why = fmt::format("invalid value '{}' for {}: expected {}", value, key, expected);
        return errc::invalid_config;
    };
    int64_t v = 0;
    if (key == "cleanup.policy") {
        if (value != "delete" && value != "compact" && value != "compact,delete" && value != "delete,compact") {
            return bad("delete, compact or compact,delete");
        }
        cleanup_policy = std::string(value);
    } else if (key == "retention.ms") {
        if (!parse_int(value, v) || v < -1) {
            return bad("-1 or a number of milliseconds");
        }
        retention_ms = v;
    } else if (key == "retention.bytes") {
        if (!parse_int(value, v) || v < -1) {
            return bad("-1 or a number of bytes");
        }
        retention_bytes = v;
    } else if (key == "segment.bytes") {
        if (!parse_int(value, v) || v < 14 || v > (1ll << 31)) {
            return bad("a number of bytes up to 2147483648");
        }
        segment_bytes = std::max<int64_t>(v, 1024);
    } else if (key == "segment.ms") {
        if (!parse_int(value, v) || v < 1) {
            return bad("a positive number of milliseconds");
        }
        segment_ms = v;
    } else if (key == "max.message.bytes") {
        int32_t m = 0;
        if (!parse_int(value, m) || m < 0) {
            return bad("a number of bytes");
        }
        max_message_bytes = m;
    } else if (key == "min.cleanable.dirty.ratio") {
        double d = 0;
        if (!parse_int(value, d) || !(d >= 0.0 && d <= 1.0)) {
            return bad("a number from 0 to 1");
        }
        min_cleanable_dirty_ratio = d;
    } else if (key == "min.compaction.lag.ms") {
        if (!parse_int(value, v) || v < 0) {
            return bad("0 or a positive number of milliseconds");
        }
        min_compaction_lag_ms = v;
    } else if (key == "max.compaction.lag.ms") {
        if (!parse_int(value, v) || v < 1) {
            return bad("a positive number of milliseconds");
        }
        max_compaction_lag_ms = v;
    } else if (key == "delete.retention.ms") {
        if (!parse_int(value, v) || v < 0) {
            return bad("0 or a positive number of milliseconds");
        }
        delete_retention_ms = v;
    } else if (key == "compression.type") {
        const bool known = value == "producer"
                           || std::any_of(std::begin(stored_codecs), std::end(stored_codecs),
                                          [&](const auto& c) { return c.first == value; });
        if (!known) {
            return bad("producer, uncompressed, gzip, snappy, lz4 or zstd");
        }
        compression_type = std::string(value);
    } else if (key == "flush.messages" || key == "flush.ms") {
        if (!parse_int(value, v) || v < (key == "flush.ms" ? 0 : 1)) {
            return bad(key == "flush.ms" ? "0 or a positive number of milliseconds" : "a positive number of messages");
        }
        (key == "flush.ms" ? flush_ms : flush_messages) = v;
    } else {
        why = fmt::format("unknown or unsupported topic config '{}'", key);
        return errc::invalid_config;
    }
    return ok();
}

result<void> topic_config::reset(std::string_view key, std::string& why) {
    const topic_config defaults;
    auto m = defaults.to_map();
    auto it = m.find(std::string(key));
    if (it == m.end()) {
        why = fmt::format("unknown or unsupported topic config '{}'", key);
        return errc::invalid_config;
    }
    return set(key, it->second, why);
}

storage::log_config topic_config::log_config() const {
    storage::log_config c;
    c.segment_bytes = static_cast<uint64_t>(segment_bytes);
    c.segment_age = std::chrono::milliseconds(segment_ms);
    // A compact-only topic keeps every key's latest record: no deletion by time or size.
    const bool deletes = cleanup_policy.find("delete") != std::string::npos;
    c.retention_ms = deletes ? retention_ms : -1;
    c.retention_bytes = deletes ? retention_bytes : -1;
    // Kafka counts max.message.bytes against the batch; the log needs room for a header.
    c.max_batch_bytes = static_cast<uint32_t>(std::clamp<int64_t>(max_message_bytes, 61, 128ll << 20));
    c.compact = compacted();
    c.min_cleanable_dirty_ratio = min_cleanable_dirty_ratio;
    c.min_compaction_lag_ms = min_compaction_lag_ms;
    c.max_compaction_lag_ms = max_compaction_lag_ms;
    c.delete_retention_ms = delete_retention_ms;
    return c;
}

std::string topic_config::serialize() const {
    std::string out = fmt::format("partitions={}\n", partitions);
    for (const auto& [k, v] : to_map()) {
        out += fmt::format("{}={}\n", k, v);
    }
    return out;
}

result<topic_config> topic_config::parse(std::string_view text, std::string& why) {
    topic_config c;
    while (!text.empty()) {
        auto nl = text.find('\n');
        auto line = text.substr(0, nl);
        text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
        if (line.empty() || line.front() == '#') {
            continue;
        }
        auto eq = line.find('=');
        if (eq == std::string_view::npos) {
            why = fmt::format("line '{}' is not key=value", line);
            return errc::invalid_config;
        }
        auto key = line.substr(0, eq);
        auto value = line.substr(eq + 1);
        if (key == "partitions") {
            if (!parse_int(value, c.partitions) || c.partitions < 1) {
                why = "partitions must be a positive number";
                return errc::invalid_config;
            }
        } else {
            RUNNEL_TRY(c.set(key, value, why));
        }
    }
    return c;
}

} // namespace runnel::broker
