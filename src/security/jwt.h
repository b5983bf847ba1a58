#pragma once

#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "base/base.h"

namespace runnel::security {

/// What a JWT must say to be accepted, from the flags (`--jwks-file`, `--jwt-issuer`, …).
struct jwt_config {
    std::filesystem::path jwks_file; ///< JSON Web Key Set (RFC 7517) of the issuer's public keys
    std::optional<std::string> issuer;   ///< `iss` must equal it when set
    std::optional<std::string> audience; ///< `aud` (a string or a list) must hold it when set
    std::string principal_claim = "sub"; ///< the claim naming the user
    std::chrono::seconds clock_skew{30}; ///< leeway on `exp` and `nbf` for clocks that differ
};

/// Who a valid token names, and until when.
struct jwt_identity {
    std::string user; ///< the principal claim's value; the principal is "User:" + user
    std::chrono::system_clock::time_point expires; ///< the token's `exp`
};

/// Checks JSON Web Tokens (RFC 7519) signed with RS256 or ES256 (RFC 7518) against the public
/// keys of a JWKS file: the signature by the key the header's `kid` names, `exp` (required) and
/// `nbf` within the clock skew, `iss` and `aud` when configured; `alg: none` and the HMAC
/// algorithms are refused, as a public key set cannot check them and accepting them lets a
/// client pick its own key. The one validator of bearer tokens: the HTTP gateway and the Kafka
/// listeners' SASL OAUTHBEARER both use it.
///
/// Thread-safe: `load` swaps the key set under a mutex (SIGHUP reloads the file); `validate`
/// takes a reference to the current set and runs on the caller's thread. Every token is
/// hostile: bad input fails with a reason, never throws.
class jwt_validator {
public:
    explicit jwt_validator(jwt_config config);
    ~jwt_validator();
    jwt_validator(const jwt_validator&) = delete;
    jwt_validator& operator=(const jwt_validator&) = delete;

    /// Reads the JWKS file; on failure keeps the previous keys and says why.
    result<void> load(std::string& why);
    /// Takes the key set from text (what `load` does after reading the file; tests).
    result<void> load_text(std::string_view jwks, std::string& why);

    /// The identity of a valid compact JWS `token`, or nullopt with `why` (for the client and
    /// the log; it never repeats the token).
    std::optional<jwt_identity> validate(std::string_view token, std::string& why,
                                         std::chrono::system_clock::time_point now = std::chrono::system_clock::now()) const;

    /// Number of usable keys loaded.
    std::size_t key_count() const;
    const jwt_config& config() const noexcept { return _config; }

    struct key_set;

private:
    jwt_config _config;
    mutable std::mutex _mu;
    std::shared_ptr<const key_set> _keys;
};

} // namespace runnel::security
