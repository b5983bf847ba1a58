#include "kafka/server/handler.h"

namespace runnel::kafka {

// InitProducerId: ids for idempotent producers. A transactional id asks for transactions,
// which this broker does not offer yet: INVALID_REQUEST. From v3 a producer may present its
// current id and epoch to get the next epoch (KIP-360).
asio::awaitable<response_frame> handle(const request_context& ctx, proto::init_producer_id_request req) {
    proto::init_producer_id_response r;
    if (req.transactional_id) {
        r.error_code = kerr::invalid_request;
        co_return respond(ctx, r);
    }
    std::optional<broker::broker::producer_identity> existing;
    if (req.producer_id >= 0 && req.producer_epoch >= 0) {
        existing = broker::broker::producer_identity{req.producer_id, req.producer_epoch};
    }
    using R = result<broker::broker::producer_identity>;
    auto got = co_await await_callback<R>([&](std::function<void(R)> done) {
        ctx.broker.init_producer_id(existing, ctx.shard, std::move(done));
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
