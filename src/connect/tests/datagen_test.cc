// The datagen connector's generator: the same seed gives the same rows whatever the batch
// sizes, random values stay within their bounds, sequences end the rows, bad options are
// refused naming the option.

#include "connect/datagen/datagen.h"

#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <set>
#include <string>
#include <vector>

namespace runnel::connect::datagen {
namespace {

namespace en = runnel::engine;
using options = std::map<std::string, std::string>;

const model::processing_time t0(1'700'000'000'000);

struct table {
    std::vector<column> cols;
    en::schema_ptr schema;
};

table orders() {
    table t;
    t.cols = {{"id", column_kind::bigint},
              {"qty", column_kind::int_},
              {"price", column_kind::decimal, 6, 2},
              {"ratio", column_kind::double_},
              {"ok", column_kind::boolean},
              {"note", column_kind::string, 0, 0},
              {"ts", column_kind::timestamp}};
    t.schema = en::make_schema({{"id", en::data_type::int64()},
                                {"qty", en::data_type::int64()},
                                {"price", en::data_type::float64()},
                                {"ratio", en::data_type::float64()},
                                {"ok", en::data_type::boolean()},
                                {"note", en::data_type::string()},
                                {"ts", en::data_type::timestamp()}});
    return t;
}

generator make(const options& o, const table& t = orders()) {
    auto g = generator::make(o, t.cols, t.schema);
    EXPECT_TRUE(g) << (g ? "" : g.error().message);
    return std::move(g).value();
}

std::string error_of(const options& o, const table& t = orders()) {
    auto g = generator::make(o, t.cols, t.schema);
    return g ? std::string("no error") : g.error().message;
}

/// Every row generated, as text, reading batches of `step` rows.
std::vector<std::string> rows(generator g, std::size_t step, std::size_t limit = 100000) {
    std::vector<std::string> out;
    while (!g.done() && out.size() < limit) {
        auto b = g.next(step, t0);
        for (std::size_t r = 0; r < b.num_rows(); ++r) {
            out.push_back(b.row_to_string(r));
        }
    }
    return out;
}

TEST(datagen, the_same_seed_gives_the_same_rows_whatever_the_batch_size) {
    const options o{{"number-of-rows", "500"}, {"seed", "42"}, {"fields.note.length", "12"}};
    auto a = rows(make(o), 7);
    auto b = rows(make(o), 500);
    ASSERT_EQ(a.size(), 500u);
    EXPECT_EQ(a, b);
    auto other = o;
    other["seed"] = "43";
    EXPECT_NE(rows(make(other), 64), a);
    // A restored generator continues where it was.
    auto g = make(o);
    g.seek(250);
    auto tail = rows(std::move(g), 33);
    EXPECT_EQ(tail, std::vector<std::string>(a.begin() + 250, a.end()));
}

TEST(datagen, slices_of_a_parallel_table_give_every_row_once) {
    const options o{{"number-of-rows", "500"}, {"seed", "42"}, {"fields.note.length", "12"}, {"rows-per-second", "9"}};
    auto whole = rows(make(o), 64);
    ASSERT_EQ(whole.size(), 500u);
    std::vector<std::string> merged(whole.size());
    std::size_t total = 0;
    for (int64_t i = 0; i < 3; ++i) {
        auto g = make(o);
        g.slice(i, 3);
        EXPECT_EQ(g.rows_per_second(), 3); // its share of the rate
        EXPECT_EQ(*g.remaining(), 500 / 3 + (i < 500 % 3 ? 1 : 0));
        auto part = rows(std::move(g), 7);
        for (std::size_t k = 0; k < part.size(); ++k) merged[std::size_t(i) + 3 * k] = part[k];
        total += part.size();
    }
    EXPECT_EQ(total, whole.size());
    EXPECT_EQ(merged, whole);
    // A slice's position counts its own rows: a restored slice continues with its next row.
    auto g = make(o);
    g.slice(1, 3);
    g.seek(100);
    auto tail = rows(std::move(g), 5);
    ASSERT_EQ(tail.size(), 67u);
    EXPECT_EQ(tail.front(), whole[1 + 3 * 100]);
}

TEST(datagen, random_values_stay_within_their_bounds) {
    auto g = make({{"number-of-rows", "2000"},
                   {"fields.id.min", "-5"},
                   {"fields.id.max", "5"},
                   {"fields.qty.min", "1"},
                   {"fields.qty.max", "1"},
                   {"fields.price.min", "1.5"},
                   {"fields.price.max", "2.5"},
                   {"fields.ratio.min", "0"},
                   {"fields.ratio.max", "1"},
                   {"fields.note.length", "3"},
                   {"fields.note.null-rate", "0.5"}});
    auto b = g.next(5000, t0);
    ASSERT_EQ(b.num_rows(), 2000u);
    EXPECT_TRUE(g.done());
    std::set<int64_t> ids;
    std::size_t nulls = 0, trues = 0;
    for (std::size_t r = 0; r < b.num_rows(); ++r) {
        const auto id = b.col(0).int64_at(r);
        EXPECT_GE(id, -5);
        EXPECT_LE(id, 5);
        ids.insert(id);
        EXPECT_EQ(b.col(1).int64_at(r), 1);
        const double price = b.col(2).float64_at(r);
        EXPECT_GE(price, 1.5);
        EXPECT_LE(price, 2.5);
        EXPECT_DOUBLE_EQ(price, std::round(price * 100) / 100) << "two decimals";
        EXPECT_GE(b.col(3).float64_at(r), 0.0);
        EXPECT_LT(b.col(3).float64_at(r), 1.0);
        if (b.col(4).bool_at(r)) ++trues;
        if (b.col(5).is_null(r)) ++nulls;
        else EXPECT_EQ(b.col(5).string_at(r).size(), 3u);
        EXPECT_EQ(b.col(6).int64_at(r), t0());
    }
    EXPECT_EQ(ids.size(), 11u) << "every value of -5..5 is drawn";
    EXPECT_GT(nulls, 800u);
    EXPECT_LT(nulls, 1200u);
    EXPECT_GT(trues, 800u);
    EXPECT_LT(trues, 1200u);
}

TEST(datagen, an_int_column_defaults_to_the_int_range) {
    auto g = make({{"number-of-rows", "1000"}});
    auto b = g.next(1000, t0);
    bool beyond_int = false;
    for (std::size_t r = 0; r < b.num_rows(); ++r) {
        const auto q = b.col(1).int64_at(r);
        EXPECT_GE(q, INT32_MIN);
        EXPECT_LE(q, INT32_MAX);
        const auto id = b.col(0).int64_at(r);
        beyond_int = beyond_int || id > INT32_MAX || id < INT32_MIN;
        const double p = b.col(2).float64_at(r);
        EXPECT_LT(std::abs(p), 10000.0) << "DECIMAL(6, 2) holds less than 10^4";
    }
    EXPECT_TRUE(beyond_int) << "BIGINT draws from the whole BIGINT range";
}

TEST(datagen, the_shortest_sequence_ends_the_rows) {
    auto g = make({{"fields.id.kind", "sequence"},
                   {"fields.id.start", "10"},
                   {"fields.id.end", "19"},
                   {"fields.note.kind", "sequence"},
                   {"fields.note.start", "100"},
                   {"fields.note.end", "1000"}});
    ASSERT_EQ(g.remaining(), 10);
    auto b = g.next(3, t0);
    ASSERT_EQ(b.num_rows(), 3u);
    EXPECT_EQ(b.col(0).int64_at(2), 12);
    EXPECT_EQ(b.col(5).string_at(2), "102");
    auto rest = g.next(100, t0);
    ASSERT_EQ(rest.num_rows(), 7u);
    EXPECT_EQ(rest.col(0).int64_at(6), 19);
    EXPECT_TRUE(g.done());
    EXPECT_EQ(g.next(100, t0).num_rows(), 0u);
    // number-of-rows ends them earlier when it is smaller.
    auto h = make({{"number-of-rows", "4"}, {"fields.id.kind", "sequence"}, {"fields.id.start", "1"}, {"fields.id.end", "9"}});
    EXPECT_EQ(h.remaining(), 4);
    // Without either, the rows never end.
    EXPECT_FALSE(make({}).remaining());
}

TEST(datagen, bad_options_are_refused_naming_the_option) {
    EXPECT_EQ(error_of({{"rows-per-sec", "5"}}),
              "option 'rows-per-sec' is not a datagen option (number-of-rows, rows-per-second, seed, "
              "fields.<column>.<option>)");
    EXPECT_EQ(error_of({{"number-of-rows", "-1"}}), "option 'number-of-rows' must be a whole number >= 0, not '-1'");
    EXPECT_EQ(error_of({{"rows-per-second", "fast"}}), "option 'rows-per-second' must be a whole number >= 0, not 'fast'");
    EXPECT_EQ(error_of({{"fields.nope.kind", "random"}}),
              "option 'fields.nope.kind' names column 'nope', which the table does not have");
    EXPECT_EQ(error_of({{"fields.id.kind", "counter"}}), "option 'fields.id.kind' is random or sequence, not 'counter'");
    EXPECT_EQ(error_of({{"fields.id.step", "2"}}),
              "option 'fields.id.step': 'step' is not a datagen field option (kind, min, max, length, start, end, "
              "null-rate)");
    EXPECT_EQ(error_of({{"fields.id.kind", "sequence"}, {"fields.id.start", "1"}}),
              "a sequence needs 'fields.id.start' and 'fields.id.end'");
    EXPECT_EQ(error_of({{"fields.id.kind", "sequence"}, {"fields.id.start", "9"}, {"fields.id.end", "1"}}),
              "option 'fields.id.start' (9) is above 'fields.id.end' (1)");
    EXPECT_EQ(error_of({{"fields.qty.max", "3000000000"}}),
              "option 'fields.qty.max' must be a whole number in INT's range, not '3000000000'");
    EXPECT_EQ(error_of({{"fields.id.min", "9"}, {"fields.id.max", "1"}}), "option 'fields.id.min' is above 'fields.id.max'");
    EXPECT_EQ(error_of({{"fields.ratio.min", "x"}}), "option 'fields.ratio.min' must be a number, not 'x'");
    EXPECT_EQ(error_of({{"fields.note.min", "1"}}),
              "option 'fields.note.min' applies to random numeric columns; column 'note' is STRING");
    EXPECT_EQ(error_of({{"fields.id.length", "3"}}),
              "option 'fields.id.length' applies to random string columns; column 'id' is BIGINT");
    EXPECT_EQ(error_of({{"fields.id.start", "3"}}),
              "option 'fields.id.start' applies to sequences; set 'fields.id.kind' = 'sequence'");
    EXPECT_EQ(error_of({{"fields.ts.kind", "sequence"}, {"fields.ts.start", "1"}, {"fields.ts.end", "2"}}),
              "column 'ts' is TIMESTAMP: a sequence is of numbers or strings");
    EXPECT_EQ(error_of({{"fields.ok.null-rate", "2"}}), "option 'fields.ok.null-rate' must be from 0 to 1, not '2'");
}

TEST(datagen, the_source_keeps_its_rate_and_ends_with_the_generator) {
    int64_t now = t0();
    source s(make({{"number-of-rows", "2500"}, {"rows-per-second", "1000"}}),
             [&] { return model::processing_time(now); });
    auto fn = s.fn();
    auto first = fn();
    EXPECT_EQ(first.st, en::source_poll::status::idle) << "no time has passed";
    now += 500;
    auto half = fn();
    ASSERT_EQ(half.st, en::source_poll::status::data);
    EXPECT_EQ(half.rows.num_rows(), 500u);
    EXPECT_EQ(fn().st, en::source_poll::status::idle);
    EXPECT_EQ(s.state(), "500");
    now += 10'000;
    std::size_t rows = 0;
    for (;;) {
        auto p = fn();
        if (p.st != en::source_poll::status::data) {
            EXPECT_EQ(p.st, en::source_poll::status::end);
            break;
        }
        rows += p.rows.num_rows();
    }
    EXPECT_EQ(rows, 2000u);
    // A restore continues from the checkpoint's position.
    ASSERT_TRUE(s.restore("2400"));
    now += 1000;
    auto again = fn();
    ASSERT_EQ(again.st, en::source_poll::status::idle) << "the rate counts from the restore";
    now += 1000;
    again = fn();
    ASSERT_EQ(again.st, en::source_poll::status::data);
    EXPECT_EQ(again.rows.num_rows(), 100u);
    EXPECT_FALSE(s.restore("x"));
}

} // namespace
} // namespace runnel::connect::datagen
