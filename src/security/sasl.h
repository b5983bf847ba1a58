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
/// as a wrong password does, so the answers do not tell which user names exist.
class sasl_server {
public:
    enum class state { more, done, failed };
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
};

} // namespace runnel::security
