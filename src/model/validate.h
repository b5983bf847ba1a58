#pragma once

// The checks a produced RecordBatch v2 passes before the log appends it, beyond its header
// and CRC: the rules Kafka's broker applies to batches from clients, on the records
// themselves, after inflating compressed ones within a bound.

#include <cstddef>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "model/decompress.h"
#include "model/record_batch.h"

namespace runnel::model {

/// Why a record of a compacted topic is refused (its record error, KIP-467).
inline constexpr std::string_view keyless_record_message = "a compacted topic takes no record without a key";

/// Bounds of one produced-batch check.
struct produce_check_limits {
    /// The most bytes the records of one compressed batch may inflate to. Decompression
    /// streams in chunks and stops at this bound, so a compression bomb costs at most this
    /// much memory (plus one chunk) per batch being checked.
    std::size_t max_inflated_bytes = model::max_inflated_bytes;
    /// The partition is compacted (cleanup.policy holds `compact`): every record needs a key,
    /// as Kafka requires, since the cleaner keeps the latest record per key.
    bool require_keys = false;
};

/// Checks a batch a client produced, as Kafka's broker does before appending it.
/// Precondition: `validate_batch(batch)` returned `h` (header, length and CRC are sound).
///
/// The header: not a control batch, at least one record, lastOffsetDelta = count - 1, a
/// producer id only with a base sequence, a codec that exists and no LogAppendTime (the
/// broker sets that, not producers). The records, after inflating a compressed section
/// (at most `limits.max_inflated_bytes`): exactly `record_count` records filling the section,
/// each with a length that matches its bytes, offset deltas 0, 1, … n-1 in order, varints
/// of at most 5 bytes (10 for the timestamp delta), key, value and header lengths inside the
/// record, non-null header keys, and timestamps from -1 (none) up to the batch's
/// maxTimestamp without overflow. With `limits.require_keys`, no record has a null key.
///
/// Fails with `codec_unknown` or `records_undecodable` (bytes broken: Kafka's CORRUPT_MESSAGE),
/// or `records_too_large`, `batch_invalid`, `record_malformed`, `timestamp_invalid` (Kafka's
/// INVALID_RECORD); `why` then says what is wrong and where ("record 3: offset delta 0, expected 3").
/// Allocates only the inflated section of a compressed batch. Thread-safe (no shared state).
///
/// `keyless`, when given, receives the index of every record without a key (with
/// `limits.require_keys`): the check goes on past them, so a producer learns each record at
/// fault (Kafka's record_errors, KIP-467), and fails at the end unless something else failed
/// first.
result<void> validate_produced_batch(std::span<const std::byte> batch, const batch_header& h,
                                     const produce_check_limits& limits, std::string& why,
                                     std::vector<int32_t>* keyless = nullptr);

/// Checks an uncompressed records section (the bytes after the 61-byte header) against the
/// header `h`: the record-level part of `validate_produced_batch`.
/// With `require_keys`, a record with a null key is `record_malformed` (INVALID_RECORD).
result<void> validate_record_section(std::span<const std::byte> records, const batch_header& h, std::string& why,
                                     bool require_keys = false, std::vector<int32_t>* keyless = nullptr);

} // namespace runnel::model
