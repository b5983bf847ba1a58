#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace runnel::engine {

/// Appends fixed-width little-endian fields to a byte string: the format of operator
/// snapshots. Single-threaded helper.
class state_writer {
public:
    void u8(uint8_t v) { _out.push_back(char(v)); }
    void u32(uint32_t v) { raw(&v, sizeof v); }
    void i64(int64_t v) { raw(&v, sizeof v); }
    void u64(uint64_t v) { raw(&v, sizeof v); }
    void f64(double v) { raw(&v, sizeof v); }
    void str(std::string_view s) {
        u32(uint32_t(s.size()));
        _out.append(s);
    }
    std::string& bytes() { return _out; }

private:
    void raw(const void* p, size_t n) { _out.append(static_cast<const char*>(p), n); }
    std::string _out;
};

/// Reads what `state_writer` wrote. Every read is bounds-checked: after a short or damaged
/// input `ok()` turns false and reads return zeros, so a corrupt snapshot is an error, never a
/// crash. Single-threaded helper.
class state_reader {
public:
    explicit state_reader(std::string_view in)
      : _in(in) {}

    uint8_t u8() {
        uint8_t v = 0;
        raw(&v, 1);
        return v;
    }
    uint32_t u32() {
        uint32_t v = 0;
        raw(&v, sizeof v);
        return v;
    }
    int64_t i64() {
        int64_t v = 0;
        raw(&v, sizeof v);
        return v;
    }
    uint64_t u64() {
        uint64_t v = 0;
        raw(&v, sizeof v);
        return v;
    }
    double f64() {
        double v = 0;
        raw(&v, sizeof v);
        return v;
    }
    std::string_view str() {
        uint32_t n = u32();
        if (!_ok || n > _in.size() - _pos) {
            _ok = false;
            return {};
        }
        auto s = _in.substr(_pos, n);
        _pos += n;
        return s;
    }
    /// A count of items that each take at least `min_bytes`; fails when the input is too short.
    uint32_t count(size_t min_bytes = 1) {
        uint32_t n = u32();
        if (_ok && uint64_t(n) * min_bytes > _in.size() - _pos) {
            _ok = false;
            return 0;
        }
        return n;
    }
    bool ok() const { return _ok; }
    bool at_end() const { return _pos == _in.size(); }
    void fail() { _ok = false; }

private:
    void raw(void* p, size_t n) {
        if (!_ok || n > _in.size() - _pos) {
            _ok = false;
            return;
        }
        std::memcpy(p, _in.data() + _pos, n);
        _pos += n;
    }
    std::string_view _in;
    size_t _pos = 0;
    bool _ok = true;
};

} // namespace runnel::engine
