#pragma once

#include <algorithm>
#include <cstddef>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "engine/expr.h"
#include "engine/types.h"
#include "sql/ast.h"
#include "sql/error.h"
#include "sql/types.h"

namespace runnel::sql {

/// What a function's lowering reads its call through: the planner translates each argument
/// when the function asks for it, with the type the function expects, so a function decides
/// which arguments it needs and as what. Implemented by the planner's expression translator;
/// used on the planning thread while one call is lowered.
class function_args {
public:
    virtual ~function_args() = default;
    /// The call as written (positions for errors).
    virtual const expr& call() const = 0;
    std::size_t size() const { return call().args.size(); }
    /// Argument `i` as an engine expression; `hint` types what the argument leaves open (a
    /// bare NULL, a literal).
    virtual parse_result<engine::expr> arg(std::size_t i, std::optional<engine::data_type> hint) = 0;
    parse_result<engine::expr> arg(std::size_t i);
    /// Argument `i` as text: strings as they are, other types cast to STRING.
    virtual parse_result<engine::expr> text(std::size_t i) = 0;
    /// Arguments `first`, `first + 1`, … as values of one type (NULLs take the type of the
    /// first typed one, or the call's expected type).
    virtual parse_result<std::vector<engine::expr>> values(std::size_t first) = 0;
    /// The engine type of `e` over the call's input, when it can be told.
    virtual std::optional<engine::data_type> type_of(const engine::expr& e) const = 0;
    /// The type the call's context expects, if any.
    virtual std::optional<engine::data_type> expected() const = 0;
    /// "planner: <what> is not supported yet", at argument `i` (the call itself when `i` is
    /// past the arguments).
    virtual error unsupported(std::size_t i, std::string_view what) const = 0;
};

/// Builds the engine expression of one call.
using lower_fn = parse_result<engine::expr> (*)(function_args& args);

/// Any number of arguments (`function_def::max_args`).
inline constexpr int variadic = -1;

/// One scalar SQL function, declared once: the binder checks calls against it, the planner
/// lowers calls through it, and SHOW FUNCTIONS lists it. Adding a function is one entry in
/// `functions.cc` (and, when the engine runs it, one lowering beside it) and its tests.
struct function_def {
    std::string_view name;
    int min_args;
    int max_args; ///< `variadic`: any number
    /// Argument kinds, one letter each: n numeric, i integer, s text, t date/time, b boolean,
    /// v interval, a any. The last letter repeats for further arguments.
    std::string_view kinds;
    /// The result type: `fixed` is `result` (with `precision`), `first`/`third` the type of
    /// that argument, `common` the common type of the arguments (of all but the condition
    /// for IF).
    enum result_rule { fixed, first, common, third } rule;
    type_kind result = type_kind::null;
    std::optional<int32_t> precision = {};
    /// The result is never NULL (PROCTIME, NOW).
    bool not_null = false;
    /// How NULL arguments are treated: `strict` gives NULL when any argument is NULL;
    /// `handles` looks at them (COALESCE, IFNULL, NULLIF, IF, CONCAT_WS).
    enum null_handling { strict, handles } nulls = strict;
    /// False when the value changes from call to call with the same arguments (PROCTIME, NOW,
    /// RAND): such a call is not folded or shared.
    bool deterministic = true;
    /// The engine expression of a call; null when the engine does not run the function yet
    /// (the binder accepts the call, the planner refuses it naming the function).
    lower_fn lower = nullptr;

    bool takes(std::size_t n) const {
        return static_cast<int>(n) >= min_args && (max_args == variadic || static_cast<int>(n) <= max_args);
    }
    /// The argument kind letter of argument `i`.
    char kind_of(std::size_t i) const { return kinds.empty() ? 'a' : kinds[std::min(i, kinds.size() - 1)]; }
    /// "REGEXP_EXTRACT(text, text[, integer])": the signature as SHOW FUNCTIONS prints it.
    std::string signature() const;
};

/// The function named `name` (upper case), or null.
const function_def* find_function(std::string_view name);

/// Every function, by name.
std::span<const function_def> functions();

/// "a number", "text", …: what argument kind `k` asks for, for messages and signatures.
const char* kind_name(char k);

} // namespace runnel::sql
