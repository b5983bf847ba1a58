#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

#include "sql/ast.h"

namespace runnel::sql {

/// The query hint that sets one statement's instances, as `SET 'parallelism.default'` sets
/// the script's: `INSERT INTO t SELECT /*+ PARALLELISM(4) */ …`.
inline constexpr std::string_view parallelism_hint_name = "PARALLELISM";
/// Most instances a pipeline may ask for (the hint, or `parallelism.default`).
inline constexpr uint32_t max_parallelism = 256;

/// The SELECT a statement's hint belongs to: the outermost one of an INSERT, a view, a query
/// or what EXPLAIN explains; null when that is a UNION or VALUES, or for other statements.
const select_core* top_select(const statement& st);

/// The instances `h` asks for when it is a well-formed PARALLELISM(n), n from 1 to
/// `max_parallelism`.
std::optional<uint32_t> hint_parallelism(const query_hint& h);

/// The instances the statement's PARALLELISM hint asks for, if it has one (the binder checks
/// hints: a malformed one never reaches here).
std::optional<uint32_t> parallelism_hint(const statement& st);

} // namespace runnel::sql
