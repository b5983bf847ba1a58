#pragma once

#include <cstdint>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "broker/group_coordinator.h"
#include "model/model.h"

/// The records the group coordinator keeps in `__consumer_offsets`: a committed offset per
/// group and partition, and a group's metadata after each rebalance. Our own binary layout
/// (big-endian, versioned values); keys and values are pure functions of what they hold, so
/// recovery (`group_log.cc`) and the state machine (`classic_group.h`) share one definition.
/// Internal to `broker`: not part of its public header.
namespace runnel::broker::group_records {

/// One member as the group's metadata record stores it.
struct stored_member {
    std::string id;
    std::optional<std::string> instance_id;
    std::string client_id;
    std::string client_host;
    int32_t rebalance_timeout_ms = 0;
    int32_t session_timeout_ms = 0;
    std::string metadata; ///< of the group's chosen protocol
    std::string assignment;
};

/// A classic group's metadata as stored after each rebalance (and when it empties).
struct group_metadata {
    std::string protocol_type;
    int32_t generation = 0;
    std::optional<std::string> protocol;
    std::string leader; ///< empty: none
    std::vector<stored_member> members;
};

/// A committed offset of `group` for `tp`; `value` nullopt: a tombstone (deleted).
struct offset_record {
    std::string group;
    model::topic_partition tp;
    std::optional<committed_offset> value;
};

/// A group's metadata; `value` nullopt: a tombstone (the group was deleted).
struct group_record {
    std::string group;
    std::optional<group_metadata> value;
};

/// A record of the log, decoded.
using record = std::variant<offset_record, group_record>;

std::string offset_key(std::string_view group, const model::topic_partition& tp);
std::string offset_value(const committed_offset& c);
std::string group_key(std::string_view group);
std::string group_value(const group_metadata& m);

/// Decodes one record of the log. nullopt when the key is malformed or of an unknown type,
/// or an offset value is malformed; a truncated group value keeps the members read before
/// the shortfall.
std::optional<record> decode(std::span<const std::byte> key, std::optional<std::span<const std::byte>> value);

/// The topics a "consumer" protocol member subscribes to, from its ConsumerProtocolSubscription.
std::set<std::string> subscribed_topics(std::string_view metadata);

} // namespace runnel::broker::group_records
