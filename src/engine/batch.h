#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "base/assert.h"
#include "engine/types.h"

namespace runnel::engine {

/// One SQL value outside a batch: a literal, a key part, a row in a test. `std::monostate`
/// is NULL. Timestamps are int64 with the unit in `type`.
struct value {
    data_type type = data_type::int64();
    std::variant<std::monostate, bool, int64_t, double, std::string> v;

    static value null(data_type t) { return {t, std::monostate{}}; }
    static value of(bool b) { return {data_type::boolean(), b}; }
    static value of(int64_t i) { return {data_type::int64(), i}; }
    static value of(int i) { return {data_type::int64(), int64_t(i)}; }
    static value of(double d) { return {data_type::float64(), d}; }
    static value of(std::string s) { return {data_type::string(), std::move(s)}; }
    static value of(const char* s) { return {data_type::string(), std::string(s)}; }
    static value ts(int64_t t, time_unit u = time_unit::millis) {
        return {data_type::timestamp(u), t};
    }

    bool is_null() const { return std::holds_alternative<std::monostate>(v); }
    std::string to_string() const;
    friend bool operator==(const value& a, const value& b) { return a.v == b.v; }
};

/// A typed column of one batch: values plus a validity bitmap (bit set = not NULL).
///
/// Booleans are one byte each; int64 and timestamps share `int64_t` storage; strings are
/// offsets into one contiguous arena owned by the column, so a batch of strings is two
/// allocations, not one per value. Built by appending, then read-only; owned by its batch and
/// used by one thread at a time.
class column {
public:
    column() = default;
    explicit column(data_type t)
      : _type(t) {
        if (t.id == type_id::string) {
            _offsets.push_back(0);
        }
    }

    data_type type() const { return _type; }
    size_t size() const { return _size; }
    size_t null_count() const { return _nulls; }
    void reserve(size_t n);
    /// Reserves room for `n` bytes of string data (string columns).
    void reserve_bytes(size_t n) { _arena.reserve(n); }

    bool is_null(size_t i) const { return _nulls != 0 && !((_valid[i >> 6] >> (i & 63)) & 1); }
    bool valid(size_t i) const { return !is_null(i); }

    int64_t int64_at(size_t i) const { return _i64[i]; }
    double float64_at(size_t i) const { return _f64[i]; }
    bool bool_at(size_t i) const { return _b[i] != 0; }
    std::string_view string_at(size_t i) const {
        return {_arena.data() + _offsets[i], _offsets[i + 1] - _offsets[i]};
    }
    /// A number column read as double (int64 converted).
    double number_at(size_t i) const {
        return _type.id == type_id::float64 ? _f64[i] : double(_i64[i]);
    }

    const int64_t* int64_data() const { return _i64.data(); }
    const double* float64_data() const { return _f64.data(); }
    const uint8_t* bool_data() const { return _b.data(); }

    void push_null();
    void push_int64(int64_t v) {
        _i64.push_back(v);
        push_valid();
    }
    void push_float64(double v) {
        _f64.push_back(v);
        push_valid();
    }
    void push_bool(bool v) {
        _b.push_back(v ? 1 : 0);
        push_valid();
    }
    /// Appends `n` non-NULL values at once (one validity update, not one per value).
    void append_int64(const int64_t* v, size_t n);
    void append_int64(int64_t v, size_t n);
    void append_float64(const double* v, size_t n);
    /// Appends v[at[0]], …, v[at[n - 1]], none NULL.
    void append_int64(const int64_t* v, const uint32_t* at, size_t n);
    void append_float64(const double* v, const uint32_t* at, size_t n);
    void push_string(std::string_view s) {
        _arena.append(s);
        _offsets.push_back(uint32_t(_arena.size()));
        push_valid();
    }
    /// Appends `v`, which must have this column's storage type (or be NULL).
    void push_value(const value& v);
    /// Appends row `i` of `other`, which has the same type.
    void push_from(const column& other, size_t i);
    /// Columns without NULLs built from whole vectors (expression results).
    static column of_int64(data_type t, std::vector<int64_t> v);
    static column of_float64(std::vector<double> v);
    static column of_bool(std::vector<uint8_t> v);
    /// A string column of `n` copies of `s`, none NULL (a constant in an expression).
    static column of_repeated_string(std::string_view s, size_t n);
    /// Appends rows `rows[0..n)` of `other` (same type) with typed loops.
    void push_rows(const column& other, const uint32_t* rows, size_t n);
    /// Keeps only rows `rows[0..n)` (strictly ascending), in place: no allocation for columns
    /// of numbers and booleans without NULLs (others are rebuilt with `push_rows`).
    void retain_rows(const uint32_t* rows, size_t n);
    value value_at(size_t i) const;

private:
    void set_all_valid(size_t n) {
        _size = n;
        _nulls = 0;
        _valid.assign((n + 63) / 64, ~uint64_t(0));
        if (n & 63) _valid.back() = (uint64_t(1) << (n & 63)) - 1;
    }
    /// Marks `n` appended values valid.
    void append_valid(size_t n);
    void push_valid() {
        if ((_size & 63) == 0) {
            _valid.push_back(0);
        }
        _valid[_size >> 6] |= uint64_t(1) << (_size & 63);
        ++_size;
    }

    data_type _type;
    size_t _size = 0;
    size_t _nulls = 0;
    std::vector<uint64_t> _valid;
    std::vector<int64_t> _i64;
    std::vector<double> _f64;
    std::vector<uint8_t> _b;
    std::vector<uint32_t> _offsets;
    std::string _arena;
};

/// Up to a few thousand rows of one stream, column by column, sharing one schema.
///
/// Optionally carries a row kind per row (changelog streams; absent means every row is an
/// `insert`) and the source partition it was read from (watermarks are generated per
/// partition). Moved between stages, never shared; one thread at a time.
class batch {
public:
    batch() = default;
    explicit batch(schema_ptr s);
    batch(schema_ptr s, std::vector<column> columns, std::vector<row_kind> kinds = {});

    const schema_ptr& schema_of() const { return _schema; }
    size_t num_rows() const { return _rows; }
    size_t num_columns() const { return _columns.size(); }
    const column& col(size_t i) const { return _columns[i]; }
    column& mutable_col(size_t i) { return _columns[i]; }
    std::vector<column>& columns() { return _columns; }

    bool has_row_kinds() const { return !_kinds.empty(); }
    row_kind kind(size_t i) const { return _kinds.empty() ? row_kind::insert : _kinds[i]; }
    void set_row_kinds(std::vector<row_kind> kinds);

    int32_t source_partition() const { return _partition; }
    void set_source_partition(int32_t p) { _partition = p; }

    /// Appends one row of values (one per column, in schema order).
    void append_row(const std::vector<value>& row, row_kind k = row_kind::insert);
    /// Recounts rows after columns were appended to directly.
    void seal();
    /// The rows whose `keep` byte is non-zero, in order.
    batch select(const std::vector<uint8_t>& keep) const;
    /// Rows `rows[0..n)`, in that order.
    batch select(const uint32_t* rows, size_t n) const;
    /// Keeps only rows `rows[0..n)` (strictly ascending), in place (`column::retain_rows`).
    void retain(const uint32_t* rows, size_t n);
    std::vector<value> row(size_t i) const;
    std::string row_to_string(size_t i) const;

private:
    schema_ptr _schema;
    std::vector<column> _columns;
    std::vector<row_kind> _kinds;
    size_t _rows = 0;
    int32_t _partition = 0;
};

/// Builds a batch from rows: handy in tests and small sources.
batch make_batch(schema_ptr s, const std::vector<std::vector<value>>& rows);

/// How rows are assigned to shards by key. Both are pure functions of the key values, the same
/// on every machine, in every run and in every release, since a parallel job's checkpointed
/// state is split by them.
enum class key_routing : uint8_t {
    /// FNV-1a over each row's `encode_key_part` encoding, then a finaliser. What parallel jobs
    /// split their checkpointed state by; kept for them. A multiply per key byte.
    fnv1a,
    /// Each key column's 64-bit values (strings: their bytes eight at a time) folded in with one
    /// 64×64→128-bit multiply each, the shard taken from the high bits: a multiply per key word.
    /// For dataflows without checkpoints split by `fnv1a` (parallel SQL).
    columnar,
};

/// One step of `key_routing::columnar`: the 64-bit word `v` folded into the hash `h` with one
/// 64×64→128-bit multiply (the product's halves xored). A key starts from `columnar_seed`.
inline constexpr uint64_t columnar_seed = 0x243F6A8885A308D3ULL;
inline uint64_t columnar_fold(uint64_t h, uint64_t v) {
    unsigned __int128 p = (unsigned __int128)(h ^ v) * 0x9E3779B97F4A7C15ULL;
    return uint64_t(p) ^ uint64_t(p >> 64);
}

/// The 64-bit hash of every row's key columns by `routing`, into `out` (resized), computed a
/// column at a time (no key is encoded); `shard_of` maps it to a shard.
void hash_keys(const batch& b, const std::vector<size_t>& key_columns, key_routing routing,
               std::vector<uint64_t>& out);

/// The shard (0..shards-1) of a row whose key hashed to `h` by `hash_keys`.
inline uint32_t shard_of(uint64_t h, uint32_t shards, key_routing routing) {
    if (routing == key_routing::columnar) return uint32_t((unsigned __int128)h * shards >> 64);
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 33;
    return (shards & (shards - 1)) == 0 ? uint32_t(h & (shards - 1)) : uint32_t(h % shards);
}

/// The shard every row goes to when a stream is keyed by no column (`hash_keys` of no key
/// columns, then `shard_of`): where an exchange without keys brings every row.
uint32_t keyless_shard(uint32_t shards, key_routing routing);

/// The shard (0..n-1) each row goes to when a stream is keyed by `key_columns`: `hash_keys`
/// then `shard_of`. The exchange between shards routes by it.
std::vector<uint32_t> hash_partition(const batch& b, const std::vector<size_t>& key_columns,
                                     uint32_t shards, key_routing routing = key_routing::fnv1a);

/// Appends a compact, order-free encoding of row `i` of `c` to `out`; equal values encode to
/// equal bytes. Keys of hash maps (grouping, dedup, distinct) are these encodings.
void encode_key_part(const column& c, size_t i, std::string& out);

/// Hash of encoded keys for the engine's hash maps: one multiply-xorshift round for the common
/// single-integer key (9 bytes), std::hash otherwise. Avalanching, so Boost's flat maps use
/// it as is.
struct key_hash {
    using is_transparent = void;
    using is_avalanching = void;
    size_t operator()(std::string_view k) const noexcept {
        if (k.size() == 9) {
            uint64_t v;
            std::memcpy(&v, k.data() + 1, 8);
            v ^= uint64_t(static_cast<unsigned char>(k[0])) << 59;
            v ^= v >> 32;
            v *= 0xd6e8feb86659fd93ULL;
            v ^= v >> 32;
            v *= 0xd6e8feb86659fd93ULL;
            v ^= v >> 32;
            return size_t(v);
        }
        return std::hash<std::string_view>{}(k);
    }
};

/// Equality for `key_hash` maps, allowing lookups by string_view.
struct key_equal {
    using is_transparent = void;
    bool operator()(std::string_view a, std::string_view b) const noexcept { return a == b; }
};


} // namespace runnel::engine
