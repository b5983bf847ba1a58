#include "kafka/server/handler.h"
#include "model/validate.h"

namespace runnel::kafka {

// Produce: every partition of the request is appended at once on its own shard; acks=all
// waits for the group-committed sync of each. acks=0 gets no answer.
asio::awaitable<response_frame> handle(const request_context& ctx, proto::produce_request req) {
    proto::produce_response r;
    struct target {
        std::size_t topic;
        std::size_t partition;
        model::topic_partition tp;
        std::span<const std::byte> records;
    };
    std::vector<target> targets;
    const bool acks_ok = req.acks == -1 || req.acks == 0 || req.acks == 1;
    // A transactional producer needs WRITE on its transactional id, as in Kafka, or nothing
    // of the request is written.
    const bool txn_denied = req.transactional_id
                            && !authorize(ctx, security::acl_operation::write, security::resource_type::transactional_id,
                                          *req.transactional_id);
    for (auto& t : req.topic_data) {
        auto& out_topic = r.responses.emplace_back();
        out_topic.name = t.name;
        std::shared_ptr<const broker::topic_info> info;
        int16_t topic_error = kerr::none;
        if (txn_denied) {
            topic_error = kerr::transactional_id_authorization_failed;
        } else if (acks_ok && !authorize(ctx, security::acl_operation::write, security::resource_type::topic, t.name)) {
            topic_error = kerr::topic_authorization_failed;
        } else if (acks_ok) {
            std::tie(info, topic_error) = co_await find_or_create_topic(ctx, t.name, true);
            if (topic_error == kerr::none && broker::is_internal_topic(t.name)) {
                topic_error = kerr::invalid_topic_exception; // only the broker writes its internal topics
            }
        }
        for (auto& p : t.partition_data) {
            auto& out = out_topic.partition_responses.emplace_back();
            out.index = p.index;
            out.base_offset = -1;
            if (!acks_ok && !txn_denied) {
                out.error_code = kerr::invalid_required_acks;
            } else if (topic_error != kerr::none) {
                out.error_code = topic_error;
            } else if (!info->has_partition(p.index)) {
                out.error_code = kerr::unknown_topic_or_partition;
            } else if (!p.records || p.records->empty()) {
                out.error_code = kerr::corrupt_message;
            } else {
                targets.push_back({r.responses.size() - 1, out_topic.partition_responses.size() - 1,
                                   {t.name, model::partition_id(p.index)}, *p.records});
            }
        }
    }
    std::vector<broker::produce_refusal> refusals(targets.size());
    auto results = co_await await_all<result<broker::produce_result>>(
      targets.size(), [&](std::size_t i, std::function<void(result<broker::produce_result>)> done) {
          ctx.broker.produce(targets[i].tp, targets[i].records, req.acks, ctx.shard, std::move(done), &refusals[i]);
          if (i + 1 == targets.size()) {
              ctx.issued(); // appends are posted in order; their syncs may overlap the next request
          }
      });
    for (std::size_t i = 0; i < targets.size(); ++i) {
        auto& out = r.responses[targets[i].topic].partition_responses[targets[i].partition];
        if (results[i]) {
            out.base_offset = results[i].value().base();
            out.log_start_offset = results[i].value().log_start();
        } else {
            out.error_code = to_kafka_error(results[i].error());
            const auto& refusal = refusals[i];
            out.error_message = refusal.message.empty() ? results[i].error().message() : refusal.message;
            // The records at fault (KIP-467): a client fails those with INVALID_RECORD and
            // the others of the batch as not written because of them.
            for (int32_t index : refusal.records) {
                auto& e = out.record_errors.emplace_back();
                e.batch_index = index;
                e.batch_index_error_message = std::string(model::keyless_record_message);
            }
        }
    }
    if (req.acks == 0) {
        co_return std::nullopt;
    }
    co_return respond(ctx, r);
}

} // namespace runnel::kafka
