#include "engine/sketch.h"

#include <algorithm>
#include <cmath>

#include "base/assert.h"

namespace runnel::engine {

quantile_sketch::quantile_sketch(uint32_t k)
  : _k(std::max<uint32_t>(k, 8))
  , _levels(1) {}

size_t quantile_sketch::capacity(size_t level) const {
    // The top level holds k items; each level below holds 2/3 as many as the one above.
    size_t depth = _levels.size() - 1 - level;
    double c = double(_k) * std::pow(2.0 / 3.0, double(depth));
    return std::max<size_t>(size_t(std::ceil(c)), 2);
}

size_t quantile_sketch::retained() const {
    size_t n = 0;
    for (const auto& l : _levels) {
        n += l.size();
    }
    return n;
}

void quantile_sketch::add(double v) {
    _levels[0].push_back(v);
    ++_n;
    if (_levels[0].size() >= capacity(0)) {
        compress();
    }
}

void quantile_sketch::compact(size_t level) {
    if (level + 1 == _levels.size()) {
        _levels.emplace_back();
    }
    auto& cur = _levels[level];
    std::sort(cur.begin(), cur.end());
    // Keep the odd item out (if any) at this level; promote every other one of the rest.
    double left_over = 0;
    bool odd = cur.size() % 2 == 1;
    if (odd) {
        left_over = cur.back();
        cur.pop_back();
    }
    _rng ^= _rng << 13;
    _rng ^= _rng >> 7;
    _rng ^= _rng << 17;
    size_t offset = _rng & 1;
    auto& up = _levels[level + 1];
    for (size_t i = offset; i < cur.size(); i += 2) {
        up.push_back(cur[i]);
    }
    cur.clear();
    if (odd) {
        cur.push_back(left_over);
    }
}

void quantile_sketch::compress() {
    for (size_t h = 0; h < _levels.size(); ++h) {
        if (_levels[h].size() >= capacity(h)) {
            compact(h);
        }
    }
}

void quantile_sketch::merge(const quantile_sketch& other) {
    while (_levels.size() < other._levels.size()) {
        _levels.emplace_back();
    }
    for (size_t h = 0; h < other._levels.size(); ++h) {
        _levels[h].insert(_levels[h].end(), other._levels[h].begin(), other._levels[h].end());
    }
    _n += other._n;
    compress();
}

double quantile_sketch::quantile(double q) const {
    RUNNEL_ASSERT(_n > 0, "quantile of an empty sketch");
    std::vector<std::pair<double, uint64_t>> items;
    items.reserve(retained());
    uint64_t total = 0;
    for (size_t h = 0; h < _levels.size(); ++h) {
        for (double v : _levels[h]) {
            items.emplace_back(v, uint64_t(1) << h);
            total += uint64_t(1) << h;
        }
    }
    std::sort(items.begin(), items.end());
    q = std::clamp(q, 0.0, 1.0);
    double target = q * double(total);
    uint64_t cum = 0;
    for (const auto& [v, w] : items) {
        cum += w;
        if (double(cum) >= target) {
            return v;
        }
    }
    return items.back().first;
}

void quantile_sketch::write(state_writer& w) const {
    w.u32(_k);
    w.u64(_n);
    w.u64(_rng);
    w.u32(uint32_t(_levels.size()));
    for (const auto& l : _levels) {
        w.u32(uint32_t(l.size()));
        for (double v : l) {
            w.f64(v);
        }
    }
}

bool quantile_sketch::read(state_reader& r) {
    _k = r.u32();
    _n = r.u64();
    _rng = r.u64();
    uint32_t levels = r.count(4);
    if (!r.ok() || _k < 8 || levels == 0 || levels > 64) {
        return false;
    }
    _levels.assign(levels, {});
    for (auto& l : _levels) {
        uint32_t n = r.count(8);
        for (uint32_t i = 0; i < n && r.ok(); ++i) {
            l.push_back(r.f64());
        }
    }
    return r.ok();
}

} // namespace runnel::engine
