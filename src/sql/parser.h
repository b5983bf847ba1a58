#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "sql/ast.h"
#include "sql/error.h"

namespace runnel::sql {

/// Limits that keep hostile input from exhausting the stack or memory.
struct parse_limits {
    /// Nesting of expressions, subqueries and joins.
    int max_depth = 128;
    /// Tokens in one script.
    std::size_t max_tokens = 1'000'000;
};

/// Parses a script: statements separated by `;` (empty statements and a trailing `;` are
/// fine). Stops at the first error. Never throws.
parse_result<std::vector<statement>> parse_script(std::string_view sql, parse_limits limits = {});

/// `text` (whose parse is `script`) up to the end of statement `upto`, with every statement
/// not in `keep` blanked: its bytes become spaces, its line breaks stay. What remains parses
/// to the kept statements, and errors found in it later (a pipeline planned again when it
/// starts) point at the line and column of `text` itself.
std::string keep_statements(std::string_view text, const std::vector<statement>& script, const std::vector<bool>& keep,
                            std::size_t upto);

/// Parses exactly one statement, with an optional trailing `;`.
parse_result<statement> parse_statement(std::string_view sql, parse_limits limits = {});

/// Parses one expression (the whole text).
parse_result<expr> parse_expression(std::string_view sql, parse_limits limits = {});

/// Parses one type such as `DECIMAL(10, 2) NOT NULL` (the whole text).
parse_result<data_type> parse_type(std::string_view sql);

/// SQL text that parses back to an equal tree. Keywords upper case; names quoted with
/// backticks only where needed; parentheses only where precedence needs them.
std::string to_string(const statement& s);
std::string to_string(const query& q);
std::string to_string(const expr& e);

/// `name` as an identifier: bare when it can be, else in backticks.
std::string quote_identifier(std::string_view name);

/// `text` as a string literal: in single quotes, a quote doubled.
std::string quote_string(std::string_view text);

} // namespace runnel::sql
