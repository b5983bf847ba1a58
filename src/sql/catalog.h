#pragma once

#include <cstddef>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "sql/ast.h"
#include "sql/error.h"
#include "sql/types.h"

namespace runnel::sql {

/// A column as the binder sees it. Computed columns carry their expression; their type is
/// known once the binder has typed it (until then `type.kind` is `type_kind::null`).
struct column_schema {
    std::string name;
    data_type type;
    box<expr> computed;
    bool metadata = false;
    bool is_virtual = false;
    bool operator==(const column_schema&) const = default;
};

enum class relation_kind { table, view, materialized_view };

/// What the catalog knows about a table or view: its columns, key, event-time column with
/// its watermark, and connector options.
struct table_schema {
    qualified_name name;
    relation_kind kind = relation_kind::table;
    std::vector<column_schema> columns;
    std::vector<std::string> primary_key;
    std::string event_time_column; ///< empty: no watermark
    box<expr> watermark;
    table_options options;
    box<query> definition; ///< views

    /// Index of the column `name` (exact match first, then ignoring case), or nothing.
    std::optional<std::size_t> find_column(std::string_view name) const;
    /// The option `key`, or nothing.
    std::optional<std::string> option(std::string_view key) const;
};

/// What is wrong with a CREATE TABLE's WITH options: the index of the option at fault (nullopt
/// when the fault is the table's, such as a required option missing) and the message.
struct options_problem {
    std::optional<std::size_t> index;
    std::string message;
};

/// Checks a table's WITH options (in the order written) against the connector they name. The
/// connectors live above `sql`, in `connect`; whoever owns a catalog plugs their check in
/// (`jobs::connector_check()`). Empty: options are not checked beyond their keys being unique.
using options_check = std::function<std::optional<options_problem>(
    std::string_view table, std::span<const std::pair<std::string, std::string>> options)>;

/// The key a catalog orders and finds a name by: its parts joined by NUL (names compare exactly).
std::string catalog_key(const qualified_name& name);

/// The names a binder resolves against: tables, views and functions. Implemented by the
/// server's catalog (durable, shared by sessions) and by `memory_catalog` in tests. Calls come
/// from the thread that binds a statement; implementations that are shared synchronise
/// internally.
class catalog {
public:
    catalog() = default;
    catalog(const catalog&) = delete;
    catalog& operator=(const catalog&) = delete;
    virtual ~catalog() = default;

    /// The table or view `name`, or null. The pointer stays valid until the catalog changes.
    virtual const table_schema* find_table(const qualified_name& name) const = 0;

    /// True when `name` (any case) is a known scalar, aggregate or table function.
    virtual bool has_function(std::string_view name) const = 0;

    /// The check a CREATE TABLE's options must pass here (empty: none).
    virtual const options_check& check_options() const = 0;
};

/// A catalog in memory, for tests and for a single session. Not thread-safe.
class memory_catalog final : public catalog {
public:
    explicit memory_catalog(options_check check = {})
      : _check(std::move(check)) {}

    /// Adds or replaces a table; names compare exactly.
    void put(table_schema t);
    bool remove(const qualified_name& name);
    void add_function(std::string name);

    const table_schema* find_table(const qualified_name& name) const override;
    bool has_function(std::string_view name) const override;
    const options_check& check_options() const override { return _check; }

private:
    options_check _check;
    std::map<std::string, std::unique_ptr<table_schema>> _tables;
    std::vector<std::string> _functions;
};

/// Checks a CREATE TABLE against itself and turns it into a schema: column names are
/// unique, the watermark's column exists and is a TIMESTAMP/TIMESTAMP_LTZ (or computed),
/// primary key columns exist and appear once, options keys appear once and pass `check`. Errors
/// name the column or option and point at it.
parse_result<table_schema> table_schema_from(const create_table_stmt& t, const options_check& check = {});

/// Puts what a CREATE TABLE or a (non-materialized) CREATE VIEW declares into `cat`; true when
/// `s` was one of those, false for any other statement. A CREATE TABLE that does not check
/// (its options against `cat.check_options()`) fails with its error.
parse_result<bool> declare(const statement& s, memory_catalog& cat);

/// The key of a materialized view over `q`, whose output columns are `columns`: the output
/// columns that repeat a GROUP BY expression, a window's bounds (`window_start`,
/// `window_end`, `*_START`/`*_END` of a legacy group window) or, for a Top-N, a PARTITION BY
/// column or the row number. An aggregate with no such column is one row (an empty key). A
/// query that neither groups nor ranks is keyed by all its columns: each distinct row once.
std::vector<std::string> materialized_view_key(const query& q, const std::vector<std::string>& columns);

} // namespace runnel::sql
