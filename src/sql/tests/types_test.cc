#include <gtest/gtest.h>

#include "sql/sql.h"

namespace runnel::sql {
namespace {

data_type type_of(std::string_view s) {
    auto r = parse_type(s);
    EXPECT_TRUE(r.has_value()) << s << ": " << (r.has_value() ? "" : r.error().headline());
    return r.has_value() ? r.value() : data_type{};
}

TEST(sql_types, parse_and_print) {
    for (std::string_view s :
         {"STRING", "VARCHAR(20)", "CHAR(3)", "BIGINT", "INT", "SMALLINT", "TINYINT", "DOUBLE",
          "FLOAT", "DECIMAL(10, 2)", "DECIMAL(5)", "DECIMAL", "BOOLEAN", "DATE", "TIME(3)",
          "TIMESTAMP(3)", "TIMESTAMP", "TIMESTAMP_LTZ(3)", "BYTES", "ARRAY<BIGINT>",
          "MAP<STRING, DOUBLE NOT NULL>", "BIGINT NOT NULL"}) {
        EXPECT_EQ(to_string(type_of(s)), s);
    }
    EXPECT_EQ(to_string(type_of("integer")), "INT");
    EXPECT_EQ(to_string(type_of("timestamp(3) with local time zone")), "TIMESTAMP_LTZ(3)");
    EXPECT_EQ(to_string(type_of("TIMESTAMP(6) WITHOUT TIME ZONE")), "TIMESTAMP(6)");
    EXPECT_EQ(to_string(type_of("DOUBLE PRECISION")), "DOUBLE");
    EXPECT_EQ(to_string(type_of("NUMERIC(12,4)")), "DECIMAL(12, 4)");
}

TEST(sql_types, rows_nest_and_print_with_angle_brackets) {
    EXPECT_EQ(to_string(type_of("ROW<id BIGINT, `select` STRING NOT NULL>")),
              "ROW<id BIGINT, `select` STRING NOT NULL>");
    EXPECT_EQ(to_string(type_of("ROW(a INT, b ROW(c TIMESTAMP(3))) NOT NULL")),
              "ROW<a INT, b ROW<c TIMESTAMP(3)>> NOT NULL");
    data_type t = type_of("ROW<a INT, b ROW<c STRING>>");
    ASSERT_EQ(t.kind, type_kind::row);
    EXPECT_EQ(t.field_names, (std::vector<std::string>{"a", "b"}));
    EXPECT_EQ(find_field(t, "b"), 1u);
    EXPECT_FALSE(find_field(t, "B"));
    EXPECT_EQ(t.children[1].children[0].kind, type_kind::string);
    EXPECT_EQ(type_of("ROW<a INT>"), type_of("ROW(a INT)"));
    EXPECT_NE(type_of("ROW<a INT>"), type_of("ROW<b INT>"));
}

TEST(sql_types, parameters_are_checked) {
    EXPECT_EQ(parse_type("VARCHAR(0)").error().message,
              "the length must be between 1 and 2147483647, not 0");
    EXPECT_EQ(parse_type("DECIMAL(39, 2)").error().message,
              "the precision of DECIMAL must be between 1 and 38, not 39");
    EXPECT_EQ(parse_type("DECIMAL(5, 6)").error().message,
              "the scale of DECIMAL must be between 0 and 5, not 6");
    EXPECT_EQ(parse_type("TIMESTAMP(12)").error().message,
              "the precision of TIMESTAMP must be between 0 and 9, not 12");
    EXPECT_EQ(parse_type("TEXT").error().column, 1);
}

TEST(sql_types, defaults_and_common_types) {
    EXPECT_EQ(effective_precision(type_of("TIMESTAMP")), 6);
    EXPECT_EQ(effective_precision(type_of("DECIMAL")), 10);
    EXPECT_EQ(effective_precision(type_of("STRING")), max_varchar_length);
    auto ct = [](std::string_view a, std::string_view b) {
        auto t = common_type(type_of(a), type_of(b));
        return t ? to_string(*t) : std::string("none");
    };
    EXPECT_EQ(ct("INT", "BIGINT"), "BIGINT");
    EXPECT_EQ(ct("TINYINT", "SMALLINT"), "SMALLINT");
    EXPECT_EQ(ct("BIGINT", "DOUBLE"), "DOUBLE");
    EXPECT_EQ(ct("INT", "FLOAT"), "FLOAT");
    EXPECT_EQ(ct("INT", "DECIMAL(5, 2)"), "DECIMAL(12, 2)");
    EXPECT_EQ(ct("DECIMAL(10, 2)", "DECIMAL(6, 4)"), "DECIMAL(12, 4)");
    EXPECT_EQ(ct("VARCHAR(3)", "VARCHAR(9)"), "VARCHAR(9)");
    EXPECT_EQ(ct("VARCHAR(3)", "STRING"), "STRING");
    EXPECT_EQ(ct("TIMESTAMP(3)", "TIMESTAMP_LTZ(6)"), "TIMESTAMP_LTZ(6)");
    EXPECT_EQ(ct("BIGINT NOT NULL", "BIGINT NOT NULL"), "BIGINT NOT NULL");
    EXPECT_EQ(ct("BIGINT NOT NULL", "INT"), "BIGINT");
    EXPECT_EQ(ct("BOOLEAN", "BIGINT"), "none");
    EXPECT_EQ(ct("STRING", "DATE"), "none");
    EXPECT_TRUE(is_numeric(type_kind::decimal));
    EXPECT_TRUE(is_temporal(type_kind::timestamp_ltz));
    EXPECT_FALSE(is_integer(type_kind::double_));
}

} // namespace
} // namespace runnel::sql
