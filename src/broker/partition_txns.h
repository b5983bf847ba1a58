#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <vector>

#include "base/base.h"
#include "model/model.h"

namespace runnel::broker {

/// The transactions of one partition: which producers may write transactional batches now
/// (the partitions the coordinator added, KIP-890 part 1), where each open transaction
/// started, and the aborted transactions that read_committed fetches must skip.
///
/// Lives on the partition's shard beside its `producer_state`; not thread-safe. `observe`
/// is called for every batch appended (and for every batch found in the log at start), so
/// the open transactions and the aborted index follow the log. The aborted index and the
/// open transactions are saved in `txn_state` beside the segments at shutdown (`save`); at
/// start the saved state is loaded and the log is scanned from where it ends (`load`), so a
/// clean restart reads little and a crash scans what was written since the last save.
class partition_txns {
public:
    struct aborted_txn {
        int64_t producer_id;
        model::offset first;
        model::offset last; ///< the offset of the abort marker
        bool operator==(const aborted_txn&) const = default;
    };

    /// Lets `producer_id` at `epoch` write transactional batches (AddPartitionsToTxn).
    void allow(int64_t producer_id, int16_t epoch);

    enum class admit {
        ok,
        not_in_transaction, ///< INVALID_TXN_STATE: the partition was not added
        fenced,             ///< INVALID_PRODUCER_EPOCH: an older epoch than the one added
    };
    /// Whether a transactional batch may be appended; non-transactional batches always may.
    admit check(const model::batch_header& h) const;

    /// Follows a batch now in the log. A control batch ends its producer's transaction;
    /// `abort` tells which kind it was (parsed by the caller from its key).
    void observe(const model::batch_header& h, bool abort = false);

    /// The last stable offset: the first offset of the oldest open transaction, else `end`.
    model::offset last_stable(model::offset end) const;

    /// Aborted transactions that overlap [from, upto): what a read_committed fetch of that
    /// range returns. Entries wholly before `log_start` are dropped from the index.
    std::vector<aborted_txn> aborted_between(model::offset from, model::offset upto);

    /// The first offset of `producer_id`'s open transaction here, if any.
    std::optional<model::offset> open_since(int64_t producer_id) const;
    std::size_t open_count() const noexcept { return _open.size(); }

    /// Writes the state known up to `upto` (the log's end after a clean close).
    result<void> save(const std::filesystem::path& dir, model::offset upto) const;
    /// Loads a saved state; returns the offset to scan the log from (`log_start` when there
    /// is no usable save, or it lies past `log_end`).
    model::offset load(const std::filesystem::path& dir, model::offset log_start, model::offset log_end);

    /// The abort (true) or commit (false) a control batch's first record carries; nullopt
    /// when it is not a transaction marker.
    static std::optional<bool> marker_is_abort(std::span<const std::byte> batch);

    /// Upper bound on the aborted transactions remembered per partition; the oldest go
    /// first past it (counted in /metrics).
    static constexpr std::size_t max_aborted = 100000;

private:
    std::map<int64_t, int16_t> _allowed;        ///< producer id -> epoch added
    std::map<int64_t, model::offset> _open;     ///< producer id -> first offset
    std::vector<aborted_txn> _aborted;          ///< by marker offset
};

} // namespace runnel::broker
