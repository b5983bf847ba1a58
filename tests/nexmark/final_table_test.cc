// final_table: how nexmark_check turns the changelog a sink receives into the final rows.

#include "final_table.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <sstream>

namespace runnel::nexmark_check {
namespace {

namespace en = runnel::engine;
using rk = en::row_kind;

en::schema_ptr columns() {
    return en::make_schema({{"id", en::data_type::int64()},
                            {"name", en::data_type::string()},
                            {"price", en::data_type::float64()},
                            {"ts", en::data_type::timestamp()}});
}

/// A batch of rows with their kinds (set as a whole, as the engine's operators do).
en::batch rows(const std::vector<std::pair<rk, std::vector<en::value>>>& rs) {
    en::batch b(columns());
    std::vector<rk> kinds;
    for (const auto& [k, r] : rs) {
        b.append_row(r);
        kinds.push_back(k);
    }
    b.set_row_kinds(std::move(kinds));
    return b;
}

std::vector<en::value> row(int64_t id, std::string name, double price) {
    return {en::value::of(id), en::value::of(std::move(name)), en::value::of(price),
            en::value::ts(1'704'034'800'200)};
}

/// The lines `write` gives, header first, the rows sorted.
std::vector<std::string> lines(const final_table& t) {
    std::ostringstream out;
    t.write(out);
    std::vector<std::string> ls;
    std::istringstream in(out.str());
    for (std::string l; std::getline(in, l);) {
        ls.push_back(l);
    }
    std::sort(ls.begin() + 1, ls.end());
    return ls;
}

TEST(final_table, without_a_key_rows_are_a_multiset) {
    final_table t(columns(), {});
    t.apply(rows({{rk::insert, row(1, "a", 1.5)},
                  {rk::insert, row(1, "a", 1.5)},
                  {rk::insert, row(2, "b, \"c\"", 0.1)},
                  {rk::update_before, row(1, "a", 1.5)},
                  {rk::update_after, row(1, "a", 2.5)}}));
    EXPECT_EQ(t.size(), 3u);
    EXPECT_EQ(t.changes, 5u);
    EXPECT_EQ(t.unmatched_retractions, 0u);
    EXPECT_EQ(lines(t), (std::vector<std::string>{"id:int64,name:string,price:float64,ts:timestamp",
                                                  "1,a,1.5,1704034800200", "1,a,2.5,1704034800200",
                                                  "2,\"b, \"\"c\"\"\",0.1,1704034800200"}));
    t.apply(rows({{rk::delete_row, row(1, "a", 1.5)}, {rk::delete_row, row(1, "a", 1.5)}}));
    EXPECT_EQ(t.size(), 2u);
    EXPECT_EQ(t.unmatched_retractions, 1u);
    EXPECT_EQ(t.first_unmatched, "-D 1,a,1.5,1704034800200");
}

TEST(final_table, with_a_key_the_last_row_of_each_key_stays) {
    final_table t(columns(), {0});
    t.apply(rows({{rk::insert, row(1, "a", 1)},
                  {rk::update_before, row(1, "a", 1)},
                  {rk::update_after, row(1, "a", 2)},
                  {rk::insert, row(2, "b", 3)},
                  {rk::insert, row(2, "b", 4)},
                  {rk::insert, row(3, "c", 5)},
                  {rk::delete_row, row(3, "c", 5)}}));
    EXPECT_EQ(t.unmatched_retractions, 0u);
    EXPECT_EQ(lines(t), (std::vector<std::string>{"id:int64,name:string,price:float64,ts:timestamp",
                                                  "1,a,2,1704034800200", "2,b,4,1704034800200"}));
}

TEST(final_table, nulls_and_text_that_looks_like_null) {
    final_table t(columns(), {});
    t.apply(rows(
        {{rk::insert,
          {en::value::of(int64_t{7}), en::value::of("\\N"),
           en::value::null(en::data_type::float64()), en::value::null(en::data_type::timestamp())}},
         {rk::insert,
          {en::value::of(int64_t{8}), en::value::of(""), en::value::of(0.1 + 0.2),
           en::value::ts(0)}}}));
    EXPECT_EQ(lines(t),
              (std::vector<std::string>{"id:int64,name:string,price:float64,ts:timestamp",
                                        "7,\"\\N\",\\N,\\N", "8,\"\",0.30000000000000004,0"}));
}

} // namespace
} // namespace runnel::nexmark_check
