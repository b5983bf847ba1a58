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

} // namespace runnel::kafka
