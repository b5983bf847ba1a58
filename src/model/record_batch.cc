#include "model/record_batch.h"

#include <limits>

#include <cstring>

namespace runnel::model {

const char* errc_message(errc e) noexcept {
    switch (e) {
    case errc::success:
        return "success";
    case errc::batch_truncated:
        return "record batch is truncated";
    case errc::batch_length_invalid:
        return "record batch length field is invalid";
    case errc::unsupported_magic:
        return "record batch magic is not 2";
    case errc::crc_mismatch:
        return "record batch CRC-32C does not match its contents";
    case errc::record_malformed:
        return "record inside batch is malformed";
    case errc::records_compressed:
        return "records are compressed";
    case errc::codec_unknown:
        return "record batch names an unknown compression codec";
    case errc::records_undecodable:
        return "compressed records cannot be decompressed";
    case errc::records_too_large:
        return "compressed records inflate past the allowed size";
    case errc::batch_invalid:
        return "record batch header breaks the rules for produced batches";
    case errc::timestamp_invalid:
        return "record batch timestamps are invalid";
    }
    return "unknown model error";
}

namespace {
namespace L = batch_layout;

// The smallest possible record: length, attributes, timestamp delta, offset delta, key length,
// value length and header count, one byte each.
constexpr int32_t min_record_bytes = 7;
} // namespace

result<batch_header> parse_batch_header(std::span<const std::byte> b) noexcept {
    if (b.size() < L::header_size) {
        return errc::batch_truncated;
    }
    const std::byte* p = b.data();
    batch_header h;
    h.base_offset = offset(read_be<int64_t>(p + L::base_offset));
    h.length = read_be<int32_t>(p + L::length);
    h.leader_epoch = read_be<int32_t>(p + L::leader_epoch);
    h.magic = read_be<int8_t>(p + L::magic);
    h.crc = read_be<uint32_t>(p + L::crc);
    h.attributes = read_be<int16_t>(p + L::attributes);
    h.last_offset_delta = read_be<int32_t>(p + L::last_offset_delta);
    h.first_timestamp = event_time(read_be<int64_t>(p + L::first_timestamp));
    h.max_timestamp = event_time(read_be<int64_t>(p + L::max_timestamp));
    h.producer_id = read_be<int64_t>(p + L::producer_id);
    h.producer_epoch = read_be<int16_t>(p + L::producer_epoch);
    h.base_sequence = read_be<int32_t>(p + L::base_sequence);
    h.record_count = read_be<int32_t>(p + L::record_count);
    if (h.magic != 2) {
        return errc::unsupported_magic;
    }
    if (h.length < static_cast<int32_t>(L::header_size - L::length_field_end)) {
        return errc::batch_length_invalid;
    }
    if (h.last_offset_delta < 0 || h.record_count < 0 || h.base_offset() < 0) {
        return errc::batch_length_invalid;
    }
    // The batch's next offset (base + last delta + 1) must be a number: a hostile base offset
    // near the largest int64 would overflow it.
    if (h.base_offset() > std::numeric_limits<int64_t>::max() - 1 - h.last_offset_delta) {
        return errc::batch_length_invalid;
    }
    return h;
}

uint32_t compute_batch_crc(std::span<const std::byte> batch) noexcept {
    return crc32c::value(batch.subspan(L::attributes));
}

result<batch_header> validate_batch(std::span<const std::byte> bytes) noexcept {
    RUNNEL_TRY(auto h, parse_batch_header(bytes));
    if (bytes.size() < h.size_bytes()) {
        return errc::batch_truncated;
    }
    if (compute_batch_crc(bytes.first(h.size_bytes())) != h.crc) {
        return errc::crc_mismatch;
    }
    return h;
}

namespace varint {

void append(std::vector<std::byte>& out, int64_t v) {
    auto z = (static_cast<uint64_t>(v) << 1) ^ static_cast<uint64_t>(v >> 63);
    while (z >= 0x80) {
        out.push_back(static_cast<std::byte>((z & 0x7f) | 0x80));
        z >>= 7;
    }
    out.push_back(static_cast<std::byte>(z));
}

std::optional<int64_t> read(std::span<const std::byte> bytes, std::size_t& pos) noexcept {
    uint64_t z = 0;
    for (int shift = 0; shift < 70; shift += 7) {
        if (pos >= bytes.size()) {
            return std::nullopt;
        }
        auto b = static_cast<uint8_t>(bytes[pos++]);
        z |= static_cast<uint64_t>(b & 0x7f) << shift;
        if ((b & 0x80) == 0) {
            return static_cast<int64_t>((z >> 1) ^ (~(z & 1) + 1));
        }
    }
    return std::nullopt;
}

} // namespace varint

result<std::vector<record_view>> decode_records(std::span<const std::byte> batch) {
    RUNNEL_TRY(auto h, parse_batch_header(batch));
    if (batch.size() < h.size_bytes()) {
        return errc::batch_truncated;
    }
    if (h.compression() != compression::none) {
        return errc::records_compressed;
    }
    auto body = batch.subspan(L::header_size, h.size_bytes() - L::header_size);
    if (h.record_count > static_cast<int32_t>(body.size() / min_record_bytes) + 1) {
        return errc::record_malformed;
    }
    std::vector<record_view> out;
    out.reserve(static_cast<std::size_t>(h.record_count));
    std::size_t pos = 0;

    // Reads a length-prefixed byte string; -1 is null.
    auto read_bytes = [&](std::span<const std::byte> rec, std::size_t& at,
                          std::optional<std::span<const std::byte>>& dst) -> bool {
        auto len = varint::read(rec, at);
        if (!len || *len < -1) {
            return false;
        }
        if (*len == -1) {
            dst.reset();
            return true;
        }
        if (static_cast<uint64_t>(*len) > rec.size() - at) {
            return false;
        }
        dst = rec.subspan(at, static_cast<std::size_t>(*len));
        at += static_cast<std::size_t>(*len);
        return true;
    };

    for (int32_t i = 0; i < h.record_count; ++i) {
        auto len = varint::read(body, pos);
        if (!len || *len < 0 || static_cast<uint64_t>(*len) > body.size() - pos) {
            return errc::record_malformed;
        }
        auto rec = body.subspan(pos, static_cast<std::size_t>(*len));
        pos += static_cast<std::size_t>(*len);

        std::size_t at = 1; // attributes byte, unused in v2
        if (rec.empty()) {
            return errc::record_malformed;
        }
        auto ts_delta = varint::read(rec, at);
        auto off_delta = varint::read(rec, at);
        if (!ts_delta || !off_delta || *off_delta < 0 || *off_delta > h.last_offset_delta) {
            return errc::record_malformed;
        }
        record_view r;
        r.offset_value = h.base_offset + *off_delta;
        r.timestamp = h.log_append_time() ? h.max_timestamp : h.first_timestamp + *ts_delta;
        if (!read_bytes(rec, at, r.key) || !read_bytes(rec, at, r.value)) {
            return errc::record_malformed;
        }
        auto nheaders = varint::read(rec, at);
        if (!nheaders || *nheaders < 0 || static_cast<uint64_t>(*nheaders) > rec.size()) {
            return errc::record_malformed;
        }
        for (int64_t k = 0; k < *nheaders; ++k) {
            std::optional<std::span<const std::byte>> hk;
            std::optional<std::span<const std::byte>> hv;
            if (!read_bytes(rec, at, hk) || !hk || !read_bytes(rec, at, hv)) {
                return errc::record_malformed;
            }
            r.headers.emplace_back(*hk, hv);
        }
        if (at != rec.size()) {
            return errc::record_malformed;
        }
        out.push_back(std::move(r));
    }
    if (pos != body.size()) {
        return errc::record_malformed;
    }
    return out;
}

result<record_batch> record_batch::from_bytes(byte_buffer bytes) {
    RUNNEL_TRY(auto h, validate_batch(bytes.span()));
    if (h.size_bytes() != bytes.size()) {
        return errc::batch_length_invalid;
    }
    return record_batch(std::move(bytes), h);
}

namespace {
void append_bytes(std::vector<std::byte>& out, std::optional<std::string_view> s) {
    if (!s) {
        varint::append(out, -1);
        return;
    }
    varint::append(out, static_cast<int64_t>(s->size()));
    auto b = std::as_bytes(std::span(*s));
    out.insert(out.end(), b.begin(), b.end());
}
} // namespace

record_batch_builder& record_batch_builder::add(
  std::optional<std::string_view> key,
  std::optional<std::string_view> value,
  event_time timestamp,
  std::span<const header_kv> headers) {
    if (_count == 0) {
        _first_ts = timestamp;
    }
    _max_ts = std::max(_max_ts, timestamp);

    std::vector<std::byte> rec;
    rec.push_back(std::byte{0}); // attributes
    varint::append(rec, timestamp - _first_ts);
    varint::append(rec, _count);
    append_bytes(rec, key);
    append_bytes(rec, value);
    varint::append(rec, static_cast<int64_t>(headers.size()));
    for (const auto& h : headers) {
        append_bytes(rec, h.key);
        append_bytes(rec, h.value);
    }
    varint::append(_records, static_cast<int64_t>(rec.size()));
    _records.insert(_records.end(), rec.begin(), rec.end());
    ++_count;
    return *this;
}

record_batch record_batch_builder::build(offset base) {
    RUNNEL_ASSERT(_count > 0, "a record batch needs at least one record");
    byte_buffer buf(L::header_size + _records.size());
    std::byte* p = buf.data();
    write_be<int64_t>(p + L::base_offset, base());
    write_be<int32_t>(p + L::length, static_cast<int32_t>(buf.size() - L::length_field_end));
    write_be<int32_t>(p + L::leader_epoch, 0);
    write_be<int8_t>(p + L::magic, 2);
    write_be<int16_t>(p + L::attributes, _attributes);
    write_be<int32_t>(p + L::last_offset_delta, _count - 1);
    write_be<int64_t>(p + L::first_timestamp, _first_ts());
    write_be<int64_t>(p + L::max_timestamp, _max_ts());
    write_be<int64_t>(p + L::producer_id, _producer_id);
    write_be<int16_t>(p + L::producer_epoch, _producer_epoch);
    write_be<int32_t>(p + L::base_sequence, _base_sequence);
    write_be<int32_t>(p + L::record_count, _count);
    std::memcpy(p + L::header_size, _records.data(), _records.size());
    write_be<uint32_t>(p + L::crc, compute_batch_crc(buf.span()));

    auto h = parse_batch_header(buf.span());
    RUNNEL_ASSERT(h.has_value(), "builder produced an invalid header");
    record_batch out(std::move(buf), h.value());
    *this = record_batch_builder();
    return out;
}

int32_t partition_for_key(std::string_view key, int32_t partitions) noexcept {
    // murmur2, 32-bit, with the seed Kafka's Java client uses.
    const uint32_t m = 0x5bd1e995;
    const int r = 24;
    const auto len = static_cast<uint32_t>(key.size());
    uint32_t h = 0x9747b28c ^ len;
    const auto* d = reinterpret_cast<const unsigned char*>(key.data());
    const uint32_t quads = len / 4;
    for (uint32_t i = 0; i < quads; ++i) {
        uint32_t k = uint32_t(d[4 * i]) | uint32_t(d[4 * i + 1]) << 8 | uint32_t(d[4 * i + 2]) << 16
                     | uint32_t(d[4 * i + 3]) << 24;
        k *= m;
        k ^= k >> r;
        k *= m;
        h *= m;
        h ^= k;
    }
    const uint32_t tail = len & ~3u;
    switch (len % 4) {
    case 3:
        h ^= uint32_t(d[tail + 2]) << 16;
        [[fallthrough]];
    case 2:
        h ^= uint32_t(d[tail + 1]) << 8;
        [[fallthrough]];
    case 1:
        h ^= uint32_t(d[tail]);
        h *= m;
    }
    h ^= h >> 13;
    h *= m;
    h ^= h >> 15;
    return static_cast<int32_t>((h & 0x7fffffff) % static_cast<uint32_t>(partitions));
}

} // namespace runnel::model
