#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "base/base.h"

namespace runnel::sql {

enum class errc {
    success = 0,
    syntax_error,  ///< the lexer or parser rejected the text
    too_complex,   ///< nesting or size beyond the parser's limits
};

const char* errc_message(errc e) noexcept;
RUNNEL_ERRC_ENUM(errc);

} // namespace runnel::sql

RUNNEL_ERRC_REGISTER(runnel::sql::errc, "sql");

namespace runnel::sql {

/// What went wrong in SQL text and where: 1-based line and column (in characters, a tab
/// counting as one), the byte offset and byte length of the offending token (length 0 at the
/// end of input), and a message such as `expected ')' but found 'FROM'`.
struct error {
    errc code = errc::syntax_error;
    int32_t line = 1;
    int32_t column = 1;
    uint32_t offset = 0;
    uint32_t length = 0;
    std::string message;

    bool operator==(const error&) const = default;

    /// `line 3:14: expected ')' but found 'FROM'`.
    std::string headline() const;
};

/// A value of T or an `error`. Reading the value of a failed result aborts (a caller bug).
template <typename T>
using parse_result = outcome::std_result<T, error, outcome::policy::terminate>;

/// The error's headline, the source line it points into, and carets under the offending
/// token:
///
///     line 3:14: expected ')' but found 'FROM'
///       WHERE (a = 1 FROM t
///                    ^^^^
std::string format_error(std::string_view source, const error& e);

} // namespace runnel::sql
