#include "security/authz_audit.h"

#include <array>

namespace runnel::security {
namespace {

/// Decisions of the authorizer, the counters resolved once so a check costs one increment.
struct authz_metrics {
    std::array<metrics::counter*, resource_type_count> allowed{};
    std::array<std::array<metrics::counter*, acl_operation_count>, resource_type_count> denied{};

    authz_metrics() {
        auto& reg = metrics::default_registry();
        auto& a = reg.counters("runnel_authz_allowed_total",
                               "Operations the ACLs allowed (Kafka requests and HTTP requests), by resource type",
                               {"resource_type"});
        auto& d = reg.counters("runnel_authz_denied_total",
                               "Operations the ACLs denied (a Kafka client got an *_AUTHORIZATION_FAILED error or "
                               "saw less; an HTTP client got 403 or a stream error), by resource type and operation",
                               {"resource_type", "operation"});
        for (int t = 0; t < resource_type_count; ++t) {
            const auto type = std::string(name_of(static_cast<resource_type>(t)));
            allowed[static_cast<std::size_t>(t)] = &a.with({type});
            for (int o = 0; o < acl_operation_count; ++o) {
                denied[static_cast<std::size_t>(t)][static_cast<std::size_t>(o)] =
                  &d.with({type, std::string(name_of(static_cast<acl_operation>(o)))});
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

void record_allowed(resource_type type) noexcept {
    const auto t = static_cast<std::size_t>(static_cast<int8_t>(type));
    auto& stats = authz_stats();
    if (t < stats.allowed.size()) {
        stats.allowed[t]->inc();
    }
}

void record_denied(const access_check& c, spdlog::logger& log, std::string_view context) {
    const auto t = static_cast<std::size_t>(static_cast<int8_t>(c.type));
    const auto o = static_cast<std::size_t>(static_cast<int8_t>(c.op));
    auto& stats = authz_stats();
    if (t < stats.denied.size() && o < stats.denied[t].size()) {
        stats.denied[t][o]->inc();
    }
    log_limited(denial_log_limit(), log, spdlog::level::info,
                "authorization denied: principal {} from {} operation {} on {} '{}' ({})", c.principal, c.host,
                name_of(c.op), name_of(c.type), text::scrub_utf8(c.name.substr(0, 256)), context);
}

std::string denial_text(const access_check& c) {
    return fmt::format("{} is not authorized to {} {} '{}'", c.principal, name_of(c.op), name_of(c.type),
                       c.name.substr(0, 256));
}

} // namespace runnel::security
