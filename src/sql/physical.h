#pragma once

// The physical step of planning (internal to `sql`): where a parallel dataflow's rows move
// between instances. The planner's operator code asks for an exchange before each keyed
// operator; this decides whether one is needed, through which hook, and how EXPLAIN says it.

#include "engine/engine.h"
#include "sql/error.h"

#include <string>
#include <string_view>
#include <vector>

namespace runnel::sql {

class connector_factory;
struct plan_options;

/// Brings a stream's rows to the instance of their key before a keyed operator, when the plan
/// runs as several instances (`plan_options::parallelism` > 1); with one instance it changes
/// nothing and adds no line to the plan, so one-instance plans stay as they were.
///
/// Built per statement by the planner, on the thread that plans it; holds references to the
/// connector factory (whose `exchange` hook moves the rows) and to the EXPLAIN lines.
class physical_planner {
public:
    physical_planner(connector_factory& conn, const plan_options& opts, std::vector<std::string>& stages);

    /// The rows of `s` every instance holds for this instance's keys: an exchange by `keys`
    /// (engine column names of `s`). No keys (a global aggregate, a Top-N without PARTITION BY)
    /// bring every row to one instance; `why` then says what needs them there. `s` unchanged
    /// with one instance.
    engine::result<engine::stream> by_keys(engine::pipeline& p, engine::stream s, const std::vector<std::string>& keys,
                                           std::string_view why);

    uint32_t parallelism() const;

private:
    connector_factory& _conn;
    const plan_options& _opts;
    std::vector<std::string>& _stages;
};

} // namespace runnel::sql
