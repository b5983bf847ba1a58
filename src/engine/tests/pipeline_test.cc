#include <gtest/gtest.h>

#include <algorithm>
#include <random>

#include "engine/engine.h"

using namespace std::chrono_literals;

namespace runnel::engine {
namespace {

schema_ptr raw_schema() { return make_schema({{"value", data_type::string()}}); }

batch raw(const std::vector<std::string>& lines) {
    batch b(raw_schema());
    for (const auto& l : lines) b.append_row({value::of(l)});
    return b;
}

schema_ptr bid_schema() {
    return make_schema({{"auction", data_type::int64(), false},
                        {"price", data_type::float64()},
                        {"channel", data_type::string()},
                        {"ts", data_type::timestamp()}});
}

struct collected {
    std::vector<std::string> rows, dead;
};

collected decode_all(decode_format f, const std::vector<std::string>& lines, schema_ptr out = bid_schema()) {
    pipeline p;
    collected c;
    auto d = p.source(raw_schema(), from_batches({raw(lines)})).decode(f, std::move(out));
    d.sink([&](const batch& b) {
        for (size_t i = 0; i < b.num_rows(); ++i) c.rows.push_back(b.row_to_string(i));
    });
    d.dead_letters().sink([&](const batch& b) {
        for (size_t i = 0; i < b.num_rows(); ++i) c.dead.push_back(b.row_to_string(i));
    });
    auto r = p.run();
    EXPECT_TRUE(r) << (r ? "" : r.error().message);
    return c;
}

TEST(decode, json_lines_and_dead_letters_with_reasons) {
    auto c = decode_all(decode_format::json,
                        {
                          R"({"auction": 1, "price": 2.5, "channel": "web", "ts": 1000, "extra": [1, {"x": 2}]})",
                          R"({"ts": "1970-01-01 00:00:02.000", "auction": 2, "price": 3})",
                          R"({"auction": 3, "price": null, "channel": "app", "ts": 3000})",
                          R"({"auction": "x", "ts": 1})",
                          R"({"price": 1.0, "ts": 1})",
                          R"({"auction": 1, "ts": 1)",
                          R"([1, 2])",
                          R"({"auction": 1.5, "ts": 1})",
                          R"(not json)",
                          R"({"auction": 1, "auction": 2, "ts": 1})",
                        });
    EXPECT_EQ(c.rows, (std::vector<std::string>{"(1, 2.5, 'web', 1000)", "(2, 3, NULL, 2000)",
                                                "(3, NULL, 'app', 3000)"}));
    ASSERT_EQ(c.dead.size(), 7u);
    EXPECT_NE(c.dead[0].find("field 'auction': 'x' is not a valid bigint"), std::string::npos) << c.dead[0];
    EXPECT_NE(c.dead[1].find("field 'auction' is missing"), std::string::npos) << c.dead[1];
    EXPECT_NE(c.dead[2].find("not a JSON object"), std::string::npos) << c.dead[2];
    EXPECT_NE(c.dead[3].find("not a JSON object"), std::string::npos) << c.dead[3];
    EXPECT_NE(c.dead[4].find("field 'auction'"), std::string::npos) << c.dead[4];
    EXPECT_NE(c.dead[6].find("appears twice"), std::string::npos) << c.dead[6];
    // The payload travels with the reason.
    EXPECT_NE(c.dead[5].find("'not json'"), std::string::npos) << c.dead[5];
}

TEST(decode, json_objects_fill_row_columns) {
    // ROW p<id, a ROW<city>>: its flag and its fields (`row_layout`), then a top-level column.
    auto nested = make_schema({{"p", data_type::boolean()},
                               {"p.id", data_type::int64()},
                               {"p.a", data_type::boolean()},
                               {"p.a.city", data_type::string()},
                               {"n", data_type::int64()}});
    auto l = row_layout::of(*nested);
    EXPECT_TRUE(l.nested);
    EXPECT_EQ(l.parent, (std::vector<int>{-1, 0, 0, 2, -1}));
    EXPECT_EQ(l.key, (std::vector<std::string>{"p", "id", "a", "city", "n"}));
    EXPECT_FALSE(row_layout::of(*bid_schema()).nested);
    auto c = decode_all(decode_format::json,
                        {
                          R"({"p": {"id": 1, "a": {"city": "Oslo", "zip": 1}, "x": [1]}, "n": 5})",
                          R"({"p": null, "n": 6})",
                          R"({"n": 7, "p": {"a": null}})",
                          R"({"p": {"id": 2, "id": 3}})",
                          R"({"p": 4})",
                          R"({"id": 1, "city": "x"})",
                        },
                        nested);
    EXPECT_EQ(c.rows, (std::vector<std::string>{"(true, 1, true, 'Oslo', 5)", "(NULL, NULL, NULL, NULL, 6)",
                                                "(true, NULL, NULL, NULL, 7)",
                                                "(NULL, NULL, NULL, NULL, NULL)"}));
    ASSERT_EQ(c.dead.size(), 2u);
    EXPECT_NE(c.dead[0].find("field 'p.id' appears twice"), std::string::npos) << c.dead[0];
    EXPECT_NE(c.dead[1].find("field 'p': expected an object, got a number"), std::string::npos) << c.dead[1];
}

TEST(decode, csv_with_quotes_nulls_and_errors) {
    auto c = decode_all(decode_format::csv, {
                                              "1,2.5,web,1000",
                                              "2,,\"a, \"\"quoted\"\" one\",2000",
                                              "3,1.0,app,",
                                              "4,1.0,app",
                                              "5,1.0,app,1,extra",
                                              "x,1.0,app,1",
                                              ",1.0,app,1",
                                              "6,1.0,\"open,1",
                                              "7,1.0,web,1970-01-01 00:00:01.5",
                                            });
    EXPECT_EQ(c.rows, (std::vector<std::string>{"(1, 2.5, 'web', 1000)", "(2, NULL, 'a, \"quoted\" one', 2000)",
                                                "(3, 1, 'app', NULL)", "(7, 1, 'web', 1500)"}));
    ASSERT_EQ(c.dead.size(), 5u);
    EXPECT_NE(c.dead[0].find("3 fields, expected 4"), std::string::npos) << c.dead[0];
    EXPECT_NE(c.dead[1].find("more than 4 fields"), std::string::npos) << c.dead[1];
    EXPECT_NE(c.dead[2].find("'x' is not a valid bigint"), std::string::npos) << c.dead[2];
    EXPECT_NE(c.dead[3].find("not nullable"), std::string::npos) << c.dead[3];
    EXPECT_NE(c.dead[4].find("unterminated quote"), std::string::npos) << c.dead[4];
}

TEST(decode, garbage_never_crashes_and_every_record_is_accounted_for) {
    std::mt19937 rng(11);
    const std::string good = R"({"auction": 1, "price": 2.5, "channel": "w\u00e9b", "ts": "2026-11-22 08:00:00.123"})";
    const std::string csv = "1,2.5,\"we\"\"b\",1000";
    for (auto f : {decode_format::json, decode_format::csv}) {
        std::vector<std::string> lines;
        const std::string& base = f == decode_format::json ? good : csv;
        for (int i = 0; i < 3000; ++i) {
            std::string l = base;
            switch (i % 4) {
            case 0: l = l.substr(0, rng() % (l.size() + 1)); break; // truncated
            case 1: l[rng() % l.size()] = char(rng()); break;        // one byte changed
            case 2:
                for (int k = 0; k < 5; ++k) l.insert(l.begin() + long(rng() % l.size()), char(rng()));
                break;
            default: {
                l.assign(rng() % 40, '\0');
                for (auto& c : l) c = char(rng());
            }
            }
            lines.push_back(std::move(l));
        }
        auto c = decode_all(f, lines);
        EXPECT_EQ(c.rows.size() + c.dead.size(), lines.size());
        EXPECT_GT(c.dead.size(), 0u);
    }
}

TEST(decode, raw_keeps_the_bytes) {
    pipeline p;
    std::vector<std::string> rows;
    p.source(raw_schema(), from_batches({raw({"a", std::string("b\0c", 3)})}))
      .decode(decode_format::raw, make_schema({{"line", data_type::string()}}))
      .sink([&](const batch& b) {
          for (size_t i = 0; i < b.num_rows(); ++i) rows.emplace_back(b.col(0).string_at(i));
      });
    ASSERT_TRUE(p.run());
    ASSERT_EQ(rows.size(), 2u);
    EXPECT_EQ(rows[1], std::string("b\0c", 3));
}

TEST(pipeline, filter_project_dedup_union) {
    auto s = bid_schema();
    auto mk = [&](std::vector<std::vector<value>> rows) { return make_batch(s, rows); };
    auto row = [](int64_t a, double p, const char* ch, int64_t ts) {
        return std::vector<value>{value::of(a), value::of(p), value::of(ch), value::ts(ts)};
    };
    pipeline p;
    auto left = p.source(s, from_batches({mk({row(1, 10, "web", 1), row(2, 200, "app", 2)})}));
    auto right = p.source(s, from_batches({mk({row(1, 300, "web", 3), row(3, 400, "WEB", 4)})}));
    std::vector<std::string> out;
    left.union_with({right})
      .filter(col("price") > 100 || col("auction") == 1)
      .deduplicate({"auction"})
      .project({as(col("auction"), "auction"), as(col("price") * 2, "double_price"), as(lower(col("channel")), "ch")})
      .sink([&](const batch& b) {
          for (size_t i = 0; i < b.num_rows(); ++i) out.push_back(b.row_to_string(i));
      });
    ASSERT_TRUE(p.run());
    std::sort(out.begin(), out.end());
    // auction 1 appears twice (price 10 from the left, 300 from the right): only the first is kept.
    ASSERT_EQ(out.size(), 3u);
    EXPECT_EQ(out[1], "(2, 400, 'app')");
    EXPECT_EQ(out[2], "(3, 800, 'web')");
}

TEST(pipeline, fluent_api_from_source_to_windowed_sink) {
    auto s = bid_schema();
    std::vector<batch> in;
    for (int64_t t = 0; t < 30'000; t += 1'000) {
        in.push_back(make_batch(s, {{value::of(t / 10'000), value::of(double(t / 1'000)), value::of("web"), value::ts(t)},
                                    {value::of(int64_t(7)), value::of(1.0), value::of("app"), value::ts(t)}}));
    }
    pipeline p;
    std::vector<std::string> rows;
    p.source(s, from_batches(std::move(in)))
      .watermark("ts", 5s)
      .filter(col("channel") == lit("web"))
      .key_by({"auction"})
      .window(tumble(10s))
      .aggregate({count(), sum("price")})
      .sink([&](const batch& b) {
          for (size_t i = 0; i < b.num_rows(); ++i) rows.push_back(b.row_to_string(i));
      });
    auto r = p.run();
    ASSERT_TRUE(r) << r.error().message;
    std::sort(rows.begin(), rows.end());
    EXPECT_EQ(rows, (std::vector<std::string>{"(0, 10000, 0, 10, 45)", "(10000, 20000, 1, 10, 145)",
                                              "(20000, 30000, 2, 10, 245)"}));
}

TEST(pipeline, build_errors_are_reported_with_the_column) {
    pipeline p;
    p.source(bid_schema(), from_batches({})).filter(col("channel") + 1 > 2).sink([](const batch&) {});
    auto r = p.run();
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, errc::type_mismatch);
    EXPECT_NE(r.error().message.find("column 'channel' is string"), std::string::npos) << r.error().message;

    pipeline q;
    q.source(bid_schema(), from_batches({})).filter(col("price")).sink([](const batch&) {});
    EXPECT_EQ(q.check().error().code, errc::type_mismatch);

    pipeline u;
    auto a = u.source(bid_schema(), from_batches({}));
    auto b = u.source(raw_schema(), from_batches({}));
    a.union_with({b}).sink([](const batch&) {});
    EXPECT_EQ(u.check().error().code, errc::type_mismatch);

    pipeline w;
    w.source(bid_schema(), from_batches({})).watermark("channel", 1s);
    EXPECT_NE(w.check().error().message.find("'channel'"), std::string::npos);
}

TEST(pipeline, source_batches_of_the_wrong_schema_are_an_error) {
    pipeline p;
    p.source(bid_schema(), from_batches({raw({"x"})})).sink([](const batch&) {});
    auto r = p.run();
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, errc::invalid_pipeline);
}

TEST(pipeline, watermarks_flow_in_band_and_take_the_minimum_of_inputs) {
    auto s = bid_schema();
    auto one = [&](int64_t ts) {
        return make_batch(s, {{value::of(1), value::of(1.0), value::of("w"), value::ts(ts)}});
    };
    pipeline p;
    auto a = p.source(s, from_batches({one(100), one(200), one(300)})).watermark("ts", 10ms);
    auto b = p.source(s, from_batches({one(50)})).watermark("ts", 10ms);
    std::vector<int64_t> wms;
    a.union_with({b}).sink([](const batch&) {}, [&](model::event_time t) { wms.push_back(t.value()); });
    ASSERT_TRUE(p.run());
    ASSERT_FALSE(wms.empty());
    EXPECT_TRUE(std::is_sorted(wms.begin(), wms.end()));
    EXPECT_EQ(wms.front(), 39); // min(100 - 11, 50 - 11)
    EXPECT_EQ(wms.back(), end_of_time.value());
}

TEST(pipeline, idle_partitions_stop_holding_the_watermark_back) {
    auto s = bid_schema();
    for (bool with_timeout : {false, true}) {
        int64_t now = 0;
        int polls = 0;
        auto fn = [&]() -> source_poll {
            now += 100; // each poll is 100 ms of processing time
            ++polls;
            if (polls > 40) return source_poll::end();
            int32_t part = polls == 1 ? 1 : 0; // partition 1 sends once, then goes quiet
            auto b = make_batch(s, {{value::of(1), value::of(1.0), value::of("w"), value::ts(polls * 1000)}});
            b.set_source_partition(part);
            return source_poll::data(std::move(b));
        };
        pipeline_options po;
        po.clock = [&]() { return model::processing_time(now); };
        pipeline p(po);
        watermark_options wo;
        wo.partitions = 2;
        wo.idle_timeout = with_timeout ? 500ms : 0ms;
        std::vector<int64_t> wms;
        p.source(s, fn).watermark("ts", 0ms, wo).sink([](const batch&) {}, [&](model::event_time t) {
            wms.push_back(t.value());
        });
        ASSERT_TRUE(p.run());
        int64_t before_end = INT64_MIN;
        for (auto w : wms) {
            if (w != end_of_time.value()) before_end = std::max(before_end, w);
        }
        if (with_timeout) {
            EXPECT_GT(before_end, 30000); // follows partition 0 once partition 1 is idle
        } else {
            EXPECT_EQ(before_end, 999); // held at partition 1's only event
        }
    }
}

// A topic read to its end: partition 0's rows all come at once, partition 1 never sends. Both
// go idle on the same tick; the watermark must still follow partition 0, and until then the
// stage says which partition it waits for.
TEST(pipeline, a_partition_that_never_sent_stops_holding_the_watermark_when_every_partition_is_idle) {
    auto s = bid_schema();
    int64_t now = 0;
    int polls = 0;
    auto fn = [&]() -> source_poll {
        now += 100;
        ++polls;
        if (polls > 100) return source_poll::end();
        if (polls > 1) return source_poll::idle();
        std::vector<std::vector<value>> rows;
        for (int i = 1; i <= 40; ++i) rows.push_back({value::of(1), value::of(1.0), value::of("w"), value::ts(i * 1000)});
        auto b = make_batch(s, rows);
        b.set_source_partition(0);
        return source_poll::data(std::move(b));
    };
    pipeline_options po;
    po.clock = [&]() { return model::processing_time(now); };
    pipeline p(po);
    watermark_options wo;
    wo.partitions = 2;
    wo.idle_timeout = 500ms;
    wo.input = "t";
    std::vector<std::pair<int, int64_t>> wms; // (poll, watermark)
    p.source(s, fn).watermark("ts", 0ms, wo).sink([](const batch&) {}, [&](model::event_time t) {
        wms.emplace_back(polls, t.value());
    });
    std::string waiting;
    for (int i = 0; i < 8 && waiting.empty(); ++i) {
        ASSERT_TRUE(p.run_once());
        for (size_t k = 0; k < p.num_stages() && waiting.empty(); ++k) waiting = p.stage_at(k).waiting_for();
    }
    EXPECT_EQ(waiting, "partition t/1: no data yet, idle after 500 ms");
    ASSERT_TRUE(p.run());
    ASSERT_FALSE(wms.empty());
    EXPECT_EQ(wms.front().second, 39999); // partition 0's newest event − 1
    EXPECT_LE(wms.front().first, 10);    // within the idle timeout (5 polls) and a few polls
    for (size_t k = 0; k < p.num_stages(); ++k) EXPECT_EQ(p.stage_at(k).waiting_for(), "");
}

// Two inputs meet in a union: one goes quiet past its idle timeout. Its status turns idle, so
// the union's watermark follows the other input instead of waiting; when it sends again it
// counts again, and the watermark never goes back.
TEST(pipeline, an_idle_input_holds_back_no_watermark_where_inputs_meet) {
    auto s = bid_schema();
    int64_t now = 0;
    int polls = 0;
    auto busy = [&]() -> source_poll {
        now += 100; // each poll is 100 ms of processing time
        if (++polls > 40) return source_poll::end();
        return source_poll::data(make_batch(s, {{value::of(1), value::of(1.0), value::of("a"), value::ts(polls * 1000)}}));
    };
    int quiet_polls = 0;
    auto quiet = [&]() -> source_poll {
        ++quiet_polls;
        if (polls > 40) return source_poll::end();
        if (quiet_polls == 1 || polls == 30) {
            return source_poll::data(
              make_batch(s, {{value::of(2), value::of(1.0), value::of("q"), value::ts(quiet_polls == 1 ? 500 : 29500)}}));
        }
        return source_poll::idle();
    };
    pipeline_options po;
    po.clock = [&]() { return model::processing_time(now); };
    pipeline p(po);
    watermark_options wo;
    wo.idle_timeout = 500ms;
    auto a = p.source(s, busy).watermark("ts", 0ms, wo);
    auto b = p.source(s, quiet).watermark("ts", 0ms, wo);
    std::vector<int64_t> wms;
    a.union_with({b}).sink([](const batch&) {}, [&](model::event_time t) { wms.push_back(t.value()); });
    ASSERT_TRUE(p.run());
    ASSERT_FALSE(wms.empty());
    EXPECT_TRUE(std::is_sorted(wms.begin(), wms.end()));
    int64_t before_end = INT64_MIN;
    for (auto w : wms) {
        if (w != end_of_time.value()) before_end = std::max(before_end, w);
    }
    EXPECT_GT(before_end, 30000); // not held at the quiet input's 499
}

// Both inputs of a union go quiet: none will move its watermark again, so the most advanced
// one's holds (a topic read to its end on two inputs), then the union's output is idle.
TEST(pipeline, when_every_input_is_idle_the_most_advanced_watermark_holds) {
    auto s = bid_schema();
    int64_t now = 0;
    int polls = 0;
    auto a_fn = [&]() -> source_poll {
        now += 100;
        if (++polls > 10) return source_poll::idle(); // never ends: a topic
        return source_poll::data(make_batch(s, {{value::of(1), value::of(1.0), value::of("a"), value::ts(polls * 1000)}}));
    };
    bool b_sent = false;
    auto b_fn = [&]() -> source_poll {
        if (b_sent) return source_poll::idle();
        b_sent = true;
        return source_poll::data(make_batch(s, {{value::of(2), value::of(1.0), value::of("b"), value::ts(20000)}}));
    };
    pipeline_options po;
    po.clock = [&]() { return model::processing_time(now); };
    pipeline p(po);
    watermark_options wo;
    wo.idle_timeout = 500ms;
    auto a = p.source(s, a_fn).watermark("ts", 0ms, wo);
    auto b = p.source(s, b_fn).watermark("ts", 0ms, wo);
    std::vector<int64_t> wms;
    a.union_with({b}).sink([](const batch&) {}, [&](model::event_time t) { wms.push_back(t.value()); });
    for (int i = 0; i < 100 && (wms.empty() || wms.back() < 19999); ++i) {
        auto r = p.run_once();
        ASSERT_TRUE(r) << r.error().message;
        ASSERT_FALSE(r.value());
    }
    ASSERT_FALSE(wms.empty());
    EXPECT_TRUE(std::is_sorted(wms.begin(), wms.end()));
    EXPECT_EQ(wms.back(), 19999); // b's, once a has gone quiet too (a alone reached 9999)
}

TEST(pipeline, bounded_queues_hold_back_the_source) {
    auto s = bid_schema();
    size_t pulled = 0, delivered = 0, max_in_flight = 0;
    auto fn = [&]() -> source_poll {
        if (pulled == 2000) return source_poll::end();
        ++pulled;
        return source_poll::data(
          make_batch(s, {{value::of(int64_t(pulled)), value::of(1.0), value::of("w"), value::ts(int64_t(pulled))}}));
    };
    pipeline_options po;
    po.queue_capacity = 4;
    pipeline p(po);
    p.source(s, fn).watermark("ts", 0ms).filter(col("price") > 0).project({as(col("auction"), "a")})
      .sink([&](const batch& b) {
          delivered += b.num_rows();
          max_in_flight = std::max(max_in_flight, pulled - delivered);
      });
    ASSERT_TRUE(p.run());
    EXPECT_EQ(delivered, 2000u);
    // Three queues of 4 messages plus one batch being handled per stage; batch and watermark
    // messages alternate after the watermark stage.
    EXPECT_LE(max_in_flight, 3u * 4u + 4u);
}

TEST(pipeline, pipeline_snapshot_and_restore_by_stage) {
    auto s = bid_schema();
    auto rows = [&](int64_t from, int64_t to) {
        batch b(s);
        for (int64_t i = from; i < to; ++i) b.append_row({value::of(i % 3), value::of(1.0), value::of("w"), value::ts(i)});
        return b;
    };
    auto build = [&](pipeline& p, std::vector<batch> in, std::vector<std::string>& out) {
        p.source(s, from_batches(std::move(in)))
          .watermark("ts", 0ms)
          .key_by({"auction"})
          .deduplicate()
          .sink([&](const batch& b) {
              for (size_t i = 0; i < b.num_rows(); ++i) out.push_back(b.row_to_string(i));
          });
    };
    std::vector<std::string> first, second;
    pipeline a;
    build(a, {rows(0, 5)}, first);
    ASSERT_TRUE(a.run());
    auto snap = a.snapshot();
    pipeline b;
    build(b, {rows(5, 10)}, second);
    ASSERT_TRUE(b.restore(snap));
    ASSERT_TRUE(b.run());
    EXPECT_EQ(first.size(), 3u);
    EXPECT_TRUE(second.empty()); // every key was seen before the snapshot
    EXPECT_FALSE(b.restore({}));
}

} // namespace
} // namespace runnel::engine
