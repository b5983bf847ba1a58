#pragma once

#include <cstdint>
#include <deque>
#include <list>
#include <optional>
#include <unordered_map>
#include <vector>

#include "base/base.h"
#include "model/model.h"

namespace runnel::broker {

/// What an idempotent producer's batch means for one partition.
enum class sequence_check {
    append,           ///< the next batch in sequence (or a producer's first): append it
    duplicate,        ///< a retry of one of the last five batches: answer with its offset
    out_of_order,     ///< a gap in the sequence (OUT_OF_ORDER_SEQUENCE_NUMBER)
    old_duplicate,    ///< older than the batches remembered (DUPLICATE_SEQUENCE_NUMBER)
    fenced_epoch,     ///< an epoch older than the producer's current one (INVALID_PRODUCER_EPOCH)
    unknown_producer, ///< no state for the producer and a sequence that is not 0 (UNKNOWN_PRODUCER_ID)
};

/// The idempotent producers of one partition: per producer id, its epoch and its last five
/// batches (first and last sequence, offsets), as Kafka keeps them.
///
/// Lives on the partition's shard. Rebuilt at start from the batches of the active segment
/// (`observe`), so a producer retrying across a restart is still de-duplicated; a producer
/// silent since before the last segment roll gets UNKNOWN_PRODUCER_ID and re-initialises, as
/// Kafka clients do. At most `max_producers` are remembered (least recently used go first).
class producer_state {
public:
    static constexpr std::size_t batches_kept = 5;
    static constexpr std::size_t max_producers = 10000;

    struct verdict {
        sequence_check check;
        std::optional<model::offset> duplicate_of; ///< for `duplicate`
    };

    /// Decides what to do with a batch; changes nothing.
    verdict check(const model::batch_header& h) const;

    /// Records a batch now in the log (appended, or found in the log at start). A control
    /// batch (a transaction marker) carries no sequence: it only moves the producer to a
    /// newer epoch, whose batches start again at sequence 0.
    void observe(const model::batch_header& h);

    struct producer_info {
        int64_t producer_id;
        int16_t epoch;
        int32_t last_sequence; ///< -1 when no batch of this epoch is remembered
    };
    /// Every producer remembered, most recent first.
    std::vector<producer_info> list() const;

    std::size_t producers() const noexcept { return _producers.size(); }

private:
    struct batch_meta {
        int32_t first_seq;
        int32_t last_seq;
        model::offset base;
    };
    struct entry {
        int16_t epoch;
        std::deque<batch_meta> batches;
        std::list<int64_t>::iterator lru;
    };
    std::unordered_map<int64_t, entry> _producers;
    std::list<int64_t> _lru; ///< most recent at the front
};

} // namespace runnel::broker
