#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "sql/ast.h"
#include "sql/catalog.h"
#include "sql/catalog_store.h"
#include "sql/error.h"
#include "sql/planner.h"

namespace runnel::sql {

/// What one statement of a session did, or asks its caller to do.
enum class step_kind {
    declare_table,  ///< CREATE TABLE: `name`, `existed` when the catalog kept what it had
    declare_view,   ///< CREATE VIEW (not materialized): as a table
    setting,        ///< SET / RESET
    explain,        ///< EXPLAIN …: `plan`
    show_tables,    ///< SHOW TABLES: `names`
    show_views,     ///< SHOW VIEWS: `names` of the catalog's views (the caller adds materialized ones)
    show_create,    ///< SHOW CREATE TABLE | VIEW: `name`, `create_text` with secrets masked
    drop,           ///< DROP TABLE | VIEW: `name`, `existed` false for IF EXISTS of nothing
    start_pipeline, ///< INSERT INTO or CREATE MATERIALIZED VIEW: the caller submits `pipeline`
    caller,         ///< for the caller alone: SHOW JOBS | MATERIALIZED VIEWS | FUNCTIONS, STOP JOB,
                    ///< DROP MATERIALIZED VIEW, a query on its own
};

/// A pipeline a statement starts, self-contained: later DROPs, catalog changes and restarts do
/// not change it.
struct pipeline_request {
    /// The catalog's declarations the statement uses, one per line (`catalog_text`).
    std::string catalog;
    /// The user's text with every statement blanked but the declarations and planner settings
    /// before this statement and the statement itself (`keep_statements`): errors found when
    /// the pipeline starts point at the user's own line and column.
    std::string script;
    /// `SET 'parallelism.default'` at this point.
    uint32_t parallelism = 1;
    /// `SET 'pipeline.name'` given since the previous pipeline, or empty.
    std::string name;
    /// The plan (when the session plans pipelines), for an EXPLAIN-only request.
    std::string plan;
};

/// One statement's outcome.
struct step {
    step_kind kind = step_kind::caller;
    std::string name;
    bool existed = false;
    std::string plan;
    std::vector<std::string> names;
    std::string create_text;
    pipeline_request pipeline;
};

/// How a session works.
struct session_options {
    /// The check CREATE TABLE's options pass (`jobs::connector_check()` in a server).
    options_check check;
    /// Plan each INSERT and materialized view as it is met (errors at the user's line and
    /// column before anything starts), and give the plan. A pipeline planning its own
    /// statement when it starts turns this off.
    bool plan_pipelines = true;
    /// The instances a pipeline runs as unless the script sets `parallelism.default` (a
    /// server's: its shards, `--sql-parallelism`).
    uint32_t parallelism = 1;
};

/// A SQL session: interprets a script's statements one at a time against a catalog, as
/// Flink's SQL client does. It owns the planner settings (`SET`, `plan_options`), the script's
/// own declarations and the changes it makes to the catalog; it answers a `step` per
/// statement. What needs the jobs manager (submitting a pipeline, stopping a job, listing
/// jobs and materialized views) stays with the caller: the step says what to do.
///
/// Catalog changes (CREATE, DROP) are seen at once by the script's later statements and made
/// in the shared `catalog_store` by `commit`, all of them when the script succeeded (a failed
/// or EXPLAIN-only request leaves the catalog as it was). TEMPORARY tables and views live in
/// the session only.
///
/// Not thread-safe: one session per request, on the thread that runs it (the store it shares
/// is thread-safe).
class session {
public:
    session(catalog_store& store, session_options opts);
    session(const session&) = delete;
    session& operator=(const session&) = delete;
    ~session();

    /// Parses `text` as the script to run; `statements()` is then its statements.
    parse_result<std::size_t> begin(std::string text);
    const std::vector<statement>& statements() const { return _script; }
    const std::string& text() const { return _text; }

    /// Runs statement `index` (in order). An error points at the user's line and column; the
    /// statements before it keep their effect in the session.
    parse_result<step> execute(std::size_t index);

    /// Makes the session's catalog changes in the store, in order; an error (another session
    /// created the name meanwhile, the entry limit, a failed write) points at its statement.
    parse_result<bool> commit();

    /// The names the script's statements resolve against: its own declarations over the store.
    const catalog& names() const;
    const plan_options& options() const { return _popts; }

private:
    class layered;

    parse_result<step> declare(const statement& st, std::size_t index);
    parse_result<step> drop(const drop_stmt& d);
    parse_result<step> show_create(const show_stmt& s);
    parse_result<step> pipeline(const statement& st, std::size_t index);

    catalog_store& _store;
    session_options _opts;
    std::unique_ptr<layered> _names;
    plan_options _popts;
    plan_options _base; ///< what RESET goes back to
    std::string _text;
    std::vector<statement> _script;
    std::vector<bool> _kept;   ///< statements a pipeline started later keeps
    std::string _next_name;    ///< SET 'pipeline.name'
    std::vector<catalog_change> _changes;
};

} // namespace runnel::sql
