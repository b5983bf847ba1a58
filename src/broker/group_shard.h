#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "broker/classic_group.h"
#include "broker/consumer_group.h"
#include "broker/group_coordinator.h"

// The group coordinator's state on one shard, shared by its router (`group_coordinator.cc`)
// and its log (`group_log.cc`). Internal to `broker`.

namespace runnel::broker {

/// One group as its shard keeps it: the classic protocol's state machine, the consumer
/// protocol's while the group is of that protocol (KIP-848), and the committed offsets both
/// share. Lives on the shard that owns the group's partition of the offsets topic.
struct group_entry {
    group_entry(std::string id, int32_t p, std::chrono::milliseconds initial_rebalance_delay)
      : classic(std::move(id), initial_rebalance_delay), partition(p) {}

    const std::string& id() const noexcept { return classic.id(); }
    bool dead() const noexcept { return classic.state() == group_state::dead; }

    classic_group classic;
    int32_t partition = 0;
    std::map<model::topic_partition, committed_offset> offsets;
    /// Set while the group is of the consumer protocol (KIP-848); offsets stay shared.
    std::unique_ptr<consumer_group> consumer;
};

/// What the coordinator knows of one partition of the offsets topic it owns.
struct offsets_partition_stats {
    uint64_t records = 0;   ///< records in the log since its start (estimated after a rewrite)
    int in_flight = 0;      ///< writes appended but not yet synced
    bool rewriting = false;
};

/// Records for the offsets topic: key, value (nullopt: a tombstone).
using group_record_list = std::vector<std::pair<std::string, std::optional<std::string>>>;

/// Everything the coordinator keeps on one shard; touched only on that shard's thread.
struct group_coordinator::shard_state {
    std::map<std::string, std::unique_ptr<group_entry>, std::less<>> groups;
    std::set<int32_t> loading; ///< offsets partitions of this shard still being read
    std::map<int32_t, offsets_partition_stats> partitions;
};

/// Appends `records` to partition `p` of the offsets topic as batches of a few MiB; `done`
/// gets the first batch's offset once all are synced, or the first error. On `shard`'s thread.
void append_group_records(broker& brk, executor& shard, int32_t p, const group_record_list& records,
                          std::function<void(result<model::offset>)> done);

} // namespace runnel::broker
