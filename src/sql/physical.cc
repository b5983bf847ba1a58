#include "sql/physical.h"

#include "sql/planner.h"

#include <fmt/format.h>

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
    if (_opts.parallelism <= 1) return s;
    auto moved = _conn.exchange(p, std::move(s), keys);
    if (!moved) return moved;
    if (keys.empty()) {
        _stages.push_back(fmt::format("exchange to one instance ({}; parallelism {})", why, _opts.parallelism));
    } else {
        std::string names;
        for (const auto& k : keys) names += (names.empty() ? "" : ", ") + k;
        _stages.push_back(fmt::format("exchange by {} (parallelism {})", names, _opts.parallelism));
    }
    return moved;
}

} // namespace runnel::sql
