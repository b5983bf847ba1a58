#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/base.h"
#include "broker/errc.h"
#include "model/model.h"

namespace runnel::broker {

/// The states of a transactional id, as Kafka's transaction coordinator names them.
enum class txn_status : uint8_t {
    empty,           ///< a producer id, no transaction open
    ongoing,         ///< partitions or offsets added since the last end
    prepare_commit,  ///< EndTxn(commit) is durable; markers are being written
    prepare_abort,   ///< EndTxn(abort) or a timeout is durable; markers are being written
    complete_commit, ///< every marker written and offsets applied
    complete_abort,
    dead,            ///< removed (never stored; kept for the names)
};

/// Kafka's name of a state ("Ongoing", "PrepareCommit", ...), as DescribeTransactions shows it.
std::string_view txn_status_name(txn_status s) noexcept;
std::optional<txn_status> parse_txn_status(std::string_view name) noexcept;

/// An offset a transaction commits for a group when it commits.
struct txn_pending_offset {
    std::string group;
    model::topic_partition tp;
    int64_t offset = -1;
    int32_t leader_epoch = -1;
    std::optional<std::string> metadata;
    bool operator==(const txn_pending_offset&) const = default;
};

/// Everything the coordinator knows about one transactional id: one record of the
/// transaction log holds one of these whole, so the last record of an id is its state.
struct txn_metadata {
    std::string id;
    int64_t producer_id = -1;
    int16_t producer_epoch = -1;
    int32_t timeout_ms = 60000;
    txn_status status = txn_status::empty;
    int64_t start_ms = -1;  ///< wall clock when the transaction became ongoing
    int64_t update_ms = 0;  ///< wall clock of the last change
    std::set<model::topic_partition> partitions;
    std::set<std::string> groups;
    std::vector<txn_pending_offset> offsets;
    bool operator==(const txn_metadata&) const = default;

    bool open() const noexcept { return status == txn_status::ongoing || preparing(); }
    bool preparing() const noexcept {
        return status == txn_status::prepare_commit || status == txn_status::prepare_abort;
    }
};

/// The transitions of Kafka's transaction coordinator, as pure functions of the metadata:
/// no I/O, no clock (times are passed in), no threads. The coordinator (`txn_coordinator`)
/// applies them, stores the result durably, and only then acts on partitions and answers.
namespace txn {

/// The largest epoch handed out before a new producer id is allocated instead.
inline constexpr int16_t max_epoch = INT16_MAX - 1;

/// The producer in a request against the transactional id's: a wrong id is
/// INVALID_PRODUCER_ID_MAPPING, an older or newer epoch is PRODUCER_FENCED.
errc check_producer(const txn_metadata& m, int64_t producer_id, int16_t producer_epoch) noexcept;

/// What InitProducerId must do first for an existing transactional id.
enum class init_step {
    bump,             ///< bump the epoch (or allocate a new id when exhausted) and answer
    abort_then_bump,  ///< an ongoing transaction: abort it (markers) with a bumped epoch first
    retry,            ///< markers of the previous transaction are being written: CONCURRENT_TRANSACTIONS
    refuse,           ///< the id and epoch the request presents are not current (KIP-360)
};
/// `producer_id`/`producer_epoch` are the request's (-1 when not given).
init_step plan_init(const txn_metadata& m, int64_t producer_id, int16_t producer_epoch) noexcept;

/// Sets a new epoch (and clears the transaction): next epoch of the same id, or epoch 0 of
/// `fresh_id` when the epoch would pass `max_epoch`. Returns true when `fresh_id` was used.
bool bump_epoch(txn_metadata& m, int64_t fresh_id) noexcept;

/// Makes the metadata ongoing at `now_ms` (from empty or complete, a new transaction starts).
/// Fails with CONCURRENT_TRANSACTIONS while markers are written.
errc begin(txn_metadata& m, int64_t now_ms) noexcept;

/// What EndTxn does.
enum class end_step {
    prepare,     ///< state moved to prepare_commit/prepare_abort: write markers, then complete
    done,        ///< a retry of an end that already completed the same way: answer success
};
/// Checks and applies EndTxn(commit/abort) to `m`. An empty or opposite-completed
/// transaction is INVALID_TXN_STATE; one preparing is CONCURRENT_TRANSACTIONS.
result<end_step> end(txn_metadata& m, bool commit, int64_t now_ms) noexcept;

/// Completes a prepared transaction: prepare_commit -> complete_commit, prepare_abort ->
/// complete_abort, forgetting its partitions and offsets.
void complete(txn_metadata& m, int64_t now_ms) noexcept;

/// True when an ongoing transaction has run past its timeout at `now_ms`.
bool expired(const txn_metadata& m, int64_t now_ms) noexcept;

/// Records a pending offset (replacing an earlier one of the same group and partition).
void add_offset(txn_metadata& m, txn_pending_offset o);

/// The record of `m` in the transaction log (a versioned binary payload).
std::vector<std::byte> encode(const txn_metadata& m);
/// Decodes a record; nullopt when it is malformed.
std::optional<txn_metadata> decode(std::span<const std::byte> bytes);

} // namespace txn
} // namespace runnel::broker
