#pragma once

// The dashboard's recent past: a fixed ring of samples of the figures its charts draw, so a
// page opened now shows the last hour instead of an empty chart. No Asio here; the sampler
// that fills it runs in history.cc.

#include <cstddef>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

namespace runnel::gateway {

/// A ring of `points` samples of up to `max_series` named series.
///
/// Each sample has a time and, per series, a value. Counters (records appended, records read)
/// are handed in as running totals and kept as per-second rates against the previous sample;
/// gauges (watermark lag) are kept as they are. A series missing from a sample has no value
/// there (JSON null); a series with no value left in the ring is forgotten, so deleted topics
/// and pipelines fade out. A series past `max_series` is not kept (`add` counts its values).
/// Memory is bounded by `points × (max_series + 1)` numbers plus the names.
///
/// Thread-safe: `add` runs on the sampler's shard, `to_json` on any connection's shard.
class history {
public:
    /// A series' kind and name, e.g. {"topic", "orders"} or {"pipeline_lag", "counts"}.
    struct key {
        std::string kind;
        std::string name;
        auto operator<=>(const key&) const = default;
    };

    history(std::size_t points, std::size_t max_series);

    /// Adds a sample taken at `t_ms` (epoch ms). `totals` are running counts, turned into
    /// rates per second; `gauges` are kept as given. Returns how many values it refused
    /// because `max_series` other series were kept already.
    std::size_t add(int64_t t_ms, const std::map<key, double>& totals, const std::map<key, double>& gauges);

    /// `{"interval_ms","points","times":[…],"series":[{"kind","name","values":[…]}…]}` with
    /// the samples taken at or after `since_ms`, oldest first.
    std::string to_json(int64_t since_ms, int64_t interval_ms) const;

    std::size_t capacity() const { return _points; }

private:
    /// Stores `v` for `k` in the slot just claimed; false when the series is new and refused.
    bool put(const key& k, double v);

    const std::size_t _points;
    const std::size_t _max_series;
    mutable std::mutex _mu;
    std::vector<int64_t> _times;              ///< ring of sample times; `_head` is the next slot
    std::size_t _head = 0;
    std::size_t _count = 0;
    std::map<key, std::vector<double>> _series; ///< each of `_points` values, NaN: none
    std::map<key, double> _last_totals;
    int64_t _last_t_ms = 0;
};

} // namespace runnel::gateway
