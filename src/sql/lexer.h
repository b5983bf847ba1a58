#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "sql/ast.h"
#include "sql/error.h"

namespace runnel::sql {

enum class token_kind {
    identifier,        ///< a word (keywords are words; the parser tells them apart)
    quoted_identifier, ///< `like this`
    string,            ///< 'text' with '' for a quote; `text` holds the unescaped value
    integer,
    decimal,           ///< with a point or an exponent
    symbol,            ///< ( ) , . ; + - * / % = <> != < <= > >= || => etc.
    end,
};

/// One token. `text` is the word, symbol or number as written, or a string's value; `offset`
/// and `length` cover the token's bytes in the source.
struct token {
    token_kind kind = token_kind::end;
    std::string text;
    source_pos pos;
    uint32_t length = 0;

    /// A word that equals `keyword` ignoring case (quoted identifiers never do).
    bool is_keyword(std::string_view keyword) const noexcept;
    bool is_symbol(std::string_view s) const noexcept {
        return kind == token_kind::symbol && text == s;
    }
};

/// Splits SQL text into tokens, dropping whitespace, `-- line` and `/* block */` comments. A
/// hint, `/*+ NAME(args) */`, is not a comment: its `/*+` and `*/` are symbols and what is
/// between them is tokens.
/// The last token is always `end`. Fails on an unterminated string, identifier or comment and
/// on characters that cannot start a token.
parse_result<std::vector<token>> tokenize(std::string_view source);

/// The byte ranges [first, second) of the values of secret options (`text::secret_key`,
/// such as 'properties.sasl.jaas.config') in SQL text: each string literal written after such a
/// key in WITH (…), quotes included. A value the lexer cannot read to its end (unterminated)
/// is covered to the end of the text.
std::vector<std::pair<std::size_t, std::size_t>> secret_spans(std::string_view source);

/// `source` with every secret value (`secret_spans`) written as '******', for SQL text that is
/// shown (answers, logs, errors); the stored text keeps the values.
std::string mask_secrets(std::string_view source);

/// True when `word` is reserved: it cannot be an unquoted identifier or alias.
bool is_reserved(std::string_view word) noexcept;

} // namespace runnel::sql
