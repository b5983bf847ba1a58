#include <gtest/gtest.h>

#include "broker/producer_state.h"

namespace runnel::broker {
namespace {

model::batch_header batch(int64_t pid, int16_t epoch, int32_t seq, int32_t records, int64_t offset) {
    model::batch_header h;
    h.producer_id = pid;
    h.producer_epoch = epoch;
    h.base_sequence = seq;
    h.last_offset_delta = records - 1;
    h.record_count = records;
    h.base_offset = model::offset(offset);
    return h;
}

TEST(producer_state, sequences_duplicates_gaps_and_epochs) {
    producer_state ps;
    EXPECT_EQ(ps.check(batch(7, 0, 5, 1, 0)).check, sequence_check::unknown_producer);
    ASSERT_EQ(ps.check(batch(7, 0, 0, 3, 0)).check, sequence_check::append);
    ps.observe(batch(7, 0, 0, 3, 0)); // seq 0..2 at offsets 0..2
    EXPECT_EQ(ps.check(batch(7, 0, 3, 2, 3)).check, sequence_check::append);
    ps.observe(batch(7, 0, 3, 2, 3)); // seq 3..4 at 3..4

    auto dup = ps.check(batch(7, 0, 0, 3, 99));
    EXPECT_EQ(dup.check, sequence_check::duplicate);
    EXPECT_EQ(dup.duplicate_of, model::offset(0));
    EXPECT_EQ(ps.check(batch(7, 0, 6, 1, 5)).check, sequence_check::out_of_order); // 5 is missing

    for (int i = 0; i < 6; ++i) { // push seq 0..2 out of the last-five window
        ps.observe(batch(7, 0, 5 + i, 1, 5 + i));
    }
    EXPECT_EQ(ps.check(batch(7, 0, 0, 3, 0)).check, sequence_check::old_duplicate);

    EXPECT_EQ(ps.check(batch(7, 1, 4, 1, 20)).check, sequence_check::out_of_order) << "new epoch starts at 0";
    EXPECT_EQ(ps.check(batch(7, 1, 0, 1, 20)).check, sequence_check::append);
    ps.observe(batch(7, 1, 0, 1, 20));
    EXPECT_EQ(ps.check(batch(7, 0, 11, 1, 21)).check, sequence_check::fenced_epoch);

    EXPECT_EQ(ps.check(batch(8, 0, 0, 1, 22)).check, sequence_check::append) << "producers are independent";
}

TEST(producer_state, remembers_a_bounded_number_of_producers) {
    producer_state ps;
    for (int64_t pid = 0; pid < static_cast<int64_t>(producer_state::max_producers) + 10; ++pid) {
        ps.observe(batch(pid, 0, 0, 1, pid));
    }
    EXPECT_EQ(ps.producers(), producer_state::max_producers);
    EXPECT_EQ(ps.check(batch(0, 0, 1, 1, 0)).check, sequence_check::unknown_producer) << "oldest evicted";
}

} // namespace
} // namespace runnel::broker
