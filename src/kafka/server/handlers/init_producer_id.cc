#include "kafka/server/handler.h"

namespace runnel::kafka {

// InitProducerId: ids for idempotent producers. A transactional id asks for transactions,
// which this broker does not offer yet: INVALID_REQUEST. Without one, every call gets a new
// producer id with epoch 0, whatever id and epoch the request presents (v3+): as in Kafka,
// those are only meaningful for a transactional id, and trusting them would let two producers
// presenting the same pair share one sequence space and lose each other's records.
asio::awaitable<response_frame> handle(const request_context& ctx, proto::init_producer_id_request req) {
    proto::init_producer_id_response r;
    if (req.transactional_id) {
        r.error_code = kerr::invalid_request;
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
