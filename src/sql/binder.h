#pragma once

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "sql/ast.h"
#include "sql/catalog.h"
#include "sql/error.h"
#include "sql/types.h"

namespace runnel::sql {

/// One column of a relation as the binder sees it: its name, its type, and the name that
/// qualifies it in the query (a table's alias or name; empty for a derived column).
struct bound_column {
    std::string name;
    data_type type;
    std::string qualifier;
    bool operator==(const bound_column&) const = default;
};

/// The columns a query, table or view produces, in order.
struct relation_type {
    std::vector<bound_column> columns;
    bool operator==(const relation_type&) const = default;
};

/// Resolves the names of a statement against a catalog and types every expression, so that
/// what reaches the planner is known to make sense. It checks that tables, columns and
/// functions exist (and that a bare column names only one), that operands fit their
/// operators (numbers for arithmetic, comparable types for comparisons, BOOLEAN for
/// conditions), that a grouped query selects only group keys, aggregates and constants, that
/// aggregates stay out of WHERE and GROUP BY, that window table functions get a table, a time
/// column and intervals, that UNION branches agree, and that INSERT fits its sink. Errors
/// name the column or function and point at it.
///
/// Built per statement on the thread that checks it; holds only a reference to the catalog,
/// which must outlive it.
class binder {
public:
    explicit binder(const catalog& cat)
      : _catalog(cat) {}

    /// The output columns of `q`.
    parse_result<relation_type> bind_query(const query& q);

    /// The columns of a table or view, with computed columns typed.
    parse_result<relation_type> bind_table(const table_schema& t);

    /// Checks a statement: queries, INSERT against its sink, views, CREATE TABLE (computed
    /// columns and the watermark typed against the table's own columns). Statements that
    /// name no columns (SHOW, SET, STOP JOB, DROP) pass; EXPLAIN checks its target. Returns
    /// the statement's output columns (empty when it has none).
    parse_result<relation_type> bind(const statement& s);

private:
    struct scope;
    struct expr_context;

    parse_result<relation_type> query_(const query& q, const scope* outer);
    parse_result<relation_type> select_(const query& q, const scope* outer);
    parse_result<bool> from_item(const table_ref& t, scope& into, const scope* outer);
    parse_result<data_type> expr_(const expr& e, const scope& s, expr_context& ctx);
    parse_result<data_type> call(const expr& e, const scope& s, expr_context& ctx);
    parse_result<data_type> column(const expr& e, const scope& s);
    parse_result<data_type> column_of(const expr& e, const scope& s);
    parse_result<bool> window_function(const expr& call, scope& into, const std::string& alias);
    parse_result<bool> check_grouped(const expr& e, const std::vector<expr>& keys,
                                     const scope& s, bool window_group, const char* clause);
    parse_result<relation_type> named_relation(const table_ref& t);

    const catalog& _catalog;
    /// WITH queries visible at each level of nesting, innermost last.
    std::vector<std::map<std::string, relation_type>> _ctes;
    int _depth = 0;
    /// The statement's outermost SELECT, the one place a PARALLELISM hint may stand.
    const select_core* _top = nullptr;
};

} // namespace runnel::sql
