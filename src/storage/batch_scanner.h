#pragma once

#include <optional>

#include "base/base.h"
#include "model/model.h"

namespace runnel::storage {

/// Walks the record batches of a segment file between two byte positions, reading in chunks.
///
/// `next` returns the batch at the current position and moves past it, nullopt at the end,
/// or the reason the bytes there are not a valid batch (the position stays on it). A length
/// field beyond `max_batch_bytes` or past the end is reported, never allocated for. Spans
/// returned stay valid until the next call. Single-threaded.
class batch_scanner {
public:
    /// The largest batch the scanner will read; anything claiming more is corrupt.
    static constexpr std::size_t max_batch_bytes = 128u << 20;

    batch_scanner(const file_handle& file, uint64_t start, uint64_t end, std::size_t chunk = 1u << 20)
      : _file(file)
      , _pos(start)
      , _end(end)
      , _chunk(chunk) {}

    struct item {
        uint64_t position;
        model::batch_header header;
        std::span<const std::byte> bytes;
    };

    result<std::optional<item>> next(bool check_crc);

    uint64_t position() const noexcept { return _pos; }
    uint64_t end() const noexcept { return _end; }

private:
    /// Makes [_pos, _pos + n) available in the buffer; false if the file is shorter.
    result<bool> ensure(std::size_t n);

    const file_handle& _file;
    uint64_t _pos;
    uint64_t _end;
    std::size_t _chunk;
    byte_buffer _buf;
    uint64_t _buf_start = 0;
    std::size_t _buf_len = 0;
};

} // namespace runnel::storage
