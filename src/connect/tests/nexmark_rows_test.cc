// The rows the nexmark connector produces, pinned: hashes of the first events' rows recorded
// from the reference implementation of the connector, so a faster row path provably yields
// the same values.

#include "connect/nexmark/rows.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <string>
#include <vector>

namespace runnel::connect::nexmark {
namespace {

namespace en = runnel::engine;

std::vector<en::field> columns_of(const std::string& kind) {
    const auto i = en::data_type::int64();
    const auto s = en::data_type::string();
    const auto t = en::data_type::timestamp();
    if (kind == "bid") {
        return {{"auction", i}, {"bidder", i},   {"price", i}, {"channel", s},
                {"url", s},     {"dateTime", t}, {"extra", s}};
    }
    if (kind == "auction") {
        return {{"id", i},       {"itemName", s}, {"description", s}, {"initialBid", i},
                {"reserve", i},  {"dateTime", t}, {"expires", t},     {"seller", i},
                {"category", i}, {"extra", s}};
    }
    return {{"id", i},   {"name", s},  {"emailAddress", s}, {"creditCard", s},
            {"city", s}, {"state", s}, {"dateTime", t},     {"extra", s}};
}

/// FNV-1a over every cell (integers as 8 bytes, strings as length then bytes), row by row.
struct row_hash {
    uint64_t h = 0xcbf29ce484222325ULL;
    uint64_t rows = 0;
    void bytes(const void* p, std::size_t n) {
        const auto* c = static_cast<const unsigned char*>(p);
        for (std::size_t k = 0; k < n; ++k) {
            h ^= c[k];
            h *= 0x100000001b3ULL;
        }
    }
    void add(const en::batch& b) {
        for (std::size_t r = 0; r < b.num_rows(); ++r) {
            for (std::size_t c = 0; c < b.num_columns(); ++c) {
                const auto& col = b.col(c);
                if (col.type().id == en::type_id::string) {
                    auto v = col.string_at(r);
                    uint64_t n = v.size();
                    bytes(&n, sizeof n);
                    bytes(v.data(), v.size());
                } else {
                    int64_t v = col.int64_at(r);
                    bytes(&v, sizeof v);
                }
            }
        }
        rows += b.num_rows();
    }
};

row_hash read_all(std::map<std::string, std::string> options, std::vector<en::field> fields,
                  int64_t seek_to = 0) {
    auto r = row_reader::make(options, en::make_schema(std::move(fields)));
    EXPECT_TRUE(r.has_value());
    row_hash h;
    if (!r)
        return h;
    if (seek_to > 0) {
        EXPECT_TRUE(r.value().seek(seek_to).has_value());
    }
    while (!r.value().done())
        h.add(r.value().next());
    return h;
}

struct pinned {
    const char* kind;
    uint64_t rows;
    uint64_t hash;
};

TEST(nexmark_rows, first_100000_events_are_unchanged) {
    // Recorded from the connector before its row path was rewritten for speed.
    const pinned expected[] = {
        {"bid", 92'000, 0x4a6b4e77447a6602ULL},
        {"auction", 6'000, 0xfc94924b7e6ae2f1ULL},
        {"person", 2'000, 0xfa56599057f5d833ULL},
    };
    for (const auto& e : expected) {
        auto h = read_all({{"event", e.kind}, {"events.num", "100000"}}, columns_of(e.kind));
        EXPECT_EQ(h.rows, e.rows) << e.kind;
        EXPECT_EQ(h.h, e.hash) << e.kind << std::hex << " got 0x" << h.h;
    }
}

TEST(nexmark_rows, slices_of_a_parallel_table_read_every_event_once) {
    // Every row of each kind, as text, read by one reader or by the slices of three.
    auto rows_of = [](const std::map<std::string, std::string>& o, const char* kind, int64_t instance,
                      int64_t instances) {
        std::vector<std::string> out;
        auto r = row_reader::make(o, en::make_schema(columns_of(kind)));
        EXPECT_TRUE(r.has_value());
        r.value().slice(instance, instances);
        while (!r.value().done()) {
            auto b = r.value().next(512, 1000);
            for (std::size_t i = 0; i < b.num_rows(); ++i) out.push_back(b.row_to_string(i));
        }
        EXPECT_EQ(r.value().position(), 20000); // positions count every event of the stream
        return out;
    };
    for (const char* kind : {"bid", "person"}) {
        const std::map<std::string, std::string> o{{"event", kind}, {"events.num", "20000"}};
        auto whole = rows_of(o, kind, 0, 1);
        std::vector<std::string> merged;
        for (int64_t i = 0; i < 3; ++i) {
            auto part = rows_of(o, kind, i, 3);
            EXPECT_LT(part.size(), whole.size()) << kind;
            merged.insert(merged.end(), part.begin(), part.end());
        }
        std::sort(whole.begin(), whole.end());
        std::sort(merged.begin(), merged.end());
        EXPECT_EQ(merged, whole) << kind;
    }
}

TEST(nexmark_rows, other_options_are_unchanged) {
    // A seed, other proportions and sizes (bid extras empty), out-of-order groups, a later
    // start and a base time: the paths the defaults do not take.
    std::map<std::string, std::string> o = {{"events.num", "60000"},
                                            {"seed", "7"},
                                            {"person.proportion", "2"},
                                            {"auction.proportion", "5"},
                                            {"bid.proportion", "20"},
                                            {"bid.avg-size", "20"},
                                            {"person.avg-size", "40"},
                                            {"auction.avg-size", "900"},
                                            {"out-of-order.group-size", "7"},
                                            {"base-time", "1700000000000"},
                                            {"rate", "12345"},
                                            {"bid.hot-ratio.auctions", "3"},
                                            {"auction.hot-ratio.sellers", "5"},
                                            {"bid.hot-ratio.bidders", "1"},
                                            {"person.active", "17"},
                                            {"auction.in-flight", "9"}};
    const pinned expected[] = {
        {"bid", 43'528, 0xe49f2ab066c41b98ULL},
        {"auction", 10'884, 0x6e7fbacf93d27a56ULL},
        {"person", 4'354, 0xad996cde55c54d8aULL},
    };
    for (const auto& e : expected) {
        o["event"] = e.kind;
        auto h = read_all(o, columns_of(e.kind), 1234);
        EXPECT_EQ(h.rows, e.rows) << e.kind;
        EXPECT_EQ(h.h, e.hash) << e.kind << std::hex << " got 0x" << h.h;
    }
}

TEST(nexmark_rows, any_subset_of_columns_reads_the_same_values) {
    // Each column read alone, and all of them in reverse order, equal the full table's column.
    for (const std::string kind : {"bid", "auction", "person"}) {
        std::map<std::string, std::string> o = {{"event", kind}, {"events.num", "20000"}};
        auto all = columns_of(kind);
        auto full = row_reader::make(o, en::make_schema(all));
        ASSERT_TRUE(full.has_value());
        std::vector<en::batch> whole;
        while (!full.value().done())
            whole.push_back(full.value().next());
        auto reversed = std::vector<en::field>(all.rbegin(), all.rend());
        for (std::size_t c = 0; c <= all.size(); ++c) {
            auto fields = c < all.size() ? std::vector<en::field>{all[c]} : reversed;
            auto part = row_reader::make(o, en::make_schema(fields));
            ASSERT_TRUE(part.has_value());
            std::size_t bi = 0, ri = 0;
            while (!part.value().done()) {
                auto b = part.value().next();
                for (std::size_t r = 0; r < b.num_rows(); ++r) {
                    while (ri == whole[bi].num_rows()) {
                        ++bi;
                        ri = 0;
                    }
                    for (std::size_t k = 0; k < fields.size(); ++k) {
                        std::size_t src = c < all.size() ? c : all.size() - 1 - k;
                        ASSERT_EQ(b.col(k).value_at(r), whole[bi].col(src).value_at(ri))
                            << kind << " column " << fields[k].name << " row " << r;
                    }
                    ++ri;
                }
            }
        }
    }
}

} // namespace
} // namespace runnel::connect::nexmark
