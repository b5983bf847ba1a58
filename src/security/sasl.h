#pragma once

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "security/credentials.h"
#include "security/jwt.h"
#include "security/scram.h"

namespace runnel::security {

/// Checks a bearer token (the gateway's and the listeners' `jwt_validator::validate`); kept
/// as a function so the SASL code does not depend on how tokens are checked.
using bearer_check = std::function<std::optional<jwt_identity>(std::string_view token, std::string& why)>;

/// The server side of one SASL exchange: PLAIN (RFC 4616) checked against the user's stored
/// SCRAM credential, SCRAM-SHA-256/512 (RFC 5802, RFC 7677) without channel binding, or
/// OAUTHBEARER (RFC 7628, KIP-255) with the token checked by a `bearer_check`.
///
/// One per authentication attempt of a connection; used on that connection's shard only.
/// Every token is hostile: malformed text fails the exchange with a message, never throws.
/// An unknown user runs a SCRAM exchange against a made-up credential and fails at the proof,
/// as a wrong password does, and a PLAIN password of an unknown user is checked against such
/// a credential too, so neither the answers nor their timing tell which user names exist.
///
/// Checking a PLAIN password costs a PBKDF2 derivation (milliseconds). After
/// `defer_password_checks`, `step` does not run it: it answers `check_password`, the caller
/// runs `password_ok` where milliseconds stall nothing (the server's `password_pool`) and hands
/// the outcome to `finish_password_check`.
class sasl_server {
public:
    enum class state { more, done, failed, check_password };
    struct step_result {
        state st = state::failed;
        std::string response; ///< the token to send back (also the last one, server-final)
        std::string error;    ///< why it failed, for the client and the log
        /// OAUTHBEARER: when the token expires (the session ends then, KIP-368).
        std::optional<std::chrono::system_clock::time_point> expires;
    };

    /// `bearer`: how OAUTHBEARER tokens are checked (required for that mechanism).
    sasl_server(mechanism m, credential_store& store, bearer_check bearer = {});

    /// Takes the client's next token and answers it.
    step_result step(std::string_view token);

    /// From now on a PLAIN password is checked by the caller (see the class comment).
    void defer_password_checks() noexcept { _defer_password_check = true; }
    /// After `step` answered `check_password`: whether the password matches the user's stored
    /// credential. Reads only this exchange's own fields and changes nothing, so it may run on
    /// another thread while the owner waits for it.
    bool password_ok() const;
    /// Ends a PLAIN exchange with the outcome of `password_ok`.
    step_result finish_password_check(bool ok);

    mechanism mech() const noexcept { return _mech; }
    /// The authenticated user once `step` returned `done`.
    const std::string& user() const noexcept { return _user; }

private:
    step_result plain(std::string_view token);
    step_result client_first(std::string_view token);
    step_result client_final(std::string_view token);
    step_result oauthbearer(std::string_view token);
    step_result fail(std::string why);

    mechanism _mech;
    credential_store& _store;
    bearer_check _bearer;
    std::string _bearer_error; ///< OAUTHBEARER: why the token failed, told after the client's %x01
    int _stage = 0;
    std::string _user;
    std::string _gs2_header;
    std::string _client_first_bare;
    std::string _server_first;
    std::string _nonce;
    scram_credential _cred;
    std::string _password; ///< PLAIN: between `step` and `finish_password_check`
    bool _defer_password_check = false;
};

} // namespace runnel::security
