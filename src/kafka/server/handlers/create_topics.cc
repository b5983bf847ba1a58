#include <set>

#include "kafka/server/handler.h"
#include "kafka/server/handlers/replica_assignment.h"

namespace runnel::kafka {

// CreateTopics: one broker, so a replication factor other than 1 (or -1, the default) is
// refused, and manual replica assignments may name only this node (one replica per partition,
// partitions 0..n-1; num_partitions and replication_factor then -1, as Kafka requires);
// configs use Kafka's names. validate_only checks without creating.
asio::awaitable<response_frame> handle(const request_context& ctx, proto::create_topics_request req) {
    const auto version = ctx.header.request_api_version;
    proto::create_topics_response r;
    std::multiset<std::string> names;
    for (const auto& t : req.topics) {
        names.insert(t.name);
    }
    // CREATE on the cluster allows every topic; otherwise each needs CREATE on its name.
    const bool may_create_any = authorize(ctx, security::acl_operation::create, security::resource_type::cluster,
                                          security::cluster_resource_name, false);
    for (auto& t : req.topics) {
        auto& out = r.topics.emplace_back();
        out.name = t.name;
        auto fail = [&](int16_t code, std::string why) {
            out.error_code = code;
            out.error_message = std::move(why);
        };
        broker::topic_config cfg;
        cfg.partitions = t.num_partitions == -1 ? ctx.config.default_partitions : t.num_partitions;
        std::string why;
        if (!may_create_any && !authorize(ctx, security::acl_operation::create, security::resource_type::topic, t.name)) {
            fail(kerr::topic_authorization_failed, "creating the topic needs CREATE on the cluster or on the topic");
            continue;
        }
        if (names.count(t.name) > 1) {
            fail(kerr::invalid_request, fmt::format("topic '{}' appears more than once in the request", t.name));
            continue;
        }
        if (!broker::valid_topic_name(t.name, why)) {
            fail(kerr::invalid_topic_exception, why);
            continue;
        }
        if (cfg.partitions < 1) {
            fail(kerr::invalid_partitions, fmt::format("number of partitions must be at least 1, not {}", t.num_partitions));
            continue;
        }
        if (!t.assignments.empty()) {
            if (t.num_partitions != -1 || t.replication_factor != -1) {
                fail(kerr::invalid_request, "num_partitions and replication_factor must be -1 when replica "
                                            "assignments are given");
                continue;
            }
            std::set<int32_t> indexes;
            std::optional<std::string> bad;
            for (const auto& a : t.assignments) {
                if (!indexes.insert(a.partition_index).second) {
                    bad = fmt::format("partition {} is assigned more than once", a.partition_index);
                } else if (!bad) {
                    bad = single_node_replicas_error(a.broker_ids, ctx.config.node_id);
                }
                if (bad) {
                    break;
                }
            }
            if (!bad && (*indexes.begin() != 0 || *indexes.rbegin() != static_cast<int32_t>(indexes.size()) - 1)) {
                bad = std::string("the assigned partitions must be a consecutive 0-based sequence");
            }
            if (bad) {
                fail(kerr::invalid_replica_assignment, std::move(*bad));
                continue;
            }
            cfg.partitions = static_cast<int32_t>(indexes.size());
        }
        const bool one_replica = t.replication_factor == -1 || t.replication_factor == 1 ||
                                 (ctx.config.accept_any_replication_factor && t.replication_factor > 1);
        if (!one_replica) {
            fail(kerr::invalid_replication_factor,
                 fmt::format("replication factor {} is impossible: this cluster has one broker", t.replication_factor));
            continue;
        }
        bool bad_config = false;
        for (const auto& c : t.configs) {
            auto applied = c.value ? cfg.set(c.name, *c.value, why) : cfg.reset(c.name, why);
            if (!applied) {
                fail(kerr::invalid_config, why);
                bad_config = true;
                break;
            }
        }
        if (bad_config) {
            continue;
        }
        if (ctx.broker.topic(t.name)) {
            fail(kerr::topic_already_exists, fmt::format("topic '{}' already exists", t.name));
            continue;
        }
        if (!req.validate_only) {
            auto created = co_await await_change(
              [&](auto answer) { ctx.broker.create_topic(t.name, cfg, ctx.shard, answer); });
            if (!created.first) {
                fail(to_kafka_error(created.first.error()), created.second);
                continue;
            }
            if (auto info = ctx.broker.topic(t.name)) {
                out.topic_id.value = info->id;
            }
        }
        if (version >= 5) {
            out.num_partitions = cfg.partitions;
            out.replication_factor = 1;
            const broker::topic_config defaults;
            const auto default_values = defaults.to_map();
            out.configs.emplace();
            for (const auto& [k, v] : cfg.to_map()) {
                proto::create_topics_response::config_result c;
                c.name = k;
                c.value = v;
                c.config_source = default_values.at(k) == v ? 5 : 1; // DEFAULT_CONFIG : TOPIC_CONFIG
                out.configs->push_back(std::move(c));
            }
        }
    }
    co_return respond(ctx, r);
}

} // namespace runnel::kafka
