#pragma once

#include <memory>
#include <string>
#include <vector>

#include "engine/batch.h"
#include "engine/errc.h"

namespace runnel::engine {

/// What an expression node computes.
enum class expr_op : uint8_t {
    column, literal,
    add, sub, mul, div, mod, neg,
    eq, ne, lt, le, gt, ge,
    and_, or_, not_, is_null, is_not_null,
    case_when, cast,
    lower, upper, concat, substring, char_length, like,
    hour, date_format, regexp_extract, split_index, replace, proctime,
};

struct expr_node;

/// An expression as the user writes it, before it meets a schema: `col("price") * 2 > 100`.
///
/// Cheap to copy (a shared immutable tree). It has no type until `bind` checks it against a
/// schema; that is where unknown columns and type errors are reported.
class expr {
public:
    expr() = default;
    expr(int v);
    expr(int64_t v);
    expr(double v);
    explicit expr(std::shared_ptr<const expr_node> n)
      : _node(std::move(n)) {}

    const expr_node& node() const { return *_node; }
    bool empty() const { return !_node; }
    /// SQL-like text of the expression, used in error messages.
    std::string to_string() const;

private:
    std::shared_ptr<const expr_node> _node;
};

struct expr_node {
    expr_op op;
    std::string name;        ///< column name
    value literal;           ///< literal value
    data_type target;        ///< cast target
    std::vector<expr> args;  ///< operands; case_when: cond, then, cond, then, …, [else]
};

expr col(std::string name);
expr lit(value v);
expr lit(const char* s);
expr lit(std::string s);
expr lit(bool b);
expr lit(int v);
expr lit(int64_t v);
expr lit(double v);
expr null_of(data_type t);

expr operator+(expr a, expr b);
expr operator-(expr a, expr b);
expr operator*(expr a, expr b);
expr operator/(expr a, expr b);
expr operator%(expr a, expr b);
expr operator-(expr a);
expr operator==(expr a, expr b);
expr operator!=(expr a, expr b);
expr operator<(expr a, expr b);
expr operator<=(expr a, expr b);
expr operator>(expr a, expr b);
expr operator>=(expr a, expr b);
expr operator&&(expr a, expr b);
expr operator||(expr a, expr b);
expr operator!(expr a);
expr is_null(expr a);
expr is_not_null(expr a);
/// CASE WHEN c1 THEN v1 [WHEN …] [ELSE e] END; without ELSE the default is NULL.
expr case_when(std::vector<std::pair<expr, expr>> branches, expr otherwise = {});
expr cast(expr a, data_type to);
expr lower(expr a);
expr upper(expr a);
expr concat(std::vector<expr> parts);
/// SQL SUBSTRING(s FROM start [FOR len]): 1-based, in characters (UTF-8 code points).
expr substring(expr s, expr start, expr len = {});
expr char_length(expr s);
/// s LIKE pattern: `%` any run of characters, `_` one character, `\` escapes the next one.
expr like(expr s, expr pattern);
/// HOUR(ts): the hour of day (0–23) of a timestamp, in UTC.
expr hour(expr ts);
/// DATE_FORMAT(ts, pattern): the timestamp as text, in UTC, by a Java-style pattern: `yyyy`,
/// `yy`, `MM`, `dd`, `HH`, `mm`, `ss`, `SSS`; text in single quotes and other characters are
/// copied.
expr date_format(expr ts, expr pattern);
/// REGEXP_EXTRACT(s, regex[, group]): group `group` (default 1; 0 is the whole match) of the
/// first match of the regular expression (Perl/Java syntax, Boost.Regex), or NULL without a match or for an
/// invalid regex or group.
expr regexp_extract(expr s, expr regex, expr group = {});
/// PROCTIME(): the wall clock (epoch milliseconds, UTC) when the batch is evaluated, as a
/// timestamp; one value for all rows of a batch.
expr proctime();
/// SPLIT_INDEX(s, delimiter, index): the index-th (from 0) piece of `s` split at `delimiter`,
/// or NULL when there is none.
expr split_index(expr s, expr delimiter, expr index);
/// REPLACE(s, from, to): every occurrence of `from` in `s` replaced by `to` (left to right, not
/// overlapping); an empty `from` changes nothing.
expr replace(expr s, expr from, expr to);

struct bound_node;

/// An expression checked against a schema: every column resolved to an index, every node
/// typed. Evaluates a whole batch at a time into one column, with SQL NULL semantics:
/// NULL in, NULL out; AND/OR use three-valued logic. Failures at run time that SQL reports
/// as errors (division by zero, integer overflow, a string that does not parse in a CAST)
/// yield NULL instead, so bad input never stops a job. Immutable; any thread.
class bound_expr {
public:
    bound_expr() = default;
    explicit bound_expr(std::shared_ptr<const bound_node> n)
      : _node(std::move(n)) {}

    data_type type() const;
    /// The column index when the expression is a plain column reference.
    std::optional<size_t> column_index() const;
    /// Precondition: `b` has the schema the expression was bound to.
    column evaluate(const batch& b) const;
    /// Writes the indexes of the rows of `b` for which this boolean expression is TRUE (not
    /// FALSE, not NULL) to `rows`, ascending, and returns how many there are. `rows` has room
    /// for `b.num_rows()` entries. Comparisons of a number column with a constant, and ANDs of
    /// them, go straight to the list without a boolean column; the right side of an AND is
    /// only looked at for the rows its left side kept.
    size_t select_true(const batch& b, uint32_t* rows) const;
    /// Appends the index of every column the expression reads (with repeats) to `out`.
    void columns_read(std::vector<size_t>& out) const;
    /// The same expression reading column `to[i]` wherever it read column `i`.
    bound_expr remap_columns(const std::vector<size_t>& to) const;

private:
    std::shared_ptr<const bound_node> _node;
};

/// Resolves columns and checks types; the error names the column or operand at fault.
result<bound_expr> bind(const expr& e, const schema& s);

/// Parses "2026-11-22 08:46:57.123" (or with a `T`, up to 6 fractional digits) as UTC.
std::optional<int64_t> parse_timestamp(std::string_view s, time_unit unit);
std::string format_timestamp(int64_t t, time_unit unit);

} // namespace runnel::engine
