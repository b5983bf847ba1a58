#include "engine/batch.h"

#include <fmt/format.h>

#include <compare>
#include <iterator>

#include "engine/errc.h"

namespace runnel::engine {

const char* errc_message(errc e) noexcept {
    switch (e) {
    case errc::success: return "success";
    case errc::unknown_column: return "unknown column";
    case errc::type_mismatch: return "type mismatch";
    case errc::invalid_argument: return "invalid argument";
    case errc::invalid_pipeline: return "invalid pipeline";
    case errc::corrupt_state: return "corrupt state snapshot";
    case errc::decode_failed: return "record could not be decoded";
    case errc::state_failed: return "state store failed";
    }
    return "unknown engine error";
}

std::string data_type::name() const {
    switch (id) {
    case type_id::boolean: return "boolean";
    case type_id::int64: return "bigint";
    case type_id::float64: return "double";
    case type_id::string: return "string";
    case type_id::timestamp: return unit == time_unit::millis ? "timestamp(3)" : "timestamp(6)";
    }
    return "?";
}

const char* row_kind_name(row_kind k) {
    switch (k) {
    case row_kind::insert: return "+I";
    case row_kind::update_before: return "-U";
    case row_kind::update_after: return "+U";
    case row_kind::delete_row: return "-D";
    }
    return "?";
}

row_layout row_layout::of(const schema& s) {
    row_layout l;
    const auto n = s.size();
    l.parent.assign(n, -1);
    l.is_row.assign(n, 0);
    l.key.resize(n);
    for (size_t i = 0; i < n; ++i) {
        const std::string& name = s.at(i).name;
        if (s.at(i).type.id == type_id::boolean && i + 1 < n &&
            s.at(i + 1).name.size() > name.size() + 1 && s.at(i + 1).name.starts_with(name) &&
            s.at(i + 1).name[name.size()] == '.') {
            l.is_row[i] = 1;
            l.nested = true;
        }
        // The innermost earlier ROW whose name prefixes this one.
        int p = -1;
        for (int j = int(i) - 1; j >= 0; --j) {
            const std::string& r = s.at(size_t(j)).name;
            if (l.is_row[size_t(j)] && name.size() > r.size() + 1 && name.starts_with(r) && name[r.size()] == '.') {
                p = j;
                break;
            }
        }
        l.parent[i] = p;
        l.key[i] = p < 0 ? name : name.substr(s.at(size_t(p)).name.size() + 1);
    }
    return l;
}

std::optional<size_t> schema::index_of(std::string_view name) const {
    for (size_t i = 0; i < _fields.size(); ++i) {
        if (_fields[i].name == name) {
            return i;
        }
    }
    return std::nullopt;
}

std::string schema::to_string() const {
    std::string s = "(";
    for (size_t i = 0; i < _fields.size(); ++i) {
        s += fmt::format("{}{} {}{}", i ? ", " : "", _fields[i].name, _fields[i].type.name(),
                         _fields[i].nullable ? "" : " not null");
    }
    return s + ")";
}

bool operator==(const schema& a, const schema& b) {
    if (a._fields.size() != b._fields.size()) {
        return false;
    }
    for (size_t i = 0; i < a._fields.size(); ++i) {
        if (a._fields[i].name != b._fields[i].name || !(a._fields[i].type == b._fields[i].type)) {
            return false;
        }
    }
    return true;
}

std::string value::to_string() const {
    return std::visit(
      [](const auto& x) -> std::string {
          using T = std::decay_t<decltype(x)>;
          if constexpr (std::is_same_v<T, std::monostate>) {
              return "NULL";
          } else if constexpr (std::is_same_v<T, bool>) {
              return x ? "true" : "false";
          } else if constexpr (std::is_same_v<T, std::string>) {
              return "'" + x + "'";
          } else {
              return fmt::format("{}", x);
          }
      },
      v);
}

void column::reserve(size_t n) {
    _valid.reserve((n + 63) / 64);
    switch (_type.id) {
    case type_id::boolean: _b.reserve(n); break;
    case type_id::int64:
    case type_id::timestamp: _i64.reserve(n); break;
    case type_id::float64: _f64.reserve(n); break;
    case type_id::string: _offsets.reserve(n + 1); break;
    }
}

void column::push_null() {
    switch (_type.id) {
    case type_id::boolean: _b.push_back(0); break;
    case type_id::int64:
    case type_id::timestamp: _i64.push_back(0); break;
    case type_id::float64: _f64.push_back(0); break;
    case type_id::string: _offsets.push_back(uint32_t(_arena.size())); break;
    }
    if ((_size & 63) == 0) {
        _valid.push_back(0);
    }
    _valid[_size >> 6] &= ~(uint64_t(1) << (_size & 63));
    ++_size;
    ++_nulls;
}

void column::push_value(const value& v) {
    if (v.is_null()) {
        push_null();
        return;
    }
    switch (_type.id) {
    case type_id::boolean: push_bool(std::get<bool>(v.v)); break;
    case type_id::int64:
    case type_id::timestamp: push_int64(std::get<int64_t>(v.v)); break;
    case type_id::float64:
        if (auto* i = std::get_if<int64_t>(&v.v)) {
            push_float64(double(*i));
        } else {
            push_float64(std::get<double>(v.v));
        }
        break;
    case type_id::string: push_string(std::get<std::string>(v.v)); break;
    }
}

void column::push_from(const column& o, size_t i) {
    if (o.is_null(i)) {
        push_null();
        return;
    }
    switch (_type.id) {
    case type_id::boolean: push_bool(o.bool_at(i)); break;
    case type_id::int64:
    case type_id::timestamp: push_int64(o.int64_at(i)); break;
    case type_id::float64: push_float64(o.float64_at(i)); break;
    case type_id::string: push_string(o.string_at(i)); break;
    }
}

column column::of_int64(data_type t, std::vector<int64_t> v) {
    column c(t);
    c.set_all_valid(v.size());
    c._i64 = std::move(v);
    return c;
}

column column::of_float64(std::vector<double> v) {
    column c(data_type::float64());
    c.set_all_valid(v.size());
    c._f64 = std::move(v);
    return c;
}

column column::of_bool(std::vector<uint8_t> v) {
    column c(data_type::boolean());
    c.set_all_valid(v.size());
    c._b = std::move(v);
    return c;
}

column column::of_repeated_string(std::string_view s, size_t n) {
    column c(data_type::string());
    c.set_all_valid(n);
    c._offsets.resize(n + 1);
    for (size_t i = 0; i <= n; ++i) c._offsets[i] = uint32_t(i * s.size());
    c._arena.reserve(n * s.size());
    for (size_t i = 0; i < n; ++i) c._arena.append(s);
    return c;
}

namespace {
/// dst[k] = src[rows[k]] for k in [0, n), four rows a step: the loads of a step do not
/// depend on each other, and the loop costs about three instructions a value. `dst` may be
/// `src` when rows[k] >= k for every k (a selection kept in place): a step reads all four
/// before it writes, and writes only below what later steps read.
template <class T>
void gather(T* dst, const T* src, const uint32_t* rows, size_t n) {
    size_t k = 0;
    for (; k + 4 <= n; k += 4) {
        const T a = src[rows[k]], b = src[rows[k + 1]], c = src[rows[k + 2]], d = src[rows[k + 3]];
        dst[k] = a;
        dst[k + 1] = b;
        dst[k + 2] = c;
        dst[k + 3] = d;
    }
    for (; k < n; ++k) dst[k] = src[rows[k]];
}

/// Reads v[rows[0]], v[rows[1]], … : a vector's `insert` over a range of these gathers
/// straight into new room, without zeroing it first as `resize` would (zeroing costs as much
/// as the unrolled `gather` saves).
template <class T>
struct gather_iterator {
    using iterator_category = std::random_access_iterator_tag;
    using value_type = T;
    using difference_type = std::ptrdiff_t;
    using pointer = const T*;
    using reference = const T&;

    const T* v;
    const uint32_t* at;

    const T& operator*() const { return v[*at]; }
    const T& operator[](difference_type k) const { return v[at[k]]; }
    gather_iterator& operator++() {
        ++at;
        return *this;
    }
    gather_iterator operator++(int) {
        auto old = *this;
        ++at;
        return old;
    }
    gather_iterator& operator--() {
        --at;
        return *this;
    }
    gather_iterator& operator+=(difference_type k) {
        at += k;
        return *this;
    }
    gather_iterator operator+(difference_type k) const { return {v, at + k}; }
    difference_type operator-(const gather_iterator& o) const { return at - o.at; }
    bool operator==(const gather_iterator& o) const { return at == o.at; }
    auto operator<=>(const gather_iterator& o) const { return at <=> o.at; }
};

/// Appends v[rows[0]], …, v[rows[n - 1]] to `out`.
template <class T>
void append_gathered(std::vector<T>& out, const T* v, const uint32_t* rows, size_t n) {
    out.insert(out.end(), gather_iterator<T>{v, rows}, gather_iterator<T>{v, rows + n});
}
} // namespace

void column::push_rows(const column& o, const uint32_t* rows, size_t n) {
    if (o._nulls != 0) {
        reserve(_size + n);
        for (size_t k = 0; k < n; ++k) push_from(o, rows[k]);
        return;
    }
    switch (_type.id) {
    case type_id::boolean:
        for (size_t k = 0; k < n; ++k) _b.push_back(o._b[rows[k]]);
        break;
    case type_id::int64:
    case type_id::timestamp:
        append_gathered(_i64, o._i64.data(), rows, n);
        break;
    case type_id::float64:
        append_gathered(_f64, o._f64.data(), rows, n);
        break;
    case type_id::string: {
        // Bytes first (one reservation), then the offsets.
        size_t bytes = 0;
        for (size_t k = 0; k < n; ++k) bytes += o._offsets[rows[k] + 1] - o._offsets[rows[k]];
        _arena.reserve(_arena.size() + bytes);
        size_t at = _offsets.size();
        _offsets.resize(at + n);
        for (size_t k = 0; k < n; ++k) {
            uint32_t from = o._offsets[rows[k]], to = o._offsets[rows[k] + 1];
            _arena.append(o._arena.data() + from, to - from);
            _offsets[at + k] = uint32_t(_arena.size());
        }
        break;
    }
    }
    append_valid(n);
}

void column::retain_rows(const uint32_t* rows, size_t n) {
    auto keep = [rows, n](auto& v) {
        gather(v.data(), v.data(), rows, n); // rows[k] >= k: nothing read is overwritten
        v.resize(n);
    };
    if (_nulls == 0) {
        switch (_type.id) {
        case type_id::boolean: keep(_b); set_all_valid(n); return;
        case type_id::int64:
        case type_id::timestamp: keep(_i64); set_all_valid(n); return;
        case type_id::float64: keep(_f64); set_all_valid(n); return;
        case type_id::string: break;
        }
    }
    column c(_type);
    c.push_rows(*this, rows, n);
    *this = std::move(c);
}

void column::append_valid(size_t n) {
    // Set n bits from _size on.
    size_t end = _size + n;
    _valid.resize((end + 63) / 64, 0);
    size_t i = _size;
    while (i < end && (i & 63) != 0) {
        _valid[i >> 6] |= uint64_t(1) << (i & 63);
        ++i;
    }
    while (i + 64 <= end) {
        _valid[i >> 6] = ~uint64_t(0);
        i += 64;
    }
    while (i < end) {
        _valid[i >> 6] |= uint64_t(1) << (i & 63);
        ++i;
    }
    _size = end;
}

void column::append_int64(const int64_t* v, size_t n) {
    _i64.insert(_i64.end(), v, v + n);
    append_valid(n);
}

void column::append_int64(int64_t v, size_t n) {
    _i64.insert(_i64.end(), n, v);
    append_valid(n);
}

void column::append_float64(const double* v, size_t n) {
    _f64.insert(_f64.end(), v, v + n);
    append_valid(n);
}

void column::append_int64(const int64_t* v, const uint32_t* at, size_t n) {
    size_t from = _i64.size();
    _i64.resize(from + n);
    gather(_i64.data() + from, v, at, n);
    append_valid(n);
}

void column::append_float64(const double* v, const uint32_t* at, size_t n) {
    size_t from = _f64.size();
    _f64.resize(from + n);
    gather(_f64.data() + from, v, at, n);
    append_valid(n);
}

value column::value_at(size_t i) const {
    if (is_null(i)) {
        return value::null(_type);
    }
    switch (_type.id) {
    case type_id::boolean: return {_type, bool_at(i)};
    case type_id::int64:
    case type_id::timestamp: return {_type, int64_at(i)};
    case type_id::float64: return {_type, float64_at(i)};
    case type_id::string: return {_type, std::string(string_at(i))};
    }
    return value::null(_type);
}

batch::batch(schema_ptr s)
  : _schema(std::move(s)) {
    _columns.reserve(_schema->size());
    for (const auto& f : _schema->fields()) {
        _columns.emplace_back(f.type);
    }
}

batch::batch(schema_ptr s, std::vector<column> columns, std::vector<row_kind> kinds)
  : _schema(std::move(s))
  , _columns(std::move(columns))
  , _kinds(std::move(kinds)) {
    RUNNEL_ASSERT(_columns.size() == _schema->size(), "one column per schema field");
    seal();
}

void batch::set_row_kinds(std::vector<row_kind> kinds) {
    RUNNEL_ASSERT(kinds.empty() || kinds.size() == _rows, "one row kind per row");
    _kinds = std::move(kinds);
}

void batch::seal() {
    _rows = _columns.empty() ? 0 : _columns[0].size();
    for (const auto& c : _columns) {
        RUNNEL_ASSERT(c.size() == _rows, "every column of a batch has the same length");
    }
}

void batch::append_row(const std::vector<value>& row, row_kind k) {
    RUNNEL_ASSERT(row.size() == _columns.size(), "one value per column");
    for (size_t i = 0; i < row.size(); ++i) {
        _columns[i].push_value(row[i]);
    }
    if (k != row_kind::insert || !_kinds.empty()) {
        _kinds.resize(_rows, row_kind::insert); // the rows before the first non-insert
        _kinds.push_back(k);
    }
    ++_rows;
}

batch batch::select(const std::vector<uint8_t>& keep) const {
    std::vector<uint32_t> rows(_rows);
    size_t n = 0;
    for (size_t i = 0; i < _rows; ++i) {
        rows[n] = uint32_t(i);
        n += keep[i] != 0;
    }
    return select(rows.data(), n);
}

batch batch::select(const uint32_t* rows, size_t n) const {
    batch out(_schema);
    out._partition = _partition;
    for (size_t c = 0; c < _columns.size(); ++c) {
        out._columns[c].push_rows(_columns[c], rows, n);
    }
    if (!_kinds.empty()) {
        out._kinds.resize(n);
        for (size_t k = 0; k < n; ++k) out._kinds[k] = _kinds[rows[k]];
    }
    out._rows = n;
    return out;
}

void batch::retain(const uint32_t* rows, size_t n) {
    for (auto& c : _columns) c.retain_rows(rows, n);
    if (!_kinds.empty()) {
        for (size_t k = 0; k < n; ++k) _kinds[k] = _kinds[rows[k]];
        _kinds.resize(n);
    }
    _rows = n;
}

std::vector<value> batch::row(size_t i) const {
    std::vector<value> r;
    r.reserve(_columns.size());
    for (const auto& c : _columns) {
        r.push_back(c.value_at(i));
    }
    return r;
}

std::string batch::row_to_string(size_t i) const {
    std::string s = has_row_kinds() ? std::string(row_kind_name(kind(i))) + "(" : "(";
    for (size_t c = 0; c < _columns.size(); ++c) {
        s += (c ? ", " : "") + _columns[c].value_at(i).to_string();
    }
    return s + ")";
}

batch make_batch(schema_ptr s, const std::vector<std::vector<value>>& rows) {
    batch b(std::move(s));
    for (const auto& r : rows) {
        b.append_row(r);
    }
    return b;
}

void encode_key_part(const column& c, size_t i, std::string& out) {
    if (c.is_null(i)) {
        out.push_back('\0');
        return;
    }
    out.push_back('\1');
    switch (c.type().id) {
    case type_id::boolean: out.push_back(c.bool_at(i) ? '\1' : '\0'); break;
    case type_id::int64:
    case type_id::timestamp: {
        int64_t v = c.int64_at(i);
        out.append(reinterpret_cast<const char*>(&v), sizeof v);
        break;
    }
    case type_id::float64: {
        double v = c.float64_at(i);
        if (v == 0) {
            v = 0; // -0.0 and 0.0 are one key
        }
        out.append(reinterpret_cast<const char*>(&v), sizeof v);
        break;
    }
    case type_id::string: {
        auto s = c.string_at(i);
        uint32_t n = uint32_t(s.size());
        out.append(reinterpret_cast<const char*>(&n), sizeof n);
        out.append(s);
        break;
    }
    }
}

namespace {
constexpr uint64_t fnv_offset = 1469598103934665603ULL;
constexpr uint64_t fnv_prime = 1099511628211ULL;

inline uint64_t fnv_byte(uint64_t h, unsigned char c) { return (h ^ c) * fnv_prime; }

inline uint64_t fnv_bytes(uint64_t h, const void* p, size_t n) {
    const auto* c = static_cast<const unsigned char*>(p);
    for (size_t i = 0; i < n; ++i) h = fnv_byte(h, c[i]);
    return h;
}

/// FNV-1a after the marker byte of a non-NULL value (`encode_key_part`), then its 8 bytes.
inline uint64_t fnv_word(uint64_t h, uint64_t bits) {
    unsigned char b[8];
    std::memcpy(b, &bits, 8);
    h = fnv_byte(h, 1);
    for (unsigned char c : b) h = fnv_byte(h, c);
    return h;
}

/// Folds the encoding of every row of `c` (`encode_key_part`, byte for byte) into h[row], a
/// column at a time: the same hash as FNV-1a over each row's encoded key, without building it.
void fold_column(const column& c, size_t n, uint64_t* h) {
    const bool nulls = c.null_count() != 0;
    switch (c.type().id) {
    case type_id::int64:
    case type_id::timestamp: {
        const int64_t* v = c.int64_data();
        if (!nulls) {
            for (size_t i = 0; i < n; ++i) h[i] = fnv_word(h[i], uint64_t(v[i]));
            return;
        }
        for (size_t i = 0; i < n; ++i) h[i] = c.is_null(i) ? fnv_byte(h[i], 0) : fnv_word(h[i], uint64_t(v[i]));
        return;
    }
    case type_id::float64: {
        const double* v = c.float64_data();
        for (size_t i = 0; i < n; ++i) {
            if (nulls && c.is_null(i)) {
                h[i] = fnv_byte(h[i], 0);
                continue;
            }
            double d = v[i] == 0 ? 0.0 : v[i]; // -0.0 and 0.0 are one key
            uint64_t bits;
            std::memcpy(&bits, &d, 8);
            h[i] = fnv_word(h[i], bits);
        }
        return;
    }
    case type_id::boolean: {
        const uint8_t* v = c.bool_data();
        for (size_t i = 0; i < n; ++i) {
            h[i] = nulls && c.is_null(i) ? fnv_byte(h[i], 0) : fnv_byte(fnv_byte(h[i], 1), v[i] ? 1 : 0);
        }
        return;
    }
    case type_id::string:
        for (size_t i = 0; i < n; ++i) {
            if (nulls && c.is_null(i)) {
                h[i] = fnv_byte(h[i], 0);
                continue;
            }
            auto s = c.string_at(i);
            uint32_t len = uint32_t(s.size());
            h[i] = fnv_bytes(fnv_bytes(fnv_byte(h[i], 1), &len, sizeof len), s.data(), s.size());
        }
        return;
    }
}
} // namespace

namespace {
/// `key_routing::columnar`: folds every row's value of `c` into h[row]. NULL, false/true and
/// each type's values fold in as 64-bit words; -0.0 folds as 0.0.
void fold_column_columnar(const column& c, size_t n, uint64_t* h) {
    const bool nulls = c.null_count() != 0;
    constexpr uint64_t null_word = 0x6e756c6c6e756c6cULL;
    switch (c.type().id) {
    case type_id::int64:
    case type_id::timestamp: {
        const int64_t* v = c.int64_data();
        if (!nulls) {
            for (size_t i = 0; i < n; ++i) h[i] = columnar_fold(h[i], uint64_t(v[i]));
            return;
        }
        for (size_t i = 0; i < n; ++i) h[i] = columnar_fold(h[i], c.is_null(i) ? null_word : uint64_t(v[i]));
        return;
    }
    case type_id::float64: {
        const double* v = c.float64_data();
        for (size_t i = 0; i < n; ++i) {
            double d = v[i] == 0 ? 0.0 : v[i];
            uint64_t bits;
            std::memcpy(&bits, &d, 8);
            h[i] = columnar_fold(h[i], nulls && c.is_null(i) ? null_word : bits);
        }
        return;
    }
    case type_id::boolean: {
        const uint8_t* v = c.bool_data();
        for (size_t i = 0; i < n; ++i) h[i] = columnar_fold(h[i], nulls && c.is_null(i) ? null_word : uint64_t(v[i] != 0));
        return;
    }
    case type_id::string:
        for (size_t i = 0; i < n; ++i) {
            if (nulls && c.is_null(i)) {
                h[i] = columnar_fold(h[i], null_word);
                continue;
            }
            auto s = c.string_at(i);
            uint64_t x = columnar_fold(h[i], uint64_t(s.size()));
            size_t at = 0;
            for (; at + 8 <= s.size(); at += 8) {
                uint64_t w;
                std::memcpy(&w, s.data() + at, 8);
                x = columnar_fold(x, w);
            }
            uint64_t last = 0;
            std::memcpy(&last, s.data() + at, s.size() - at);
            h[i] = columnar_fold(x, last);
        }
        return;
    }
}
} // namespace

void hash_keys(const batch& b, const std::vector<size_t>& key_columns, key_routing routing,
               std::vector<uint64_t>& out) {
    const size_t n = b.num_rows();
    const bool columnar = routing == key_routing::columnar;
    out.assign(n, columnar ? columnar_seed : fnv_offset);
    for (size_t k : key_columns) {
        if (columnar) fold_column_columnar(b.col(k), n, out.data());
        else fold_column(b.col(k), n, out.data());
    }
}

uint32_t keyless_shard(uint32_t shards, key_routing routing) {
    return shard_of(routing == key_routing::columnar ? columnar_seed : fnv_offset, shards, routing);
}

std::vector<uint32_t> hash_partition(const batch& b, const std::vector<size_t>& key_columns,
                                     uint32_t shards, key_routing routing) {
    RUNNEL_ASSERT(shards > 0, "at least one shard");
    std::vector<uint64_t> h;
    hash_keys(b, key_columns, routing, h);
    std::vector<uint32_t> out(h.size());
    for (size_t i = 0; i < h.size(); ++i) out[i] = shard_of(h[i], shards, routing);
    return out;
}

} // namespace runnel::engine
