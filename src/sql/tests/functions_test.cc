// The function registry: one entry per function, read by the binder (arguments, result type),
// the planner (the engine expression) and SHOW FUNCTIONS (the signature).

#include "sql/functions.h"
#include "sql/planner.h"
#include "sql/sql.h"

#include <gtest/gtest.h>

#include <fmt/format.h>

namespace runnel::sql {
namespace {

constexpr std::string_view functions_ddl = R"(
CREATE TABLE t (n BIGINT, x DOUBLE, s STRING, ts TIMESTAMP(3), b BOOLEAN,
                WATERMARK FOR ts AS ts - INTERVAL '1' SECOND);
)";

std::unique_ptr<memory_catalog> functions_catalog() {
    auto cat = std::make_unique<memory_catalog>();
    auto script = parse_script(functions_ddl);
    EXPECT_TRUE(script);
    for (const auto& st : script.value()) {
        auto t = table_schema_from(std::get<create_table_stmt>(st.node));
        EXPECT_TRUE(t);
        cat->put(std::move(t).value());
    }
    return cat;
}

/// A column of `t` of argument kind `k` (n numeric, i integer, s text, t time, b boolean).
std::string argument_of(char k, std::size_t i, std::string_view fn) {
    if (fn == "TO_TIMESTAMP_LTZ" && i == 1) {
        return "3"; // the precision is a literal
    }
    if (fn == "DATE_FORMAT" && i == 0) {
        return "ts"; // any type binds; the engine formats timestamps
    }
    switch (k) {
    case 'n':
        return "x";
    case 'i':
        return "n";
    case 's':
        return "s";
    case 't':
        return "ts";
    case 'b':
        return "b";
    default:
        return "n";
    }
}

parse_result<std::string> explain_call(const function_def& f, std::size_t args, const catalog& cat) {
    std::string call = fmt::format("{}(", f.name);
    for (std::size_t i = 0; i < args; ++i) {
        call += (i ? ", " : "") + argument_of(f.kind_of(i), i, f.name);
    }
    call += ")";
    auto script = parse_script(fmt::format("EXPLAIN SELECT {} AS v FROM t", call));
    if (!script) {
        return script.error();
    }
    return explain(script.value().front(), cat);
}

TEST(functions, are_found_by_name_once) {
    ASSERT_NE(find_function("REGEXP_EXTRACT"), nullptr);
    EXPECT_EQ(find_function("REGEXP_EXTRACT")->name, "REGEXP_EXTRACT");
    EXPECT_EQ(find_function("NO_SUCH_FUNCTION"), nullptr);
    EXPECT_EQ(find_function("regexp_extract"), nullptr) << "callers look names up in upper case";
    std::size_t n = 0;
    for (const auto& f : functions()) {
        EXPECT_EQ(find_function(f.name), &f);
        ++n;
    }
    EXPECT_GT(n, 70U);
}

TEST(functions, signatures_show_optional_and_repeated_arguments) {
    EXPECT_EQ(find_function("REGEXP_EXTRACT")->signature(), "REGEXP_EXTRACT(text, text[, integer])");
    EXPECT_EQ(find_function("UPPER")->signature(), "UPPER(text)");
    EXPECT_EQ(find_function("CONCAT")->signature(), "CONCAT(any, …)");
    EXPECT_EQ(find_function("PROCTIME")->signature(), "PROCTIME()");
    EXPECT_FALSE(find_function("PROCTIME")->deterministic);
    EXPECT_TRUE(find_function("UPPER")->deterministic);
    EXPECT_EQ(find_function("COALESCE")->nulls, function_def::handles);
}

// Every function with a lowering plans at each argument count it takes, so an entry cannot
// claim a kernel the planner does not reach; every other function is refused by name.
TEST(functions, each_lowering_plans_and_the_rest_are_refused_by_name) {
    auto cat = functions_catalog();
    for (const auto& f : functions()) {
        if (f.name == "CURRENT_WATERMARK" || f.name == "TIMESTAMPDIFF" || f.name == "TIMESTAMPADD") {
            continue; // their arguments are not plain columns
        }
        const int most = f.max_args == variadic ? f.min_args + 2 : f.max_args;
        for (int n = f.min_args; n <= most; ++n) {
            auto r = explain_call(f, static_cast<std::size_t>(n), *cat);
            const bool runs = f.lower && !(f.name == "TO_TIMESTAMP" && n == 2);
            if (runs) {
                EXPECT_TRUE(r) << f.name << " with " << n << ": " << (r ? "" : r.error().headline());
            } else {
                ASSERT_FALSE(r) << f.name << " with " << n << " planned";
                EXPECT_NE(r.error().headline().find("not supported yet"), std::string::npos) << r.error().headline();
                EXPECT_NE(r.error().headline().find(f.name == "TO_TIMESTAMP" ? "TO_TIMESTAMP" : f.name),
                          std::string::npos)
                  << r.error().headline();
            }
        }
    }
}

TEST(functions, the_binder_checks_calls_against_the_entry) {
    auto cat = functions_catalog();
    auto r = explain_call(*find_function("UPPER"), 2, *cat);
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().headline().find("UPPER takes 1 argument, not 2"), std::string::npos) << r.error().headline();
    auto script = parse_script("EXPLAIN SELECT REGEXP_EXTRACT(s, s, s) FROM t");
    ASSERT_TRUE(script);
    auto e = explain(script.value().front(), *cat);
    ASSERT_FALSE(e);
    EXPECT_NE(e.error().headline().find("argument 3 of REGEXP_EXTRACT must be an integer"), std::string::npos)
      << e.error().headline();
}

} // namespace
} // namespace runnel::sql
