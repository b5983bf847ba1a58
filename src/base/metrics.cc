#include "base/metrics.h"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

namespace runnel::metrics {

histogram::histogram(std::span<const double> bounds)
  : _bounds(bounds.begin(), bounds.end())
  , _counts(new std::atomic<uint64_t>[bounds.size() + 1]) {
    for (std::size_t i = 1; i < _bounds.size(); ++i) {
        RUNNEL_ASSERT(_bounds[i - 1] < _bounds[i], "histogram bounds must increase");
    }
    for (std::size_t i = 0; i <= _bounds.size(); ++i) {
        _counts[i].store(0, std::memory_order_relaxed);
    }
}

void histogram::observe(double v) noexcept {
    auto i = static_cast<std::size_t>(std::lower_bound(_bounds.begin(), _bounds.end(), v) - _bounds.begin());
    _counts[i].fetch_add(1, std::memory_order_relaxed);
    _sum.fetch_add(v, std::memory_order_relaxed);
    _count.fetch_add(1, std::memory_order_relaxed);
}

histogram::snapshot histogram::read() const {
    snapshot s;
    s.bounds = _bounds;
    s.counts.resize(_bounds.size() + 1);
    for (std::size_t i = 0; i <= _bounds.size(); ++i) {
        s.counts[i] = _counts[i].load(std::memory_order_relaxed);
    }
    s.sum = _sum.load(std::memory_order_relaxed);
    s.count = _count.load(std::memory_order_relaxed);
    return s;
}

std::vector<double> histogram::exponential(double start, double factor, std::size_t n) {
    std::vector<double> out;
    out.reserve(n);
    for (double b = start; out.size() < n; b *= factor) {
        out.push_back(b);
    }
    return out;
}

std::string escape_label_value(std::string_view v) {
    std::string out;
    out.reserve(v.size());
    for (char c : v) {
        switch (c) {
        case '\\':
            out += "\\\\";
            break;
        case '"':
            out += "\\\"";
            break;
        case '\n':
            out += "\\n";
            break;
        default:
            out += c;
        }
    }
    return out;
}

namespace {

std::string escape_help(std::string_view v) {
    std::string out;
    for (char c : v) {
        if (c == '\\') {
            out += "\\\\";
        } else if (c == '\n') {
            out += "\\n";
        } else {
            out += c;
        }
    }
    return out;
}

void header(std::string& out, std::string_view name, std::string_view help, std::string_view type) {
    fmt::format_to(std::back_inserter(out), "# HELP {} {}\n# TYPE {} {}\n", name, escape_help(help), name, type);
}

/// `{a="x",b="y"}` (empty when there are no labels), with an optional extra label last.
std::string label_text(const std::vector<std::string>& names, const std::vector<std::string>& values,
                       std::string_view extra_name = {}, std::string_view extra_value = {}) {
    if (names.empty() && extra_name.empty()) {
        return {};
    }
    std::string out = "{";
    for (std::size_t i = 0; i < names.size(); ++i) {
        if (i) {
            out += ',';
        }
        fmt::format_to(std::back_inserter(out), "{}=\"{}\"", names[i], escape_label_value(values[i]));
    }
    if (!extra_name.empty()) {
        if (!names.empty()) {
            out += ',';
        }
        fmt::format_to(std::back_inserter(out), "{}=\"{}\"", extra_name, extra_value);
    }
    out += '}';
    return out;
}

bool valid_name(std::string_view n) {
    if (n.empty() || (n[0] >= '0' && n[0] <= '9')) {
        return false;
    }
    return std::all_of(n.begin(), n.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == ':';
    });
}

} // namespace

std::string format_value(double v) {
    if (std::isnan(v)) {
        return "NaN";
    }
    if (std::isinf(v)) {
        return v > 0 ? "+Inf" : "-Inf";
    }
    if (v == std::floor(v) && std::fabs(v) < 1e15) {
        return fmt::format("{}", static_cast<int64_t>(v));
    }
    return fmt::format("{}", v);
}

template <typename Metric, typename... A>
family<Metric>& registry::find_or_add(std::string name, std::string help, std::vector<std::string> labels,
                                      std::string type, A&&... make_args) {
    RUNNEL_ASSERT(valid_name(name), "metric names are [a-zA-Z_:][a-zA-Z0-9_:]*");
    std::lock_guard lock(_mu);
    if (auto it = _families.find(name); it != _families.end()) {
        RUNNEL_ASSERT(it->second.type == type && it->second.labels == labels,
                      "a metric registered twice must keep its type and labels");
        return *static_cast<family<Metric>*>(it->second.family.get());
    }
    auto fam = std::shared_ptr<family<Metric>>(
      new family<Metric>(name, std::move(help), labels, std::forward<A>(make_args)...));
    entry e{type, std::move(labels), fam, {}};
    auto* f = fam.get();
    e.render = [f, type](std::string& out) {
        header(out, f->name(), f->help(), type);
        f->for_each([&](const std::vector<std::string>& values, const Metric& m) {
            if constexpr (std::is_same_v<Metric, histogram>) {
                auto s = m.read();
                uint64_t cumulative = 0;
                for (std::size_t i = 0; i < s.counts.size(); ++i) {
                    cumulative += s.counts[i];
                    auto le = i < s.bounds.size() ? format_value(s.bounds[i]) : std::string("+Inf");
                    fmt::format_to(std::back_inserter(out), "{}_bucket{} {}\n", f->name(),
                                   label_text(f->label_names(), values, "le", le), cumulative);
                }
                auto labels = label_text(f->label_names(), values);
                fmt::format_to(std::back_inserter(out), "{}_sum{} {}\n{}_count{} {}\n", f->name(), labels,
                               format_value(s.sum), f->name(), labels, s.count);
            } else {
                fmt::format_to(std::back_inserter(out), "{}{} {}\n", f->name(), label_text(f->label_names(), values),
                               format_value(static_cast<double>(m.value())));
            }
        });
    };
    _families.emplace(std::move(name), std::move(e));
    return *f;
}

family<counter>& registry::counters(std::string name, std::string help, std::vector<std::string> labels) {
    return find_or_add<counter>(std::move(name), std::move(help), std::move(labels), "counter");
}

family<gauge>& registry::gauges(std::string name, std::string help, std::vector<std::string> labels) {
    return find_or_add<gauge>(std::move(name), std::move(help), std::move(labels), "gauge");
}

family<histogram>& registry::histograms(std::string name, std::string help, std::vector<std::string> labels,
                                        std::vector<double> bounds) {
    return find_or_add<histogram>(std::move(name), std::move(help), std::move(labels), "histogram",
                                  std::move(bounds));
}

registry::collector_handle& registry::collector_handle::operator=(collector_handle&& o) noexcept {
    if (this != &o) {
        reset();
        _reg = o._reg;
        _id = o._id;
        o._reg = nullptr;
    }
    return *this;
}

void registry::collector_handle::reset() {
    if (_reg) {
        std::lock_guard lock(_reg->_mu);
        _reg->_collectors.erase(_id);
        _reg = nullptr;
    }
}

registry::collector_handle registry::add_collector(collector fn) {
    std::lock_guard lock(_mu);
    auto id = _next_collector++;
    _collectors.emplace(id, std::move(fn));
    return collector_handle(this, id);
}

void sample_sink::add(std::string_view name, std::string_view help, std::string_view type, std::vector<label> labels,
                      double value) {
    RUNNEL_ASSERT(valid_name(name), "metric names are [a-zA-Z_:][a-zA-Z0-9_:]*");
    auto it = _groups.find(name);
    if (it == _groups.end()) {
        it = _groups.emplace(std::string(name), group{std::string(help), std::string(type), {}}).first;
    }
    it->second.samples.push_back({std::move(labels), value});
}

std::string registry::render() const {
    std::lock_guard lock(_mu);
    sample_sink sink;
    for (const auto& [id, fn] : _collectors) {
        fn(sink);
    }
    // Families and collected groups, merged in name order.
    std::string out;
    auto fam = _families.begin();
    auto grp = sink._groups.begin();
    while (fam != _families.end() || grp != sink._groups.end()) {
        const bool take_family = grp == sink._groups.end() || (fam != _families.end() && fam->first <= grp->first);
        if (take_family) {
            if (grp != sink._groups.end() && fam->first == grp->first) {
                ++grp; // a registered family wins over a collector reporting the same name
            }
            fam->second.render(out);
            ++fam;
            continue;
        }
        header(out, grp->first, grp->second.help, grp->second.type);
        for (const auto& s : grp->second.samples) {
            std::string labels;
            if (!s.labels.empty()) {
                labels = "{";
                for (std::size_t i = 0; i < s.labels.size(); ++i) {
                    fmt::format_to(std::back_inserter(labels), "{}{}=\"{}\"", i ? "," : "", s.labels[i].name,
                                   escape_label_value(s.labels[i].value));
                }
                labels += '}';
            }
            fmt::format_to(std::back_inserter(out), "{}{} {}\n", grp->first, labels, format_value(s.value));
        }
        ++grp;
    }
    return out;
}

registry& default_registry() {
    static registry r;
    return r;
}

} // namespace runnel::metrics
