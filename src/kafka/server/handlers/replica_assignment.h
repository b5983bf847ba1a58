#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <fmt/format.h>

namespace runnel::kafka {

/// Why one partition's replica list in a manual assignment (CreateTopics, CreatePartitions)
/// cannot be placed on this single-node cluster, or nullopt when it names exactly this node.
/// Kafka answers each reason with INVALID_REPLICA_ASSIGNMENT.
inline std::optional<std::string> single_node_replicas_error(const std::vector<int32_t>& broker_ids,
                                                             int32_t node_id) {
    if (broker_ids.empty()) {
        return std::string("the manual partition assignment includes an empty replica list");
    }
    for (const auto id : broker_ids) {
        if (id != node_id) {
            return fmt::format("the manual partition assignment includes broker {}, but no such broker is registered "
                               "(this cluster is the one broker {})",
                               id, node_id);
        }
    }
    if (broker_ids.size() > 1) {
        return fmt::format("the manual partition assignment includes broker {} more than once", node_id);
    }
    return std::nullopt;
}

} // namespace runnel::kafka
