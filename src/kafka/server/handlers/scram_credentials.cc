#include <map>
#include <set>

#include "kafka/server/handler.h"

namespace runnel::kafka {
namespace {

/// Kafka's ScramMechanism codes: 0 is UNKNOWN.
constexpr int8_t wire_scram_sha_256 = 1;
constexpr int8_t wire_scram_sha_512 = 2;
/// The most salt bytes an upsertion may carry (every client sends a few dozen).
constexpr std::size_t max_salt_bytes = 1024;

std::optional<security::mechanism> mechanism_of(int8_t code) noexcept {
    switch (code) {
    case wire_scram_sha_256:
        return security::mechanism::scram_sha_256;
    case wire_scram_sha_512:
        return security::mechanism::scram_sha_512;
    default:
        return std::nullopt;
    }
}

int8_t wire_code(security::mechanism m) noexcept {
    return m == security::mechanism::scram_sha_256 ? wire_scram_sha_256 : wire_scram_sha_512;
}

/// The bytes of SaltedPassword for `m`: PBKDF2's output is one digest long.
std::size_t salted_password_bytes(security::mechanism m) noexcept {
    return m == security::mechanism::scram_sha_256 ? 32 : 64;
}

/// Names given more than once in `names`.
std::set<std::string> repeated(const std::vector<std::string_view>& names) {
    std::map<std::string_view, int> count;
    for (auto n : names) {
        ++count[n];
    }
    std::set<std::string> out;
    for (const auto& [n, c] : count) {
        if (c > 1) {
            out.emplace(n);
        }
    }
    return out;
}

} // namespace

// DescribeUserScramCredentials: the mechanisms and iteration counts of the named users (every
// user for a null or empty list); DESCRIBE on the cluster.
asio::awaitable<response_frame> handle(const request_context& ctx, proto::describe_user_scram_credentials_request req) {
    proto::describe_user_scram_credentials_response r;
    if (!authorize(ctx, security::acl_operation::describe, security::resource_type::cluster,
                   security::cluster_resource_name)) {
        r.error_code = kerr::cluster_authorization_failed;
        r.error_message = "describing SCRAM credentials needs DESCRIBE on the cluster";
        co_return respond(ctx, r);
    }
    if (!ctx.config.credentials) {
        r.error_code = kerr::unknown_server_error;
        r.error_message = "this listener keeps no SCRAM credentials";
        co_return respond(ctx, r);
    }
    const auto users = ctx.config.credentials->list();
    auto describe = [&](const std::string& user, const std::vector<std::pair<security::mechanism, int32_t>>& creds) {
        auto& out = r.results.emplace_back();
        out.user = user;
        for (const auto& [m, iterations] : creds) {
            out.credential_infos.push_back({wire_code(m), iterations});
        }
    };
    if (!req.users || req.users->empty()) {
        for (const auto& [user, creds] : users) {
            describe(user, creds);
        }
        co_return respond(ctx, r);
    }
    std::vector<std::string_view> names;
    for (const auto& u : *req.users) {
        names.push_back(u.name);
    }
    const auto dupes = repeated(names);
    std::set<std::string_view> answered;
    for (const auto& u : *req.users) {
        if (!answered.insert(u.name).second) {
            continue;
        }
        if (dupes.contains(u.name)) {
            auto& out = r.results.emplace_back();
            out.user = u.name;
            out.error_code = kerr::duplicate_resource;
            out.error_message = "Cannot describe SCRAM credentials for the same user twice in a single request";
            continue;
        }
        auto it = users.find(u.name);
        if (it == users.end()) {
            auto& out = r.results.emplace_back();
            out.user = u.name;
            out.error_code = kerr::resource_not_found;
            out.error_message = "Attempt to describe a user credential that does not exist";
            continue;
        }
        describe(it->first, it->second);
    }
    co_return respond(ctx, r);
}

// AlterUserScramCredentials: deletions and upsertions of SCRAM credentials; an upsertion
// carries the salt, the iteration count and SaltedPassword (the client ran PBKDF2), from which
// the store keeps StoredKey and ServerKey. Errors are per user; ALTER on the cluster.
asio::awaitable<response_frame> handle(const request_context& ctx, proto::alter_user_scram_credentials_request req) {
    proto::alter_user_scram_credentials_response r;
    // One result per user, in the order users first appear.
    std::vector<std::string_view> names;
    for (const auto& d : req.deletions) {
        names.push_back(d.name);
    }
    for (const auto& u : req.upsertions) {
        names.push_back(u.name);
    }
    std::map<std::string_view, std::size_t> result_of;
    for (auto n : names) {
        if (result_of.emplace(n, r.results.size()).second) {
            r.results.push_back({std::string(n), kerr::none, std::nullopt});
        }
    }
    auto fail = [&](std::string_view user, int16_t code, std::string message) {
        auto& out = r.results[result_of.at(user)];
        if (out.error_code == kerr::none) {
            out.error_code = code;
            out.error_message = std::move(message);
        }
    };
    if (!authorize(ctx, security::acl_operation::alter, security::resource_type::cluster,
                   security::cluster_resource_name)) {
        for (auto& out : r.results) {
            out.error_code = kerr::cluster_authorization_failed;
            out.error_message = "altering SCRAM credentials needs ALTER on the cluster";
        }
        co_return respond(ctx, r);
    }
    if (!ctx.config.credentials) {
        for (auto& out : r.results) {
            out.error_code = kerr::unknown_server_error;
            out.error_message = "this listener keeps no SCRAM credentials";
        }
        co_return respond(ctx, r);
    }
    for (const auto& user : repeated(names)) {
        fail(user, kerr::duplicate_resource,
             "A user credential cannot be altered twice in the same request");
    }
    auto check_user = [&](std::string_view user, int8_t mech) -> std::optional<security::mechanism> {
        std::string why;
        if (user.empty()) {
            fail(user, kerr::unacceptable_credential, "Username must not be empty");
            return std::nullopt;
        }
        if (!security::credential_store::valid_user_name(user, why)) {
            fail(user, kerr::unacceptable_credential, why);
            return std::nullopt;
        }
        auto m = mechanism_of(mech);
        if (!m) {
            fail(user, kerr::unsupported_sasl_mechanism, fmt::format("Unknown SCRAM mechanism {}", mech));
        }
        return m;
    };
    std::vector<security::credential_store::change> changes;
    std::vector<std::string_view> change_user;
    for (const auto& d : req.deletions) {
        auto m = check_user(d.name, d.mechanism);
        if (m && r.results[result_of.at(d.name)].error_code == kerr::none) {
            changes.push_back({d.name, *m, std::nullopt});
            change_user.push_back(d.name);
        }
    }
    for (const auto& u : req.upsertions) {
        auto m = check_user(u.name, u.mechanism);
        if (!m) {
            continue;
        }
        if (u.iterations < security::min_scram_iterations) {
            fail(u.name, kerr::unacceptable_credential,
                 fmt::format("Too few iterations: {} (at least {})", u.iterations, security::min_scram_iterations));
        } else if (u.iterations > security::max_scram_iterations) {
            fail(u.name, kerr::unacceptable_credential,
                 fmt::format("Too many iterations: {} (at most {})", u.iterations, security::max_scram_iterations));
        } else if (u.salt.empty() || u.salt.size() > max_salt_bytes) {
            fail(u.name, kerr::unacceptable_credential, fmt::format("the salt must have 1 to {} bytes", max_salt_bytes));
        } else if (u.salted_password.size() != salted_password_bytes(*m)) {
            fail(u.name, kerr::unacceptable_credential,
                 fmt::format("SaltedPassword for {} has {} bytes, not {}", security::mechanism_name(*m),
                             u.salted_password.size(), salted_password_bytes(*m)));
        }
        if (r.results[result_of.at(u.name)].error_code != kerr::none) {
            continue;
        }
        auto as_text = [](const auto& bytes) {
            return std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size());
        };
        changes.push_back({u.name, *m,
                           security::scram_credential_from_salted(*m, as_text(u.salted_password), as_text(u.salt),
                                                                  u.iterations)});
        change_user.push_back(u.name);
    }
    if (changes.empty()) {
        co_return respond(ctx, r);
    }
    using outcomes = result<std::vector<security::credential_store::change_outcome>>;
    auto [applied, why] = co_await net::await_pair<outcomes, std::string>([&](auto answer) {
        ctx.config.credentials->alter_async(std::move(changes), ctx.shard, answer);
    });
    if (!applied) {
        logging::get("kafka").error("AlterUserScramCredentials: cannot write the SCRAM credentials: {}", why);
        for (auto user : change_user) {
            fail(user, kerr::unknown_server_error, fmt::format("the credentials could not be stored: {}", why));
        }
        co_return respond(ctx, r);
    }
    for (std::size_t i = 0; i < change_user.size(); ++i) {
        if (applied.value()[i] == security::credential_store::change_outcome::not_found) {
            fail(change_user[i], kerr::resource_not_found, "Attempt to delete a user credential that does not exist");
        }
    }
    co_return respond(ctx, r);
}

} // namespace runnel::kafka
