#pragma once

#include "base/base.h"

namespace runnel::broker {

/// Why the broker refused a request. The Kafka server maps each to a Kafka error code.
enum class errc {
    success = 0,
    unknown_topic_or_partition,
    invalid_topic,           ///< the name breaks Kafka's rules
    topic_already_exists,
    invalid_partitions,
    invalid_replication_factor,
    invalid_config,
    corrupt_message,         ///< a batch failed its checks (length, magic, CRC)
    invalid_record,          ///< a well-formed batch that breaks Kafka's rules for producers
    message_too_large,
    offset_out_of_range,
    storage_error,           ///< the log failed (disk error)
    storage_full,            ///< the disk refused an append: no space left (the partition stays usable)
    storage_failed,          ///< an fsync of the partition failed; it takes no writes until a restart
    storage_corrupt,         ///< the partition holds a corrupt batch in durable data
    out_of_order_sequence,   ///< an idempotent producer skipped sequence numbers
    duplicate_sequence,      ///< a batch older than the ones remembered for its producer
    invalid_producer_epoch,  ///< a producer fenced by a newer epoch of itself
    unknown_producer_id,     ///< no state for the producer on this partition
    shutting_down,
    // consumer groups
    coordinator_loading,         ///< the group's offsets are still being read
    coordinator_not_available,   ///< the group is being removed, or its records cannot be stored
    invalid_group_id,
    group_id_not_found,
    non_empty_group,
    unknown_member_id,
    illegal_generation,
    rebalance_in_progress,
    member_id_required,          ///< a new member must join again with the id it was given
    fenced_instance_id,          ///< a static member replaced by a newer instance of itself
    inconsistent_group_protocol,
    invalid_session_timeout,
    group_subscribed_to_topic,
    offset_metadata_too_large,
    // consumer-protocol groups (KIP-848)
    invalid_request,             ///< a heartbeat that breaks the protocol's rules (the message says which)
    fenced_member_epoch,         ///< the member's epoch is not one the group knows: it must rejoin
    stale_member_epoch,          ///< an offset commit with an epoch that is not the member's current one
    unreleased_instance_id,      ///< a static member's instance id is still held by another member
    unsupported_assignor,
    group_max_size_reached,
    // transactions
    producer_fenced,              ///< a newer epoch of the transactional id exists (PRODUCER_FENCED)
    invalid_txn_state,            ///< the request does not fit the transaction's state
    invalid_producer_id_mapping,  ///< the producer id is not the transactional id's
    invalid_transaction_timeout,  ///< transaction.timeout.ms beyond the broker's maximum
    concurrent_transactions,      ///< the previous transaction is still completing; retry
    transactional_id_not_found,
    operation_not_attempted,      ///< another partition of the same request failed
};

const char* errc_message(errc e) noexcept;
RUNNEL_ERRC_ENUM(errc);

} // namespace runnel::broker

RUNNEL_ERRC_REGISTER(runnel::broker::errc, "broker");
