#include "storage/index.h"

#include <algorithm>
#include <fcntl.h>

namespace runnel::storage {
namespace {

constexpr uint32_t offset_magic = 0x494f4e52; // "RNOI" little-endian
constexpr uint32_t time_magic = 0x49544e52;   // "RNTI"
constexpr uint32_t format_version = 1;
constexpr std::size_t footer_size = 40;
constexpr std::size_t offset_entry_size = 8;
constexpr std::size_t time_entry_size = 16;

void write_footer(
  std::byte* p, uint32_t magic, const segment_summary& s, uint32_t count, std::span<const std::byte> before) {
    write_le<uint32_t>(p, magic);
    write_le<uint32_t>(p + 4, format_version);
    write_le<uint64_t>(p + 8, s.covered_bytes);
    write_le<int64_t>(p + 16, s.next_offset());
    write_le<int64_t>(p + 24, s.max_timestamp());
    write_le<uint32_t>(p + 32, count);
    uint32_t crc = crc32c::extend(crc32c::value(before), std::span<const std::byte>(p, 36));
    write_le<uint32_t>(p + 36, crc);
}

/// Reads a whole index file and checks its footer; returns the entry bytes and summary.
std::optional<std::pair<byte_buffer, segment_summary>> read_checked(
  const std::filesystem::path& path, uint32_t magic, std::size_t entry_size) {
    auto f = file_handle::open(path, O_RDONLY);
    if (!f) {
        return std::nullopt;
    }
    auto size = f.value().size();
    if (!size || size.value() < footer_size || (size.value() - footer_size) % entry_size != 0) {
        return std::nullopt;
    }
    byte_buffer buf(size.value());
    auto n = f.value().pread(buf.span(), 0);
    if (!n || n.value() != buf.size()) {
        return std::nullopt;
    }
    const std::byte* foot = buf.data() + buf.size() - footer_size;
    auto count = read_le<uint32_t>(foot + 32);
    if (read_le<uint32_t>(foot) != magic || read_le<uint32_t>(foot + 4) != format_version
        || count != (buf.size() - footer_size) / entry_size
        || crc32c::value(buf.span().first(buf.size() - 4)) != read_le<uint32_t>(foot + 36)) {
        return std::nullopt;
    }
    segment_summary s;
    s.covered_bytes = read_le<uint64_t>(foot + 8);
    s.next_offset = model::offset(read_le<int64_t>(foot + 16));
    s.max_timestamp = model::event_time(read_le<int64_t>(foot + 24));
    buf.shrink(buf.size() - footer_size);
    return std::pair{std::move(buf), s};
}

} // namespace

void segment_index::on_batch(const model::batch_header& h, uint32_t position) {
    _max_ts = std::max(_max_ts, h.max_timestamp());
    if (_first || _bytes_since_entry >= _interval) {
        auto rel = static_cast<uint32_t>(h.base_offset - _base);
        _offsets.push_back({rel, position});
        if (_times.empty() || _max_ts > _times.back().max_timestamp) {
            _times.push_back({_max_ts, rel, position});
        }
        _bytes_since_entry = 0;
        _first = false;
    }
    _bytes_since_entry += h.size_bytes();
}

std::pair<uint32_t, model::offset> segment_index::position_for_offset(model::offset o) const noexcept {
    if (o < _base) {
        return {0, _base};
    }
    auto rel = static_cast<uint64_t>(o - _base);
    auto it = std::upper_bound(
      _offsets.begin(), _offsets.end(), rel, [](uint64_t r, const offset_entry& e) {
          return r < e.relative_offset;
      });
    if (it == _offsets.begin()) {
        return {0, _base};
    }
    --it;
    return {it->position, _base + it->relative_offset};
}

uint32_t segment_index::position_for_timestamp(model::event_time t) const noexcept {
    // Entries before the first one whose running maximum reaches `t` hold only older batches.
    auto it = std::lower_bound(
      _times.begin(), _times.end(), t(), [](const time_entry& e, int64_t ts) {
          return e.max_timestamp < ts;
      });
    return it == _times.begin() ? 0 : std::prev(it)->position;
}

byte_buffer segment_index::encode_offset_index(const segment_summary& s) const {
    byte_buffer buf(_offsets.size() * offset_entry_size + footer_size);
    std::byte* p = buf.data();
    for (const auto& e : _offsets) {
        write_le<uint32_t>(p, e.relative_offset);
        write_le<uint32_t>(p + 4, e.position);
        p += offset_entry_size;
    }
    write_footer(p, offset_magic, s, static_cast<uint32_t>(_offsets.size()),
                 buf.span().first(buf.size() - footer_size));
    return buf;
}

byte_buffer segment_index::encode_time_index(const segment_summary& s) const {
    byte_buffer buf(_times.size() * time_entry_size + footer_size);
    std::byte* p = buf.data();
    for (const auto& e : _times) {
        write_le<int64_t>(p, e.max_timestamp);
        write_le<uint32_t>(p + 8, e.relative_offset);
        write_le<uint32_t>(p + 12, e.position);
        p += time_entry_size;
    }
    write_footer(p, time_magic, s, static_cast<uint32_t>(_times.size()),
                 buf.span().first(buf.size() - footer_size));
    return buf;
}

std::optional<std::pair<segment_index, segment_summary>> segment_index::load(
  const std::filesystem::path& offset_index_path,
  const std::filesystem::path& time_index_path,
  model::offset base,
  uint32_t interval_bytes,
  uint64_t segment_bytes) {
    auto oi = read_checked(offset_index_path, offset_magic, offset_entry_size);
    auto ti = read_checked(time_index_path, time_magic, time_entry_size);
    if (!oi || !ti) {
        return std::nullopt;
    }
    const auto& s = oi->second;
    if (s.covered_bytes != segment_bytes || ti->second.covered_bytes != s.covered_bytes
        || ti->second.next_offset != s.next_offset || ti->second.max_timestamp != s.max_timestamp
        || s.next_offset <= base) {
        return std::nullopt;
    }
    segment_index idx(base, interval_bytes);
    const std::byte* p = oi->first.data();
    for (std::size_t i = 0; i < oi->first.size() / offset_entry_size; ++i, p += offset_entry_size) {
        offset_entry e{read_le<uint32_t>(p), read_le<uint32_t>(p + 4)};
        bool monotone = idx._offsets.empty()
                        || (e.relative_offset > idx._offsets.back().relative_offset
                            && e.position > idx._offsets.back().position);
        if (!monotone || e.position >= segment_bytes || base + e.relative_offset >= s.next_offset) {
            return std::nullopt;
        }
        idx._offsets.push_back(e);
    }
    p = ti->first.data();
    for (std::size_t i = 0; i < ti->first.size() / time_entry_size; ++i, p += time_entry_size) {
        time_entry e{read_le<int64_t>(p), read_le<uint32_t>(p + 8), read_le<uint32_t>(p + 12)};
        bool monotone = idx._times.empty()
                        || (e.max_timestamp > idx._times.back().max_timestamp
                            && e.position > idx._times.back().position);
        if (!monotone || e.position >= segment_bytes || e.max_timestamp > s.max_timestamp()) {
            return std::nullopt;
        }
        idx._times.push_back(e);
    }
    if (idx._offsets.empty() || idx._offsets.front().position != 0) {
        return std::nullopt;
    }
    idx._max_ts = s.max_timestamp();
    idx._first = false;
    return std::pair{std::move(idx), s};
}

byte_buffer encode_offset_file(uint32_t magic, model::offset o) {
    byte_buffer b(16);
    write_le<uint32_t>(b.data(), magic);
    write_le<int64_t>(b.data() + 8, o());
    write_le<uint32_t>(b.data() + 4, crc32c::value(b.span().subspan(8)));
    return b;
}

std::optional<model::offset> read_offset_file(const file_handle& f, uint32_t magic) {
    byte_buffer b(16);
    auto n = f.pread(b.span(), 0);
    if (!n || n.value() != b.size() || read_le<uint32_t>(b.data()) != magic
        || read_le<uint32_t>(b.data() + 4) != crc32c::value(b.span().subspan(8))) {
        return std::nullopt;
    }
    return model::offset(read_le<int64_t>(b.data() + 8));
}

} // namespace runnel::storage
