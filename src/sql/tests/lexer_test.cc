#include <gtest/gtest.h>

#include "sql/sql.h"

namespace runnel::sql {
namespace {

std::vector<token> lex(std::string_view s) {
    auto r = tokenize(s);
    EXPECT_TRUE(r.has_value()) << (r.has_value() ? "" : r.error().headline());
    return r.has_value() ? std::move(r).value() : std::vector<token>{};
}

TEST(sql_lexer, words_numbers_strings_symbols) {
    auto t = lex("SELECT a1, `weird name`, 'it''s', 42, 3.5, 1e3, .5 FROM t -- tail\n/* x */ <> != <= || =>");
    ASSERT_EQ(t.size(), 22u);
    EXPECT_TRUE(t[0].is_keyword("select"));
    EXPECT_EQ(t[1].text, "a1");
    EXPECT_EQ(t[3].kind, token_kind::quoted_identifier);
    EXPECT_EQ(t[3].text, "weird name");
    EXPECT_EQ(t[5].kind, token_kind::string);
    EXPECT_EQ(t[5].text, "it's");
    EXPECT_EQ(t[7].kind, token_kind::integer);
    EXPECT_EQ(t[9].kind, token_kind::decimal);
    EXPECT_EQ(t[11].kind, token_kind::decimal);
    EXPECT_EQ(t[13].text, ".5");
    EXPECT_TRUE(t[16].is_symbol("<>"));
    EXPECT_TRUE(t[17].is_symbol("!="));
    EXPECT_TRUE(t[19].is_symbol("||"));
    EXPECT_TRUE(t[20].is_symbol("=>"));
    EXPECT_EQ(t.back().kind, token_kind::end);
}

TEST(sql_lexer, positions_count_lines_and_characters) {
    auto t = lex("SELECT\n  \xC3\xA9t\xC3\xA9, b\n FROM t");
    ASSERT_GE(t.size(), 5u);
    EXPECT_EQ(t[1].pos.line, 2);
    EXPECT_EQ(t[1].pos.column, 3);
    EXPECT_EQ(t[3].pos.line, 2);
    EXPECT_EQ(t[3].pos.column, 8); // "été" is three characters
    EXPECT_EQ(t[4].pos.line, 3);
    EXPECT_EQ(t[4].pos.column, 2);
}

TEST(sql_lexer, errors_point_at_the_start) {
    auto r = tokenize("SELECT 'abc");
    ASSERT_FALSE(r.has_value());
    EXPECT_EQ(r.error().headline(), "line 1:8: unterminated string literal: missing closing quote");
    r = tokenize("SELECT a\n  /* open");
    ASSERT_FALSE(r.has_value());
    EXPECT_EQ(r.error().line, 2);
    EXPECT_EQ(r.error().column, 3);
    r = tokenize("SELECT 12abc");
    ASSERT_FALSE(r.has_value());
    EXPECT_EQ(r.error().message, "malformed number '12abc'");
    r = tokenize(std::string_view("SELECT \0", 8));
    ASSERT_FALSE(r.has_value());
    EXPECT_EQ(r.error().message, "unexpected character byte 0x00");
}

TEST(sql_lexer, reserved_words) {
    EXPECT_TRUE(is_reserved("select"));
    EXPECT_TRUE(is_reserved("FROM"));
    EXPECT_FALSE(is_reserved("timestamp"));
    EXPECT_FALSE(is_reserved("window_start"));
    EXPECT_FALSE(is_reserved("a_very_long_identifier_name"));
}

} // namespace
} // namespace runnel::sql
