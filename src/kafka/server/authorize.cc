#include "kafka/server/handler.h"

namespace runnel::kafka {
namespace {

spdlog::logger& authz_log() { return logging::get("kafka"); }

/// Decisions of the authorizer, the counters resolved once so a check costs one increment.
struct authz_metrics {
    std::array<metrics::counter*, security::resource_type_count> allowed{};
    std::array<std::array<metrics::counter*, security::acl_operation_count>, security::resource_type_count> denied{};

    authz_metrics() {
        auto& reg = metrics::default_registry();
        auto& a = reg.counters("runnel_authz_allowed_total", "Kafka operations the ACLs allowed, by resource type",
                               {"resource_type"});
        auto& d = reg.counters("runnel_authz_denied_total",
                               "Kafka operations the ACLs denied (the client got an *_AUTHORIZATION_FAILED error or "
                               "saw less), by resource type and operation",
                               {"resource_type", "operation"});
        for (int t = 0; t < security::resource_type_count; ++t) {
            const auto type = std::string(security::name_of(static_cast<security::resource_type>(t)));
            allowed[static_cast<std::size_t>(t)] = &a.with({type});
            for (int o = 0; o < security::acl_operation_count; ++o) {
                denied[static_cast<std::size_t>(t)][static_cast<std::size_t>(o)] =
                  &d.with({type, std::string(security::name_of(static_cast<security::acl_operation>(o)))});
            }
        }
    }
};

authz_metrics& authz_stats() {
    static authz_metrics m;
    return m;
}

logging::rate_limit& denial_log_limit() {
    static logging::rate_limit limit(std::chrono::seconds(1), 10);
    return limit;
}

} // namespace

std::string_view client_address(const request_context& ctx) noexcept {
    std::string_view host = ctx.client_host; // Kafka's "/address" form
    if (!host.empty() && host.front() == '/') {
        host.remove_prefix(1);
    }
    return host;
}

bool authorize(const request_context& ctx, security::acl_operation op, security::resource_type type,
               std::string_view name, bool audit) {
    const auto& acls = ctx.config.acls;
    if (!acls) {
        return true;
    }
    const auto host = client_address(ctx);
    const auto t = static_cast<std::size_t>(static_cast<int8_t>(type));
    const auto o = static_cast<std::size_t>(static_cast<int8_t>(op));
    auto& stats = authz_stats();
    if (acls->allowed(ctx.principal, host, op, type, name)) {
        if (t < stats.allowed.size()) {
            stats.allowed[t]->inc();
        }
        return true;
    }
    if (!audit) {
        return false; // a probe (which topics to list), not a refusal
    }
    if (t < stats.denied.size() && o < stats.denied[t].size()) {
        stats.denied[t][o]->inc();
    }
    {
        log_limited(denial_log_limit(), authz_log(), spdlog::level::info,
                    "authorization denied: principal {} from {} operation {} on {} '{}' (api {} from client '{}')",
                    ctx.principal, host, security::name_of(op), security::name_of(type), name.substr(0, 256),
                    ctx.header.request_api_key, ctx.header.client_id.value_or("").substr(0, 128));
    }
    return false;
}

namespace {

/// The operations Kafka defines on each resource type (`AclEntry.supportedOperations`), the
/// bits an authorized-operations set may hold.
std::span<const security::acl_operation> supported_operations(security::resource_type type) noexcept {
    using op = security::acl_operation;
    static constexpr op topic[] = {op::read,  op::write,           op::create,          op::describe,
                                   op::remove, op::alter,          op::describe_configs, op::alter_configs};
    static constexpr op group[] = {op::read, op::describe, op::remove};
    static constexpr op cluster[] = {op::create,        op::cluster_action, op::describe_configs, op::alter_configs,
                                     op::idempotent_write, op::alter,       op::describe};
    static constexpr op transactional_id[] = {op::describe, op::write};
    static constexpr op delegation_token[] = {op::describe};
    static constexpr op user[] = {op::create_tokens, op::describe_tokens};
    switch (type) {
    case security::resource_type::topic:
        return topic;
    case security::resource_type::group:
        return group;
    case security::resource_type::cluster:
        return cluster;
    case security::resource_type::transactional_id:
        return transactional_id;
    case security::resource_type::delegation_token:
        return delegation_token;
    case security::resource_type::user:
        return user;
    default:
        return {};
    }
}

} // namespace

int32_t authorized_operations(const request_context& ctx, security::resource_type type, std::string_view name) {
    uint32_t bits = 0;
    for (auto op : supported_operations(type)) {
        if (authorize(ctx, op, type, name, false)) {
            bits |= 1u << static_cast<unsigned>(static_cast<int8_t>(op));
        }
    }
    return static_cast<int32_t>(bits);
}

} // namespace runnel::kafka
