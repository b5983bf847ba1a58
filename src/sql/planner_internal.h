#pragma once

// Internal to src/sql: what the planner's files (planner*.cc) share. Never included
// outside src/sql; others include sql/planner.h through sql/sql.h.

#include "sql/planner.h"
#include "sql/functions.h"
#include "sql/physical.h"

#include <fmt/format.h>

#include <deque>
#include <functional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace runnel::sql::plan_detail {

namespace en = runnel::engine;

// ---- errors and names (planner_expr.cc) ------------------------------------------------

error at(source_pos pos, uint32_t length, std::string message);

error at(const expr& e, std::string message);

/// "planner: <what> is not supported yet", pointing at `e`.
error unsupported(const expr& e, std::string_view what);

error unsupported(source_pos pos, std::string_view what);

std::string join_names(const std::vector<std::string>& names, std::string_view sep = ", ");

std::string dotted(const qualified_name& n);

bool is_aggregate_name(std::string_view u);

bool is_group_window(std::string_view u);

/// "TUMBLE" of "TUMBLE_START", with "START"; empty when `u` is no window property.
std::pair<std::string, std::string> group_window_property(std::string_view u);

/// An INTERVAL literal of days to milliseconds, in milliseconds.
parse_result<int64_t> interval_ms(const expr& e);

// ---- relations -----------------------------------------------------------------------

/// A column of the relation a query block reads: the SQL name, the qualifier that may name
/// it, and the column of the engine stream that holds it. Window TVF columns (window_start,
/// window_end, window_time) exist only once the window aggregation has run: `window_only`.
struct rel_column {
    std::string name;
    std::string qualifier;
    std::string engine;
    bool window_only = false;
    bool hidden = false; ///< not part of `*` (the rank of a Top-N)
    /// A ROW column: `engine` is its null flag (a BOOLEAN, NULL when the ROW is), and its
    /// fields follow it as columns named `name.field` (recursively): see `flatten`.
    bool row = false;
};

/// A window table function in FROM, waiting for its GROUP BY.
struct window_info {
    en::window_spec spec;
    std::string label;                  ///< "tumble(size 10000 ms)" for EXPLAIN
    std::string time;                   ///< the event-time column (engine name)
    std::vector<std::string> partition; ///< SESSION PARTITION BY columns (engine names)
    const expr* call = nullptr;
};

/// Where the rows of a window aggregation's output say which window they belong to: the
/// columns holding window_start and window_end (engine names), and the window's shape. Carried
/// through projections, derived tables, views and WITH queries that keep both columns, so a
/// join of two such relations on equal bounds is a window join.
struct window_bounds {
    en::window_spec spec;
    std::string label;
    std::string start, end;
};

/// What a query block reads: a stream and how SQL names map onto its columns.
struct relation {
    en::stream s;
    std::vector<rel_column> cols;
    std::optional<window_info> window;
    /// What makes the stream a changelog (rows that update or retract earlier ones), e.g.
    /// "GROUP BY without a window"; empty for an append-only stream.
    std::string updating;
    /// The stream's time column (`s.time_column()`) follows the wall clock: PROCTIME().
    bool proctime = false;
    std::optional<window_bounds> bounds;
};

/// The output of a planned query: its stream and output names (the engine columns are named
/// the same).
struct query_out {
    en::stream s;
    std::vector<std::string> names;
    std::string updating; ///< as `relation::updating`
    bool proctime = false; ///< as `relation::proctime`
    std::optional<window_bounds> bounds; ///< as `relation::bounds`
};

/// The columns `*` (or `t.*`) stands for in `rel`, in order.
std::vector<const rel_column*> star_columns(const expr& star, const relation& rel);

/// Turns SQL expressions into engine expressions over one relation. A hook sees every node
/// first and may answer for it (group keys and aggregates in a grouped SELECT).
class translator {
public:
    using hook_fn = std::function<parse_result<std::optional<en::expr>>(const expr&)>;

    translator(const relation& rel, en::schema_ptr schema)
        : schema(std::move(schema))
        , _rel(rel) {}

    hook_fn hook;
    /// What engine expressions are typed against (for the type of a bare NULL).
    en::schema_ptr schema;

    /// The relation column `e` (a column reference) names.
    parse_result<const rel_column*> resolve(const expr& e) const;

    std::optional<en::data_type> type_of(const en::expr& e) const;

    parse_result<en::expr> tr(const expr& e, std::optional<en::data_type> hint = std::nullopt);

private:
    parse_result<en::expr> literal(const expr& e, std::optional<en::data_type> hint);

    parse_result<en::expr> binary(const expr& e, std::optional<en::data_type> hint);

    /// An operand of CONCAT or `||`: strings as they are, other types cast to STRING.
    parse_result<en::expr> to_text(const expr& e);

    /// Translates `branches` (values) so that NULLs take the type of the first typed one.
    parse_result<std::vector<en::expr>> values_of(const std::vector<const expr*>& vals,
                                                  std::optional<en::data_type> hint);

    parse_result<en::expr> case_when(const expr& e, std::optional<en::data_type> hint);

    parse_result<en::expr> call(const expr& e, std::optional<en::data_type> hint);

    class call_args;

    const relation& _rel;
};

/// The engine type of a column for messages and EXPLAIN.
std::string describe(const en::schema& s);

std::string describe(const std::vector<en::named_expr>& cols);

bool has_aggregate(const expr& e);

// ---- windows (planner_from.cc) and projections (planner.cc) --------------------------

/// Refuses a HOP or CUMULATE (`call`) that would copy each row into more windows than
/// `opts.max_windows_per_row`: size 1 day and slide 1 ms make 86,400,000 rows of each one.
std::optional<error> check_windows_per_row(const expr& call, std::string_view fn, std::string_view step_name,
                                           int64_t size_ms, int64_t step_ms, const plan_options& opts);

std::string window_label(const en::window_spec& w);

/// Why `column` cannot be the time of a window over `rel` (empty when it can): windows run on
/// the event-time column the table's WATERMARK names, which the stream carries.
std::string not_event_time(const relation& rel, const std::string& column,
                           const std::string& table);

/// `b` after a projection to `cols`: the columns that now hold its window_start and
/// window_end, or nothing when the projection drops either.
std::optional<window_bounds> kept_bounds(const std::optional<window_bounds>& b,
                                         const std::vector<en::named_expr>& cols);

/// One aggregate of a grouped query: what the window computes and under which column.
struct agg_item {
    const expr* ast = nullptr;
    en::aggregate_spec spec;
    en::expr input;         ///< the aggregate's argument; empty for COUNT(*)
    std::string input_name; ///< its column before the window; shared by equal arguments
    en::data_type output;
    /// The argument and FILTER as written, to share the input column of equal ones.
    const expr* arg_ast = nullptr;
    const expr* filter_ast = nullptr;
};

/// One group key (not window_start/window_end).
struct key_item {
    const expr* ast = nullptr;
    std::string name;   ///< the window output column
    en::expr value;     ///< over the input relation
    std::string source; ///< the engine column when the key is a plain column
};

/// The names of the columns a statement may read (lower case), gathered from its syntax, to
/// leave unread columns out of a source. `all` when that cannot be told from the names alone:
/// a `*`, a view (its query reads more), or a table renamed column by column. A table whose
/// name or alias qualifies a star (`a.*`) keeps all its columns.
struct read_names {
    std::set<std::string> names;
    std::set<std::string> star_qualifiers;
    bool all = false;

    void add(std::string_view n) { names.insert(text::to_lower(n)); }
    void of(const expr& e, const catalog& cat) {
        switch (e.kind) {
        case expr_kind::star:
            if (e.names.empty()) all = true;
            else star_qualifiers.insert(text::to_lower(e.names.back()));
            return;
        case expr_kind::column:
        case expr_kind::descriptor:
            for (const auto& n : e.names) add(n);
            break;
        default: break;
        }
        for (const auto& a : e.args) {
            if (e.kind == expr_kind::call && a.kind == expr_kind::star) {
                continue; // COUNT(*) reads no column
            }
            of(a, cat);
        }
        if (e.filter) of(*e.filter, cat);
        if (e.over) {
            for (const auto& a : e.over->partition_by) of(a, cat);
            for (const auto& o : e.over->order_by) of(o.value, cat);
        }
        if (e.subquery) of(*e.subquery, cat);
    }
    void of(const table_ref& t, const catalog& cat) {
        if (!t.column_aliases.empty()) all = true;
        for (const auto& n : t.using_columns) add(n);
        if (t.kind == table_ref_kind::named) {
            const table_schema* ts = cat.find_table(t.names);
            if (ts && ts->kind != relation_kind::table) all = true;
        }
        if (t.system_time) of(*t.system_time, cat);
        if (t.subquery) of(*t.subquery, cat);
        if (t.function) of(*t.function, cat);
        if (t.left) of(*t.left, cat);
        if (t.right) of(*t.right, cat);
        if (t.condition) of(*t.condition, cat);
    }
    void of(const query& q, const catalog& cat) {
        for (const auto& w : q.with) {
            if (w.body) of(*w.body, cat);
        }
        for (const auto& i : q.select.items) of(i.value, cat);
        for (const auto& f : q.select.from) of(f, cat);
        if (q.select.where) of(*q.select.where, cat);
        for (const auto& g : q.select.group_by) of(g, cat);
        if (q.select.having) of(*q.select.having, cat);
        if (q.left) of(*q.left, cat);
        if (q.right) of(*q.right, cat);
        for (const auto& row : q.rows) {
            for (const auto& v : row) of(v, cat);
        }
        for (const auto& o : q.order_by) of(o.value, cat);
        if (q.limit) of(*q.limit, cat);
    }
};

/// Plans one statement into a pipeline. Built by `planner::plan` per statement, on the thread
/// that plans it; its members are defined by operator family in the planner*.cc files.
class builder {
public:
    builder(const catalog& cat, connector_factory& conn, plan_options opts, en::pipeline& p,
            planned_statement& out)
        : _catalog(cat)
        , _conn(conn)
        , _opts(opts)
        , _p(p)
        , _out(out)
        , _phys(conn, _opts, out.stages) {}

    parse_result<query_out> query_(const query& q);
    parse_result<bool> insert(const insert_stmt& s, source_pos pos);
    /// The statement about to be planned reads only these names (see `read_names`).
    void reads(const query& q) {
        _reads = read_names{};
        _reads.of(q, _catalog);
    }

private:
    parse_result<bool> check(source_pos pos, uint32_t len = 1) {
        auto c = _p.check();
        if (!c) {
            return at(pos, len, c.error().message);
        }
        return true;
    }
    void step(std::string line) { _out.stages.push_back(std::move(line)); }
    /// Brings `s`'s rows to the instance of their `keys` before a keyed operator, when the
    /// plan runs as several instances (`physical_planner`); `why` names what needs every row
    /// in one instance when there are no keys.
    parse_result<bool> exchange(en::stream& s, const std::vector<std::string>& keys, source_pos pos,
                                std::string_view why = {}) {
        auto moved = _phys.by_keys(_p, s, keys, why);
        if (!moved) {
            return at(pos, 1, moved.error().message);
        }
        s = moved.value();
        return check(pos);
    }
    /// `exchange` for one side of a join (the other side is exchanged by its own keys).
    parse_result<bool> exchange_side(en::stream& s, const std::vector<std::string>& keys, source_pos pos) {
        auto moved = _phys.by_join_keys(_p, s, keys);
        if (!moved) {
            return at(pos, 1, moved.error().message);
        }
        s = moved.value();
        return check(pos);
    }
    /// `to` derives from `from` row by row (see `physical_planner::carry`).
    void carry(const en::stream& from, const en::stream& to, const std::vector<en::named_expr>& cols = {}) {
        _phys.carry(from, to, cols);
    }
    /// Makes `column`, computed by PROCTIME(), the stream's time: its watermark follows the
    /// wall clock, so windows over it close on time (event-time watermarks stop here).
    parse_result<bool> processing_time(relation& rel, const std::string& column, source_pos pos) {
        en::watermark_options o;
        o.processing_time = true;
        rel.s = rel.s.watermark(column, std::chrono::milliseconds(0), o);
        rel.proctime = true;
        step(fmt::format("watermark {} (processing time)", column));
        return check(pos);
    }
    static bool is_proctime(const expr& e) {
        return e.kind == expr_kind::call && e.names.size() == 1 && text::to_upper(e.names[0]) == "PROCTIME" &&
               e.args.empty();
    }

    parse_result<relation> from_item(const table_ref& t);
    parse_result<relation> constant_row(const query& q);
    parse_result<relation> named(const qualified_name& name, source_pos pos,
                                 const std::string& alias);
    parse_result<relation> table(const table_schema& t, source_pos pos,
                                 const std::string& qualifier);
    parse_result<relation> window_tvf(const expr& call, const std::string& alias);
    parse_result<relation> join(const table_ref& t);
    /// A JOIN of two windowed relations ON equal window_start and window_end: a window join
    /// (nothing when `l` and `r` are no such pair and the ON does not ask for one).
    parse_result<std::optional<relation>> window_join(const table_ref& t, const relation& l,
                                                      const relation& r);
    /// `JOIN t FOR SYSTEM_TIME AS OF left.time ON …`: a lookup join (processing time) or an
    /// event-time temporal join of a versioned table.
    parse_result<relation> temporal_join(const table_ref& t);
    parse_result<relation> joined(relation out, const relation& l, const relation& r,
                                  const std::vector<expr>& residual, source_pos pos);
    parse_result<query_out> query_body(const query& q);
    parse_result<query_out> select_(const query& q);
    /// FROM of `sc`: one item, or two (a comma join: their inner join ON the WHERE condition,
    /// which `where_used` then reports as applied).
    parse_result<relation> from_clause(const select_core& sc, bool& where_used);
    /// WHERE (unless `with_where` is false), then the SELECT list, grouped or not, over `rel`.
    parse_result<query_out> select_from(const query& q, relation rel, bool with_where);
    /// `SELECT … FROM (SELECT …, ROW_NUMBER() OVER (…) AS rn FROM …) WHERE rn <= N`.
    parse_result<query_out> top_n(const query& outer, const select_item& rn);
    parse_result<query_out> grouped(const query& q, relation rel,
                                    const std::vector<std::string>& names);
    /// Whether the aggregates `specs` over `rel` by `keys` (in window `win`, or none) run as a
    /// local phase before their exchange and a global phase after it (decision 0029).
    bool two_phase(const relation& rel, const std::vector<en::aggregate_spec>& specs, const window_info* win,
                   const std::vector<std::string>& keys) const;
    parse_result<std::vector<std::string>> output_names(const query& q, const relation& rel);

    const catalog& _catalog;
    connector_factory& _conn;
    plan_options _opts;
    en::pipeline& _p;
    planned_statement& _out;
    physical_planner _phys;
    int _depth = 0;
    /// WITH queries in scope, outermost first; a reference plans the query again (each use
    /// reads its sources anew). Planning one sees only those defined before it.
    std::vector<const common_table*> _ctes;
    /// Syntax made up while planning (the JOIN a comma join stands for); kept as long as the
    /// plan may point into it.
    std::deque<table_ref> _synthetic;
    read_names _reads{{}, {}, true};
};

} // namespace runnel::sql::plan_detail
