// The dashboard's history: the ring (history.h). The sampler that fills it and its route are in
// history_sampler.cc, so the ring builds (and is unit tested) without the server.

#include "gateway/history.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include <fmt/format.h>

#include "base/text.h"

namespace runnel::gateway {

history::history(std::size_t points, std::size_t max_series)
  : _points(std::max<std::size_t>(points, 2))
  , _max_series(max_series)
  , _times(_points, 0) {}

bool history::put(const key& k, double v) {
    auto it = _series.find(k);
    if (it == _series.end()) {
        if (_series.size() >= _max_series) {
            return false;
        }
        it = _series.emplace(k, std::vector<double>(_points, std::numeric_limits<double>::quiet_NaN())).first;
    }
    it->second[_head] = v;
    return true;
}

std::size_t history::add(int64_t t_ms, const std::map<key, double>& totals, const std::map<key, double>& gauges) {
    std::lock_guard lock(_mu);
    std::size_t refused = 0;
    constexpr double none = std::numeric_limits<double>::quiet_NaN();
    // Clear the slot being reused in every series; forget series left with no value.
    for (auto it = _series.begin(); it != _series.end();) {
        it->second[_head] = none;
        const bool empty = std::all_of(it->second.begin(), it->second.end(), [](double x) { return std::isnan(x); });
        it = empty ? _series.erase(it) : std::next(it);
    }
    const double dt = _count ? double(t_ms - _last_t_ms) / 1000.0 : 0;
    for (const auto& [k, total] : totals) {
        auto before = _last_totals.find(k);
        // A first sight has no rate yet; a total that went down (a topic recreated) restarts.
        if (dt > 0 && before != _last_totals.end() && total >= before->second) {
            refused += put(k, (total - before->second) / dt) ? 0 : 1;
        }
    }
    _last_totals = totals;
    for (const auto& [k, v] : gauges) {
        refused += put(k, v) ? 0 : 1;
    }
    _times[_head] = t_ms;
    _head = (_head + 1) % _points;
    _count = std::min(_count + 1, _points);
    _last_t_ms = t_ms;
    return refused;
}

std::string history::to_json(int64_t since_ms, int64_t interval_ms) const {
    std::lock_guard lock(_mu);
    // Oldest kept sample first.
    std::vector<std::size_t> slots;
    for (std::size_t i = 0; i < _count; ++i) {
        const std::size_t slot = (_head + _points - _count + i) % _points;
        if (_times[slot] >= since_ms) slots.push_back(slot);
    }
    std::string out = fmt::format(R"({{"interval_ms":{},"points":{},"times":[)", interval_ms, _points);
    for (std::size_t i = 0; i < slots.size(); ++i) {
        out += fmt::format("{}{}", i ? "," : "", _times[slots[i]]);
    }
    out += R"(],"series":[)";
    bool first = true;
    for (const auto& [k, values] : _series) {
        out += first ? "{" : ",{";
        first = false;
        out += R"("kind":)" + text::json_string(k.kind) + R"(,"name":)" + text::json_string(k.name) + R"(,"values":[)";
        for (std::size_t i = 0; i < slots.size(); ++i) {
            const double v = values[slots[i]];
            if (i) out += ',';
            out += std::isfinite(v) ? fmt::format("{}", std::round(v * 1000) / 1000) : "null";
        }
        out += "]}";
    }
    out += "]}";
    return out;
}

} // namespace runnel::gateway
