#include <gtest/gtest.h>

#include <thread>

#include "jobs/views.h"

namespace runnel::jobs {
namespace {

// A subscriber that starts while the view changes on another thread: its snapshot plus the
// changes it receives always equal the view's rows.
TEST(view, snapshot_plus_changes_equals_the_current_rows) {
    view v("prices", {"sym"});
    std::atomic<bool> done{false};
    std::thread writer([&] {
        for (int i = 0; i < 20000; ++i) {
            auto key = std::to_string(i % 97);
            if (i % 13 == 0) v.remove(key);
            else v.upsert(key, std::to_string(i));
        }
        done = true;
    });
    std::vector<std::unique_ptr<manual_executor>> execs;
    std::vector<std::map<std::string, std::string>> mirrors(20);
    std::vector<uint64_t> ids, lasts(20);
    for (size_t s = 0; s < 20; ++s) {
        execs.push_back(std::make_unique<manual_executor>());
        auto& m = mirrors[s];
        auto& last = lasts[s];
        uint64_t id = 0;
        auto snap = v.subscribe(id, *execs.back(), [&m, &last](const view_change& c) {
            EXPECT_GT(c.version, last);
            last = c.version;
            if (c.kind == view_change::op::upsert) m[c.key] = c.row;
            else m.erase(c.key);
        });
        last = snap.version;
        for (auto& [k, r] : snap.rows) m[k] = r;
        ids.push_back(id);
    }
    writer.join();
    auto final_rows = v.rows();
    std::map<std::string, std::string> want(final_rows.rows.begin(), final_rows.rows.end());
    for (size_t s = 0; s < execs.size(); ++s) {
        execs[s]->poll();
        EXPECT_EQ(mirrors[s], want) << "subscriber " << s;
        v.unsubscribe(ids[s]);
    }
    EXPECT_EQ(v.subscribers(), 0u);
}

TEST(view_sink, changelog_rows_apply_and_the_table_survives_a_checkpoint) {
    auto v = std::make_shared<view>("totals", std::vector<std::string>{"k"});
    view_sink sink(v);
    auto s = engine::make_schema({{"k", engine::data_type::string()}, {"n", engine::data_type::int64()}});
    auto b = engine::make_batch(s, {{engine::value::of("a"), engine::value::of(int64_t(1))},
                                    {engine::value::of("b"), engine::value::of(int64_t(2))},
                                    {engine::value::of("a"), engine::value::of(int64_t(3))},
                                    {engine::value::of("b"), engine::value::of(int64_t(2))}});
    b.set_row_kinds({engine::row_kind::insert, engine::row_kind::insert, engine::row_kind::update_after,
                     engine::row_kind::delete_row});
    sink.write(b);
    EXPECT_EQ(v->size(), 1u);
    EXPECT_EQ(v->row("a").value(), R"({"k":"a","n":3})");
    auto sealed = sink.seal();
    auto v2 = std::make_shared<view>("totals", std::vector<std::string>{"k"});
    view_sink again(v2);
    bool ok_done = false;
    again.recover(sealed, [&](result<void> r) { ok_done = bool(r); });
    EXPECT_TRUE(ok_done);
    EXPECT_EQ(v2->rows().rows, v->rows().rows);
}

} // namespace
} // namespace runnel::jobs
