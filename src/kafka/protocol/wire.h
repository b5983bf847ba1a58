#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/endian.h"
#include "base/result.h"
#include "kafka/protocol/errc.h"
#include "kafka/protocol/types.h"

namespace runnel::kafka::protocol {

/// Reads Kafka's primitive types from a span of bytes, front to back.
///
/// The hot path of every request: no allocation except for the strings and byte strings it
/// returns, and never a read past the end. Every failure is a `result` carrying an
/// `errc`; after a failure the position is unspecified and the reader should be dropped.
/// `compact` selects the flexible-version encoding (unsigned varint length + 1, 0 for null)
/// over the classic one (int16 length for strings, int32 for bytes and arrays, -1 for null).
/// Does not own the bytes; not thread-safe.
class reader {
public:
    explicit reader(std::span<const std::byte> in) noexcept
      : _in(in) {}

    std::size_t remaining() const noexcept { return _in.size() - _pos; }
    bool empty() const noexcept { return _pos == _in.size(); }
    std::size_t position() const noexcept { return _pos; }
    /// The bytes not read yet.
    std::span<const std::byte> rest() const noexcept { return _in.subspan(_pos); }

    result<int8_t> read_int8() noexcept { return fixed<int8_t>(); }
    result<int16_t> read_int16() noexcept { return fixed<int16_t>(); }
    result<int32_t> read_int32() noexcept { return fixed<int32_t>(); }
    result<int64_t> read_int64() noexcept { return fixed<int64_t>(); }
    result<uint16_t> read_uint16() noexcept { return fixed<uint16_t>(); }
    result<uint32_t> read_uint32() noexcept { return fixed<uint32_t>(); }
    result<double> read_float64() noexcept;
    /// Any non-zero byte is true, as in Kafka.
    result<bool> read_bool() noexcept;
    result<uuid> read_uuid() noexcept;

    /// An unsigned varint of at most 5 bytes whose value fits 32 bits.
    result<uint32_t> read_uvarint() noexcept;
    /// A zig-zag varint of at most 5 bytes (int32).
    result<int32_t> read_varint() noexcept;
    /// A zig-zag varlong of at most 10 bytes (int64).
    result<int64_t> read_varlong() noexcept;

    /// `n` raw bytes, viewed in place.
    result<std::span<const std::byte>> read_raw(std::size_t n) noexcept;

    /// A non-nullable string; null is `negative_length`.
    result<std::string> read_string(bool compact);
    result<std::optional<std::string>> read_nullable_string(bool compact);
    /// The string's bytes, viewed in place (no copy).
    result<std::string_view> read_string_view(bool compact) noexcept;

    /// Non-nullable bytes; null is `negative_length`.
    result<bytes> read_bytes(bool compact);
    result<std::optional<bytes>> read_nullable_bytes(bool compact);
    /// Nullable bytes viewed in place: nullopt for null.
    result<std::optional<std::span<const std::byte>>> read_nullable_bytes_view(bool compact) noexcept;

    /// An array's element count; -1 for a null array, only when `nullable`. A count larger
    /// than the remaining bytes (each element takes at least one) is `invalid_length`.
    result<int32_t> read_array_length(bool compact, bool nullable) noexcept;

    /// One tagged field's payload (after its tag was read): its unsigned varint size, then
    /// that many bytes, viewed in place.
    result<std::span<const std::byte>> read_tagged_field_bytes() noexcept;
    /// A whole tagged-field section, every field skipped (a struct that declares none).
    result<void> skip_tagged_fields() noexcept;

private:
    template <typename T>
    result<T> fixed() noexcept {
        if (remaining() < sizeof(T)) [[unlikely]] {
            return errc::truncated;
        }
        T v = read_be<T>(_in.data() + _pos);
        _pos += sizeof(T);
        return v;
    }

    /// The length before a string: -1 for null, otherwise 0..32767.
    result<int32_t> string_length(bool compact) noexcept;
    /// The length before bytes: -1 for null, otherwise 0..2^31-1 and within the input.
    result<int32_t> bytes_length(bool compact) noexcept;

    std::span<const std::byte> _in;
    std::size_t _pos = 0;
};

/// Appends Kafka's primitive types to a growable buffer.
///
/// Values that Kafka cannot carry (a string over 32767 bytes, bytes or arrays of 2^31 or
/// more) throw `std::system_error` with `errc::string_too_long` / `errc::invalid_length`: the
/// message cannot be sent at all. A null given for a field that is not nullable in the version
/// being written (generated encoders) is written as empty.
/// Owns its buffer; not thread-safe.
class writer {
public:
    writer() = default;
    explicit writer(std::size_t reserve) { _buf.reserve(reserve); }

    void write_int8(int8_t v) { fixed(v); }
    void write_int16(int16_t v) { fixed(v); }
    void write_int32(int32_t v) { fixed(v); }
    void write_int64(int64_t v) { fixed(v); }
    void write_uint16(uint16_t v) { fixed(v); }
    void write_uint32(uint32_t v) { fixed(v); }
    void write_float64(double v);
    void write_bool(bool v) { fixed<int8_t>(v ? 1 : 0); }
    void write_uuid(const uuid& v);

    void write_uvarint(uint32_t v);
    void write_varint(int32_t v);
    void write_varlong(int64_t v);

    void write_raw(std::span<const std::byte> b);

    void write_string(std::string_view s, bool compact);
    void write_nullable_string(const std::optional<std::string>& s, bool compact);
    void write_bytes(std::span<const std::byte> b, bool compact);
    void write_nullable_bytes(const std::optional<bytes>& b, bool compact);
    void write_nullable_bytes_view(std::optional<std::span<const std::byte>> b, bool compact);

    void write_array_length(std::size_t n, bool compact);
    void write_null_array(bool compact);

    /// Appends one tagged field: `tag`, the size of `payload`'s bytes, then those bytes.
    void write_tagged_field(uint32_t tag, const writer& payload);

    /// Reserves a 4-byte size prefix and returns its position, for `end_frame`.
    std::size_t begin_frame();
    /// Fills the size prefix reserved at `mark` with the number of bytes written after it.
    void end_frame(std::size_t mark);

    std::size_t size() const noexcept { return _buf.size(); }
    std::span<const std::byte> span() const noexcept { return _buf; }
    /// Moves the encoded bytes out; the writer is empty afterwards.
    std::vector<std::byte> take() noexcept { return std::move(_buf); }
    void clear() noexcept { _buf.clear(); }

private:
    template <typename T>
    void fixed(T v) {
        auto at = _buf.size();
        _buf.resize(at + sizeof(T));
        write_be<T>(_buf.data() + at, v);
    }

    std::vector<std::byte> _buf;
};

} // namespace runnel::kafka::protocol
