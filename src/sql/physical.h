#pragma once

// The physical step of planning (internal to `sql`): where a parallel dataflow's rows move
// between instances. The planner's operator code asks for an exchange before each keyed
// operator; this decides whether one is needed, through which hook, and how EXPLAIN says it.

#include "engine/engine.h"
#include "sql/error.h"

#include <map>
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
/// It remembers how streams are partitioned: the output of an exchange holds, in each
/// instance, every row of its keys' values, and so does whatever the planner derives from it
/// row by row while keeping the key columns (`carry`: filters, projections, the keyed
/// operators themselves). A keyed operator over a stream already partitioned by a subset of
/// its keys needs no exchange (a join side: by exactly its join keys, so that both sides are
/// hashed alike). A stream nobody told it about is not partitioned, which is always safe.
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
    /// `by_keys` for one side of a join, whose other side is exchanged by its own keys in the
    /// same order: a partitioning counts only when it is by exactly `keys`.
    engine::result<engine::stream> by_join_keys(engine::pipeline& p, engine::stream s,
                                                const std::vector<std::string>& keys);
    /// `to` is computed from `from` row by row in each instance, with the columns `cols` (a
    /// projection; none: the same column names, as a filter or a keyed operator whose output
    /// keeps its keys): it keeps `from`'s partitioning where the key columns survive.
    void carry(const engine::stream& from, const engine::stream& to, const std::vector<engine::named_expr>& cols = {});
    /// True when `by_keys(p, s, keys, …)` would move rows: several instances, and `s` not
    /// known to be partitioned by a subset of `keys`. An aggregate plans a local phase only
    /// then (with no exchange, every row of a key is already where the one phase runs).
    bool needs_exchange(const engine::stream& s, const std::vector<std::string>& keys) const;

    uint32_t parallelism() const;

private:
    engine::result<engine::stream> exchange(engine::pipeline& p, engine::stream s, const std::vector<std::string>& keys,
                                            std::string_view why, bool exact);
    /// `s` is known to be partitioned so that a keyed operator by `keys` needs no exchange.
    bool covered(const engine::stream& s, const std::vector<std::string>& keys, bool exact) const;

    connector_factory& _conn;
    const plan_options& _opts;
    std::vector<std::string>& _stages;
    /// The key columns a stream's rows are partitioned by (empty: every row in one instance).
    struct partitioning {
        std::vector<std::string> keys;
        /// The stream's schema when it was noted: a projection fused into a filter keeps the
        /// stage but changes its schema, and the note no longer holds.
        engine::schema_ptr schema;
    };
    /// The partitioning of `s`, if known.
    const std::vector<std::string>* partitioned(const engine::stream& s) const;
    /// By stage id of the plan's one pipeline.
    std::map<size_t, partitioning> _partitioned;
};

} // namespace runnel::sql
