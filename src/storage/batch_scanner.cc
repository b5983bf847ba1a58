#include "storage/batch_scanner.h"

#include <algorithm>

namespace runnel::storage {

result<bool> batch_scanner::ensure(std::size_t n) {
    if (_pos + n > _end) {
        return false;
    }
    if (_pos >= _buf_start && _pos + n <= _buf_start + _buf_len) {
        return true;
    }
    std::size_t want = static_cast<std::size_t>(std::min<uint64_t>(std::max(n, _chunk), _end - _pos));
    if (_buf.size() < want) {
        _buf = byte_buffer(want);
    }
    RUNNEL_TRY(auto got, _file.pread(_buf.span().first(want), _pos));
    _buf_start = _pos;
    _buf_len = got;
    return got >= n;
}

result<std::optional<batch_scanner::item>> batch_scanner::next(bool check_crc) {
    if (_pos >= _end) {
        return std::optional<item>{};
    }
    RUNNEL_TRY(bool have_header, ensure(model::batch_layout::header_size));
    if (!have_header) {
        return model::errc::batch_truncated;
    }
    auto at = [&] {
        return std::span<const std::byte>(_buf.data() + (_pos - _buf_start), _buf_len - (_pos - _buf_start));
    };
    RUNNEL_TRY(auto h, model::parse_batch_header(at()));
    if (h.size_bytes() > max_batch_bytes) {
        return model::errc::batch_length_invalid;
    }
    RUNNEL_TRY(bool have_batch, ensure(h.size_bytes()));
    if (!have_batch) {
        return model::errc::batch_truncated;
    }
    auto bytes = at().first(h.size_bytes());
    if (check_crc && model::compute_batch_crc(bytes) != h.crc) {
        return model::errc::crc_mismatch;
    }
    item it{_pos, h, bytes};
    _pos += h.size_bytes();
    return std::optional<item>{it};
}

} // namespace runnel::storage
