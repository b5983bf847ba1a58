#include "sql/physical.h"

#include "sql/planner.h"

#include <fmt/format.h>

#include <algorithm>
#include <optional>

namespace runnel::sql {

physical_planner::physical_planner(connector_factory& conn, const plan_options& opts, std::vector<std::string>& stages)
  : _conn(conn)
  , _opts(opts)
  , _stages(stages) {}

uint32_t physical_planner::parallelism() const {
    return _opts.parallelism;
}

engine::result<engine::stream> physical_planner::by_keys(engine::pipeline& p, engine::stream s,
                                                         const std::vector<std::string>& keys, std::string_view why) {
    return exchange(p, std::move(s), keys, why, false);
}

engine::result<engine::stream> physical_planner::by_join_keys(engine::pipeline& p, engine::stream s,
                                                              const std::vector<std::string>& keys) {
    return exchange(p, std::move(s), keys, "a window join without keys", true);
}

engine::result<engine::stream> physical_planner::exchange(engine::pipeline& p, engine::stream s,
                                                          const std::vector<std::string>& keys, std::string_view why,
                                                          bool exact) {
    if (_opts.parallelism <= 1 || covered(s, keys, exact)) return s;
    auto moved = _conn.exchange(p, std::move(s), keys);
    if (!moved) return moved;
    _partitioned[moved.value().stage_id()] = {keys, moved.value().schema_of()};
    if (keys.empty()) {
        _stages.push_back(fmt::format("exchange to one instance ({}; parallelism {})", why, _opts.parallelism));
    } else {
        std::string names;
        for (const auto& k : keys) names += (names.empty() ? "" : ", ") + k;
        _stages.push_back(fmt::format("exchange by {} (parallelism {})", names, _opts.parallelism));
    }
    return moved;
}

void physical_planner::carry(const engine::stream& from, const engine::stream& to,
                             const std::vector<engine::named_expr>& cols) {
    if (_opts.parallelism <= 1 || !to.schema_of()) return;
    const auto* known = partitioned(from);
    if (auto it = _partitioned.find(from.stage_id());
        !known && !cols.empty() && from.stage_id() == to.stage_id() && it != _partitioned.end()) {
        // The projection was fused into the filter it follows (a filter takes one): the note
        // describes the filter's rows before the projection.
        known = &it->second.keys;
    }
    if (!known) return;
    std::vector<std::string> keys;
    for (const auto& k : *known) {
        std::optional<std::string> name;
        if (cols.empty()) {
            if (to.schema_of()->index_of(k)) name = k;
        } else {
            for (const auto& c : cols) {
                if (c.e.node().op == engine::expr_op::column && c.e.node().name == k) {
                    name = c.name;
                    break;
                }
            }
        }
        if (!name) return; // a key column is gone: the rows are no longer known to be partitioned
        keys.push_back(std::move(*name));
    }
    _partitioned[to.stage_id()] = {std::move(keys), to.schema_of()};
}

bool physical_planner::covered(const engine::stream& s, const std::vector<std::string>& keys, bool exact) const {
    const auto* known = partitioned(s);
    if (!known) return false;
    const auto& have = *known;
    // Every row of a key is in its instance already.
    return exact ? have == keys : std::all_of(have.begin(), have.end(), [&](const std::string& k) {
        return std::find(keys.begin(), keys.end(), k) != keys.end();
    });
}

bool physical_planner::needs_exchange(const engine::stream& s, const std::vector<std::string>& keys) const {
    return _opts.parallelism > 1 && !covered(s, keys, false);
}

const std::vector<std::string>* physical_planner::partitioned(const engine::stream& s) const {
    auto it = _partitioned.find(s.stage_id());
    if (it == _partitioned.end() || !s.schema_of() || it->second.schema != s.schema_of()) return nullptr;
    return &it->second.keys;
}

} // namespace runnel::sql
