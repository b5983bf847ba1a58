#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <initializer_list>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/assert.h"

namespace runnel::metrics {

/// A monotonically growing count (requests served, bytes sent).
///
/// Updated from any thread with one relaxed atomic add: no lock, no allocation. Lives as long
/// as the registry that made it; callers keep the reference.
class counter {
public:
    void inc(uint64_t n = 1) noexcept { _value.fetch_add(n, std::memory_order_relaxed); }
    uint64_t value() const noexcept { return _value.load(std::memory_order_relaxed); }

private:
    alignas(64) std::atomic<uint64_t> _value{0};
};

/// A value that goes up and down (connected clients, queue fill). Any thread; lock-free.
class gauge {
public:
    void set(double v) noexcept { _value.store(v, std::memory_order_relaxed); }
    void add(double v) noexcept { _value.fetch_add(v, std::memory_order_relaxed); }
    void sub(double v) noexcept { _value.fetch_sub(v, std::memory_order_relaxed); }
    double value() const noexcept { return _value.load(std::memory_order_relaxed); }

private:
    alignas(64) std::atomic<double> _value{0};
};

/// A distribution over fixed bucket bounds (Prometheus' cumulative `le` buckets are computed
/// when rendered). `observe` is a binary search plus three relaxed atomic adds; any thread.
class histogram {
public:
    /// `bounds` are the upper bounds of the buckets, strictly increasing; +Inf is implied.
    explicit histogram(std::span<const double> bounds);

    void observe(double v) noexcept;

    struct snapshot {
        std::vector<double> bounds;
        std::vector<uint64_t> counts; ///< per bucket (not cumulative), one more than bounds (+Inf)
        double sum = 0;
        uint64_t count = 0;
    };
    snapshot read() const;

    /// Exponential bounds: `start`, `start*factor`, … (`n` of them).
    static std::vector<double> exponential(double start, double factor, std::size_t n);

private:
    std::vector<double> _bounds;
    std::unique_ptr<std::atomic<uint64_t>[]> _counts;
    std::atomic<double> _sum{0};
    std::atomic<uint64_t> _count{0};
};

/// A named metric with a label set per child: `requests_total{route="/v1/topics",status="200"}`.
///
/// `with` finds or makes the child for a list of label values (one per label name, in order)
/// under a mutex; the update path is the child's own lock-free method, so hot callers look a
/// child up once and keep the reference (children are never moved or freed before the registry).
template <typename Metric>
class family {
public:
    Metric& with(std::initializer_list<std::string_view> values) {
        return with(std::vector<std::string>(values.begin(), values.end()));
    }
    Metric& with(std::vector<std::string> values);

    const std::string& name() const noexcept { return _name; }
    const std::string& help() const noexcept { return _help; }
    const std::vector<std::string>& label_names() const noexcept { return _labels; }

    /// Calls `f(label_values, metric)` for every child, in label order, under the mutex.
    template <typename F>
    void for_each(F&& f) const {
        std::lock_guard lock(_mu);
        for (const auto& [values, m] : _children) {
            f(values, *m);
        }
    }

private:
    friend class registry;
    template <typename... A>
    family(std::string name, std::string help, std::vector<std::string> labels, A&&... make_args);

    std::string _name;
    std::string _help;
    std::vector<std::string> _labels;
    std::function<std::unique_ptr<Metric>()> _make;
    mutable std::mutex _mu;
    std::map<std::vector<std::string>, std::unique_ptr<Metric>> _children;
};

/// One label of a sample reported by a collector.
struct label {
    std::string name;
    std::string value;
};

/// Where a collector reports the samples it computes at scrape time.
class sample_sink {
public:
    void gauge(std::string_view name, std::string_view help, std::vector<label> labels, double value) {
        add(name, help, "gauge", std::move(labels), value);
    }
    void counter(std::string_view name, std::string_view help, std::vector<label> labels, double value) {
        add(name, help, "counter", std::move(labels), value);
    }

private:
    friend class registry;
    struct sample {
        std::vector<label> labels;
        double value;
    };
    struct group {
        std::string help;
        std::string type;
        std::vector<sample> samples;
    };
    void add(std::string_view name, std::string_view help, std::string_view type, std::vector<label> labels,
             double value);
    std::map<std::string, group, std::less<>> _groups;
};

/// Every metric of the process, rendered in the Prometheus text format (version 0.0.4).
///
/// Metrics are registered once (start-up, or the first time a module needs one) and updated
/// from any shard without locks. Collectors are callbacks run by `render` at scrape time, on
/// the scraping thread, for values that live elsewhere (partition sizes, process memory); a
/// collector must be quick and thread-safe and is removed when its handle is destroyed.
/// Registration, collectors and `render` take the registry's mutex; updates never do.
class registry {
public:
    registry() = default;
    registry(const registry&) = delete;
    registry& operator=(const registry&) = delete;

    /// Finds or registers a family. Registering a name again with another type or other label
    /// names is a bug (asserted).
    family<counter>& counters(std::string name, std::string help, std::vector<std::string> labels = {});
    family<gauge>& gauges(std::string name, std::string help, std::vector<std::string> labels = {});
    family<histogram>& histograms(std::string name, std::string help, std::vector<std::string> labels,
                                  std::vector<double> bounds);

    /// A metric without labels.
    counter& counter_(std::string name, std::string help) { return counters(std::move(name), std::move(help)).with({}); }
    gauge& gauge_(std::string name, std::string help) { return gauges(std::move(name), std::move(help)).with({}); }

    using collector = std::function<void(sample_sink&)>;

    /// Removes its collector when destroyed (or `reset`). Must not outlive the registry.
    class collector_handle {
    public:
        collector_handle() = default;
        collector_handle(collector_handle&& o) noexcept : _reg(o._reg), _id(o._id) { o._reg = nullptr; }
        collector_handle& operator=(collector_handle&& o) noexcept;
        ~collector_handle() { reset(); }
        void reset();

    private:
        friend class registry;
        collector_handle(registry* r, uint64_t id) : _reg(r), _id(id) {}
        registry* _reg = nullptr;
        uint64_t _id = 0;
    };
    [[nodiscard]] collector_handle add_collector(collector fn);

    /// The whole exposition: `# HELP`, `# TYPE` and samples of every family and collector,
    /// sorted by metric name.
    std::string render() const;

private:
    struct entry {
        std::string type;
        std::vector<std::string> labels;
        std::shared_ptr<void> family; // family<counter|gauge|histogram>
        std::function<void(std::string&)> render;
    };
    template <typename Metric, typename... A>
    family<Metric>& find_or_add(std::string name, std::string help, std::vector<std::string> labels,
                                std::string type, A&&... make_args);

    mutable std::mutex _mu;
    std::map<std::string, entry, std::less<>> _families;
    std::map<uint64_t, collector> _collectors;
    uint64_t _next_collector = 1;
};

template <typename Metric>
template <typename... A>
family<Metric>::family(std::string name, std::string help, std::vector<std::string> labels, A&&... make_args)
  : _name(std::move(name))
  , _help(std::move(help))
  , _labels(std::move(labels))
  , _make([... args = std::forward<A>(make_args)] { return std::make_unique<Metric>(args...); }) {}

template <typename Metric>
Metric& family<Metric>::with(std::vector<std::string> values) {
    RUNNEL_ASSERT(values.size() == _labels.size(), "one label value per label name");
    std::lock_guard lock(_mu);
    auto& slot = _children[std::move(values)];
    if (!slot) {
        slot = _make();
    }
    return *slot;
}

/// The registry of the process: what `/metrics` serves.
registry& default_registry();

/// Text-format helpers (exposed for tests and for other exporters).
std::string escape_label_value(std::string_view v);
std::string format_value(double v);

} // namespace runnel::metrics
