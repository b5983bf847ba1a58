#include "kafka/server/handler.h"

namespace runnel::kafka {

// InitProducerId. Without a transactional id: a new idempotent producer id with epoch 0,
// whatever id and epoch the request presents (v3+): as in Kafka, those are only meaningful
// for a transactional id, and trusting them would let two producers presenting the same pair
// share one sequence space. With one: the transaction coordinator gives the id's producer id
// with its next epoch (fencing older ones, aborting an open transaction first), checking
// transaction.timeout.ms against --kafka-transaction-max-timeout-ms.
asio::awaitable<response_frame> handle(const request_context& ctx, proto::init_producer_id_request req) {
    proto::init_producer_id_response r;
    if (req.transactional_id && req.transactional_id->empty()) {
        r.error_code = kerr::invalid_request; // as Kafka: null means idempotent, empty is an error
        co_return respond(ctx, r);
    }
    if (req.transactional_id) {
        if (!authorize(ctx, security::acl_operation::write, security::resource_type::transactional_id,
                       *req.transactional_id)) {
            r.error_code = kerr::transactional_id_authorization_failed;
            co_return respond(ctx, r);
        }
        using R = result<broker::txn_producer>;
        auto got = co_await await_callback<R>([&](std::function<void(R)> done) {
            ctx.broker.transactions().init_producer(*req.transactional_id, req.transaction_timeout_ms, req.producer_id,
                                                    req.producer_epoch, ctx.shard, std::move(done));
        });
        if (!got) {
            r.error_code = txn_error(to_kafka_error(got.error()), ctx.header.request_api_version, 4);
        } else {
            r.producer_id = got.value().id;
            r.producer_epoch = got.value().epoch;
        }
        co_return respond(ctx, r);
    }
    // An idempotent producer needs IDEMPOTENT_WRITE on the cluster or WRITE on some topic.
    if (ctx.config.acls
        && !authorize(ctx, security::acl_operation::idempotent_write, security::resource_type::cluster,
                      security::cluster_resource_name, false)
        && !ctx.config.acls->allowed_on_some(ctx.principal, client_address(ctx), security::acl_operation::write,
                                             security::resource_type::topic)) {
        authorize(ctx, security::acl_operation::idempotent_write, security::resource_type::cluster,
                  security::cluster_resource_name); // counted and logged as the denial
        r.error_code = kerr::cluster_authorization_failed;
        co_return respond(ctx, r);
    }
    using R = result<broker::broker::producer_identity>;
    auto got = co_await await_callback<R>([&](std::function<void(R)> done) {
        ctx.broker.init_producer_id(ctx.shard, std::move(done));
    });
    if (!got) {
        r.error_code = kerr::unknown_server_error;
    } else {
        r.producer_id = got.value().id;
        r.producer_epoch = got.value().epoch;
    }
    co_return respond(ctx, r);
}

} // namespace runnel::kafka
