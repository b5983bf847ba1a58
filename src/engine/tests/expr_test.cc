#include <gtest/gtest.h>

#include <cmath>

#include <fmt/format.h>

#include "engine/engine.h"

namespace runnel::engine {
namespace {

schema_ptr people() {
    return make_schema({{"name", data_type::string()},
                        {"age", data_type::int64()},
                        {"score", data_type::float64()},
                        {"vip", data_type::boolean()},
                        {"ts", data_type::timestamp()}});
}

batch sample() {
    return make_batch(people(), {
                                  {value::of("Ann"), value::of(30), value::of(1.5), value::of(true), value::ts(1000)},
                                  {value::of("bob"), value::null(data_type::int64()), value::of(2.0),
                                   value::null(data_type::boolean()), value::ts(2000)},
                                  {value::null(data_type::string()), value::of(7), value::null(data_type::float64()),
                                   value::of(false), value::ts(3000)},
                                });
}

std::vector<value> eval(const expr& e, const batch& b = sample()) {
    auto bound = bind(e, *b.schema_of());
    EXPECT_TRUE(bound) << (bound ? "" : bound.error().message);
    column c = bound.value().evaluate(b);
    std::vector<value> out;
    for (size_t i = 0; i < c.size(); ++i) out.push_back(c.value_at(i));
    return out;
}


TEST(column, null_bitmap_and_strings_in_one_arena) {
    column c(data_type::string());
    for (int i = 0; i < 130; ++i) {
        if (i % 3 == 0) c.push_null();
        else c.push_string(std::to_string(i));
    }
    EXPECT_EQ(c.size(), 130u);
    EXPECT_EQ(c.null_count(), 44u);
    EXPECT_TRUE(c.is_null(129));
    EXPECT_EQ(c.string_at(128), "128");
    EXPECT_EQ(c.string_at(1), "1");
}

TEST(batch, select_keeps_row_kinds_and_values) {
    auto s = make_schema({{"k", data_type::int64()}});
    batch b(s);
    b.append_row({value::of(1)});
    b.append_row({value::of(2)}, row_kind::update_before);
    b.append_row({value::of(3)}, row_kind::update_after);
    auto sel = b.select({0, 1, 1});
    ASSERT_EQ(sel.num_rows(), 2u);
    EXPECT_EQ(sel.kind(0), row_kind::update_before);
    EXPECT_EQ(sel.row_to_string(1), "+U(3)");
}

TEST(batch, append_row_keeps_the_kind_of_a_first_row) {
    auto s = make_schema({{"k", data_type::int64()}});
    batch b(s);
    b.append_row({value::of(1)}, row_kind::update_before);
    b.append_row({value::of(2)});
    b.append_row({value::of(3)}, row_kind::delete_row);
    ASSERT_EQ(b.num_rows(), 3u);
    EXPECT_EQ(b.kind(0), row_kind::update_before);
    EXPECT_EQ(b.kind(1), row_kind::insert);
    EXPECT_EQ(b.kind(2), row_kind::delete_row);
}

TEST(expr, arithmetic_promotes_and_propagates_null) {
    auto r = eval(col("age") + 1);
    EXPECT_EQ(r[0], value::of(31));
    EXPECT_TRUE(r[1].is_null());
    r = eval(col("age") * col("score"));
    EXPECT_EQ(r[0], value::of(45.0));
    EXPECT_TRUE(r[2].is_null());
    r = eval(col("age") / 4);
    EXPECT_EQ(r[0], value::of(7));
    r = eval(col("age") % 4);
    EXPECT_EQ(r[0], value::of(2));
    r = eval(-col("age"));
    EXPECT_EQ(r[2], value::of(-7));
}

TEST(expr, division_by_zero_and_overflow_are_null) {
    auto r = eval(col("age") / 0);
    EXPECT_TRUE(r[0].is_null());
    r = eval(col("age") % 0);
    EXPECT_TRUE(r[0].is_null());
    r = eval(col("age") * lit(int64_t(INT64_MAX)));
    EXPECT_TRUE(r[0].is_null());
    r = eval(col("score") / 0);
    EXPECT_TRUE(r[0].is_null());
}

TEST(expr, comparisons_with_null_are_null) {
    auto r = eval(col("age") > 10);
    EXPECT_EQ(r[0], value::of(true));
    EXPECT_TRUE(r[1].is_null());
    EXPECT_EQ(r[2], value::of(false));
    r = eval(col("name") == lit("Ann"));
    EXPECT_EQ(r[0], value::of(true));
    EXPECT_EQ(r[1], value::of(false));
    EXPECT_TRUE(r[2].is_null());
    r = eval(col("age") < col("score")); // bigint vs double
    EXPECT_EQ(r[0], value::of(false));
}

TEST(expr, three_valued_logic) {
    // vip: true, NULL, false
    auto t = lit(true), f = lit(false);
    auto r = eval(col("vip") && t);
    EXPECT_EQ(r[0], value::of(true));
    EXPECT_TRUE(r[1].is_null());
    EXPECT_EQ(r[2], value::of(false));
    r = eval(col("vip") && f);
    EXPECT_EQ(r[1], value::of(false)); // NULL AND FALSE = FALSE
    r = eval(col("vip") || t);
    EXPECT_EQ(r[1], value::of(true)); // NULL OR TRUE = TRUE
    r = eval(col("vip") || f);
    EXPECT_TRUE(r[1].is_null()); // NULL OR FALSE = NULL
    r = eval(!col("vip"));
    EXPECT_EQ(r[0], value::of(false));
    EXPECT_TRUE(r[1].is_null());
    r = eval(is_null(col("vip")));
    EXPECT_EQ(r[1], value::of(true));
    EXPECT_EQ(r[0], value::of(false));
    r = eval(is_not_null(col("name")));
    EXPECT_EQ(r[2], value::of(false));
}

TEST(expr, case_when_first_true_branch_else_or_null) {
    auto r = eval(case_when({{col("age") > 20, lit("old")}, {col("age") > 5, lit("young")}}, lit("unknown")));
    EXPECT_EQ(r[0], value::of("old"));
    EXPECT_EQ(r[1], value::of("unknown")); // NULL condition is not true
    EXPECT_EQ(r[2], value::of("young"));
    r = eval(case_when({{col("age") > 20, lit(1)}}));
    EXPECT_TRUE(r[2].is_null());
    // bigint and double branches give double
    auto b = bind(case_when({{col("vip"), col("age")}}, col("score")), *people());
    ASSERT_TRUE(b);
    EXPECT_EQ(b.value().type(), data_type::float64());
}

TEST(expr, casts_between_types) {
    auto r = eval(cast(col("age"), data_type::string()));
    EXPECT_EQ(r[0], value::of("30"));
    r = eval(cast(lit("42"), data_type::int64()));
    EXPECT_EQ(r[0], value::of(42));
    r = eval(cast(lit("4x2"), data_type::int64()));
    EXPECT_TRUE(r[0].is_null());
    r = eval(cast(lit("2.5"), data_type::float64()));
    EXPECT_EQ(r[0], value::of(2.5));
    r = eval(cast(col("score"), data_type::int64()));
    EXPECT_EQ(r[0], value::of(1));
    r = eval(cast(col("vip"), data_type::int64()));
    EXPECT_EQ(r[0], value::of(1));
    r = eval(cast(lit("true"), data_type::boolean()));
    EXPECT_EQ(r[0], value::of(true));
    r = eval(cast(col("ts"), data_type::string()));
    EXPECT_EQ(r[0], value::of("1970-01-01 00:00:01.000"));
    r = eval(cast(col("ts"), data_type::timestamp(time_unit::micros)));
    EXPECT_EQ(std::get<int64_t>(r[0].v), 1000000);
    r = eval(cast(lit("2026-11-22 08:46:57.5"), data_type::timestamp()));
    EXPECT_EQ(std::get<int64_t>(r[0].v), 1795337217500);
    r = eval(cast(col("age"), data_type::float64()));
    EXPECT_EQ(r[0], value::of(30.0));
    EXPECT_TRUE(r[1].is_null());
}

TEST(expr, timestamps_compare_across_units) {
    auto s = make_schema({{"a", data_type::timestamp()}, {"b", data_type::timestamp(time_unit::micros)}});
    auto b = make_batch(s, {{value::ts(5), value::ts(5000, time_unit::micros)},
                            {value::ts(5), value::ts(5001, time_unit::micros)}});
    auto r = eval(col("a") == col("b"), b);
    EXPECT_EQ(r[0], value::of(true));
    EXPECT_EQ(r[1], value::of(false));
    r = eval(col("b") - col("a"), b);
    EXPECT_EQ(r[1], value::of(1));
}

TEST(expr, string_functions) {
    auto r = eval(lower(col("name")));
    EXPECT_EQ(r[0], value::of("ann"));
    EXPECT_TRUE(r[2].is_null());
    r = eval(upper(col("name")));
    EXPECT_EQ(r[1], value::of("BOB"));
    r = eval(concat({col("name"), lit("-"), cast(col("age"), data_type::string())}));
    EXPECT_EQ(r[0], value::of("Ann-30"));
    EXPECT_TRUE(r[1].is_null()); // any NULL argument
    r = eval(char_length(lit("héllo")));
    EXPECT_EQ(r[0], value::of(5));
    r = eval(substring(lit("héllo"), lit(2), lit(3)));
    EXPECT_EQ(r[0], value::of("éll"));
    r = eval(substring(lit("hello"), lit(3)));
    EXPECT_EQ(r[0], value::of("llo"));
    r = eval(substring(lit("hello"), lit(0), lit(2)));
    EXPECT_EQ(r[0], value::of("h"));
    r = eval(substring(lit("hello"), lit(9), lit(2)));
    EXPECT_EQ(r[0], value::of(""));
}

// An expression that repeats a subexpression (LOWER(name) in every WHEN) computes it once per
// evaluation; the answer is the one each occurrence alone gives, in evaluate and in
// select_true, and after the columns are remapped (the fused projection's narrow plan).
TEST(expr, repeated_subexpressions_give_the_same_answer) {
    auto lowered = lower(col("name"));
    auto e = case_when({{lowered == lit("ann"), lit("a")}, {lowered == lit("bob"), lit("b")}}, lowered);
    auto r = eval(e);
    EXPECT_EQ(r[0], value::of("a"));
    EXPECT_EQ(r[1], value::of("b"));
    EXPECT_TRUE(r[2].is_null());
    // Equal trees built separately are one node too.
    auto twice = concat({lower(col("name")), lit("/"), lower(col("name"))});
    EXPECT_EQ(eval(twice)[1], value::of("bob/bob"));
    auto pred = bind(lower(col("name")) == lit("bob") || lower(col("name")) == lit("ann"), *people()).value();
    std::vector<uint32_t> rows(3);
    auto b = sample();
    ASSERT_EQ(pred.select_true(b, rows.data()), 2u);
    EXPECT_EQ(rows[0], 0u);
    EXPECT_EQ(rows[1], 1u);
    auto narrow = bind(e, *people()).value().remap_columns({0, 0, 0, 0, 0});
    auto one = make_batch(make_schema({{"name", data_type::string()}}), {{value::of("BOB")}});
    EXPECT_EQ(narrow.evaluate(one).value_at(0), value::of("b"));
}

// REGEXP_EXTRACT remembers answers per (pattern, group, input) on its thread: the same input
// asked for another group, or under another pattern, gets its own answer, and more distinct
// inputs than the cache holds (here about 20 MB of them, over its 16 MB) are still answered
// right.
TEST(expr, regexp_extract_answers_repeat_and_stay_right) {
    auto s = make_schema({{"url", data_type::string()}});
    std::vector<std::vector<value>> in;
    for (int i = 0; i < 70000; ++i) in.push_back({value::of(fmt::format("{}a=1&channel_id={}&x", std::string(200, 'p'), i % 69001))});
    in.push_back({value::null(data_type::string())});
    auto b = make_batch(s, in);
    auto id = bind(regexp_extract(col("url"), lit("(&|^)channel_id=([^&]*)"), lit(2)), *s).value();
    auto sep = bind(regexp_extract(col("url"), lit("(&|^)channel_id=([^&]*)"), lit(1)), *s).value();
    auto bad = bind(regexp_extract(col("url"), lit("(unclosed")), *s).value();
    for (int pass = 0; pass < 2; ++pass) {
        column c = id.evaluate(b);
        column d = sep.evaluate(b);
        column e = bad.evaluate(b);
        for (size_t i = 0; i < 70000; ++i) {
            ASSERT_EQ(c.value_at(i), value::of(std::to_string(i % 69001))) << i;
            ASSERT_EQ(d.value_at(i), value::of("&")) << i;
            ASSERT_TRUE(e.value_at(i).is_null()) << i;
        }
        EXPECT_TRUE(c.value_at(70000).is_null());
    }
}

TEST(expr, like_patterns) {
    auto r = eval(like(col("name"), lit("A%")));
    EXPECT_EQ(r[0], value::of(true));
    EXPECT_EQ(r[1], value::of(false));
    EXPECT_TRUE(r[2].is_null());
    EXPECT_EQ(eval(like(lit("abc"), lit("a_c")))[0], value::of(true));
    EXPECT_EQ(eval(like(lit("aé c"), lit("a__c")))[0], value::of(true));
    EXPECT_EQ(eval(like(lit("abc"), lit("%b%")))[0], value::of(true));
    EXPECT_EQ(eval(like(lit("abc"), lit("%d%")))[0], value::of(false));
    EXPECT_EQ(eval(like(lit("a%c"), lit("a\\%c")))[0], value::of(true));
    EXPECT_EQ(eval(like(lit("abc"), lit("a\\%c")))[0], value::of(false));
    EXPECT_EQ(eval(like(lit("mississippi"), lit("%iss%pi")))[0], value::of(true));
}

TEST(expr, type_errors_name_the_column) {
    auto e = bind(col("name") + 1, *people());
    ASSERT_FALSE(e);
    EXPECT_EQ(e.error().code, errc::type_mismatch);
    EXPECT_NE(e.error().message.find("column 'name' is string"), std::string::npos) << e.error().message;

    e = bind(col("nope") > 1, *people());
    ASSERT_FALSE(e);
    EXPECT_EQ(e.error().code, errc::unknown_column);
    EXPECT_NE(e.error().message.find("'nope'"), std::string::npos);

    e = bind(col("age") && lit(true), *people());
    ASSERT_FALSE(e);
    EXPECT_NE(e.error().message.find("column 'age' is bigint"), std::string::npos) << e.error().message;

    e = bind(col("name") == col("age"), *people());
    ASSERT_FALSE(e);
    EXPECT_NE(e.error().message.find("column 'name'"), std::string::npos);

    e = bind(lower(col("age")), *people());
    ASSERT_FALSE(e);
    e = bind(case_when({{col("age"), lit(1)}}), *people());
    ASSERT_FALSE(e);
    e = bind(case_when({{col("vip"), lit(1)}}, lit("x")), *people());
    ASSERT_FALSE(e);
    e = bind(like(col("name"), lit(3)), *people());
    ASSERT_FALSE(e);
}

TEST(hash_partition, stable_and_in_range) {
    auto s = make_schema({{"k", data_type::int64()}});
    batch b(s);
    for (int i = 0; i < 1000; ++i) b.append_row({value::of(i % 10)});
    auto p = hash_partition(b, {0}, 4);
    std::vector<int> seen(4);
    for (size_t i = 0; i < p.size(); ++i) {
        ASSERT_LT(p[i], 4u);
        EXPECT_EQ(p[i], p[i % 10]);
        seen[p[i]]++;
    }
}

} // namespace
} // namespace runnel::engine

namespace runnel::engine {
namespace {

TEST(expr, constant_fast_paths_agree_with_the_general_ones) {
    auto s = make_schema({{"i", data_type::int64()}, {"d", data_type::float64()}});
    batch full(s), holes(s);
    for (int k = 0; k < 200; ++k) {
        full.append_row({value::of(k - 100), value::of(double(k) / 4)});
        holes.append_row({k % 7 == 0 ? value::null(data_type::int64()) : value::of(k - 100), value::of(double(k) / 4)});
    }
    for (const auto& e : {col("i") > 3, col("i") <= 3.5, col("d") == 2, col("d") * 0.5 > col("i"),
                          col("d") * 3 - 1 >= col("d"), col("i") != col("i") + 0, col("d") + 1 < 10.25}) {
        auto bound = bind(e, *s).value();
        column a = bound.evaluate(full), b = bound.evaluate(holes);
        for (size_t r = 0; r < 200; ++r) {
            if (r % 7 == 0 && b.is_null(r)) continue;
            ASSERT_EQ(a.value_at(r), b.value_at(r)) << e.to_string() << " row " << r;
        }
    }
    auto r = bind(col("d") * 0.5, *s).value().evaluate(full);
    EXPECT_EQ(r.value_at(8), value::of(1.0));
    EXPECT_EQ(r.null_count(), 0u);
}

// select_true lists exactly the rows where evaluate gives TRUE, on its fast paths (a column
// against a constant, ANDs of those) and on the general one, with and without NULLs.
TEST(expr, select_true_lists_the_rows_evaluate_makes_true) {
    auto s = make_schema({{"i", data_type::int64()}, {"d", data_type::float64()}, {"b", data_type::boolean()}});
    batch full(s), holes(s);
    for (int k = 0; k < 300; ++k) {
        double d = k % 11 == 0 ? std::nan("") : double(k % 37) / 4;
        full.append_row({value::of((k * 7919) % 101 - 50), value::of(d), value::of(k % 3 == 0)});
        holes.append_row({k % 7 == 0 ? value::null(data_type::int64()) : value::of((k * 7919) % 101 - 50),
                          k % 5 == 0 ? value::null(data_type::float64()) : value::of(d),
                          k % 4 == 0 ? value::null(data_type::boolean()) : value::of(k % 3 == 0)});
    }
    for (const auto& e :
         {col("i") > 3, col("i") <= 3.5, col("i") == -7, col("d") != 2, col("d") < 4.25, col("d") >= 5,
          col("i") > 0 && col("d") < 6, col("i") > 0 && col("b"), col("b") && col("i") < 10, col("b"),
          col("i") > 0 || col("d") < 1, !(col("i") > 5), col("d") * 2 > col("i"), is_null(col("i")),
          col("i") > 0 && (col("d") < 6 && col("i") != 20)}) {
        for (const batch* b : {&full, &holes}) {
            auto bound = bind(e, *s).value();
            column m = bound.evaluate(*b);
            std::vector<uint32_t> want;
            for (size_t r = 0; r < b->num_rows(); ++r) {
                if (m.valid(r) && m.bool_at(r)) want.push_back(uint32_t(r));
            }
            std::vector<uint32_t> got(b->num_rows());
            got.resize(bound.select_true(*b, got.data()));
            EXPECT_EQ(got, want) << e.to_string() << (b == &holes ? " with NULLs" : "");
        }
    }
}

// A fused filter and projection gives what the projection gives after the filter, including
// projections of constants only and of one column twice.
TEST(pipeline, fused_filter_projection_equals_filter_then_projection) {
    auto s = make_schema({{"i", data_type::int64()}, {"d", data_type::float64()}, {"t", data_type::string()}});
    std::vector<batch> in;
    for (int n = 0; n < 4; ++n) {
        batch b(s);
        for (int k = 0; k < 100; ++k) {
            b.append_row({k % 9 == 0 ? value::null(data_type::int64()) : value::of(k * n - 40), value::of(k * 0.5),
                          value::of(std::to_string(k))});
        }
        in.push_back(std::move(b));
    }
    std::vector<std::vector<named_expr>> projections{
      {as(col("t"), "t"), as(col("d") * 2, "dd")},
      {as(lit(1), "one")},
      {as(col("i"), "a"), as(col("i"), "b"), as(col("i") + col("d"), "c")},
      {as(upper(col("t")), "u"), as(col("i"), "i")},
    };
    for (const auto& proj : projections) {
        std::vector<std::string> fused, apart;
        for (bool fuse : {true, false}) {
            pipeline p;
            auto f = p.source(s, from_batches(in)).filter(col("i") > 5 && col("d") < 40);
            // A stage between them (a projection of everything) keeps them apart.
            if (!fuse) f = f.project({as(col("i"), "i"), as(col("d"), "d"), as(col("t"), "t")});
            f.project(proj).sink([&, fuse](const batch& b) {
                for (size_t r = 0; r < b.num_rows(); ++r) (fuse ? fused : apart).push_back(b.row_to_string(r));
            });
            ASSERT_TRUE(p.run());
        }
        EXPECT_FALSE(fused.empty());
        EXPECT_EQ(fused, apart);
    }
}

} // namespace
} // namespace runnel::engine
