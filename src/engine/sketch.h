#pragma once

#include <cstdint>
#include <vector>

#include "engine/state_io.h"

namespace runnel::engine {

/// A quantile sketch (KLL: a stack of compactors, each half as dense as the one below) for
/// `percentile` aggregates over unbounded input in bounded memory.
///
/// Error bound: for k = 200 (the default) the rank of the returned value differs from the
/// requested rank q·n by at most 1.5 % of n (|rank error| ≤ 0.015·n); below k values the
/// answer is exact. Memory is about 3·k values whatever n is. Sketches of two panes merge into
/// a sketch of their union with the same bound. `sketch_test.cc` checks the bound over many
/// distributions and seeds. Coin flips come from a per-sketch xorshift state so runs (and
/// snapshots) are deterministic. Plain value; one thread at a time.
class quantile_sketch {
public:
    explicit quantile_sketch(uint32_t k = 200);

    void add(double v);
    void merge(const quantile_sketch& other);
    /// The value at rank q·n, q in [0, 1]. Precondition: count() > 0.
    double quantile(double q) const;
    uint64_t count() const { return _n; }
    size_t retained() const;

    void write(state_writer& w) const;
    bool read(state_reader& r);

private:
    size_t capacity(size_t level) const;
    void compress();
    void compact(size_t level);

    uint32_t _k;
    uint64_t _n = 0;
    uint64_t _rng = 0x9E3779B97F4A7C15ULL;
    std::vector<std::vector<double>> _levels;
};

} // namespace runnel::engine
