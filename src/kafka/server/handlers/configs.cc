#include <set>
#include <variant>

#include "kafka/server/handler.h"
#include "kafka/server/handlers/replica_assignment.h"

namespace runnel::kafka {
namespace {

constexpr int8_t resource_topic = 2;
constexpr int8_t resource_broker = 4;
constexpr int8_t source_topic_config = 1;
constexpr int8_t source_dynamic_broker = 2;
constexpr int8_t source_static_broker = 4;
constexpr int8_t source_default = 5;
constexpr int8_t op_set = 0;
constexpr int8_t op_delete = 1;
constexpr int8_t op_append = 2;
constexpr int8_t op_subtract = 3;
constexpr int8_t type_list = 7;

/// Kafka's config types (DescribeConfigs v3+): the type of every topic config we keep.
int8_t config_type(const std::string& name) {
    constexpr int8_t type_long = 5;
    constexpr int8_t type_int = 3;
    if (name == "cleanup.policy" || name == "log.cleanup.policy") {
        return type_list;
    }
    if (name == "compression.type") {
        constexpr int8_t type_string = 2;
        return type_string;
    }
    if (name == "min.cleanable.dirty.ratio") {
        constexpr int8_t type_double = 6;
        return type_double;
    }
    return name == "max.message.bytes" || name == "segment.bytes" ? type_int : type_long;
}

/// The items of a list config's value ("delete,compact"), trimmed, empty ones dropped.
std::vector<std::string> list_items(std::string_view value) {
    std::vector<std::string> out;
    while (!value.empty()) {
        auto comma = value.find(',');
        auto item = value.substr(0, comma);
        value = comma == std::string_view::npos ? std::string_view() : value.substr(comma + 1);
        while (!item.empty() && item.front() == ' ') {
            item.remove_prefix(1);
        }
        while (!item.empty() && item.back() == ' ') {
            item.remove_suffix(1);
        }
        if (!item.empty()) {
            out.emplace_back(item);
        }
    }
    return out;
}

/// APPEND or SUBTRACT `value`'s items to or from the list `current`, as Kafka does: APPEND
/// adds each item not already there (in order), SUBTRACT removes every one given.
std::string apply_list_change(std::string_view current, std::string_view value, bool append) {
    auto items = list_items(current);
    for (auto& v : list_items(value)) {
        auto it = std::find(items.begin(), items.end(), v);
        if (append && it == items.end()) {
            items.push_back(v);
        } else if (!append && it != items.end()) {
            items.erase(it);
        }
    }
    return fmt::format("{}", fmt::join(items, ","));
}

} // namespace

// DescribeConfigs: a topic's configs (set ones report TOPIC_CONFIG, others DEFAULT_CONFIG);
// the broker's few static settings for resource type BROKER.
namespace {

/// The error when the principal may not do `op` on a config resource: a topic's configs need it
/// on the topic, the broker's on the cluster. Nothing when allowed (or another resource type).
std::optional<int16_t> config_denied(const request_context& ctx, int8_t type, std::string_view name,
                                     security::acl_operation op) {
    if (type == resource_topic) {
        if (!authorize(ctx, op, security::resource_type::topic, name)) {
            return kerr::topic_authorization_failed;
        }
    } else if (type == resource_broker) {
        if (!authorize(ctx, op, security::resource_type::cluster, security::cluster_resource_name)) {
            return kerr::cluster_authorization_failed;
        }
    }
    return std::nullopt;
}

} // namespace

asio::awaitable<response_frame> handle(const request_context& ctx, proto::describe_configs_request req) {
    proto::describe_configs_response r;
    const auto defaults = broker::topic_config{}.to_map();
    for (auto& res : req.resources) {
        auto& out = r.results.emplace_back();
        out.resource_type = res.resource_type;
        out.resource_name = res.resource_name;
        auto wanted = [&](const std::string& name) {
            return !res.configuration_keys || res.configuration_keys->empty()
                   || std::find(res.configuration_keys->begin(), res.configuration_keys->end(), name)
                        != res.configuration_keys->end();
        };
        auto add = [&](const std::string& name, const std::string& value, int8_t source, bool read_only) {
            if (!wanted(name)) {
                return;
            }
            proto::describe_configs_response::config c;
            c.name = name;
            c.value = value;
            c.read_only = read_only;
            c.config_source = source;
            c.config_type = config_type(name);
            if (req.include_synonyms) {
                c.synonyms.push_back({name, value, source});
            }
            out.configs.push_back(std::move(c));
        };
        if (auto denied = config_denied(ctx, res.resource_type, res.resource_name,
                                        security::acl_operation::describe_configs)) {
            out.error_code = *denied;
            out.error_message = "describing configs needs DESCRIBE_CONFIGS";
            continue;
        }
        if (res.resource_type == resource_topic) {
            auto info = ctx.broker.topic(res.resource_name);
            if (!info) {
                out.error_code = kerr::unknown_topic_or_partition;
                out.error_message = fmt::format("topic '{}' does not exist", res.resource_name);
                continue;
            }
            for (const auto& [k, v] : info->config.to_map()) {
                add(k, v, defaults.at(k) == v ? source_default : source_topic_config, false);
            }
        } else if (res.resource_type == resource_broker) {
            if (res.resource_name != std::to_string(ctx.config.node_id) && !res.resource_name.empty()) {
                out.error_code = kerr::invalid_request;
                out.error_message = fmt::format("no broker '{}'; this broker is {}", res.resource_name, ctx.config.node_id);
                continue;
            }
            add("auto.create.topics.enable", ctx.config.auto_create_topics ? "true" : "false", source_static_broker, true);
            add("num.partitions", std::to_string(ctx.config.default_partitions), source_static_broker, true);
            add("socket.request.max.bytes", std::to_string(ctx.config.max_frame_bytes), source_static_broker, true);
            add("default.replication.factor", "1", source_static_broker, true);
            for (const auto& [k, v] : ctx.broker.dynamic_configs()) {
                add(k, v, source_dynamic_broker, false);
            }
        } else {
            out.error_code = kerr::invalid_request;
            out.error_message = fmt::format("resource type {} is not supported", res.resource_type);
        }
    }
    co_return respond(ctx, r);
}

namespace {

/// A resource's config changes, in request order: a value to set, or nothing to remove the
/// config (a topic's goes back to its default).
using config_changes = std::vector<std::pair<std::string, std::optional<std::string>>>;

/// The broker settings DescribeConfigs shows as STATIC_BROKER_CONFIG: command-line flags,
/// which Kafka's answer for static configs refuses to change at run time.
bool static_broker_config(std::string_view name) noexcept {
    return name == "auto.create.topics.enable" || name == "num.partitions" || name == "socket.request.max.bytes"
           || name == "default.replication.factor";
}

/// The list-typed configs APPEND and SUBTRACT work on, with Kafka's default when unset.
std::optional<std::string_view> list_config_default(std::string_view name) noexcept {
    if (name == "cleanup.policy" || name == "log.cleanup.policy") {
        return "delete";
    }
    return std::nullopt;
}

/// The outcome of one resource of an AlterConfigs or IncrementalAlterConfigs request.
struct alter_outcome {
    int16_t error_code = kerr::none;
    std::optional<std::string> message;
};

/// The current configs of the resource a change names, or the error to answer: a topic's
/// configs (ALTER_CONFIGS on the topic), or this broker's dynamic ones (on the cluster).
std::variant<std::map<std::string, std::string>, alter_outcome> alter_target(const request_context& ctx, int8_t type,
                                                                             const std::string& name) {
    if (auto denied = config_denied(ctx, type, name, security::acl_operation::alter_configs)) {
        return alter_outcome{*denied, "altering configs needs ALTER_CONFIGS"};
    }
    if (type == resource_topic) {
        auto info = ctx.broker.topic(name);
        if (!info) {
            return alter_outcome{kerr::unknown_topic_or_partition, fmt::format("topic '{}' does not exist", name)};
        }
        return info->config.to_map();
    }
    if (type == resource_broker) {
        if (name != std::to_string(ctx.config.node_id)) {
            return alter_outcome{kerr::invalid_request,
                                 fmt::format("no broker '{}'; this broker is {} (cluster-wide defaults are not kept)",
                                             name.substr(0, 64), ctx.config.node_id)};
        }
        return ctx.broker.dynamic_configs();
    }
    return alter_outcome{kerr::invalid_request,
                         fmt::format("configs of resource type {} cannot be altered (TOPIC and BROKER can)", type)};
}

/// Checks `changes` to the resource and, unless `validate_only`, applies them all or none;
/// with `replace` (AlterConfigs) every config the changes do not set goes back to its default
/// first. The one path of AlterConfigs and IncrementalAlterConfigs into the broker.
asio::awaitable<alter_outcome> apply_config_changes(const request_context& ctx, int8_t type, const std::string& name,
                                                    config_changes changes, bool replace, bool validate_only) {
    std::set<std::string_view> seen;
    for (const auto& [key, value] : changes) {
        if (!seen.insert(key).second) {
            co_return alter_outcome{kerr::invalid_request, fmt::format("config '{}' is given twice", key.substr(0, 256))};
        }
    }
    if (type == resource_broker) {
        std::vector<std::string> fixed;
        for (const auto& [key, value] : changes) {
            if (static_broker_config(key)) {
                fixed.push_back(key);
            }
        }
        if (!fixed.empty()) {
            co_return alter_outcome{kerr::invalid_request, fmt::format("Cannot update these configs dynamically: {} "
                                                                       "(they are command-line flags)",
                                                                       fmt::join(fixed, ", "))};
        }
        if (validate_only) {
            co_return alter_outcome{};
        }
        auto altered = co_await await_change([&](auto answer) {
            ctx.broker.alter_dynamic_configs(std::move(changes), replace, ctx.shard, answer);
        });
        co_return altered.first ? alter_outcome{} : alter_outcome{to_kafka_error(altered.first.error()), altered.second};
    }
    auto info = ctx.broker.topic(name);
    if (!info) {
        co_return alter_outcome{kerr::unknown_topic_or_partition, fmt::format("topic '{}' does not exist", name)};
    }
    if (replace) {
        // Every config not given returns to its default: resets first, then the given values.
        config_changes all;
        for (const auto& [key, _] : broker::topic_config{}.to_map()) {
            if (!seen.contains(key)) {
                all.emplace_back(key, std::nullopt);
            }
        }
        all.insert(all.end(), std::make_move_iterator(changes.begin()), std::make_move_iterator(changes.end()));
        changes = std::move(all);
    }
    auto check = info->config;
    std::string why;
    for (const auto& [key, value] : changes) {
        if (auto applied = value ? check.set(key, *value, why) : check.reset(key, why); !applied) {
            co_return alter_outcome{kerr::invalid_config, why};
        }
    }
    if (validate_only) {
        co_return alter_outcome{};
    }
    auto altered = co_await await_change(
      [&](auto answer) { ctx.broker.alter_config(name, std::move(changes), ctx.shard, answer); });
    co_return altered.first ? alter_outcome{} : alter_outcome{to_kafka_error(altered.first.error()), altered.second};
}

} // namespace

namespace {

/// A resource's planned changes, or why it fails before anything is checked.
using config_plan = std::variant<config_changes, alter_outcome>;

/// Answers each resource of an AlterConfigs or IncrementalAlterConfigs request (`Response` is
/// the api's response; both list per-resource results with the same fields): finds the
/// resource, has `plan` turn its entries into changes against its current configs, and
/// applies them through `apply_config_changes`.
template <typename Response, typename Resources, typename Plan>
asio::awaitable<response_frame> alter_resources(const request_context& ctx, Resources& resources, bool replace,
                                                bool validate_only, Plan plan) {
    Response r;
    for (auto& res : resources) {
        auto& out = r.responses.emplace_back();
        out.resource_type = res.resource_type;
        out.resource_name = res.resource_name;
        auto target = alter_target(ctx, res.resource_type, res.resource_name);
        config_plan planned = std::get_if<alter_outcome>(&target)
                                ? config_plan(std::get<alter_outcome>(target))
                                : plan(res, std::get<std::map<std::string, std::string>>(target));
        if (auto* failed = std::get_if<alter_outcome>(&planned)) {
            out.error_code = failed->error_code;
            out.error_message = failed->message;
            continue;
        }
        auto done = co_await apply_config_changes(ctx, res.resource_type, res.resource_name,
                                                  std::move(std::get<config_changes>(planned)), replace, validate_only);
        out.error_code = done.error_code;
        out.error_message = done.message;
    }
    co_return respond(ctx, r);
}

/// AlterConfigs' entries as changes: each given value (a null one removes the config).
config_plan plan_replacement(proto::alter_configs_request::resource& res, std::map<std::string, std::string>&) {
    config_changes changes;
    for (auto& c : res.configs) {
        changes.emplace_back(std::move(c.name), std::move(c.value));
    }
    return changes;
}

/// IncrementalAlterConfigs' operations as changes: APPEND and SUBTRACT resolved against the
/// current value (or the list's default), in order.
config_plan plan_increments(proto::incremental_alter_configs_request::resource& res,
                            std::map<std::string, std::string>& current) {
    config_changes changes;
    for (const auto& c : res.configs) {
        if (c.config_operation == op_set && c.value) {
            changes.emplace_back(c.name, *c.value);
        } else if (c.config_operation == op_delete) {
            changes.emplace_back(c.name, std::nullopt);
        } else if ((c.config_operation == op_append || c.config_operation == op_subtract) && c.value) {
            auto fallback = list_config_default(c.name);
            if (!fallback) {
                return alter_outcome{kerr::invalid_config,
                                     fmt::format("{} is only allowed on list configs; '{}' is not one",
                                                 c.config_operation == op_append ? "APPEND" : "SUBTRACT", c.name)};
            }
            auto it = current.find(c.name);
            const std::string now = it == current.end() ? std::string(*fallback) : it->second;
            changes.emplace_back(c.name, apply_list_change(now, *c.value, c.config_operation == op_append));
        } else {
            return alter_outcome{kerr::invalid_config,
                                 fmt::format("operation {} on '{}' is not supported (SET, APPEND or SUBTRACT with a "
                                             "value, or DELETE)",
                                             c.config_operation, c.name)};
        }
        if (changes.back().second) {
            current[c.name] = *changes.back().second;
        } else {
            current.erase(c.name);
        }
    }
    return changes;
}

} // namespace

// AlterConfigs: the given set replaces the resource's configs (a topic's others return to
// their defaults; a broker's dynamic configs are exactly the set afterwards).
asio::awaitable<response_frame> handle(const request_context& ctx, proto::alter_configs_request req) {
    co_return co_await alter_resources<proto::alter_configs_response>(ctx, req.resources, true, req.validate_only,
                                                                      plan_replacement);
}

// IncrementalAlterConfigs: SET and DELETE, APPEND and SUBTRACT of list configs
// (cleanup.policy), all of a resource's changes or none; topics and this broker's dynamic configs.
asio::awaitable<response_frame> handle(const request_context& ctx, proto::incremental_alter_configs_request req) {
    co_return co_await alter_resources<proto::incremental_alter_configs_response>(ctx, req.resources, false,
                                                                                  req.validate_only, plan_increments);
}


// CreatePartitions: grows a topic; the broker places new partitions itself, and manual
// assignments (one per new partition) may name only this node.
asio::awaitable<response_frame> handle(const request_context& ctx, proto::create_partitions_request req) {
    proto::create_partitions_response r;
    for (auto& t : req.topics) {
        auto& out = r.results.emplace_back();
        out.name = t.name;
        if (!authorize(ctx, security::acl_operation::alter, security::resource_type::topic, t.name)) {
            out.error_code = kerr::topic_authorization_failed;
            out.error_message = "adding partitions needs ALTER on the topic";
            continue;
        }
        auto info = ctx.broker.topic(t.name);
        if (!info) {
            out.error_code = kerr::unknown_topic_or_partition;
            out.error_message = fmt::format("topic '{}' does not exist", t.name);
            continue;
        }
        if (t.count <= info->config.partitions) {
            out.error_code = kerr::invalid_partitions;
            out.error_message = fmt::format("topic '{}' has {} partitions; the count can only grow", t.name,
                                            info->config.partitions);
            continue;
        }
        if (t.assignments && !t.assignments->empty()) {
            const auto added = static_cast<std::size_t>(t.count - info->config.partitions);
            std::optional<std::string> bad;
            if (t.assignments->size() != added) {
                bad = fmt::format("{} partitions are added but {} assignments were given", added,
                                  t.assignments->size());
            }
            for (std::size_t i = 0; !bad && i < t.assignments->size(); ++i) {
                bad = single_node_replicas_error((*t.assignments)[i].broker_ids, ctx.config.node_id);
            }
            if (bad) {
                out.error_code = kerr::invalid_replica_assignment;
                out.error_message = std::move(*bad);
                continue;
            }
        }
        if (req.validate_only) {
            continue;
        }
        auto grown = co_await await_change(
          [&](auto answer) { ctx.broker.create_partitions(t.name, t.count, ctx.shard, answer); });
        if (!grown.first) {
            out.error_code = to_kafka_error(grown.first.error());
            out.error_message = grown.second;
        }
    }
    co_return respond(ctx, r);
}

} // namespace runnel::kafka
