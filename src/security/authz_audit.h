#pragma once

#include <string_view>

#include "base/base.h"
#include "security/acl.h"

namespace runnel::security {

/// One question put to the authorizer: may `principal`, from `host` (an address without
/// decoration), do `op` on the resource of `type` named `name`?
struct access_check {
    std::string_view principal;
    std::string_view host;
    acl_operation op;
    resource_type type;
    std::string_view name;
};

/// Counts an allowed check in `runnel_authz_allowed_total`.
void record_allowed(resource_type type) noexcept;
/// Counts a denial in `runnel_authz_denied_total` (by resource type and operation) and logs it
/// at a bounded rate shared by every listener, on `log`, with principal, host, operation and
/// resource, then `context` (what the client asked: the Kafka API, the HTTP request).
void record_denied(const access_check& check, spdlog::logger& log, std::string_view context);

/// Asks `acls` and records the answer the same way for every listener (Kafka and HTTP), so an
/// operator finds every refusal in one counter and one log line. `audit` is false for a probe
/// whose refusal the client never sees as an error (resources left out of a list): it is
/// neither counted nor logged. `context()` (a string) is called only for a recorded denial.
/// Thread-safe.
template <typename Context>
bool authorize_audited(const authorizer& acls, const access_check& check, bool audit, spdlog::logger& log,
                       Context&& context) {
    if (acls.allowed(check.principal, check.host, check.op, check.type, check.name)) {
        record_allowed(check.type);
        return true;
    }
    if (audit) {
        record_denied(check, log, context());
    }
    return false;
}

/// `principal is not authorized to READ TOPIC 'orders'`: the detail of a refusal.
std::string denial_text(const access_check& check);

} // namespace runnel::security
