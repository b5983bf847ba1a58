#pragma once

// How a SQL job reads and writes a table: one factory per connector of
// `connect::connector_registry`, found by the connector's id or alias.

#include <memory>
#include <string_view>

#include "jobs/jobs.h"
#include "sql/planner.h"

namespace runnel::jobs {

/// Where a connector builds one job instance's sources and sinks: the instance's context and
/// the job's definition (its id names transactional ids, client ids and side topics).
struct table_io {
    job_context& ctx;
    const job_definition& def;
};

/// How SQL jobs read and write the tables of one connector: the factory behind an entry of
/// `connect::connector_registry`, which declares the connector's id, aliases and options and
/// has checked a table's options against them before a factory sees the table. Stateless and
/// shared by every job; called on an instance's shard while its pipeline is built.
class table_connector {
public:
    table_connector() = default;
    table_connector(const table_connector&) = delete;
    table_connector& operator=(const table_connector&) = delete;
    virtual ~table_connector() = default;

    /// A stream of table `t`'s physical `columns`, this instance's share of them. The default
    /// refuses: the connector only writes.
    virtual engine::result<engine::stream> source(table_io io, const sql::table_schema& t,
                                                  const engine::schema_ptr& columns) const;
    /// Consumes this instance's `rows` into table `t`. The default refuses: the connector
    /// only reads.
    virtual engine::result<void> sink(table_io io, engine::stream rows, const sql::table_schema& t) const;
    /// True when a table ends after the rows it holds: a lookup join then reads it whole first.
    virtual bool bounded(const sql::table_schema& t) const;
    /// Sets what the connector knows of its partitions in `w`, which already holds the
    /// table's idle timeout and name. The default: one partition.
    virtual void watermarks(table_io io, const sql::table_schema& t, engine::watermark_options& w) const;
};

/// The factory of the connector that `id` names (an id or alias in `connect::connector_registry`,
/// any case), or null when there is none.
const table_connector* find_table_connector(std::string_view id);

/// The planner's connectors for one job instance: each table is read and written through
/// the factory of its 'connector'.
std::unique_ptr<sql::connector_factory> job_connectors(job_context& ctx, const job_definition& def);

} // namespace runnel::jobs
