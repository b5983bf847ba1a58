#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <span>
#include <vector>

#include "base/base.h"
#include "model/model.h"

namespace runnel::storage {

/// What a segment's index files say about the segment they were written for. Kept in the
/// footer of both index files so that a sealed segment opens without reading its data.
struct segment_summary {
    uint64_t covered_bytes = 0; ///< size of the .log file the index describes
    model::offset next_offset;  ///< one past the last offset in the segment
    model::event_time max_timestamp = model::event_time::min();
};

/// The sparse offset index and time index of one segment, in memory.
///
/// Entries are added while appending (one per `index_interval_bytes` of batches) or while
/// scanning a segment at recovery. Sealed segments keep them in `<base>.index` and
/// `<base>.timeindex`: little-endian entries and a footer (magic, summary, entry count,
/// CRC-32C). A file whose footer does not match the segment is stale and is rebuilt.
/// Owned by one shard; not thread-safe.
class segment_index {
public:
    struct offset_entry {
        uint32_t relative_offset; ///< batch base offset - segment base offset
        uint32_t position;        ///< byte position of the batch in the segment
    };
    struct time_entry {
        int64_t max_timestamp;    ///< largest timestamp of all batches up to this one
        uint32_t relative_offset;
        uint32_t position;
    };

    segment_index(model::offset base, uint32_t interval_bytes)
      : _base(base)
      , _interval(interval_bytes) {}

    /// Notes a batch appended at `position`; adds entries when the interval has passed.
    void on_batch(const model::batch_header& h, uint32_t position);

    /// The last indexed batch whose base offset is <= `o`: its position and base offset
    /// (the segment's start when none is).
    std::pair<uint32_t, model::offset> position_for_offset(model::offset o) const noexcept;
    /// Position from which to scan for the first batch whose max timestamp is >= `t`.
    uint32_t position_for_timestamp(model::event_time t) const noexcept;

    std::span<const offset_entry> offsets() const noexcept { return _offsets; }
    std::span<const time_entry> times() const noexcept { return _times; }

    /// Serialised contents of the two files for a segment described by `summary`.
    byte_buffer encode_offset_index(const segment_summary& summary) const;
    byte_buffer encode_time_index(const segment_summary& summary) const;

    /// Loads both files; nullopt when either is missing, damaged or describes another size of
    /// segment than `segment_bytes` (the caller then rebuilds by scanning).
    static std::optional<std::pair<segment_index, segment_summary>> load(
      const std::filesystem::path& offset_index_path,
      const std::filesystem::path& time_index_path,
      model::offset base,
      uint32_t interval_bytes,
      uint64_t segment_bytes);

private:
    model::offset _base;
    uint32_t _interval;
    uint64_t _bytes_since_entry = 0;
    bool _first = true;
    int64_t _max_ts = model::event_time::min()();
    std::vector<offset_entry> _offsets;
    std::vector<time_entry> _times;
};

/// The 16-byte files of one offset a partition directory keeps (`recovery_point`,
/// `log_start`, `cleaner_checkpoint`): magic, CRC-32C of the offset, offset.
byte_buffer encode_offset_file(uint32_t magic, model::offset o);
/// The offset in such a file, or nullopt if it is short, of another kind or fails its CRC.
std::optional<model::offset> read_offset_file(const file_handle& f, uint32_t magic);

} // namespace runnel::storage
