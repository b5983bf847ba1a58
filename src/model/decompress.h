#pragma once

// Inflating the records of compressed Kafka batches (gzip, snappy, lz4, zstd), so the
// gateway and the engine's log source can read records that Kafka clients produced with
// compression.

#include <cstddef>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "model/record_batch.h"

namespace runnel::model {

/// The most bytes one batch's records may inflate to: the default bound of the produce check
/// (`--kafka-max-inflated-batch-bytes`), and the bound wherever Runnel reads inside compressed
/// batches it stores (the gateway, the engine's log source, time queries).
inline constexpr std::size_t max_inflated_bytes = 64u << 20;

/// The records section of a batch compressed with `c`, inflated; nullopt with `why` when the
/// bytes are not valid for the codec or would inflate past `limit` bytes (then `*over_limit`
/// is set when given). Inflates in 64 KiB chunks and stops past `limit`, so its output never
/// holds more than `limit` plus one chunk; the codec's own state adds at most 4 MiB (an lz4
/// block) or a zstd window, which is refused above max(2 MiB, `limit`).
std::optional<std::string> decompress_records(model::compression c, std::span<const std::byte> in, std::size_t limit,
                                              std::string& why, bool* over_limit = nullptr);

/// The batch `batch` (header `h`) with its records uncompressed: the batch itself when it is
/// not compressed, else a copy inflated into `storage` whose header says "uncompressed". Nullopt
/// with `why` ("undecodable lz4 batch: …") when it cannot be inflated within `limit` bytes.
std::optional<std::span<const std::byte>> uncompressed_batch(std::span<const std::byte> batch, const batch_header& h,
                                                             std::size_t limit, std::vector<std::byte>& storage,
                                                             std::string& why);

/// `in` compressed with `c` the way Kafka clients write batch bodies (gzip with its header,
/// snappy in xerial's framing, the lz4 frame format, zstd), for rewriting a compressed batch
/// with the codec it came in (the log cleaner). Nullopt with `why` if the codec fails.
std::optional<std::string> compress_records(model::compression c, std::span<const std::byte> in, std::string& why);

/// The batch `batch` (header `h`) with its records stored in codec `target`, as a broker whose
/// topic sets `compression.type` stores it: the same base offset, offset deltas, timestamps,
/// producer id, epoch, sequence and other attribute bits, the codec bits set to `target`, the
/// length and CRC recomputed. Inflates within `limit` bytes; nullopt with `why` when the
/// records cannot be inflated or compressed. Precondition: `h` was parsed from `batch`.
std::optional<std::vector<std::byte>> recompress_batch(std::span<const std::byte> batch, const batch_header& h,
                                                       model::compression target, std::size_t limit,
                                                       std::string& why);

} // namespace runnel::model
