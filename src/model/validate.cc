#include "model/validate.h"

#include <limits>

#include <fmt/format.h>

#include "model/decompress.h"

namespace runnel::model {
namespace {
namespace L = batch_layout;

constexpr int16_t codec_bits = 0x7;
constexpr int16_t highest_codec = static_cast<int16_t>(compression::zstd);

/// Reads a zig-zag varint of at most `max_bytes` bytes (5 for Kafka's varint, 10 for its
/// varlong) whose value fits `max_bytes == 5 ? int32 : int64`; nullopt otherwise.
std::optional<int64_t> read_varint(std::span<const std::byte> b, std::size_t& pos, int max_bytes) noexcept {
    uint64_t z = 0;
    for (int i = 0; i < max_bytes; ++i) {
        if (pos >= b.size()) {
            return std::nullopt;
        }
        const auto byte = static_cast<uint8_t>(b[pos++]);
        z |= static_cast<uint64_t>(byte & 0x7f) << (7 * i);
        if ((byte & 0x80) == 0) {
            if (max_bytes == 5 && z > std::numeric_limits<uint32_t>::max()) {
                return std::nullopt;
            }
            return static_cast<int64_t>((z >> 1) ^ (~(z & 1) + 1));
        }
    }
    return std::nullopt;
}

/// Reads a length (varint) and skips that many bytes of `rec`; -1 (null) only when
/// `nullable`. Returns false with `why` when the length is malformed or runs past the record.
bool skip_bytes(std::span<const std::byte> rec, std::size_t& at, bool nullable, std::string_view what,
                std::string& why) {
    auto len = read_varint(rec, at, 5);
    if (!len) {
        why = fmt::format("{} length is not a well-formed varint", what);
        return false;
    }
    if (*len < (nullable ? -1 : 0)) {
        why = fmt::format("{} length {} is negative", what, *len);
        return false;
    }
    if (*len > 0 && static_cast<uint64_t>(*len) > rec.size() - at) {
        why = fmt::format("{} length {} runs past the record ({} bytes left)", what, *len, rec.size() - at);
        return false;
    }
    at += *len > 0 ? static_cast<std::size_t>(*len) : 0;
    return true;
}

} // namespace

result<void> validate_record_section(std::span<const std::byte> records, const batch_header& h, std::string& why,
                                     bool require_keys, std::vector<int32_t>* keyless) {
    // The smallest record takes 7 bytes (its length and six one-byte fields): a count that
    // cannot fit is refused before any record is read.
    if (h.record_count < 1 || static_cast<uint64_t>(h.record_count) > records.size() / 7) {
        why = fmt::format("batch declares {} records in {} bytes", h.record_count, records.size());
        return errc::record_malformed;
    }
    std::size_t pos = 0;
    for (int32_t i = 0; i < h.record_count; ++i) {
        auto fail = [&](errc e, std::string what) -> result<void> {
            why = fmt::format("record {}: {}", i, what);
            return e;
        };
        if (pos >= records.size()) {
            why = fmt::format("batch declares {} records and holds {}", h.record_count, i);
            return errc::record_malformed;
        }
        auto len = read_varint(records, pos, 5);
        if (!len) {
            return fail(errc::record_malformed, "length is not a well-formed varint");
        }
        if (*len < 1 || static_cast<uint64_t>(*len) > records.size() - pos) {
            return fail(errc::record_malformed,
                        fmt::format("length {} does not fit the {} bytes left in the batch", *len, records.size() - pos));
        }
        const auto rec = records.subspan(pos, static_cast<std::size_t>(*len));
        pos += rec.size();
        std::size_t at = 1; // the attributes byte: unused by RecordBatch v2
        auto ts_delta = read_varint(rec, at, 10);
        if (!ts_delta) {
            return fail(errc::record_malformed, "timestamp delta is not a well-formed varlong");
        }
        auto off_delta = read_varint(rec, at, 5);
        if (!off_delta) {
            return fail(errc::record_malformed, "offset delta is not a well-formed varint");
        }
        if (*off_delta != i) {
            return fail(errc::record_malformed, fmt::format("offset delta {}, expected {}", *off_delta, i));
        }
        int64_t ts = 0;
        if (__builtin_add_overflow(h.first_timestamp(), *ts_delta, &ts) || ts < -1) {
            return fail(errc::timestamp_invalid, fmt::format("timestamp {} + {} is out of range",
                                                             h.first_timestamp(), *ts_delta));
        }
        if (ts > h.max_timestamp()) {
            return fail(errc::timestamp_invalid,
                        fmt::format("timestamp {} is after the batch's maxTimestamp {}", ts, h.max_timestamp()));
        }
        std::string what;
        if (require_keys) {
            std::size_t key_at = at;
            if (auto key_len = read_varint(rec, key_at, 5); key_len && *key_len < 0) {
                if (!keyless) {
                    return fail(errc::record_malformed, std::string(keyless_record_message));
                }
                keyless->push_back(i);
            }
        }
        if (!skip_bytes(rec, at, true, "key", what) || !skip_bytes(rec, at, true, "value", what)) {
            return fail(errc::record_malformed, what);
        }
        auto headers = read_varint(rec, at, 5);
        if (!headers || *headers < 0) {
            return fail(errc::record_malformed, "header count is malformed or negative");
        }
        // Each header takes at least two bytes, so the count is checked before the loop.
        if (static_cast<uint64_t>(*headers) > (rec.size() - at) / 2) {
            return fail(errc::record_malformed,
                        fmt::format("{} headers cannot fit in the {} bytes left", *headers, rec.size() - at));
        }
        for (int64_t k = 0; k < *headers; ++k) {
            if (!skip_bytes(rec, at, false, fmt::format("header {} key", k), what)
                || !skip_bytes(rec, at, true, fmt::format("header {} value", k), what)) {
                return fail(errc::record_malformed, what);
            }
        }
        if (at != rec.size()) {
            return fail(errc::record_malformed,
                        fmt::format("length {} but its fields end after {} bytes", rec.size(), at));
        }
    }
    if (pos != records.size()) {
        why = fmt::format("{} bytes follow the last of {} records", records.size() - pos, h.record_count);
        return errc::record_malformed;
    }
    if (keyless && !keyless->empty()) {
        why = fmt::format("record {}: {}", keyless->front(), keyless_record_message);
        return errc::record_malformed;
    }
    return ok();
}

result<void> validate_produced_batch(std::span<const std::byte> batch, const batch_header& h,
                                     const produce_check_limits& limits, std::string& why,
                                     std::vector<int32_t>* keyless) {
    if (h.is_control()) {
        why = "clients may not write control batches";
        return errc::batch_invalid;
    }
    if (h.record_count < 1 || h.last_offset_delta != h.record_count - 1) {
        why = fmt::format("record count {} and lastOffsetDelta {} disagree", h.record_count, h.last_offset_delta);
        return errc::batch_invalid;
    }
    if (h.producer_id >= 0 && h.base_sequence < 0) {
        why = fmt::format("producer id {} with base sequence {}", h.producer_id, h.base_sequence);
        return errc::batch_invalid;
    }
    if ((h.attributes & codec_bits) > highest_codec) {
        why = fmt::format("unknown compression codec {}", h.attributes & codec_bits);
        return errc::codec_unknown;
    }
    if (h.log_append_time()) {
        why = "producers may not set the LogAppendTime timestamp type";
        return errc::timestamp_invalid;
    }
    const auto section = batch.subspan(L::header_size, h.size_bytes() - L::header_size);
    if (h.compression() == compression::none) {
        return validate_record_section(section, h, why, limits.require_keys, keyless);
    }
    bool over_limit = false;
    auto inflated = decompress_records(h.compression(), section, limits.max_inflated_bytes, why, &over_limit);
    if (!inflated) {
        return over_limit ? errc::records_too_large : errc::records_undecodable;
    }
    return validate_record_section(std::as_bytes(std::span(*inflated)), h, why, limits.require_keys, keyless);
}

} // namespace runnel::model
