#pragma once

#include "engine/engine.h"
#include "sql/ast.h"
#include "sql/binder.h"
#include "sql/catalog.h"
#include "sql/error.h"
#include "sql/hints.h"

#include <chrono>
#include <optional>
#include <string>
#include <vector>

namespace runnel::sql {

/// Where the planner gets a table's rows and puts a sink's rows: the seam between SQL and the
/// connectors (the embedded log, a Kafka cluster, files; an in-memory table in tests).
///
/// Called on the thread that plans the statement, while the pipeline is being built; the
/// streams it returns and takes belong to that pipeline. Errors carry a message the planner
/// reports at the position of the table's name.
class connector_factory {
public:
    connector_factory() = default;
    connector_factory(const connector_factory&) = delete;
    connector_factory& operator=(const connector_factory&) = delete;
    virtual ~connector_factory();

    /// A stream of table `t`'s rows with exactly the columns of `columns` (its physical
    /// columns, in declared order, decoded). Computed columns and the watermark are the
    /// planner's work, not the connector's.
    virtual engine::result<engine::stream> source(engine::pipeline& p, const table_schema& t,
                                                  const engine::schema_ptr& columns) = 0;

    /// A stream of `rows` given once, then ended: what a SELECT without FROM reads (one row
    /// of no column the query can name). The default yields them from memory.
    virtual engine::result<engine::stream> constant(engine::pipeline& p, engine::batch rows);

    /// Consumes `rows`, whose columns are the physical columns of sink table `t` (named and
    /// typed as `physical_schema(t)` says), in order.
    virtual engine::result<void> sink(engine::stream rows, const table_schema& t) = 0;

    /// How table `t`'s watermark is generated: the partitions known up front (each holds the
    /// watermark back until it sends or goes idle) and the idle timeout. The default suits
    /// one partition.
    virtual engine::watermark_options watermarks(const table_schema& t) {
        (void)t;
        return {};
    }

    /// True when table `t`'s source ends after the rows it holds (a file): a lookup join then
    /// reads all of it before it joins the first stream row, as Flink loads a bounded lookup
    /// table whole. The default, false, suits tables that keep changing (a compacted topic).
    virtual bool bounded(const table_schema& t) {
        (void)t;
        return false;
    }

    /// Brings every row of `s` to the instance of a parallel dataflow its `keys` (columns of
    /// `s`) belong to, and returns the rows every instance sent to this one; with no keys,
    /// every row goes to one instance. The planner calls it before each keyed operator, and
    /// only when `plan_options::parallelism` is above 1; the owner of the instances (a job)
    /// joins them with an `engine::exchange`. The default returns `s` unchanged: one instance
    /// holds every key (and EXPLAIN still shows where the exchanges go).
    virtual engine::result<engine::stream> exchange(engine::pipeline& p, engine::stream s,
                                                    const std::vector<std::string>& keys) {
        (void)p;
        (void)keys;
        return s;
    }
};

/// How a splittable aggregate runs when the plan has several instances (Flink's
/// `table.optimizer.agg-phase-strategy`).
enum class agg_phase_strategy : uint8_t {
    /// Two phases wherever they can run (see `two_phase`); the default, `AUTO`.
    automatic,
    /// Always one phase: every row crosses the exchange to its key's instance.
    one_phase,
    /// Two phases wherever they can run; the same plans as `automatic` today, kept apart so
    /// a script that asks for two phases keeps them if `automatic` learns to weigh its input.
    two_phase,
};

/// Settings of one planning.
struct plan_options {
    /// How long after its end a window still accepts rows (the engine's allowed lateness).
    std::chrono::milliseconds allowed_lateness{0};
    /// Most windows one row may be assigned to (size / slide of HOP, size / step of CUMULATE);
    /// a window over more is refused, since every row is copied into each of its windows.
    /// `SET 'table.exec.window.max-windows-per-row' = 'N'`.
    int64_t max_windows_per_row = 1000;
    /// Instances the dataflow runs as, each on its own thread with a share of the sources.
    /// Above 1 the planner brings rows to their key's instance
    /// (`connector_factory::exchange`) before every keyed operator; 1 plans no exchange.
    /// `SET 'parallelism.default' = 'N'`.
    uint32_t parallelism = 1;
    /// With parallelism above 1: whether an aggregate whose functions all merge (COUNT, SUM,
    /// MIN, MAX, AVG) runs as a local phase before the exchange and a global phase after it
    /// (decision 0029). `SET 'table.optimizer.agg-phase-strategy' = 'AUTO'|'ONE_PHASE'|'TWO_PHASE'`.
    agg_phase_strategy agg_phases = agg_phase_strategy::automatic;
};

/// The SQL option that sets `plan_options::max_windows_per_row`.
inline constexpr std::string_view max_windows_per_row_key = "table.exec.window.max-windows-per-row";
/// The SQL option (Flink's name) that sets `plan_options::parallelism`.
inline constexpr std::string_view parallelism_key = "parallelism.default";
/// The SQL option (Flink's name) that sets `plan_options::agg_phases`.
inline constexpr std::string_view agg_phase_strategy_key = "table.optimizer.agg-phase-strategy";

/// Applies a `SET 'key' = 'value'` that changes how statements are planned; false when the
/// key is not a planner option (the caller may know it), an error at the statement when
/// the value is not acceptable. `RESET 'key'` puts a planner option back to its value in
/// `base` (the session's starting options) and `RESET` all of them.
parse_result<bool> apply_setting(const set_stmt& s, source_pos pos, plan_options& opts,
                                 const plan_options& base = {});

/// A planned statement: the pipeline holds its stages, these are the handles on its ends.
struct planned_statement {
    /// The rows of a query, for the caller to sink. Empty for INSERT (already given to the
    /// sink table's connector).
    engine::stream output;
    /// The output column names of the query (for INSERT: the sink's columns).
    std::vector<std::string> columns;
    /// The late side outputs of the windows, one per window stage: rows that arrived after
    /// every window they belong to had fired, with a `reason` column. The caller routes them
    /// (a dead-letter topic, a test's expectations); left unconnected they are counted in
    /// the window stage's `late_rows` metric and dropped.
    std::vector<engine::stream> late;
    /// One line per stage, source first: what `EXPLAIN` prints.
    std::vector<std::string> stages;
    /// Empty when the output is append-only (every row an insert). Otherwise it is a
    /// changelog — rows carry `engine::row_kind`s that update or retract earlier rows — and
    /// this says what makes it one ("GROUP BY without a window", "a Top-N without a window",
    /// "deduplication keeping the last row"). An INSERT into a table with a PRIMARY KEY hands
    /// its sink upsert rows: inserts and update_afters (write the row for its key) and deletes
    /// (delete the key), never update_befores.
    std::string updating;
};

/// The engine type a SQL type is held in: integers as int64, FLOAT/DOUBLE/DECIMAL as
/// float64, character types as strings, TIMESTAMP/TIMESTAMP_LTZ as millisecond timestamps,
/// a ROW as its BOOLEAN null flag (its fields are columns of their own: decision 0015).
/// Nothing for the types the engine cannot hold yet (DATE, TIME, BYTES, intervals, ARRAY,
/// MAP).
std::optional<engine::data_type> engine_type(const data_type& t);

/// The engine schema of table `t`'s physical columns (not computed, not metadata), in order.
/// The error names the first column whose type the engine cannot hold.
parse_result<engine::schema_ptr> physical_schema(const table_schema& t);

/// Turns checked statements into engine pipelines.
///
/// Supported (docs/sql.md, "What runs", has the details):
/// - `INSERT INTO sink [(columns)] SELECT …` and queries;
/// - FROM a table, view, WITH query or derived table, or an inner or LEFT join of two of them
///   on equal keys (a regular join, or an interval join when ON bounds the two event times
///   both ways); `FROM a, b WHERE …` is the inner join of a and b ON the WHERE condition;
/// - `[LEFT] JOIN t FOR SYSTEM_TIME AS OF left.time ON …`: a lookup join when the time is a
///   PROCTIME() column, an event-time temporal join of a versioned table (PRIMARY KEY and
///   WATERMARK) when it is the left side's event time; ON sets t's key (its PRIMARY KEY when
///   it has one) equal to expressions of the left side;
/// - computed columns, and the table's `WATERMARK FOR ts AS ts - INTERVAL …` as bounded
///   out-of-orderness watermarks;
/// - WHERE, SELECT expressions (arithmetic, comparisons, AND/OR/NOT, CASE, CAST, BETWEEN, IN
///   lists, LIKE, IS [NOT] NULL/TRUE/FALSE, `||`, LOWER, UPPER, CONCAT, SUBSTRING,
///   CHAR_LENGTH, COALESCE, IFNULL, NULLIF, IF, ABS, MOD, TO_TIMESTAMP[_LTZ], HOUR,
///   DATE_FORMAT, REGEXP_EXTRACT, SPLIT_INDEX, REPLACE, timestamp ±
///   INTERVAL), SELECT DISTINCT, UNION [ALL];
/// - window aggregation over `TABLE(TUMBLE|HOP|CUMULATE|SESSION(…))` grouped by window_start,
///   window_end and keys, or the legacy `GROUP BY TUMBLE|HOP|SESSION(ts, …)` with
///   `*_START`/`*_END`/`*_ROWTIME`; COUNT(*), COUNT(x), COUNT(DISTINCT x), SUM, MIN, MAX, AVG,
///   FIRST_VALUE, LAST_VALUE, each with `FILTER (WHERE …)`; HAVING; any expression over keys
///   and aggregates;
/// - the window Top-N: `ROW_NUMBER() OVER (PARTITION BY window_start, window_end … ORDER BY
///   x) AS rn` in a subquery over a window aggregation, `WHERE rn <= N` outside;
/// - updating queries, whose output is a changelog (`planned_statement::updating`): GROUP BY
///   (or aggregates) without a window, over append-only or changelog input; the unbounded
///   Top-N (ROW_NUMBER() without window columns in PARTITION BY); deduplication (ORDER BY the
///   event time, rn = 1: ASC keeps the first row, append-only; DESC the last, a changelog).
///   An INSERT of a changelog needs a sink with a PRIMARY KEY (it gets upserts by that key)
///   or a blackhole.
///
/// Everything else is refused with an `error` at the construct's position whose message
/// starts with `planner:` and names it. The statement must have passed the binder (`plan`
/// runs it first), so names and types are known to be right.
///
/// Built per statement on the thread that plans it; holds references to the catalog and the
/// connector factory, which must outlive it.
class planner {
public:
    planner(const catalog& cat, connector_factory& connectors, plan_options opts = {})
        : _catalog(cat)
        , _connectors(connectors)
        , _opts(opts) {}

    /// Binds `s` (an INSERT or a query; EXPLAIN plans its target) and adds its stages to
    /// `p`. On error `p` may hold stages already; throw it away.
    parse_result<planned_statement> plan(const statement& s, engine::pipeline& p);

private:
    const catalog& _catalog;
    connector_factory& _connectors;
    plan_options _opts;
};

/// The plan of `s` as text, one stage per line, without running anything: tables are read
/// through a connector that yields no rows.
parse_result<std::string> explain(const statement& s, const catalog& cat, plan_options opts = {});

} // namespace runnel::sql
