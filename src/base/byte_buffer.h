#pragma once

#include <cstddef>
#include <cstring>
#include <memory>
#include <span>
#include <string_view>
#include <utility>

namespace runnel {

/// An owned, contiguous run of bytes whose size is fixed at allocation.
///
/// Unlike `std::vector<std::byte>` it does not zero what it allocates, so reading a file into
/// it costs one copy. Movable, not copyable (copy explicitly with `copy_of`).
class byte_buffer {
public:
    byte_buffer() = default;
    explicit byte_buffer(std::size_t size)
      : _data(size ? std::make_unique_for_overwrite<std::byte[]>(size) : nullptr)
      , _size(size) {}

    static byte_buffer copy_of(std::span<const std::byte> bytes) {
        byte_buffer b(bytes.size());
        if (!bytes.empty()) {
            std::memcpy(b.data(), bytes.data(), bytes.size());
        }
        return b;
    }
    static byte_buffer copy_of(std::string_view s) { return copy_of(std::as_bytes(std::span(s))); }

    byte_buffer(byte_buffer&& o) noexcept
      : _data(std::move(o._data))
      , _size(std::exchange(o._size, 0)) {}
    byte_buffer& operator=(byte_buffer&& o) noexcept {
        _data = std::move(o._data);
        _size = std::exchange(o._size, 0);
        return *this;
    }

    std::byte* data() noexcept { return _data.get(); }
    const std::byte* data() const noexcept { return _data.get(); }
    std::size_t size() const noexcept { return _size; }
    bool empty() const noexcept { return _size == 0; }

    std::span<std::byte> span() noexcept { return {data(), _size}; }
    std::span<const std::byte> span() const noexcept { return {data(), _size}; }

    /// Shrinks the visible size without reallocating. Precondition: n <= size().
    void shrink(std::size_t n) noexcept {
        if (n < _size) {
            _size = n;
        }
    }

private:
    std::unique_ptr<std::byte[]> _data;
    std::size_t _size = 0;
};

} // namespace runnel
