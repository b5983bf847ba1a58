#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include "base/base.h"

namespace runnel::model {

/// The position of a record in a partition; the first record of a new partition is 0.
using offset = named_type<int64_t, struct offset_tag>;

/// A partition's index within its topic.
using partition_id = named_type<int32_t, struct partition_id_tag>;

/// When an event happened, by the clock of whoever produced it: milliseconds since the Unix
/// epoch, as Kafka record timestamps are. Watermarks are event time.
using event_time = named_type<int64_t, struct event_time_tag>;

/// When this process saw something, by its own wall clock: milliseconds since the Unix epoch.
/// Deliberately a different type from `event_time`, so the two never compare by accident.
using processing_time = named_type<int64_t, struct processing_time_tag>;

inline processing_time processing_now() noexcept {
    using namespace std::chrono;
    return processing_time(
      duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count());
}

/// Names one partition of one topic.
struct topic_partition {
    std::string topic;
    partition_id partition;

    auto operator<=>(const topic_partition&) const = default;
};

} // namespace runnel::model
