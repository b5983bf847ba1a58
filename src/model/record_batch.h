#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

#include "base/base.h"
#include "model/errc.h"
#include "model/fundamental.h"

namespace runnel::model {

/// Kafka RecordBatch v2, as it travels on the wire and as the log stores it.
///
/// Layout (big-endian): base offset i64, batch length i32 (bytes after this field), partition
/// leader epoch i32, magic i8 (= 2), CRC-32C u32 (over everything after it), attributes i16,
/// last offset delta i32, first timestamp i64, max timestamp i64, producer id i64, producer
/// epoch i16, base sequence i32, record count i32, then the records.
namespace batch_layout {
inline constexpr std::size_t base_offset = 0;
inline constexpr std::size_t length = 8;
inline constexpr std::size_t leader_epoch = 12;
inline constexpr std::size_t magic = 16;
inline constexpr std::size_t crc = 17;
inline constexpr std::size_t attributes = 21;
inline constexpr std::size_t last_offset_delta = 23;
inline constexpr std::size_t first_timestamp = 27;
inline constexpr std::size_t max_timestamp = 35;
inline constexpr std::size_t producer_id = 43;
inline constexpr std::size_t producer_epoch = 51;
inline constexpr std::size_t base_sequence = 53;
inline constexpr std::size_t record_count = 57;
inline constexpr std::size_t header_size = 61;
/// The length field counts from the leader epoch on.
inline constexpr std::size_t length_field_end = 12;
} // namespace batch_layout

enum class compression : int8_t { none = 0, gzip = 1, snappy = 2, lz4 = 3, zstd = 4 };

/// The decoded fixed header of a RecordBatch v2.
struct batch_header {
    offset base_offset;
    int32_t length = 0; ///< as on the wire: bytes after the length field
    int32_t leader_epoch = 0;
    int8_t magic = 0;
    uint32_t crc = 0;
    int16_t attributes = 0;
    int32_t last_offset_delta = 0;
    event_time first_timestamp;
    event_time max_timestamp;
    int64_t producer_id = -1;
    int16_t producer_epoch = -1;
    int32_t base_sequence = -1;
    int32_t record_count = 0;

    /// Bytes the whole batch occupies, header included.
    std::size_t size_bytes() const noexcept {
        return batch_layout::length_field_end + static_cast<std::size_t>(length);
    }
    offset last_offset() const noexcept { return base_offset + last_offset_delta; }
    offset next_offset() const noexcept { return last_offset() + 1; }
    model::compression compression() const noexcept {
        return static_cast<model::compression>(attributes & 0x7);
    }
    bool log_append_time() const noexcept { return (attributes & 0x8) != 0; }
    bool is_transactional() const noexcept { return (attributes & 0x10) != 0; }
    bool is_control() const noexcept { return (attributes & 0x20) != 0; }
};

/// Decodes the fixed header from the first 61 bytes, checking the length field and the magic
/// byte; does not look at the records or the CRC.
result<batch_header> parse_batch_header(std::span<const std::byte> bytes) noexcept;

/// Checks a whole batch at the start of `bytes`: header, that all of it is present, and the
/// CRC. Returns its header; `bytes` may hold more after the batch.
result<batch_header> validate_batch(std::span<const std::byte> bytes) noexcept;

/// The CRC-32C a batch must carry: over everything from the attributes field to its end.
uint32_t compute_batch_crc(std::span<const std::byte> batch) noexcept;

/// Sets the base offset in place. The CRC does not cover it, so it stays valid.
inline void set_base_offset(std::span<std::byte> batch, offset o) noexcept {
    write_be<int64_t>(batch.data() + batch_layout::base_offset, o());
}

/// One record of an uncompressed batch, viewing the batch's bytes.
struct record_view {
    offset offset_value;
    event_time timestamp;
    std::optional<std::span<const std::byte>> key;
    std::optional<std::span<const std::byte>> value;
    std::vector<std::pair<std::span<const std::byte>, std::optional<std::span<const std::byte>>>>
      headers;
};

/// Decodes the records of an uncompressed, valid batch (`batch` starts at its header).
/// Fails with `records_compressed` for compressed batches and `record_malformed` when a
/// record does not fit the batch or the count disagrees.
result<std::vector<record_view>> decode_records(std::span<const std::byte> batch);

/// An owned, validated batch: the unit the log appends and the broker receives.
class record_batch {
public:
    /// Validates `bytes` as exactly one batch (no bytes after it).
    static result<record_batch> from_bytes(byte_buffer bytes);

    const batch_header& header() const noexcept { return _header; }
    std::span<const std::byte> bytes() const noexcept { return _bytes.span(); }
    std::size_t size_bytes() const noexcept { return _bytes.size(); }

    /// Stamps the base offset (the only field the log changes).
    void set_base_offset(offset o) noexcept {
        model::set_base_offset(_bytes.span(), o);
        _header.base_offset = o;
    }

private:
    friend class record_batch_builder;
    record_batch(byte_buffer bytes, batch_header h)
      : _bytes(std::move(bytes))
      , _header(h) {}

    byte_buffer _bytes;
    batch_header _header;
};

/// Builds an uncompressed RecordBatch v2 with a valid CRC. For producers that are not Kafka
/// clients (the CLI, the HTTP API, tests).
class record_batch_builder {
public:
    struct header_kv {
        std::string_view key;
        std::optional<std::string_view> value;
    };

    record_batch_builder& add(
      std::optional<std::string_view> key,
      std::optional<std::string_view> value,
      event_time timestamp,
      std::span<const header_kv> headers = {});

    record_batch_builder& set_producer(int64_t id, int16_t epoch, int32_t base_sequence) noexcept {
        _producer_id = id;
        _producer_epoch = epoch;
        _base_sequence = base_sequence;
        return *this;
    }

    /// Marks the batch transactional (bit 4) and/or control (bit 5), as the broker's
    /// transaction markers are; other bits stay 0 (uncompressed, create time).
    record_batch_builder& set_transactional(bool control) noexcept {
        _attributes = static_cast<int16_t>(0x10 | (control ? 0x20 : 0));
        return *this;
    }

    bool empty() const noexcept { return _count == 0; }
    int32_t record_count() const noexcept { return _count; }

    /// Produces the batch with base offset `base` and resets the builder.
    /// Precondition: at least one record was added.
    record_batch build(offset base = offset(0));

private:
    std::vector<std::byte> _records;
    int32_t _count = 0;
    event_time _first_ts;
    event_time _max_ts = event_time::min();
    int64_t _producer_id = -1;
    int16_t _producer_epoch = -1;
    int32_t _base_sequence = -1;
    int16_t _attributes = 0;
};

/// Kafka's zig-zag variable-length integers, as used inside records.
namespace varint {
/// Appends `v` zig-zag encoded.
void append(std::vector<std::byte>& out, int64_t v);
/// Decodes one value at `bytes[pos]`, advancing `pos`; nullopt if truncated or over 10 bytes.
std::optional<int64_t> read(std::span<const std::byte> bytes, std::size_t& pos) noexcept;
} // namespace varint

/// Kafka's default partitioner for keyed records: murmur2 of the key with the Java client's
/// seed, so Runnel places a key where every Kafka client would.
int32_t partition_for_key(std::string_view key, int32_t partitions) noexcept;

} // namespace runnel::model
