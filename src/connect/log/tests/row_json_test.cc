#include <gtest/gtest.h>

#include "connect/log/log.h"

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

} // namespace
} // namespace runnel::connect
