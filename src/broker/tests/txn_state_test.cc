#include <gtest/gtest.h>

#include <filesystem>

#include "broker/partition_txns.h"
#include "broker/txn_state.h"

namespace runnel::broker {
namespace {

txn_metadata fresh(int64_t pid = 7, int16_t epoch = 0) {
    txn_metadata m;
    m.id = "t";
    m.producer_id = pid;
    m.producer_epoch = epoch;
    return m;
}

TEST(txn_state, commit_and_abort_go_through_prepare_to_complete) {
    auto m = fresh();
    EXPECT_EQ(txn::end(m, true, 1).error(), make_error_code(errc::invalid_txn_state)) << "nothing open";
    ASSERT_EQ(txn::begin(m, 100), errc::success);
    EXPECT_EQ(m.status, txn_status::ongoing);
    EXPECT_EQ(m.start_ms, 100);
    m.partitions.insert({"a", model::partition_id(0)});
    ASSERT_EQ(txn::begin(m, 200), errc::success);
    EXPECT_EQ(m.start_ms, 100) << "adding more keeps the start";
    EXPECT_EQ(txn::end(m, true, 300).value(), txn::end_step::prepare);
    EXPECT_EQ(m.status, txn_status::prepare_commit);
    EXPECT_EQ(txn::begin(m, 301), errc::concurrent_transactions);
    EXPECT_EQ(txn::end(m, false, 302).error(), make_error_code(errc::concurrent_transactions));
    txn::complete(m, 400);
    EXPECT_EQ(m.status, txn_status::complete_commit);
    EXPECT_TRUE(m.partitions.empty());
    EXPECT_EQ(txn::end(m, true, 401).value(), txn::end_step::done) << "a retried commit";
    EXPECT_EQ(txn::end(m, false, 402).error(), make_error_code(errc::invalid_txn_state));

    ASSERT_EQ(txn::begin(m, 500), errc::success);
    EXPECT_EQ(m.start_ms, 500) << "a new transaction";
    EXPECT_EQ(txn::end(m, false, 600).value(), txn::end_step::prepare);
    EXPECT_EQ(m.status, txn_status::prepare_abort);
    txn::complete(m, 700);
    EXPECT_EQ(m.status, txn_status::complete_abort);
    EXPECT_EQ(txn::end(m, false, 701).value(), txn::end_step::done);
}

TEST(txn_state, producers_epochs_and_init) {
    auto m = fresh(7, 3);
    EXPECT_EQ(txn::check_producer(m, 7, 3), errc::success);
    EXPECT_EQ(txn::check_producer(m, 7, 2), errc::producer_fenced);
    EXPECT_EQ(txn::check_producer(m, 8, 3), errc::invalid_producer_id_mapping);
    EXPECT_EQ(txn::plan_init(m, -1, -1), txn::init_step::bump);
    EXPECT_EQ(txn::plan_init(m, 7, 3), txn::init_step::bump);
    EXPECT_EQ(txn::plan_init(m, 7, 2), txn::init_step::refuse);
    ASSERT_EQ(txn::begin(m, 1), errc::success);
    EXPECT_EQ(txn::plan_init(m, -1, -1), txn::init_step::abort_then_bump);
    ASSERT_TRUE(txn::end(m, true, 2));
    EXPECT_EQ(txn::plan_init(m, -1, -1), txn::init_step::retry);
    EXPECT_FALSE(txn::bump_epoch(m, 99));
    EXPECT_EQ(m.producer_epoch, 4);
    m.producer_epoch = txn::max_epoch;
    EXPECT_TRUE(txn::bump_epoch(m, 99)) << "an exhausted epoch takes a new producer id";
    EXPECT_EQ(m.producer_id, 99);
    EXPECT_EQ(m.producer_epoch, 0);
}

TEST(txn_state, timeouts) {
    auto m = fresh();
    m.timeout_ms = 1000;
    EXPECT_FALSE(txn::expired(m, 1'000'000));
    ASSERT_EQ(txn::begin(m, 10'000), errc::success);
    EXPECT_FALSE(txn::expired(m, 11'000));
    EXPECT_TRUE(txn::expired(m, 11'001));
}

TEST(txn_state, records_round_trip_and_refuse_garbage) {
    auto m = fresh(42, 9);
    m.timeout_ms = 12345;
    ASSERT_EQ(txn::begin(m, 77), errc::success);
    m.partitions.insert({"x", model::partition_id(3)});
    m.partitions.insert({"y", model::partition_id(0)});
    m.groups.insert("g");
    txn::add_offset(m, {"g", {"x", model::partition_id(3)}, 10, -1, std::nullopt});
    txn::add_offset(m, {"g", {"x", model::partition_id(3)}, 11, 2, std::string("meta")});
    ASSERT_EQ(m.offsets.size(), 1u) << "a later offset of the same partition replaces the earlier";
    auto bytes = txn::encode(m);
    auto back = txn::decode(bytes);
    ASSERT_TRUE(back);
    EXPECT_EQ(*back, m);
    for (std::size_t cut = 0; cut < bytes.size(); ++cut) {
        EXPECT_FALSE(txn::decode(std::span(bytes).first(cut))) << "cut at " << cut;
    }
    auto bad = bytes;
    bad[1 + 4 + 1 + 8 + 2 + 4] = std::byte{200}; // the status byte
    EXPECT_FALSE(txn::decode(bad));
    EXPECT_EQ(parse_txn_status(txn_status_name(txn_status::prepare_commit)), txn_status::prepare_commit);
    EXPECT_FALSE(parse_txn_status("Bogus"));
}

model::batch_header txn_batch(int64_t pid, int16_t epoch, int64_t offset, bool control = false) {
    model::batch_header h;
    h.producer_id = pid;
    h.producer_epoch = epoch;
    h.base_offset = model::offset(offset);
    h.attributes = static_cast<int16_t>(0x10 | (control ? 0x20 : 0));
    return h;
}

TEST(partition_txns, admission_lso_and_aborted_index) {
    partition_txns pt;
    EXPECT_EQ(pt.check(txn_batch(5, 0, 0)), partition_txns::admit::not_in_transaction);
    pt.allow(5, 1);
    EXPECT_EQ(pt.check(txn_batch(5, 0, 0)), partition_txns::admit::fenced);
    EXPECT_EQ(pt.check(txn_batch(5, 1, 0)), partition_txns::admit::ok);
    EXPECT_EQ(pt.check(txn_batch(5, 2, 0)), partition_txns::admit::not_in_transaction);
    model::batch_header plain;
    EXPECT_EQ(pt.check(plain), partition_txns::admit::ok);

    pt.observe(txn_batch(5, 1, 10));
    pt.observe(txn_batch(5, 1, 12)); // the same transaction goes on
    pt.allow(6, 0);
    pt.observe(txn_batch(6, 0, 11));
    EXPECT_EQ(pt.last_stable(model::offset(20)), model::offset(10));
    pt.observe(txn_batch(5, 1, 13, true), true); // abort marker
    EXPECT_EQ(pt.check(txn_batch(5, 1, 14)), partition_txns::admit::not_in_transaction) << "a late write";
    EXPECT_EQ(pt.last_stable(model::offset(20)), model::offset(11));
    pt.observe(txn_batch(6, 0, 14, true), false); // commit marker
    EXPECT_EQ(pt.last_stable(model::offset(20)), model::offset(20));
    using A = partition_txns::aborted_txn;
    EXPECT_EQ(pt.aborted_between(model::offset(0), model::offset(20)), (std::vector<A>{{5, model::offset(10), model::offset(13)}}));
    EXPECT_TRUE(pt.aborted_between(model::offset(14), model::offset(20)).empty());
    EXPECT_TRUE(pt.aborted_between(model::offset(0), model::offset(10)).empty());

    // Saved and loaded, with an open transaction.
    pt.allow(7, 0);
    pt.observe(txn_batch(7, 0, 15));
    auto dir = std::filesystem::temp_directory_path() / ("partition_txns_test_" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
    ASSERT_TRUE(pt.save(dir, model::offset(16)));
    partition_txns loaded;
    EXPECT_EQ(loaded.load(dir, model::offset(0), model::offset(16)), model::offset(16));
    EXPECT_EQ(loaded.last_stable(model::offset(16)), model::offset(15));
    EXPECT_EQ(loaded.aborted_between(model::offset(0), model::offset(16)).size(), 1u);
    partition_txns stale;
    EXPECT_EQ(stale.load(dir, model::offset(0), model::offset(15)), model::offset(0)) << "the log lost data";
    std::filesystem::remove_all(dir);
}

} // namespace
} // namespace runnel::broker
