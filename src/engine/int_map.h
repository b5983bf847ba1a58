#pragma once

#include <cstdint>
#include <cstring>
#include <vector>

namespace runnel::engine {

/// A hash map from int64 keys to uint32 values for the per-row key lookups of window stages
/// (key → slot of a pane, key → key number).
///
/// Open addressing with linear probing over 16-byte buckets, at most 3/4 full. Its point is
/// `find_or_add_all`: looking up a whole run of keys, it prefetches the bucket of the key a few
/// rows ahead, so the cache misses of consecutive rows overlap instead of following each other
/// (a table of 100k keys does not fit in the caches close to the core). Owned by one stage;
/// one thread.
class int_map {
public:
    size_t size() const { return _size; }
    bool empty() const { return _size == 0; }

    /// Room for `n` keys without growing.
    void reserve(size_t n) {
        size_t cap = 16;
        while (cap * 3 / 4 < n) cap *= 2;
        if (cap > _buckets.size()) rehash(cap);
    }

    /// Removes every key, keeping the buckets.
    void clear() {
        if (_size == 0) return;
        std::memset(static_cast<void*>(_buckets.data()), 0, _buckets.size() * sizeof(bucket));
        _size = 0;
    }

    /// The value of `key`, or nullptr.
    const uint32_t* find(int64_t key) const {
        if (_buckets.empty()) return nullptr;
        for (size_t i = home(key);; i = (i + 1) & _mask) {
            const bucket& b = _buckets[i];
            if (!b.used) return nullptr;
            if (b.key == key) return &b.value;
        }
    }

    /// The value of `key`; absent, it is added with the value `make(key)` returns.
    template <typename Make>
    uint32_t find_or_add(int64_t key, Make&& make) {
        if (_size + 1 > _grow_at) rehash(_buckets.empty() ? 16 : _buckets.size() * 2);
        size_t i = home(key);
        for (;; i = (i + 1) & _mask) {
            bucket& b = _buckets[i];
            if (!b.used) break;
            if (b.key == key) return b.value;
        }
        uint32_t v = make(key);
        _buckets[i] = {key, v, 1};
        ++_size;
        return v;
    }

    /// out[i] = find_or_add(keys[i], make) for i in [0, n), prefetching ahead.
    template <typename Make>
    void find_or_add_all(const int64_t* keys, size_t n, uint32_t* out, Make&& make) {
        constexpr size_t ahead = 16;
        for (size_t i = 0; i < n; ++i) {
            if (i + ahead < n && !_buckets.empty()) __builtin_prefetch(&_buckets[home(keys[i + ahead])]);
            out[i] = find_or_add(keys[i], make);
        }
    }

    /// Hints that `key` will be looked up soon.
    void prefetch(int64_t key) const {
        if (!_buckets.empty()) __builtin_prefetch(&_buckets[home(key)]);
    }

    /// Removes `key` if present (backward-shift deletion: no tombstones).
    void erase(int64_t key) {
        if (_buckets.empty()) return;
        size_t i = home(key);
        for (;; i = (i + 1) & _mask) {
            if (!_buckets[i].used) return;
            if (_buckets[i].key == key) break;
        }
        // Move later members of the probe run back into the hole when that keeps them reachable.
        for (size_t j = (i + 1) & _mask; _buckets[j].used; j = (j + 1) & _mask) {
            size_t h = home(_buckets[j].key);
            // The bucket at j may fill the hole at i unless its home lies cyclically in (i, j].
            bool stays = i <= j ? (i < h && h <= j) : (i < h || h <= j);
            if (!stays) {
                _buckets[i] = _buckets[j];
                i = j;
            }
        }
        _buckets[i].used = 0;
        --_size;
    }

    /// Calls f(key, value) for every entry, in no particular order.
    template <typename F>
    void for_each(F&& f) const {
        for (const bucket& b : _buckets) {
            if (b.used) f(b.key, b.value);
        }
    }

private:
    struct bucket {
        int64_t key;
        uint32_t value;
        uint32_t used;
    };

    size_t home(int64_t key) const {
        // Fold the high half in, then a Fibonacci multiply whose top bits pick the bucket.
        uint64_t x = uint64_t(key);
        x ^= x >> 32;
        return size_t((x * 0x9e3779b97f4a7c15ULL) >> _shift);
    }

    void rehash(size_t cap) {
        std::vector<bucket> old;
        old.swap(_buckets);
        _buckets.assign(cap, bucket{0, 0, 0});
        _mask = cap - 1;
        _shift = 64 - unsigned(__builtin_ctzll(cap));
        _grow_at = cap * 3 / 4;
        for (const bucket& b : old) {
            if (!b.used) continue;
            size_t i = home(b.key);
            while (_buckets[i].used) i = (i + 1) & _mask;
            _buckets[i] = b;
        }
    }

    std::vector<bucket> _buckets;
    size_t _size = 0;
    size_t _mask = 0;
    unsigned _shift = 64;
    size_t _grow_at = 0;
};

} // namespace runnel::engine
