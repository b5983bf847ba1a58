#include "broker/group_records.h"

#include <algorithm>
#include <array>

namespace runnel::broker::group_records {
namespace {

constexpr int16_t offset_key_type = 1;
constexpr int16_t group_key_type = 2;
constexpr int16_t value_version = 1;

class encoder {
public:
    encoder& i16(int16_t v) { return put(v); }
    encoder& i32(int32_t v) { return put(v); }
    encoder& i64(int64_t v) { return put(v); }
    encoder& str(std::string_view s) {
        i16(static_cast<int16_t>(s.size()));
        _out.append(s);
        return *this;
    }
    encoder& nstr(const std::optional<std::string>& s) {
        if (!s) {
            return i16(-1);
        }
        return str(*s);
    }
    encoder& bytes(std::string_view s) {
        i32(static_cast<int32_t>(s.size()));
        _out.append(s);
        return *this;
    }
    std::string take() { return std::move(_out); }

private:
    template <typename T>
    encoder& put(T v) {
        std::array<std::byte, sizeof(T)> b{};
        write_be<T>(b.data(), v);
        _out.append(reinterpret_cast<const char*>(b.data()), b.size());
        return *this;
    }
    std::string _out;
};

/// Reads what `encoder` wrote; any shortfall sets `ok` to false and yields zeros.
class decoder {
public:
    explicit decoder(std::span<const std::byte> in) : _in(in) {}
    bool ok() const noexcept { return _ok; }
    int16_t i16() { return get<int16_t>(); }
    int32_t i32() { return get<int32_t>(); }
    int64_t i64() { return get<int64_t>(); }
    std::string str() { return take(static_cast<std::size_t>(std::max<int16_t>(i16(), 0))); }
    std::optional<std::string> nstr() {
        auto n = i16();
        if (n < 0) {
            return std::nullopt;
        }
        return take(static_cast<std::size_t>(n));
    }
    std::string bytes() { return take(static_cast<std::size_t>(std::max<int32_t>(i32(), 0))); }

private:
    template <typename T>
    T get() {
        if (_in.size() - _pos < sizeof(T)) {
            _ok = false;
            return 0;
        }
        auto v = read_be<T>(_in.data() + _pos);
        _pos += sizeof(T);
        return v;
    }
    std::string take(std::size_t n) {
        if (_in.size() - _pos < n) {
            _ok = false;
            return {};
        }
        std::string s(reinterpret_cast<const char*>(_in.data() + _pos), n);
        _pos += n;
        return s;
    }
    std::span<const std::byte> _in;
    std::size_t _pos = 0;
    bool _ok = true;
};

std::optional<committed_offset> decode_offset(std::span<const std::byte> bytes) {
    decoder v(bytes);
    v.i16(); // version
    committed_offset c;
    c.offset = v.i64();
    c.leader_epoch = v.i32();
    c.metadata = v.nstr();
    c.commit_time_ms = v.i64();
    if (!v.ok()) {
        return std::nullopt;
    }
    return c;
}

group_metadata decode_group(std::span<const std::byte> bytes) {
    decoder v(bytes);
    v.i16(); // version
    group_metadata m;
    m.protocol_type = v.str();
    m.generation = v.i32();
    m.protocol = v.nstr();
    m.leader = v.nstr().value_or("");
    auto n = v.i32();
    for (int32_t i = 0; i < n && v.ok(); ++i) {
        stored_member s;
        s.id = v.str();
        s.instance_id = v.nstr();
        s.client_id = v.str();
        s.client_host = v.str();
        s.rebalance_timeout_ms = v.i32();
        s.session_timeout_ms = v.i32();
        s.metadata = v.bytes();
        s.assignment = v.bytes();
        m.members.push_back(std::move(s));
    }
    return m;
}

} // namespace

std::string offset_key(std::string_view group, const model::topic_partition& tp) {
    return encoder().i16(offset_key_type).str(group).str(tp.topic).i32(tp.partition()).take();
}

std::string offset_value(const committed_offset& c) {
    return encoder().i16(value_version).i64(c.offset).i32(c.leader_epoch).nstr(c.metadata).i64(c.commit_time_ms).take();
}

std::string group_key(std::string_view group) { return encoder().i16(group_key_type).str(group).take(); }

std::string group_value(const group_metadata& m) {
    encoder e;
    e.i16(value_version).str(m.protocol_type).i32(m.generation).nstr(m.protocol);
    e.nstr(m.leader.empty() ? std::nullopt : std::optional(m.leader));
    e.i32(static_cast<int32_t>(m.members.size()));
    for (const auto& s : m.members) {
        e.str(s.id).nstr(s.instance_id).str(s.client_id).str(s.client_host).i32(s.rebalance_timeout_ms)
          .i32(s.session_timeout_ms).bytes(s.metadata).bytes(s.assignment);
    }
    return e.take();
}

std::optional<record> decode(std::span<const std::byte> key, std::optional<std::span<const std::byte>> value) {
    decoder k(key);
    const auto type = k.i16();
    auto group = k.str();
    if (!k.ok()) {
        return std::nullopt;
    }
    if (type == offset_key_type) {
        offset_record r;
        r.group = std::move(group);
        r.tp.topic = k.str();
        r.tp.partition = model::partition_id(k.i32());
        if (!k.ok()) {
            return std::nullopt;
        }
        if (value) {
            r.value = decode_offset(*value);
            if (!r.value) {
                return std::nullopt;
            }
        }
        return r;
    }
    if (type == group_key_type) {
        group_record r;
        r.group = std::move(group);
        if (value) {
            r.value = decode_group(*value);
        }
        return r;
    }
    return std::nullopt;
}

std::set<std::string> subscribed_topics(std::string_view metadata) {
    std::set<std::string> out;
    decoder d(std::as_bytes(std::span(metadata.data(), metadata.size())));
    d.i16(); // version
    auto n = d.i32();
    for (int32_t i = 0; i < n && d.ok(); ++i) {
        auto t = d.str();
        if (d.ok()) {
            out.insert(std::move(t));
        }
    }
    return out;
}

} // namespace runnel::broker::group_records
