#pragma once

#include <chrono>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "security/credentials.h"
#include "security/jwt.h"

namespace runnel::security {

/// Checks user names and passwords against the SCRAM credentials of the data directory, as
/// SASL PLAIN does, remembering recent successes so that a burst of requests with the same
/// HTTP basic credentials costs one PBKDF2 derivation rather than one each.
///
/// A remembered success is keyed by an HMAC (with a key made at start) of the user and the
/// password, holds the credential's StoredKey, and lasts `ttl`: a changed or removed user is
/// checked afresh at once. At most `capacity` successes are kept (the oldest go first);
/// failures are never remembered. Thread-safe (a mutex around the memory; derivations run
/// outside it on the caller's thread).
class password_checker {
public:
    explicit password_checker(std::shared_ptr<credential_store> store, std::size_t capacity = 1024,
                              std::chrono::seconds ttl = std::chrono::seconds(60));

    /// True when `password` is the user's (either SCRAM mechanism; SHA-512 first). An unknown
    /// user costs a derivation too, so timing does not tell which user names exist.
    bool check(std::string_view user, std::string_view password);

    /// Successes remembered now (tests).
    std::size_t cached() const;

private:
    struct entry {
        std::string stored_key;
        std::chrono::steady_clock::time_point until;
        std::list<std::string>::iterator age;
    };

    std::shared_ptr<credential_store> _store;
    std::size_t _capacity;
    std::chrono::seconds _ttl;
    std::string _key; ///< HMAC key of the cache's keys; random, never leaves the process
    mutable std::mutex _mu;
    std::unordered_map<std::string, entry> _entries;
    std::list<std::string> _order; ///< oldest first
};

/// How HTTP requests authenticate (`--http-token`, `--http-basic-auth`, `--jwks-file`).
struct http_auth_config {
    std::optional<std::string> token;           ///< one shared bearer token; its principal is User:http-token
    std::shared_ptr<password_checker> basic;    ///< `Authorization: Basic` against the SCRAM users
    std::shared_ptr<jwt_validator> jwt;         ///< `Authorization: Bearer JWT`
};

/// Who an HTTP request is, from its `Authorization` header (or, for browsers' WebSocket and
/// EventSource requests that cannot set headers, the same value in the `authorization` query
/// parameter, or a bearer token in `access_token`).
///
/// Made once by the gateway; `authenticate` is called on any shard (what it uses is
/// thread-safe). The outcome names the mechanism for the audit counters.
class http_authenticator {
public:
    explicit http_authenticator(http_auth_config config);

    struct outcome {
        std::optional<std::string> principal; ///< "User:name" when authenticated
        std::string mechanism;                ///< "basic", "jwt", "token" or "none"
        std::string user;                     ///< the user name a failed attempt claimed, if any
        std::string why;                      ///< why it failed
        bool attempted = false;               ///< credentials were sent (false: none at all)
        std::optional<std::chrono::system_clock::time_point> expires; ///< a JWT's exp
    };

    /// True when some method is configured; otherwise every request is User:ANONYMOUS.
    bool required() const noexcept { return _config.token || _config.basic || _config.jwt; }

    /// `authorization`: the header's value (or the query's); `access_token`: the query's.
    outcome authenticate(std::optional<std::string_view> authorization,
                         std::optional<std::string_view> access_token) const;

    /// The `WWW-Authenticate` value of a 401: the schemes configured.
    std::string challenge() const;

private:
    outcome bearer(std::string_view token) const;

    http_auth_config _config;
};

} // namespace runnel::security
