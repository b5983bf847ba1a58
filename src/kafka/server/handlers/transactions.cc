#include <map>

#include "kafka/server/handler.h"

namespace runnel::kafka {
namespace {

using partition_errors = broker::txn_coordinator::partition_errors;

/// Groups per-partition errors by topic in the order the topics came.
template <typename TopicResult, typename Fill>
std::vector<TopicResult> by_topic(const partition_errors& errors, Fill fill) {
    std::vector<TopicResult> out;
    std::map<std::string, std::size_t> index;
    for (const auto& [tp, e] : errors) {
        auto [it, added] = index.emplace(tp.topic, out.size());
        if (added) {
            out.emplace_back().name = tp.topic;
        }
        fill(out[it->second], tp.partition(), e);
    }
    return out;
}

template <typename Topics>
std::vector<model::topic_partition> partitions_of(const Topics& topics) {
    std::vector<model::topic_partition> out;
    for (const auto& t : topics) {
        for (auto p : t.partitions) {
            out.push_back({t.name, model::partition_id(p)});
        }
    }
    return out;
}

asio::awaitable<partition_errors> add_partitions(const request_context& ctx, const std::string& id, int64_t pid,
                                                 int16_t epoch, std::vector<model::topic_partition> tps, bool verify) {
    co_return co_await await_callback<partition_errors>([&](std::function<void(partition_errors)> done) {
        ctx.broker.transactions().add_partitions(id, pid, epoch, std::move(tps), verify, ctx.shard, std::move(done));
    });
}

bool may_write_txn(const request_context& ctx, std::string_view id) {
    return authorize(ctx, security::acl_operation::write, security::resource_type::transactional_id, id);
}

/// The error for every partition when the transactional id is denied, or TOPIC_AUTHORIZATION_FAILED
/// for the partitions of topics that deny WRITE and OPERATION_NOT_ATTEMPTED for the others, as
/// Kafka answers; empty when everything is allowed.
partition_errors add_partitions_denied(const request_context& ctx, std::string_view id,
                                       const std::vector<model::topic_partition>& tps) {
    partition_errors out;
    if (!may_write_txn(ctx, id)) {
        for (const auto& tp : tps) {
            out.emplace_back(tp, broker::errc::success);
        }
        return out;
    }
    std::map<std::string, bool> topic_ok;
    bool any_denied = false;
    for (const auto& tp : tps) {
        auto [it, fresh] = topic_ok.try_emplace(tp.topic, true);
        if (fresh) {
            it->second = authorize(ctx, security::acl_operation::write, security::resource_type::topic, tp.topic);
        }
        any_denied |= !it->second;
    }
    if (any_denied) {
        for (const auto& tp : tps) {
            out.emplace_back(tp, topic_ok[tp.topic] ? broker::errc::operation_not_attempted : broker::errc::invalid_request);
        }
    }
    return out;
}

} // namespace

// AddPartitionsToTxn: v0-3 for one producer's transaction; v4 (the broker form of KIP-890) for
// a batch of them, each possibly verify_only. PRODUCER_FENCED from v2, as Kafka answers it.
asio::awaitable<response_frame> handle(const request_context& ctx, proto::add_partitions_to_txn_request req) {
    using resp = proto::add_partitions_to_txn_response;
    const auto version = ctx.header.request_api_version;
    auto fill = [version](resp::add_partitions_topic_result& t, int32_t p, broker::errc e) {
        t.results_by_partition.push_back({p, txn_error(to_kafka_error(e), version, 2)});
    };
    resp r;
    if (version <= 3) {
        auto tps = partitions_of(req.v3_and_below_topics);
        if (auto denied = add_partitions_denied(ctx, req.v3_and_below_transactional_id, tps); !denied.empty()) {
            // The pairs carry success for a denied id and invalid_request for a denied topic;
            // the codes Kafka answers replace them here.
            const bool id_denied = denied.front().second == broker::errc::success;
            r.results_by_topic_v3_and_below = by_topic<resp::add_partitions_topic_result>(
              denied, [id_denied](resp::add_partitions_topic_result& t, int32_t p, broker::errc e) {
                  t.results_by_partition.push_back(
                    {p, id_denied                                ? kerr::transactional_id_authorization_failed
                        : e == broker::errc::operation_not_attempted ? kerr::operation_not_attempted
                                                                     : kerr::topic_authorization_failed});
              });
            co_return respond(ctx, r);
        }
        auto errors = co_await add_partitions(ctx, req.v3_and_below_transactional_id, req.v3_and_below_producer_id,
                                              req.v3_and_below_producer_epoch, partitions_of(req.v3_and_below_topics),
                                              false);
        r.results_by_topic_v3_and_below = by_topic<resp::add_partitions_topic_result>(errors, fill);
        co_return respond(ctx, r);
    }
    // The batched form is what brokers send each other: it needs CLUSTER_ACTION on the cluster.
    if (!authorize(ctx, security::acl_operation::cluster_action, security::resource_type::cluster,
                   security::cluster_resource_name)) {
        r.error_code = kerr::cluster_authorization_failed;
        co_return respond(ctx, r);
    }
    for (const auto& t : req.transactions) {
        auto errors = co_await add_partitions(ctx, t.transactional_id, t.producer_id, t.producer_epoch,
                                              partitions_of(t.topics), t.verify_only);
        auto& out = r.results_by_transaction.emplace_back();
        out.transactional_id = t.transactional_id;
        out.topic_results = by_topic<resp::add_partitions_topic_result>(errors, fill);
    }
    co_return respond(ctx, r);
}

// AddOffsetsToTxn: the group whose offsets the transaction will commit.
asio::awaitable<response_frame> handle(const request_context& ctx, proto::add_offsets_to_txn_request req) {
    if (!may_write_txn(ctx, req.transactional_id)) {
        proto::add_offsets_to_txn_response r;
        r.error_code = kerr::transactional_id_authorization_failed;
        co_return respond(ctx, r);
    }
    if (!authorize(ctx, security::acl_operation::read, security::resource_type::group, req.group_id)) {
        proto::add_offsets_to_txn_response r;
        r.error_code = kerr::group_authorization_failed;
        co_return respond(ctx, r);
    }
    auto e = co_await await_callback<broker::errc>([&](std::function<void(broker::errc)> done) {
        ctx.broker.transactions().add_offsets(req.transactional_id, req.producer_id, req.producer_epoch, req.group_id,
                                              ctx.shard, std::move(done));
    });
    proto::add_offsets_to_txn_response r;
    r.error_code = txn_error(to_kafka_error(e), ctx.header.request_api_version, 2);
    co_return respond(ctx, r);
}

// EndTxn: commit or abort; answered once the markers are written (or, when one must be
// retried, once the outcome is durable).
asio::awaitable<response_frame> handle(const request_context& ctx, proto::end_txn_request req) {
    if (!may_write_txn(ctx, req.transactional_id)) {
        proto::end_txn_response r;
        r.error_code = kerr::transactional_id_authorization_failed;
        co_return respond(ctx, r);
    }
    auto e = co_await await_callback<broker::errc>([&](std::function<void(broker::errc)> done) {
        ctx.broker.transactions().end(req.transactional_id, req.producer_id, req.producer_epoch, req.committed,
                                      ctx.shard, std::move(done));
    });
    proto::end_txn_response r;
    r.error_code = txn_error(to_kafka_error(e), ctx.header.request_api_version, 2);
    co_return respond(ctx, r);
}

// TxnOffsetCommit: the offsets wait in the transaction and reach the group if it commits.
// The group's generation and member (v3) are not checked against the group.
// Needs WRITE on the transactional id, READ on the group and READ on each topic.
asio::awaitable<response_frame> handle(const request_context& ctx, proto::txn_offset_commit_request req) {
    using resp = proto::txn_offset_commit_response;
    resp r;
    const auto version = ctx.header.request_api_version;
    int16_t denied_all = kerr::none;
    if (!may_write_txn(ctx, req.transactional_id)) {
        denied_all = kerr::transactional_id_authorization_failed;
    } else if (!authorize(ctx, security::acl_operation::read, security::resource_type::group, req.group_id)) {
        denied_all = kerr::group_authorization_failed;
    }
    std::vector<broker::txn_pending_offset> offsets;
    for (const auto& t : req.topics) {
        const int16_t denied = denied_all != kerr::none ? denied_all
                               : authorize(ctx, security::acl_operation::read, security::resource_type::topic, t.name)
                                 ? kerr::none
                                 : kerr::topic_authorization_failed;
        if (denied != kerr::none) {
            auto& out = r.topics.emplace_back();
            out.name = t.name;
            for (const auto& p : t.partitions) {
                out.partitions.push_back({p.partition_index, denied});
            }
            continue;
        }
        for (const auto& p : t.partitions) {
            offsets.push_back({req.group_id, {t.name, model::partition_id(p.partition_index)}, p.committed_offset,
                               p.committed_leader_epoch, p.committed_metadata});
        }
    }
    if (offsets.empty() && !r.topics.empty()) {
        co_return respond(ctx, r);
    }
    auto errors = co_await await_callback<partition_errors>([&](std::function<void(partition_errors)> done) {
        ctx.broker.transactions().commit_offsets(req.transactional_id, req.group_id, req.producer_id,
                                                 req.producer_epoch, std::move(offsets), ctx.shard, std::move(done));
    });
    auto allowed = by_topic<resp::txn_offset_topic_result>(
      errors, [version](resp::txn_offset_topic_result& t, int32_t p, broker::errc e) {
          t.partitions.push_back({p, txn_error(to_kafka_error(e), version, 2)});
      });
    r.topics.insert(r.topics.end(), std::make_move_iterator(allowed.begin()), std::make_move_iterator(allowed.end()));
    co_return respond(ctx, r);
}

// DescribeTransactions (KIP-664).
asio::awaitable<response_frame> handle(const request_context& ctx, proto::describe_transactions_request req) {
    auto got = co_await await_callback<std::vector<broker::txn_description>>(
      [&](std::function<void(std::vector<broker::txn_description>)> done) {
          ctx.broker.transactions().describe(std::move(req.transactional_ids), ctx.shard, std::move(done));
      });
    proto::describe_transactions_response r;
    for (const auto& d : got) {
        auto& out = r.transaction_states.emplace_back();
        out.transactional_id = d.id;
        if (!authorize(ctx, security::acl_operation::describe, security::resource_type::transactional_id, d.id)) {
            out.error_code = kerr::transactional_id_authorization_failed;
            continue;
        }
        out.error_code = to_kafka_error(d.error);
        out.transaction_state = d.state;
        out.transaction_timeout_ms = d.timeout_ms;
        out.transaction_start_time_ms = d.start_ms;
        out.producer_id = d.producer_id;
        out.producer_epoch = d.producer_epoch;
        for (const auto& tp : d.partitions) {
            if (out.topics.empty() || out.topics.back().topic != tp.topic) {
                out.topics.emplace_back().topic = tp.topic;
            }
            out.topics.back().partitions.push_back(tp.partition());
        }
    }
    co_return respond(ctx, r);
}

// ListTransactions (KIP-664; v1 adds the duration filter of KIP-994).
asio::awaitable<response_frame> handle(const request_context& ctx, proto::list_transactions_request req) {
    using listing = broker::txn_coordinator::listing;
    auto got = co_await await_callback<listing>([&](std::function<void(listing)> done) {
        ctx.broker.transactions().list(std::move(req.state_filters), std::move(req.producer_id_filters),
                                       req.duration_filter, ctx.shard, std::move(done));
    });
    proto::list_transactions_response r;
    if (!ctx.broker.transactions().started()) {
        r.error_code = kerr::coordinator_not_available;
    }
    r.unknown_state_filters = std::move(got.unknown_states);
    for (const auto& d : got.transactions) {
        if (!authorize(ctx, security::acl_operation::describe, security::resource_type::transactional_id, d.id, false)) {
            continue;
        }
        r.transaction_states.push_back({d.id, d.producer_id, d.state});
    }
    co_return respond(ctx, r);
}

// DescribeProducers (KIP-664): the producers each partition remembers, with the first offset
// of their open transaction.
asio::awaitable<response_frame> handle(const request_context& ctx, proto::describe_producers_request req) {
    proto::describe_producers_response r;
    using R = result<std::vector<broker::producer_description>>;
    for (const auto& t : req.topics) {
        auto& out_topic = r.topics.emplace_back();
        out_topic.name = t.name;
        auto info = ctx.broker.topic(t.name);
        const bool may_read = authorize(ctx, security::acl_operation::read, security::resource_type::topic, t.name);
        for (auto p : t.partition_indexes) {
            auto& out = out_topic.partitions.emplace_back();
            out.partition_index = p;
            if (!may_read) {
                out.error_code = kerr::topic_authorization_failed;
                continue;
            }
            if (!info || !info->has_partition(p)) {
                out.error_code = kerr::unknown_topic_or_partition;
                continue;
            }
            auto got = co_await await_callback<R>([&](std::function<void(R)> done) {
                ctx.broker.describe_producers({t.name, model::partition_id(p)}, ctx.shard, std::move(done));
            });
            if (!got) {
                out.error_code = to_kafka_error(got.error());
                out.error_message = got.error().message();
                continue;
            }
            for (const auto& d : got.value()) {
                out.active_producers.push_back(
                  {d.producer_id, d.epoch, d.last_sequence, d.last_timestamp, 0, d.open_txn_first_offset});
            }
        }
    }
    co_return respond(ctx, r);
}

} // namespace runnel::kafka
