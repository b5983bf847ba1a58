#include "security/sasl.h"

#include <openssl/crypto.h>

#include <charconv>
#include <vector>

#include "base/text.h"

namespace runnel::security {
namespace {

/// The SCRAM attributes of a message: `x=value` parts separated by commas.
struct attribute {
    char name;
    std::string_view value;
};

bool parse_attributes(std::string_view text, std::vector<attribute>& out) {
    std::size_t start = 0;
    for (;;) {
        auto comma = text.find(',', start);
        auto part = text.substr(start, comma == std::string_view::npos ? std::string_view::npos : comma - start);
        if (part.size() < 2 || part[1] != '=' || !((part[0] >= 'a' && part[0] <= 'z') || (part[0] >= 'A' && part[0] <= 'Z'))) {
            return false;
        }
        out.push_back({part[0], part.substr(2)});
        if (comma == std::string_view::npos) {
            return true;
        }
        start = comma + 1;
    }
}

/// RFC 5802 saslname: "=2C" is ',' and "=3D" is '='; any other '=' is malformed.
std::optional<std::string> decode_saslname(std::string_view s) {
    std::string out;
    for (std::size_t i = 0; i < s.size(); ++i) {
        if (s[i] == ',') {
            return std::nullopt;
        }
        if (s[i] != '=') {
            out += s[i];
            continue;
        }
        auto code = s.substr(i + 1, 2);
        if (code == "2C") {
            out += ',';
        } else if (code == "3D") {
            out += '=';
        } else {
            return std::nullopt;
        }
        i += 2;
    }
    return out;
}

bool printable_nonce(std::string_view s) {
    for (unsigned char c : s) {
        if (c < 0x21 || c > 0x7e || c == ',') {
            return false;
        }
    }
    return !s.empty();
}

/// A secret of this process, so the made-up credential of an unknown user stays the same
/// between attempts (a changing salt would tell that the user does not exist).
const std::string& process_secret() {
    static const std::string secret = random_bytes(32);
    return secret;
}

constexpr std::size_t max_token_bytes = 16 * 1024;

/// The credential an unknown user is checked against: a stable salt, so repeated attempts
/// look alike, and random keys, so no password or proof matches.
scram_credential made_up_credential(mechanism m, std::string_view user) {
    scram_credential c;
    c.mech = m;
    c.salt = scram_hmac(mechanism::scram_sha_256, process_secret(), user);
    c.iterations = min_scram_iterations;
    c.stored_key = random_bytes(scram_hash(m, "").size());
    c.server_key = random_bytes(c.stored_key.size());
    return c;
}

} // namespace

sasl_server::sasl_server(mechanism m, credential_store& store, bearer_check bearer)
  : _mech(m)
  , _store(store)
  , _bearer(std::move(bearer)) {}

sasl_server::step_result sasl_server::fail(std::string why) {
    _stage = -1;
    return {state::failed, {}, std::move(why), std::nullopt};
}

sasl_server::step_result sasl_server::step(std::string_view token) {
    if (_stage < 0) {
        return fail("Authentication failed: the exchange already failed");
    }
    if (token.size() > max_token_bytes) {
        return fail("Authentication failed: SASL token too large");
    }
    if (_mech == mechanism::plain) {
        return _stage == 0 ? plain(token) : fail("Authentication failed: unexpected token after PLAIN");
    }
    if (_mech == mechanism::oauthbearer) {
        if (_stage == 0) {
            return oauthbearer(token);
        }
        // RFC 7628 §3.2.3: after the error the client sends a lone %x01; then the exchange fails.
        return fail(_bearer_error.empty() ? "Authentication failed: unexpected token after OAUTHBEARER"
                                          : _bearer_error);
    }
    switch (_stage) {
    case 0:
        return client_first(token);
    case 1:
        return client_final(token);
    default:
        return fail("Authentication failed: unexpected token after the SCRAM exchange ended");
    }
}

sasl_server::step_result sasl_server::plain(std::string_view token) {
    // authzid NUL authcid NUL passwd
    auto first = token.find('\0');
    auto second = first == std::string_view::npos ? first : token.find('\0', first + 1);
    if (second == std::string_view::npos || token.find('\0', second + 1) != std::string_view::npos) {
        return fail("Authentication failed: invalid SASL/PLAIN request: expected 3 tokens");
    }
    auto authzid = token.substr(0, first);
    auto user = token.substr(first + 1, second - first - 1);
    auto password = token.substr(second + 1);
    if (user.empty() || password.empty()) {
        return fail("Authentication failed: invalid SASL/PLAIN request: empty user name or password");
    }
    if (!authzid.empty() && authzid != user) {
        return fail("Authentication failed: client requested an authorization id that is different from username");
    }
    std::optional<scram_credential> cred = _store.find(user, mechanism::scram_sha_512);
    if (!cred) {
        cred = _store.find(user, mechanism::scram_sha_256);
    }
    _cred = cred ? std::move(*cred) : made_up_credential(mechanism::scram_sha_512, user);
    _user = std::string(user);
    _password = std::string(password);
    _stage = 1;
    if (_defer_password_check) {
        return {state::check_password, {}, {}, std::nullopt};
    }
    return finish_password_check(password_ok());
}

bool sasl_server::password_ok() const {
    return _mech == mechanism::plain && _stage == 1 && !_password.empty() && password_matches(_cred, _password);
}

sasl_server::step_result sasl_server::finish_password_check(bool ok) {
    if (_mech != mechanism::plain || _stage != 1 || _password.empty()) {
        return fail("Authentication failed: no PLAIN password is being checked");
    }
    OPENSSL_cleanse(_password.data(), _password.size());
    _password.clear();
    if (!ok) {
        _user.clear();
        return fail("Authentication failed: Invalid username or password");
    }
    _stage = 2;
    return {state::done, {}, {}, std::nullopt};
}

sasl_server::step_result sasl_server::oauthbearer(std::string_view token) {
    // gs2-header ("n,," or "n,a=authzid,"), then %x01-separated key=value pairs ending in
    // %x01%x01, one of them "auth=Bearer TOKEN" (RFC 7628 §3.1); others (host, port, KIP-342
    // extensions) are ignored.
    if (token.size() < 3 || (token[0] != 'n' && token[0] != 'y') || token[1] != ',') {
        return fail("Authentication failed: invalid OAUTHBEARER client first message: bad GS2 header");
    }
    auto comma = token.find(',', 2);
    if (comma == std::string_view::npos) {
        return fail("Authentication failed: invalid OAUTHBEARER client first message: bad GS2 header");
    }
    std::string_view authzid = token.substr(2, comma - 2);
    if (!authzid.empty()) {
        if (!authzid.starts_with("a=")) {
            return fail("Authentication failed: invalid OAUTHBEARER client first message: bad authzid");
        }
        authzid.remove_prefix(2);
    }
    auto rest = token.substr(comma + 1);
    if (rest.size() < 2 || rest.front() != '\x01' || !rest.ends_with("\x01\x01")) {
        return fail("Authentication failed: invalid OAUTHBEARER client first message: bad key/value pairs");
    }
    rest = rest.substr(1, rest.size() - 3);
    std::optional<std::string_view> bearer;
    for (;;) {
        auto end = rest.find('\x01');
        auto pair = rest.substr(0, end);
        if (pair.starts_with("auth=")) {
            auto value = pair.substr(5);
            if (value.size() < 8 || !(value.substr(0, 7) == "Bearer " || value.substr(0, 7) == "bearer ")) {
                return fail("Authentication failed: invalid OAUTHBEARER client first message: auth is not Bearer");
            }
            bearer = value.substr(7);
        }
        if (end == std::string_view::npos) {
            break;
        }
        rest = rest.substr(end + 1);
    }
    if (!bearer) {
        return fail("Authentication failed: invalid OAUTHBEARER client first message: no auth=Bearer");
    }
    std::string why;
    auto id = _bearer ? _bearer(*bearer, why) : std::nullopt;
    if (!_bearer) {
        why = "no token validator is configured";
    }
    if (id && !authzid.empty()) {
        auto decoded = decode_saslname(authzid);
        if (!decoded || *decoded != id->user) {
            id.reset();
            why = "the authorization id differs from the token's principal";
        }
    }
    if (!id) {
        // The error goes to the client as JSON now; the exchange fails at its next token.
        _bearer_error = "Authentication failed: " + why;
        _stage = 1;
        return {state::more, R"({"status":"invalid_token"})", {}, std::nullopt};
    }
    _user = std::move(id->user);
    _stage = 2;
    return {state::done, {}, {}, id->expires};
}

sasl_server::step_result sasl_server::client_first(std::string_view token) {
    // gs2-header: "n,," or "y,," with an optional "a=authzid" between the commas; channel
    // binding ("p=...") is not offered, so a client asking for it fails.
    auto c1 = token.find(',');
    auto c2 = c1 == std::string_view::npos ? c1 : token.find(',', c1 + 1);
    if (c2 == std::string_view::npos) {
        return fail("Authentication failed: invalid SCRAM client-first message");
    }
    auto flag = token.substr(0, c1);
    if (flag != "n" && flag != "y") {
        return fail("Authentication failed: SCRAM channel binding is not supported");
    }
    auto authzid_part = token.substr(c1 + 1, c2 - c1 - 1);
    std::optional<std::string> authzid;
    if (!authzid_part.empty()) {
        if (authzid_part.size() < 2 || authzid_part.substr(0, 2) != "a=") {
            return fail("Authentication failed: invalid SCRAM authorization id");
        }
        authzid = decode_saslname(authzid_part.substr(2));
        if (!authzid) {
            return fail("Authentication failed: invalid SCRAM authorization id");
        }
    }
    _gs2_header = std::string(token.substr(0, c2 + 1));
    _client_first_bare = std::string(token.substr(c2 + 1));
    std::vector<attribute> attrs;
    if (!parse_attributes(_client_first_bare, attrs) || attrs.size() < 2 || attrs[0].name != 'n'
        || attrs[1].name != 'r') {
        return fail("Authentication failed: invalid SCRAM client-first message: expected n=user,r=nonce");
    }
    auto user = decode_saslname(attrs[0].value);
    if (!user || user->empty()) {
        return fail("Authentication failed: invalid SCRAM user name");
    }
    if (!printable_nonce(attrs[1].value)) {
        return fail("Authentication failed: invalid SCRAM nonce");
    }
    for (std::size_t i = 2; i < attrs.size(); ++i) {
        // Kafka's extensions (KIP-84): only delegation tokens, which are not built.
        if (attrs[i].name == 't' || attrs[i].value.find("tokenauth") != std::string_view::npos) {
            return fail("Authentication failed: delegation tokens are not supported");
        }
    }
    if (authzid && *authzid != *user) {
        return fail("Authentication failed: authorization id differs from the user name");
    }
    _user = std::move(*user);
    if (auto c = _store.find(_user, _mech)) {
        _cred = std::move(*c);
    } else {
        _cred = made_up_credential(_mech, _user);
    }
    _nonce = std::string(attrs[1].value) + text::base64_encode(random_bytes(24));
    _server_first = fmt::format("r={},s={},i={}", _nonce, text::base64_encode(_cred.salt), _cred.iterations);
    _stage = 1;
    return {state::more, _server_first, {}, std::nullopt};
}

sasl_server::step_result sasl_server::client_final(std::string_view token) {
    auto proof_at = token.rfind(",p=");
    if (proof_at == std::string_view::npos) {
        return fail("Authentication failed: invalid SCRAM client-final message: no proof");
    }
    auto without_proof = token.substr(0, proof_at);
    std::vector<attribute> attrs;
    if (!parse_attributes(without_proof, attrs) || attrs.size() < 2 || attrs[0].name != 'c' || attrs[1].name != 'r') {
        return fail("Authentication failed: invalid SCRAM client-final message: expected c=,r=,p=");
    }
    auto binding = text::base64_decode(attrs[0].value);
    if (!binding || *binding != _gs2_header) {
        return fail("Authentication failed: invalid SCRAM channel binding");
    }
    // The nonce must end with the one the server sent: librdkafka repeats the client's part in
    // front of it, and Kafka accepts that (the proof covers the whole message either way).
    if (!attrs[1].value.ends_with(_nonce)) {
        return fail("Authentication failed: invalid SCRAM nonce in the client-final message");
    }
    auto proof = text::base64_decode(token.substr(proof_at + 3));
    if (!proof || proof->size() != _cred.stored_key.size()) {
        return fail("Authentication failed: invalid SCRAM proof");
    }
    const std::string auth_message =
      fmt::format("{},{},{}", _client_first_bare, _server_first, without_proof);
    const std::string client_signature = scram_hmac(_mech, _cred.stored_key, auth_message);
    std::string client_key = *proof;
    for (std::size_t i = 0; i < client_key.size(); ++i) {
        client_key[i] = static_cast<char>(client_key[i] ^ client_signature[i]);
    }
    if (!equal_constant_time(scram_hash(_mech, client_key), _cred.stored_key)) {
        return fail("Authentication failed: Invalid user credentials");
    }
    _stage = 2;
    return {state::done, "v=" + text::base64_encode(scram_hmac(_mech, _cred.server_key, auth_message)), {}, std::nullopt};
}

} // namespace runnel::security
