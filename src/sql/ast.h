#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "sql/error.h"
#include "sql/types.h"

namespace runnel::sql {

/// Where a node starts in the source: 1-based line and column (in characters) and the byte
/// offset. Positions never take part in equality, so a tree printed and parsed again compares
/// equal to the original although every position moved.
struct source_pos {
    int32_t line = 1;
    int32_t column = 1;
    uint32_t offset = 0;
    bool operator==(const source_pos&) const noexcept { return true; }
};

/// An owned, copyable, possibly empty pointer whose equality compares the pointees: lets the
/// recursive AST types use defaulted `operator==` and value copies.
template <typename T>
class box {
public:
    box() = default;
    box(T v) // NOLINT(google-explicit-constructor): a box is a T that may be absent
      : _p(std::make_unique<T>(std::move(v))) {}
    box(const box& o)
      : _p(o._p ? std::make_unique<T>(*o._p) : nullptr) {}
    box(box&&) noexcept = default;
    box& operator=(const box& o) {
        if (this != &o) {
            _p = o._p ? std::make_unique<T>(*o._p) : nullptr;
        }
        return *this;
    }
    box& operator=(box&&) noexcept = default;
    ~box() = default;

    explicit operator bool() const noexcept { return _p != nullptr; }
    T& operator*() const noexcept { return *_p; }
    T* operator->() const noexcept { return _p.get(); }
    T* get() const noexcept { return _p.get(); }

    bool operator==(const box& o) const {
        if (!_p || !o._p) {
            return !_p && !o._p;
        }
        return *_p == *o._p;
    }

private:
    std::unique_ptr<T> _p;
};

/// A possibly qualified name: `t`, `db.t`, `t.col`.
using qualified_name = std::vector<std::string>;

struct query;

enum class literal_kind { null, boolean, integer, decimal, string, date, time, timestamp };

/// Units of INTERVAL literals and of EXTRACT.
enum class time_unit { year, quarter, month, week, day, hour, minute, second, millisecond };

enum class expr_kind {
    literal,         ///< `text`: the value as written (strings unescaped); `literal`
    interval,        ///< INTERVAL 'text' unit [TO unit2]
    column,          ///< `names`: [qualifier.]column
    star,            ///< `names`: the optional qualifier of `t.*`
    unary,           ///< `op` applied to args[0]
    binary,          ///< args[0] `op` args[1]
    call,            ///< `names` (function name) over args, with distinct/filter/over;
                     ///< `text` names a keyword form: "TO" (FLOOR/CEIL(x TO unit)), "IN"
                     ///< (POSITION(a IN b)), "FROM" (SUBSTRING(s FROM i [FOR n])), "BOTH" /
                     ///< "LEADING" / "TRAILING" (TRIM(mode [chars] FROM s), chars first)
    cast,            ///< CAST(args[0] AS type), TRY_CAST when `flag`
    case_when,       ///< args: [operand if `flag`] then when/then pairs, then else if `has_else`
    between,         ///< args[0] [NOT] BETWEEN args[1] AND args[2]
    in_list,         ///< args[0] [NOT] IN (args[1..])
    in_query,        ///< args[0] [NOT] IN (subquery)
    exists,          ///< EXISTS (subquery)
    scalar_query,    ///< (subquery)
    like,            ///< args[0] [NOT] LIKE args[1] [ESCAPE args[2]]
    is_null,         ///< args[0] IS [NOT] NULL
    is_bool,         ///< args[0] IS [NOT] TRUE/FALSE (`flag`: TRUE)
    extract,         ///< EXTRACT(unit FROM args[0])
    descriptor,      ///< DESCRIPTOR(names...) in a window table function
    table_arg,       ///< TABLE name [PARTITION BY args...] in a window table function
    named_arg,       ///< names[0] => args[0]
};

/// An OVER clause: PARTITION BY, ORDER BY and an optional ROWS/RANGE frame.
struct window_spec;

struct order_item;

/// One expression node. A single node type with a kind keeps the parser, printer and
/// equality short; the comment on each `expr_kind` says which fields it uses.
struct expr {
    expr_kind kind = expr_kind::literal;
    source_pos pos;
    literal_kind literal = literal_kind::null;
    std::string text;           ///< literal value, operator (`+`, `AND`, `NOT`, `||`, ...)
    qualified_name names;       ///< column, function or table name
    std::vector<expr> args;     ///< operands, arguments, CASE parts, IN list
    bool negated = false;       ///< NOT BETWEEN / NOT IN / NOT LIKE / IS NOT
    bool flag = false;          ///< TRY_CAST; CASE with operand; IS TRUE; niladic call
    bool distinct = false;      ///< COUNT(DISTINCT x)
    bool has_else = false;      ///< CASE ... ELSE
    time_unit unit = time_unit::second;
    std::optional<time_unit> unit_to; ///< INTERVAL '1:30' MINUTE TO SECOND
    data_type type;             ///< CAST target
    box<expr> filter;           ///< aggregate FILTER (WHERE ...)
    box<window_spec> over;      ///< OVER (...)
    box<query> subquery;        ///< IN / EXISTS / scalar subquery

    bool operator==(const expr&) const;
};

/// One key of ORDER BY (of a query or an OVER clause).
struct order_item {
    expr value;
    bool descending = false;
    bool explicit_direction = false; ///< ASC written out
    std::optional<bool> nulls_first;
    bool operator==(const order_item&) const = default;
};

enum class frame_bound_kind { unbounded_preceding, preceding, current_row, following, unbounded_following };

/// One end of a ROWS/RANGE frame.
struct frame_bound {
    frame_bound_kind kind = frame_bound_kind::current_row;
    box<expr> offset; ///< for `n PRECEDING` / `n FOLLOWING`
    bool operator==(const frame_bound&) const = default;
};

struct window_spec {
    std::vector<expr> partition_by;
    std::vector<order_item> order_by;
    bool has_frame = false;
    bool rows = true; ///< ROWS or RANGE
    frame_bound start;
    frame_bound end;
    bool operator==(const window_spec&) const = default;
};

inline bool expr::operator==(const expr& o) const {
    return kind == o.kind && literal == o.literal && text == o.text && names == o.names &&
           args == o.args && negated == o.negated && flag == o.flag && distinct == o.distinct &&
           has_else == o.has_else && unit == o.unit && unit_to == o.unit_to && type == o.type &&
           filter == o.filter && over == o.over && subquery == o.subquery;
}

/// One item of the SELECT list: an expression (or `*`) and its alias.
struct select_item {
    expr value;
    std::string alias; ///< empty when none
    bool operator==(const select_item&) const = default;
};

enum class join_kind { inner, left, right, full, cross };

enum class table_ref_kind {
    named,    ///< `names` [FOR SYSTEM_TIME AS OF system_time]
    subquery, ///< (query)
    function, ///< TABLE(call): a window table function
    join,     ///< left join right ON condition / USING (columns)
};

/// An item of FROM. Comma-separated items stay a list in `select_core::from`.
struct table_ref {
    table_ref_kind kind = table_ref_kind::named;
    source_pos pos;
    qualified_name names;
    box<expr> system_time;
    box<query> subquery;
    box<expr> function;
    join_kind join = join_kind::inner;
    box<table_ref> left;
    box<table_ref> right;
    box<expr> condition;
    std::vector<std::string> using_columns;
    std::string alias;
    std::vector<std::string> column_aliases;
    bool operator==(const table_ref&) const = default;
};

/// SELECT ... FROM ... WHERE ... GROUP BY ... HAVING ...: one query block.
/// A query hint after SELECT, as Flink's: `SELECT /*+ PARALLELISM(4) */ …`.
struct query_hint {
    std::string name;
    std::vector<std::string> args; ///< each as written (a string with its quotes)
    source_pos pos;                ///< the hint's name
    uint32_t length = 0;           ///< of the name
    bool operator==(const query_hint&) const = default;
};

struct select_core {
    std::vector<query_hint> hints;
    bool distinct = false;
    std::vector<select_item> items;
    std::vector<table_ref> from;
    box<expr> where;
    std::vector<expr> group_by;
    box<expr> having;
    bool operator==(const select_core&) const = default;
};

/// One named query of WITH.
struct common_table {
    std::string name;
    std::vector<std::string> columns;
    box<query> body;
    bool operator==(const common_table&) const = default;
};

enum class query_kind { select, union_, values };

/// A query: WITH, a body (a SELECT, a UNION of two queries, or VALUES), ORDER BY, LIMIT.
struct query {
    source_pos pos;
    std::vector<common_table> with;
    query_kind kind = query_kind::select;
    select_core select;
    bool union_all = false;
    box<query> left;
    box<query> right;
    std::vector<std::vector<expr>> rows; ///< VALUES
    std::vector<order_item> order_by;
    box<expr> limit;
    bool operator==(const query&) const = default;
};

/// A column of CREATE TABLE: physical (`type`), computed (`name AS expr`) or metadata
/// (`type METADATA [FROM 'key'] [VIRTUAL]`).
struct column_def {
    source_pos pos;
    std::string name;
    data_type type;
    box<expr> computed;
    bool metadata = false;
    std::string metadata_key;
    bool is_virtual = false;
    std::string comment;
    bool operator==(const column_def&) const = default;
};

struct watermark_def {
    source_pos pos;
    std::string column;
    expr strategy;
    bool operator==(const watermark_def&) const = default;
};

using table_options = std::vector<std::pair<std::string, std::string>>;

/// CREATE TABLE: columns, watermarks, key and connector options.
struct create_table_stmt {
    source_pos pos; ///< the table's name
    qualified_name name;
    bool temporary = false;
    bool if_not_exists = false;
    std::vector<column_def> columns;
    std::vector<watermark_def> watermarks;
    std::vector<std::string> primary_key; ///< always NOT ENFORCED
    std::string comment;
    table_options options;
    std::vector<source_pos> option_pos; ///< where each option's key is in the text
    bool operator==(const create_table_stmt&) const = default;
};

/// CREATE [OR REPLACE] [TEMPORARY] [MATERIALIZED] VIEW: `or_replace` replaces a view of the
/// name (never together with `if_not_exists`).
struct create_view_stmt {
    source_pos pos; ///< the view's name
    qualified_name name;
    bool temporary = false;
    bool materialized = false;
    bool if_not_exists = false;
    bool or_replace = false;
    std::vector<std::string> columns;
    query body;
    bool operator==(const create_view_stmt&) const = default;
};

/// INSERT INTO table [(columns)] query.
struct insert_stmt {
    qualified_name table;
    bool overwrite = false;
    std::vector<std::string> columns;
    query body;
    bool operator==(const insert_stmt&) const = default;
};

enum class object_kind { table, view, materialized_view };

/// DROP TABLE | VIEW | MATERIALIZED VIEW [IF EXISTS] name.
struct drop_stmt {
    object_kind object = object_kind::table;
    bool temporary = false;
    bool if_exists = false;
    qualified_name name;
    source_pos name_pos;
    bool operator==(const drop_stmt&) const = default;
};

enum class show_kind { tables, views, materialized_views, jobs, functions, create_table, create_view };

/// SHOW TABLES | VIEWS | MATERIALIZED VIEWS | JOBS | FUNCTIONS; SHOW CREATE TABLE | VIEW name.
struct show_stmt {
    show_kind what = show_kind::tables;
    qualified_name name; ///< SHOW CREATE only
    source_pos name_pos;
    bool operator==(const show_stmt&) const = default;
};

/// STOP JOB 'id'.
struct stop_job_stmt {
    std::string job_id;
    bool operator==(const stop_job_stmt&) const = default;
};

/// SET 'key' = 'value'; SET alone lists the session's settings; RESET 'key' / RESET.
struct set_stmt {
    bool reset = false;
    std::string key;   ///< empty: all
    std::string value; ///< SET only
    bool operator==(const set_stmt&) const = default;
};

/// A query on its own (a push query when it reads streams).
struct query_stmt {
    query body;
    bool operator==(const query_stmt&) const = default;
};

struct statement;

/// EXPLAIN statement.
struct explain_stmt {
    box<statement> target;
    bool operator==(const explain_stmt&) const = default;
};

using statement_node = std::variant<create_table_stmt, create_view_stmt, insert_stmt, drop_stmt,
                                    show_stmt, stop_job_stmt, set_stmt, query_stmt, explain_stmt>;

/// One statement of a script, with where it starts.
struct statement {
    statement_node node;
    source_pos pos;
    bool operator==(const statement&) const = default;
};

/// An error at `pos` whose caret covers `length` bytes of source.
error error_at(source_pos pos, uint32_t length, std::string message);

/// Roughly how many bytes of source an expression's head covers (a name, a function's name),
/// for the caret under it.
uint32_t head_length(const expr& e);

} // namespace runnel::sql
