#pragma once

#include "engine/exchange.h"

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace runnel::engine {

/// The exchanges of one dataflow that runs as N instances, each instance a `pipeline` of its
/// own. Every instance builds the same dataflow, so the k-th exchange instance i asks for is
/// the k-th every other instance asks for: the set makes it on the first request and hands
/// the same one to the others. A SQL plan asks for one before each keyed operator.
///
/// Build every instance (on one thread, or one after another) before any of them runs; from
/// then on the set is only read, and each exchange is as thread-safe as `exchange` says.
class exchange_set {
public:
    exchange_set(uint32_t parallelism, size_t capacity = 8)
      : _n(parallelism)
      , _capacity(capacity)
      , _next(parallelism, 0)
      , _wakers(parallelism) {}
    exchange_set(const exchange_set&) = delete;
    exchange_set& operator=(const exchange_set&) = delete;

    uint32_t parallelism() const { return _n; }
    /// `s.exchange(x, instance, keys)` through the set's next exchange for `instance`, made
    /// with `routing` by the first instance that asks (the others must ask for the same).
    stream exchange(stream s, uint32_t instance, std::vector<std::string> keys, key_routing routing);
    /// How to wake `instance` (see `exchange::set_waker`), for every exchange, later ones too.
    void set_waker(uint32_t instance, std::function<void()> wake);
    /// Sums over the set's exchanges (see `exchange::sent_by`, `taken_by`).
    uint64_t sent_by(uint32_t instance) const;
    uint64_t taken_by(uint32_t instance) const;
    size_t size() const { return _xs.size(); }

private:
    uint32_t _n;
    size_t _capacity;
    std::vector<std::unique_ptr<engine::exchange>> _xs;
    std::vector<size_t> _next;                   ///< per instance: exchanges asked for so far
    std::vector<std::function<void()>> _wakers;  ///< per instance
};

/// Runs `instances` (the pipelines of one dataflow joined by `xs`), each on a thread of its
/// own, until every one has ended; an instance with nothing to do sleeps until an exchange
/// wakes it (or 1 ms passes). The first failure stops every instance and is returned. With
/// `cpu`, it receives the CPU time each instance's thread used (what a benchmark on a busy
/// machine compares). For bounded inputs (tests, benchmarks); jobs run their instances on the
/// shards instead.
result<void> run_parallel(const std::vector<pipeline*>& instances, exchange_set& xs,
                          std::vector<std::chrono::nanoseconds>* cpu = nullptr);

/// CPU time the calling thread has used so far.
std::chrono::nanoseconds thread_cpu_time();

} // namespace runnel::engine
