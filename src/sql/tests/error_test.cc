// Golden error tests of the parser and the binder: each file in errors/ holds cases of the form
//
//     === name of the case
//     <SQL, one or more lines>
//     ---
//     <the exact output of format_error for it>
//
// Run with RUNNEL_UPDATE_GOLDEN=1 to rewrite the expected parts from the current output.

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>

#include "jobs/catalog.h"
#include "sql/sql.h"

namespace runnel::sql {
namespace {

struct golden_case {
    std::string name;
    std::string sql;
    std::string expected;
};

std::vector<std::string> lines_of(const std::string& text) {
    std::vector<std::string> out;
    std::istringstream in(text);
    std::string line;
    while (std::getline(in, line)) {
        out.push_back(line);
    }
    return out;
}

std::string join(const std::vector<std::string>& lines, std::size_t from, std::size_t to) {
    while (to > from && lines[to - 1].empty()) {
        --to;
    }
    std::string s;
    for (std::size_t i = from; i < to; ++i) {
        s += lines[i];
        if (i + 1 < to) {
            s += '\n';
        }
    }
    return s;
}

std::vector<golden_case> read_cases(const std::filesystem::path& p) {
    std::ifstream in(p, std::ios::binary);
    std::ostringstream buf;
    buf << in.rdbuf();
    auto lines = lines_of(buf.str());
    std::vector<golden_case> cases;
    std::size_t i = 0;
    while (i < lines.size()) {
        if (!lines[i].starts_with("=== ")) {
            ++i;
            continue;
        }
        golden_case c;
        c.name = lines[i].substr(4);
        std::size_t sql_begin = ++i;
        while (i < lines.size() && lines[i] != "---") {
            ++i;
        }
        c.sql = join(lines, sql_begin, i);
        std::size_t exp_begin = ++i;
        while (i < lines.size() && !lines[i].starts_with("=== ")) {
            ++i;
        }
        c.expected = join(lines, exp_begin, std::min(i, lines.size()));
        cases.push_back(std::move(c));
    }
    return cases;
}

/// Parses the script, then binds each statement in turn against a catalog that its CREATE
/// TABLE and CREATE VIEW statements fill; the first error is the output.
std::string actual_output(const std::string& sql) {
    auto r = parse_script(sql);
    if (!r.has_value()) {
        return format_error(sql, r.error());
    }
    memory_catalog cat(jobs::connector_check());
    for (const statement& s : r.value()) {
        binder b(cat);
        auto bound = b.bind(s);
        if (!bound.has_value()) {
            return format_error(sql, bound.error());
        }
        if (auto* t = std::get_if<create_table_stmt>(&s.node)) {
            cat.put(table_schema_from(*t).value());
        } else if (auto* v = std::get_if<create_view_stmt>(&s.node)) {
            table_schema view;
            view.name = v->name;
            view.kind = v->materialized ? relation_kind::materialized_view : relation_kind::view;
            view.definition = box<query>(v->body);
            cat.put(std::move(view));
        }
    }
    return "(parses and binds without error)";
}

TEST(sql_errors, golden_files) {
    std::filesystem::path dir = std::filesystem::path(RUNNEL_SOURCE_DIR) / "src/sql/tests/errors";
    bool update = std::getenv("RUNNEL_UPDATE_GOLDEN") != nullptr;
    int total = 0;
    for (const auto& entry : std::filesystem::directory_iterator(dir)) {
        if (entry.path().extension() != ".test") {
            continue;
        }
        auto cases = read_cases(entry.path());
        std::string rewritten;
        for (const auto& c : cases) {
            ++total;
            std::string actual = actual_output(c.sql);
            if (update) {
                rewritten += "=== " + c.name + "\n" + c.sql + "\n---\n" + actual + "\n\n";
                continue;
            }
            EXPECT_NE(actual, "(parses and binds without error)")
              << entry.path().filename() << ": " << c.name;
            EXPECT_EQ(actual, c.expected) << entry.path().filename() << ": " << c.name;
        }
        if (update) {
            std::ofstream(entry.path(), std::ios::binary) << rewritten;
        }
    }
    EXPECT_GE(total, 30);
}

TEST(sql_errors, format_error_draws_a_caret_under_the_token) {
    std::string sql = "SELECT a,\n  b\nFROM t WHERE (a = 1 FROM u";
    auto r = parse_statement(sql);
    ASSERT_FALSE(r.has_value());
    EXPECT_EQ(format_error(sql, r.error()),
              "line 3:21: expected ')' but found 'FROM'\n"
              "  FROM t WHERE (a = 1 FROM u\n"
              "                      ^^^^");
}

TEST(sql_errors, end_of_input_points_after_the_last_token) {
    std::string sql = "SELECT a FROM t WHERE\n";
    auto r = parse_statement(sql);
    ASSERT_FALSE(r.has_value());
    EXPECT_EQ(format_error(sql, r.error()),
              "line 1:22: expected an expression but found end of input\n"
              "  SELECT a FROM t WHERE\n"
              "                       ^");
}

TEST(sql_errors, tabs_keep_the_caret_aligned) {
    std::string sql = "SELECT\tx,\t FROM t";
    auto r = parse_statement(sql);
    ASSERT_FALSE(r.has_value());
    EXPECT_EQ(format_error(sql, r.error()),
              "line 1:12: expected an expression or * in the SELECT list but found 'FROM'\n"
              "  SELECT\tx,\t FROM t\n"
              "        \t  \t ^^^^");
}

TEST(sql_errors, secret_option_values_are_masked_in_text_and_errors) {
    const std::string script = "CREATE TABLE t (a INT) WITH ('connector' = 'kafka',\n"
                               "  'properties.sasl.jaas.config' = 'x.ScramLoginModule required password=\"hunter2\";', "
                               "'properties.sasl.password' = 'it''s', 'b' = )";
    const auto masked = mask_secrets(script);
    EXPECT_EQ(masked.find("hunter2"), std::string::npos) << masked;
    EXPECT_EQ(masked.find("it''s"), std::string::npos) << masked;
    EXPECT_NE(masked.find("'properties.sasl.jaas.config' = '******', 'properties.sasl.password' = '******', 'b' = )"),
              std::string::npos)
        << masked;
    // The error after the secrets points at the same token of the masked line.
    auto r = parse_script(script);
    ASSERT_FALSE(r);
    const auto text = format_error(script, r.error());
    EXPECT_EQ(text.find("hunter2"), std::string::npos) << text;
    const auto caret = text.rfind('\n');
    const auto shown = text.rfind('\n', caret - 1);
    const std::string line = text.substr(shown + 1, caret - shown - 1);
    const std::string carets = text.substr(caret + 1);
    ASSERT_EQ(line.find(')'), carets.find('^')) << text;
    // An error inside the secret points at the mask and never repeats it.
    error e = error_at(source_pos{2, 36, uint32_t(script.find("hunter2"))}, 7, "bad word 'hunter2'");
    const auto inside = format_error(script, e);
    EXPECT_EQ(inside.find("hunter2"), std::string::npos) << inside;
    EXPECT_NE(inside.find("bad word '******'"), std::string::npos) << inside;
}

TEST(sql_errors, an_unterminated_secret_is_masked_to_the_end) {
    const std::string script = "CREATE TABLE t (a INT) WITH ('properties.sasl.password' = 'hunter2";
    EXPECT_EQ(mask_secrets(script).find("hunter2"), std::string::npos);
    auto r = parse_script(script);
    ASSERT_FALSE(r);
    EXPECT_EQ(format_error(script, r.error()).find("hunter2"), std::string::npos) << format_error(script, r.error());
}

} // namespace
} // namespace runnel::sql
