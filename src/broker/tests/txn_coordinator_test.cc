#include "broker/tests/broker_fixture.h"

namespace runnel::broker {
namespace {

class txn_coordinator_test : public testing::broker_fixture {
protected:
    txn_coordinator& txns() { return _broker->transactions(); }

    txn_producer init(const std::string& id) {
        auto r = wait<result<txn_producer>>(
          [&](auto done) { txns().init_producer(id, 60000, -1, -1, _caller, done); });
        EXPECT_TRUE(r);
        return r.value();
    }
    errc add(const std::string& id, txn_producer p, const model::topic_partition& tp) {
        auto r = wait<txn_coordinator::partition_errors>(
          [&](auto done) { txns().add_partitions(id, p.id, p.epoch, {tp}, false, _caller, done); });
        return r.at(0).second;
    }
    errc end(const std::string& id, txn_producer p, bool commit) {
        return wait<errc>([&](auto done) { txns().end(id, p.id, p.epoch, commit, _caller, done); });
    }
    fetch_result read_committed(const model::topic_partition& tp) {
        auto r = wait<result<fetch_result>>(
          [&](auto done) { _broker->fetch(tp, model::offset(0), 1 << 20, _caller, done, true, true); });
        EXPECT_TRUE(r);
        return std::move(r).value();
    }
    model::record_batch txn_batch(txn_producer p, int32_t seq) {
        model::record_batch_builder b;
        b.add(std::nullopt, "v", model::event_time(1)).set_producer(p.id, p.epoch, seq).set_transactional(false);
        return b.build();
    }
};

TEST_F(txn_coordinator_test, a_prepared_commit_completes_after_a_restart) {
    ASSERT_TRUE(txns().start(nullptr));
    ASSERT_TRUE(create("t", 1).first);
    const model::topic_partition tp{"t", model::partition_id(0)};
    auto p = init("copier");
    EXPECT_EQ(p.epoch, 0);
    EXPECT_EQ(produce(tp, txn_batch(p, 0), -1).error(), make_error_code(errc::invalid_txn_state));
    ASSERT_EQ(add("copier", p, tp), errc::success);
    ASSERT_TRUE(produce(tp, txn_batch(p, 0), -1));
    EXPECT_EQ(read_committed(tp).last_stable, model::offset(0));

    // The commit is decided (PrepareCommit is durable), then the process "dies" before markers.
    fail_point::arm("txn.crash_after_prepare");
    EXPECT_EQ(end("copier", p, true), errc::coordinator_not_available);
    fail_point::disarm_all();
    EXPECT_EQ(read_committed(tp).last_stable, model::offset(0)) << "no marker yet";

    shutdown();
    start();
    ASSERT_TRUE(txns().start(nullptr)); // recovery writes the commit marker
    auto f = read_committed(tp);
    EXPECT_EQ(f.high_watermark, model::offset(2));
    EXPECT_EQ(f.last_stable, model::offset(2));
    EXPECT_TRUE(f.aborted.empty());
    EXPECT_EQ(end("copier", p, true), errc::success) << "the client's retry of the commit";
    auto d = wait<std::vector<txn_description>>([&](auto done) { txns().describe({"copier"}, _caller, done); });
    ASSERT_EQ(d.size(), 1u);
    EXPECT_EQ(d[0].state, "CompleteCommit");
    EXPECT_EQ(init("copier").epoch, 1) << "the epoch goes on from the recovered state";
}

// A producer fenced by a newer one of its transactional id (whose InitProducerId aborted its
// transaction) learns so from its next write: INVALID_PRODUCER_EPOCH, which clients treat as
// fenced, not INVALID_TXN_STATE, which they treat as an abortable error of the transaction.
TEST_F(txn_coordinator_test, a_write_of_a_fenced_producer_is_an_invalid_epoch) {
    ASSERT_TRUE(txns().start(nullptr));
    ASSERT_TRUE(create("t", 1).first);
    const model::topic_partition tp{"t", model::partition_id(0)};
    auto old = init("fenced");
    ASSERT_EQ(add("fenced", old, tp), errc::success);
    ASSERT_TRUE(produce(tp, txn_batch(old, 0), -1));
    auto newer = init("fenced"); // aborts the open transaction with a newer epoch
    EXPECT_GT(newer.epoch, old.epoch);
    EXPECT_EQ(produce(tp, txn_batch(old, 1), -1).error(), make_error_code(errc::invalid_producer_epoch));
    EXPECT_TRUE(read_committed(tp).aborted.size() == 1) << "the fenced transaction was aborted";
}

TEST_F(txn_coordinator_test, an_ongoing_transaction_goes_on_after_a_restart) {
    ASSERT_TRUE(txns().start(nullptr));
    ASSERT_TRUE(create("t", 1).first);
    const model::topic_partition tp{"t", model::partition_id(0)};
    auto p = init("worker");
    ASSERT_EQ(add("worker", p, tp), errc::success);
    ASSERT_TRUE(produce(tp, txn_batch(p, 0), -1));
    shutdown();
    start();
    ASSERT_TRUE(txns().start(nullptr));
    EXPECT_EQ(read_committed(tp).last_stable, model::offset(0)) << "still open";
    ASSERT_TRUE(produce(tp, txn_batch(p, 1), -1)) << "the partition takes the producer again";
    ASSERT_EQ(end("worker", p, false), errc::success);
    auto f = read_committed(tp);
    EXPECT_EQ(f.last_stable, model::offset(3));
    ASSERT_EQ(f.aborted.size(), 1u);
    EXPECT_EQ(f.aborted[0].first, model::offset(0));
    EXPECT_EQ(f.aborted[0].last, model::offset(2));
}

} // namespace
} // namespace runnel::broker
