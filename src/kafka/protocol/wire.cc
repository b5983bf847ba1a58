#include "kafka/protocol/wire.h"

#include <bit>
#include <limits>
#include <system_error>

#include "model/record_batch.h"

namespace runnel::kafka::protocol {

namespace {
constexpr int32_t max_string_length = std::numeric_limits<int16_t>::max();
constexpr uint32_t max_length = std::numeric_limits<int32_t>::max();

const char* as_chars(const std::byte* p) noexcept { return reinterpret_cast<const char*>(p); }
} // namespace

const char* errc_message(errc e) noexcept {
    switch (e) {
    case errc::success:
        return "success";
    case errc::truncated:
        return "kafka message is truncated";
    case errc::negative_length:
        return "negative length, or null where the field is not nullable";
    case errc::invalid_length:
        return "length or element count cannot fit the message";
    case errc::varint_too_long:
        return "varint is longer than its type allows";
    case errc::string_too_long:
        return "string is longer than 32767 bytes";
    case errc::invalid_tagged_field:
        return "tagged field size disagrees with its contents";
    case errc::trailing_bytes:
        return "bytes left over after the message";
    case errc::unsupported_api_key:
        return "unsupported api key";
    case errc::unsupported_version:
        return "unsupported api version";
    }
    return "unknown kafka protocol error";
}

int16_t kafka_error_code(errc e) noexcept {
    switch (e) {
    case errc::success:
        return error_codes::none;
    case errc::unsupported_api_key:
    case errc::unsupported_version:
        return error_codes::unsupported_version;
    default:
        return error_codes::invalid_request;
    }
}

// ---- reader ---------------------------------------------------------------------------------

result<double> reader::read_float64() noexcept {
    RUNNEL_TRY(auto bits, fixed<uint64_t>());
    return std::bit_cast<double>(bits);
}

result<bool> reader::read_bool() noexcept {
    RUNNEL_TRY(auto b, fixed<int8_t>());
    return b != 0;
}

result<uuid> reader::read_uuid() noexcept {
    if (remaining() < 16) [[unlikely]] {
        return errc::truncated;
    }
    uuid u;
    std::memcpy(u.value.data(), _in.data() + _pos, 16);
    _pos += 16;
    return u;
}

result<uint32_t> reader::read_uvarint() noexcept {
    uint32_t v = 0;
    for (int i = 0; i < 5; ++i) {
        if (_pos >= _in.size()) [[unlikely]] {
            return errc::truncated;
        }
        auto b = static_cast<uint8_t>(_in[_pos++]);
        // The fifth byte may carry only the top 4 bits, and no continuation.
        if (i == 4 && (b & 0xf0) != 0) [[unlikely]] {
            return errc::varint_too_long;
        }
        v |= static_cast<uint32_t>(b & 0x7f) << (7 * i);
        if ((b & 0x80) == 0) {
            return v;
        }
    }
    return errc::varint_too_long; // not reached: the fifth byte returns above
}

result<int64_t> reader::read_varlong() noexcept {
    std::size_t pos = _pos;
    auto v = model::varint::read(_in, pos);
    if (!v) [[unlikely]] {
        // model::varint::read stops after 10 bytes, or at the end of the input.
        return pos - _pos >= 10 ? errc::varint_too_long : errc::truncated;
    }
    _pos = pos;
    return *v;
}

result<int32_t> reader::read_varint() noexcept {
    auto start = _pos;
    RUNNEL_TRY(auto v, read_varlong());
    if (_pos - start > 5 || v < std::numeric_limits<int32_t>::min()
        || v > std::numeric_limits<int32_t>::max()) [[unlikely]] {
        return errc::varint_too_long;
    }
    return static_cast<int32_t>(v);
}

result<std::span<const std::byte>> reader::read_raw(std::size_t n) noexcept {
    if (remaining() < n) [[unlikely]] {
        return errc::truncated;
    }
    auto out = _in.subspan(_pos, n);
    _pos += n;
    return out;
}

result<int32_t> reader::string_length(bool compact) noexcept {
    int32_t len;
    if (compact) {
        RUNNEL_TRY(auto n, read_uvarint());
        if (n == 0) {
            return -1;
        }
        if (n - 1 > static_cast<uint32_t>(max_string_length)) [[unlikely]] {
            return errc::string_too_long;
        }
        len = static_cast<int32_t>(n - 1);
    } else {
        RUNNEL_TRY(auto n, fixed<int16_t>());
        if (n < -1) [[unlikely]] {
            return errc::negative_length;
        }
        len = n;
    }
    if (len > 0 && static_cast<std::size_t>(len) > remaining()) [[unlikely]] {
        return errc::truncated;
    }
    return len;
}

result<int32_t> reader::bytes_length(bool compact) noexcept {
    int32_t len;
    if (compact) {
        RUNNEL_TRY(auto n, read_uvarint());
        if (n == 0) {
            return -1;
        }
        if (n - 1 > max_length) [[unlikely]] {
            return errc::invalid_length;
        }
        len = static_cast<int32_t>(n - 1);
    } else {
        RUNNEL_TRY(auto n, fixed<int32_t>());
        if (n < -1) [[unlikely]] {
            return errc::negative_length;
        }
        len = n;
    }
    if (len > 0 && static_cast<std::size_t>(len) > remaining()) [[unlikely]] {
        return errc::truncated;
    }
    return len;
}

result<std::string_view> reader::read_string_view(bool compact) noexcept {
    RUNNEL_TRY(auto len, string_length(compact));
    if (len < 0) [[unlikely]] {
        return errc::negative_length;
    }
    std::string_view s(as_chars(_in.data() + _pos), static_cast<std::size_t>(len));
    _pos += static_cast<std::size_t>(len);
    return s;
}

result<std::string> reader::read_string(bool compact) {
    RUNNEL_TRY(auto s, read_string_view(compact));
    return std::string(s);
}

result<std::optional<std::string>> reader::read_nullable_string(bool compact) {
    RUNNEL_TRY(auto len, string_length(compact));
    if (len < 0) {
        return std::optional<std::string>();
    }
    std::optional<std::string> s(std::in_place, as_chars(_in.data() + _pos),
                                 static_cast<std::size_t>(len));
    _pos += static_cast<std::size_t>(len);
    return s;
}

result<std::optional<std::span<const std::byte>>>
reader::read_nullable_bytes_view(bool compact) noexcept {
    RUNNEL_TRY(auto len, bytes_length(compact));
    if (len < 0) {
        return std::optional<std::span<const std::byte>>();
    }
    auto out = _in.subspan(_pos, static_cast<std::size_t>(len));
    _pos += static_cast<std::size_t>(len);
    return std::optional<std::span<const std::byte>>(out);
}

result<bytes> reader::read_bytes(bool compact) {
    RUNNEL_TRY(auto view, read_nullable_bytes_view(compact));
    if (!view) [[unlikely]] {
        return errc::negative_length;
    }
    return bytes(view->begin(), view->end());
}

result<std::optional<bytes>> reader::read_nullable_bytes(bool compact) {
    RUNNEL_TRY(auto view, read_nullable_bytes_view(compact));
    if (!view) {
        return std::optional<bytes>();
    }
    return std::optional<bytes>(std::in_place, view->begin(), view->end());
}

result<int32_t> reader::read_array_length(bool compact, bool nullable) noexcept {
    int32_t count;
    if (compact) {
        RUNNEL_TRY(auto n, read_uvarint());
        if (n == 0) {
            count = -1;
        } else if (n - 1 > max_length) [[unlikely]] {
            return errc::invalid_length;
        } else {
            count = static_cast<int32_t>(n - 1);
        }
    } else {
        RUNNEL_TRY(auto n, fixed<int32_t>());
        count = n;
    }
    if (count < -1 || (count == -1 && !nullable)) [[unlikely]] {
        return errc::negative_length;
    }
    if (count > 0 && static_cast<std::size_t>(count) > remaining()) [[unlikely]] {
        return errc::invalid_length;
    }
    return count;
}

result<std::span<const std::byte>> reader::read_tagged_field_bytes() noexcept {
    RUNNEL_TRY(auto size, read_uvarint());
    return read_raw(size);
}

result<void> reader::skip_tagged_fields() noexcept {
    RUNNEL_TRY(auto count, read_uvarint());
    for (uint32_t i = 0; i < count; ++i) {
        RUNNEL_TRY(read_uvarint()); // the tag
        RUNNEL_TRY(read_tagged_field_bytes());
    }
    return ok();
}

// ---- writer ---------------------------------------------------------------------------------

namespace {
[[noreturn]] void throw_too_long(errc e) { throw std::system_error(make_error_code(e)); }
} // namespace

void writer::write_float64(double v) { fixed(std::bit_cast<uint64_t>(v)); }

void writer::write_uuid(const uuid& v) {
    write_raw(std::as_bytes(std::span(v.value)));
}

void writer::write_uvarint(uint32_t v) {
    while (v >= 0x80) {
        _buf.push_back(static_cast<std::byte>((v & 0x7f) | 0x80));
        v >>= 7;
    }
    _buf.push_back(static_cast<std::byte>(v));
}

void writer::write_varint(int32_t v) { model::varint::append(_buf, v); }

void writer::write_varlong(int64_t v) { model::varint::append(_buf, v); }

void writer::write_raw(std::span<const std::byte> b) { _buf.insert(_buf.end(), b.begin(), b.end()); }

void writer::write_string(std::string_view s, bool compact) {
    if (s.size() > static_cast<std::size_t>(max_string_length)) [[unlikely]] {
        throw_too_long(errc::string_too_long);
    }
    if (compact) {
        write_uvarint(static_cast<uint32_t>(s.size()) + 1);
    } else {
        write_int16(static_cast<int16_t>(s.size()));
    }
    write_raw(std::as_bytes(std::span(s)));
}

void writer::write_nullable_string(const std::optional<std::string>& s, bool compact) {
    if (!s) {
        if (compact) {
            write_uvarint(0);
        } else {
            write_int16(-1);
        }
        return;
    }
    write_string(*s, compact);
}

void writer::write_bytes(std::span<const std::byte> b, bool compact) {
    if (b.size() >= max_length) [[unlikely]] {
        throw_too_long(errc::invalid_length);
    }
    if (compact) {
        write_uvarint(static_cast<uint32_t>(b.size()) + 1);
    } else {
        write_int32(static_cast<int32_t>(b.size()));
    }
    write_raw(b);
}

void writer::write_nullable_bytes(const std::optional<bytes>& b, bool compact) {
    if (!b) {
        write_null_array(compact); // same encoding as a null array
        return;
    }
    write_bytes(*b, compact);
}

void writer::write_nullable_bytes_view(std::optional<std::span<const std::byte>> b, bool compact) {
    if (!b) {
        write_null_array(compact);
        return;
    }
    write_bytes(*b, compact);
}

void writer::write_array_length(std::size_t n, bool compact) {
    if (n >= max_length) [[unlikely]] {
        throw_too_long(errc::invalid_length);
    }
    if (compact) {
        write_uvarint(static_cast<uint32_t>(n) + 1);
    } else {
        write_int32(static_cast<int32_t>(n));
    }
}

void writer::write_null_array(bool compact) {
    if (compact) {
        write_uvarint(0);
    } else {
        write_int32(-1);
    }
}

void writer::write_tagged_field(uint32_t tag, const writer& payload) {
    write_uvarint(tag);
    write_uvarint(static_cast<uint32_t>(payload.size()));
    write_raw(payload.span());
}

std::size_t writer::begin_frame() {
    auto mark = _buf.size();
    write_int32(0);
    return mark;
}

void writer::end_frame(std::size_t mark) {
    auto body = _buf.size() - mark - sizeof(int32_t);
    if (body > max_length) [[unlikely]] {
        throw_too_long(errc::invalid_length);
    }
    write_be<int32_t>(_buf.data() + mark, static_cast<int32_t>(body));
}

} // namespace runnel::kafka::protocol
