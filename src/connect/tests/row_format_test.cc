#include <gtest/gtest.h>

#include "connect/format/row_format.h"

namespace runnel::connect {
namespace {

namespace en = runnel::engine;

// A ROW column (its flag, then `row.field` columns) is written as a nested object; a NULL ROW
// as null, without its fields; a flat schema as before.
TEST(row_to_json, rows_become_nested_objects) {
    auto s = en::make_schema({{"k", en::data_type::int64()},
                              {"p", en::data_type::boolean()},
                              {"p.id", en::data_type::int64()},
                              {"p.a", en::data_type::boolean()},
                              {"p.a.city", en::data_type::string()},
                              {"p.name", en::data_type::string()},
                              {"ok", en::data_type::boolean()}});
    en::batch b(s);
    b.append_row({en::value::of(int64_t(1)), en::value::of(true), en::value::of(int64_t(7)), en::value::of(true),
                  en::value::of("Oslo"), en::value::of("ann"), en::value::of(false)});
    b.append_row({en::value::of(int64_t(2)), en::value::null(en::data_type::boolean()),
                  en::value::null(en::data_type::int64()), en::value::null(en::data_type::boolean()),
                  en::value::null(en::data_type::string()), en::value::null(en::data_type::string()),
                  en::value::of(true)});
    b.append_row({en::value::of(int64_t(3)), en::value::of(true), en::value::of(int64_t(8)),
                  en::value::null(en::data_type::boolean()), en::value::null(en::data_type::string()),
                  en::value::of("bob"), en::value::null(en::data_type::boolean())});
    EXPECT_EQ(row_to_json(b, 0), R"({"k":1,"p":{"id":7,"a":{"city":"Oslo"},"name":"ann"},"ok":false})");
    EXPECT_EQ(row_to_json(b, 1), R"({"k":2,"p":null,"ok":true})");
    EXPECT_EQ(row_to_json(b, 2), R"({"k":3,"p":{"id":8,"a":null,"name":"bob"},"ok":null})");

    auto flat = en::make_schema({{"ok", en::data_type::boolean()}, {"n", en::data_type::int64()}});
    en::batch f(flat);
    f.append_row({en::value::of(true), en::value::of(int64_t(4))});
    EXPECT_EQ(row_to_json(f, 0), R"({"ok":true,"n":4})");
}

// A TIMESTAMP is written as SQL shows it, in a row and in a key, whatever the sink: one format
// throughout. A key joins the values of its columns with '|'; a null is empty.
TEST(row_to_json, timestamps_as_sql_shows_them_in_rows_and_keys) {
    auto s = en::make_schema({{"window_start", en::data_type::timestamp()},
                              {"user", en::data_type::string()},
                              {"n", en::data_type::int64()},
                              {"at", en::data_type::timestamp(en::time_unit::micros)}});
    en::batch b(s);
    b.append_row({en::value::ts(1796601510000), en::value::of("u1"), en::value::of(int64_t(3)),
                  en::value::ts(1796601510123456, en::time_unit::micros)});
    b.append_row({en::value::ts(0), en::value::null(en::data_type::string()), en::value::of(int64_t(-1)),
                  en::value::null(en::data_type::timestamp(en::time_unit::micros))});
    EXPECT_EQ(row_to_json(b, 0), R"({"window_start":"2026-12-06 23:58:30.000","user":"u1","n":3,)"
                                 R"("at":"2026-12-06 23:58:30.123456"})");
    EXPECT_EQ(row_key(b, 0, {0, 1}), "2026-12-06 23:58:30.000|u1");
    EXPECT_EQ(row_key(b, 1, {1, 0, 2}), "|1970-01-01 00:00:00.000|-1");
}

// CSV lines quote what a reader could misread and leave NULL empty; the file sink writes them.
TEST(row_format, csv_quotes_what_could_be_misread_and_leaves_null_empty) {
    auto s = en::make_schema({{"s", en::data_type::string()}, {"n", en::data_type::int64()}});
    en::batch b(s);
    b.append_row({en::value::of(std::string("a,b")), en::value::of(int64_t(1))});
    b.append_row({en::value::of(std::string("")), en::value::null(en::data_type::int64())});
    b.append_row({en::value::of(std::string("say \"hi\"")), en::value::of(int64_t(-2))});
    b.append_row({en::value::of(std::string("plain")), en::value::of(int64_t(3))});
    EXPECT_EQ(row_to_csv(b, 0), "\"a,b\",1");
    EXPECT_EQ(row_to_csv(b, 1), "\"\",");
    EXPECT_EQ(row_to_csv(b, 2), "\"say \"\"hi\"\"\",-2");
    EXPECT_EQ(row_to_csv(b, 3), "plain,3");
    std::vector<std::string> names;
    for (const auto& f : record_schema()->fields()) names.push_back(f.name);
    EXPECT_EQ(names, (std::vector<std::string>{"key", "value", "partition", "offset", "timestamp"}));
}

} // namespace
} // namespace runnel::connect
