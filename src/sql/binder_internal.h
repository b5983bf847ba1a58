#pragma once

// Internal to src/sql: what the binder's files (binder.cc, binder_expr.cc) share. Never
// included outside src/sql.

#include "sql/binder.h"
#include "sql/hints.h"

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace runnel::sql {

namespace bind_detail {

error at(source_pos pos, uint32_t length, std::string message);

error at(const expr& e, std::string message);

/// `column price (BIGINT)` or `'abc' (STRING NOT NULL)`, for messages about operands.
std::string describe(const expr& e, data_type t);

bool unknown(const data_type& t);

bool is_boolean(const data_type& t);

bool is_time(const data_type& t);

bool comparable(const data_type& a, const data_type& b);

data_type make(type_kind k, bool nullable = true, std::optional<int32_t> precision = {});

data_type nullable(data_type t);

bool is_aggregate(std::string_view u);

bool is_group_window_property(std::string_view u);

bool fits_kind(char k, const data_type& t);

/// Nesting deeper than this is refused (a query, a FROM item or an expression inside another).
constexpr int max_bind_depth = 256;

} // namespace bind_detail

/// The relations a query block's names resolve against (FROM items by qualifier), and the
/// enclosing block's for a correlated name.
struct binder::scope {
    struct entry {
        std::string qualifier;
        std::vector<bound_column> columns;
    };
    std::vector<entry> relations;
    const scope* outer = nullptr;
};

/// Where an expression stands (its clause, whether aggregates and OVER may appear there) and
/// what was found inside it.
struct binder::expr_context {
    const char* clause = "SELECT";
    bool allow_aggregate = false;
    bool allow_over = false;
    bool inside_aggregate = false;
    bool saw_aggregate = false;
    bool saw_group_window = false;
    bool in_group_by = false;
};

} // namespace runnel::sql
