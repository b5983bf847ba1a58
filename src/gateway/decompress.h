#pragma once

// Inflating the records of compressed Kafka batches (gzip, snappy, lz4, zstd), so the gateway
// can serve records that Kafka clients produced with compression. Internal to the module.

#include <cstddef>
#include <optional>
#include <span>
#include <string>

#include "model/model.h"

namespace runnel::gateway {

/// The records section of a batch compressed with `c`, inflated; nullopt with `why` when the
/// bytes are not valid for the codec or would inflate past `limit` bytes.
std::optional<std::string> decompress_records(model::compression c, std::span<const std::byte> in, std::size_t limit,
                                              std::string& why);

} // namespace runnel::gateway
