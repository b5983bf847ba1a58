#include "kafka/server/handler.h"

namespace runnel::kafka {
namespace {

spdlog::logger& authz_log() { return logging::get("kafka"); }

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
    return security::authorize_audited(*acls, {ctx.principal, client_address(ctx), op, type, name}, audit, authz_log(),
                                       [&ctx] {
                                           return fmt::format("api {} from client '{}'", ctx.header.request_api_key,
                                                              ctx.header.client_id.value_or("").substr(0, 128));
                                       });
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
