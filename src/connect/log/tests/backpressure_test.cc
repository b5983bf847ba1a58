#include <gtest/gtest.h>

#include "broker/tests/broker_fixture.h"
#include "connect/log/log.h"

namespace runnel::connect {
namespace {

using broker::testing::broker_fixture;

class log_connect_test : public broker_fixture {};

// A million events wait in the log while the pipeline's sink is blocked: what the process
// holds for the job stays under the source's byte limit plus the bounded queues.
TEST_F(log_connect_test, a_blocked_sink_keeps_memory_bounded_while_a_million_events_wait) {
    ASSERT_TRUE(create("wait", 2).first);
    constexpr int total = 1'000'000;
    for (int start = 0; start < total; start += 5000) {
        for (int32_t p = 0; p < 2; ++p) {
            model::record_batch_builder b;
            for (int i = start + p; i < start + 5000; i += 2) {
                auto v = fmt::format(R"({{"key":"k{}","ts":{}}})", i % 100, i);
                b.add(std::nullopt, std::string_view(v), model::event_time(i));
            }
            ASSERT_TRUE(produce({"wait", model::partition_id(p)}, b.build(), 1));
        }
    }
    log_source_options o;
    o.topic = "wait";
    o.max_buffered_bytes = 1u << 20;
    log_source src(*_broker, _caller, o, [] {});
    engine::pipeline_options po;
    po.queue_capacity = 4;
    engine::pipeline p(po);
    bool open = false;
    uint64_t delivered = 0;
    std::size_t max_buffered = 0, max_queued = 0;
    p.source(log_source::schema(), src.fn())
      .filter(engine::col("offset") >= engine::lit(int64_t(0)))
      .sink([&](const engine::batch& b) { delivered += b.num_rows(); }, {}, [&] { return open; });
    // Run while blocked: the source fetches up to its limit, the queues fill, then nothing
    // more moves. Keep running a while after that to see that it stays so.
    auto blocked_step = [&] {
        ASSERT_TRUE(p.run_once());
        _caller.poll();
        max_buffered = std::max(max_buffered, src.buffered_bytes());
        max_queued = std::max(max_queued, p.queued_messages());
    };
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (!(src.buffered_bytes() > 0 && p.queued_messages() == p.queue_capacity())
           && std::chrono::steady_clock::now() < deadline) {
        blocked_step();
    }
    for (auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(300);
         std::chrono::steady_clock::now() < until;) {
        blocked_step();
    }
    EXPECT_EQ(delivered, 0u) << max_queued << " " << max_buffered << " " << src.waiting_for() << " " << src.partitions();
    // Fetches ask only for the room left, but a fetch returns at least one whole batch.
    EXPECT_LE(max_buffered, o.max_buffered_bytes + (256u << 10));
    EXPECT_GT(max_buffered, 0u);
    EXPECT_LE(max_queued, p.queue_capacity());
    // Unblocked, every event arrives.
    open = true;
    deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
    while (delivered < uint64_t(total) && std::chrono::steady_clock::now() < deadline) {
        ASSERT_TRUE(p.run_once());
        _caller.poll();
    }
    EXPECT_EQ(delivered, uint64_t(total));
    src.stop();
}

} // namespace
} // namespace runnel::connect
