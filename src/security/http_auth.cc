#include "security/http_auth.h"

#include <algorithm>
#include <cctype>
#include <iterator>

#include "base/text.h"
#include "security/scram.h"

namespace runnel::security {

password_checker::password_checker(std::shared_ptr<credential_store> store, std::size_t capacity,
                                   std::chrono::seconds ttl)
  : _store(std::move(store))
  , _capacity(std::max<std::size_t>(1, capacity))
  , _ttl(ttl)
  , _key(random_bytes(32)) {}

bool password_checker::check(std::string_view user, std::string_view password) {
    std::optional<scram_credential> cred = _store->find(user, mechanism::scram_sha_512);
    if (!cred) {
        cred = _store->find(user, mechanism::scram_sha_256);
    }
    if (!cred) {
        // The same work as a real check, against a credential nobody has.
        static const scram_credential nobody =
          make_scram_credential(mechanism::scram_sha_512, random_bytes(16), min_scram_iterations);
        (void)password_matches(nobody, password);
        return false;
    }
    std::string id = scram_hmac(mechanism::scram_sha_256, _key,
                                std::string(user) + '\0' + std::string(password));
    const auto now = std::chrono::steady_clock::now();
    {
        std::lock_guard lock(_mu);
        auto it = _entries.find(id);
        if (it != _entries.end()) {
            if (it->second.until > now && equal_constant_time(it->second.stored_key, cred->stored_key)) {
                return true;
            }
            _order.erase(it->second.age);
            _entries.erase(it);
        }
    }
    if (!password_matches(*cred, password)) {
        return false;
    }
    std::lock_guard lock(_mu);
    if (_entries.contains(id)) {
        return true; // another thread remembered it meanwhile
    }
    while (_entries.size() >= _capacity) {
        _entries.erase(_order.front());
        _order.pop_front();
    }
    _order.push_back(id);
    _entries.emplace(std::move(id), entry{cred->stored_key, now + _ttl, std::prev(_order.end())});
    return true;
}

std::size_t password_checker::cached() const {
    std::lock_guard lock(_mu);
    return _entries.size();
}

http_authenticator::http_authenticator(http_auth_config config) : _config(std::move(config)) {}

namespace {

/// Whether `value` starts with the scheme `name` and a space (schemes are case-insensitive).
bool has_scheme(std::string_view value, std::string_view name) {
    if (value.size() <= name.size() || value[name.size()] != ' ') {
        return false;
    }
    for (std::size_t i = 0; i < name.size(); ++i) {
        if (std::tolower(static_cast<unsigned char>(value[i])) != std::tolower(static_cast<unsigned char>(name[i]))) {
            return false;
        }
    }
    return true;
}

std::string_view trim(std::string_view s) {
    while (!s.empty() && s.front() == ' ') {
        s.remove_prefix(1);
    }
    while (!s.empty() && s.back() == ' ') {
        s.remove_suffix(1);
    }
    return s;
}

} // namespace

http_authenticator::outcome http_authenticator::bearer(std::string_view token) const {
    outcome o;
    o.attempted = true;
    if (_config.token && equal_constant_time(token, *_config.token)) {
        o.mechanism = "token";
        o.principal = "User:http-token";
        return o;
    }
    if (_config.jwt) {
        o.mechanism = "jwt";
        auto id = _config.jwt->validate(token, o.why);
        if (id) {
            o.principal = "User:" + id->user;
            o.expires = id->expires;
        }
        return o;
    }
    o.mechanism = _config.token ? "token" : "bearer";
    o.why = _config.token ? "the bearer token is not valid" : "this server does not take bearer tokens";
    return o;
}

http_authenticator::outcome http_authenticator::authenticate(std::optional<std::string_view> authorization,
                                                             std::optional<std::string_view> access_token) const {
    outcome o;
    if (!required()) {
        o.mechanism = "none";
        o.principal = "User:ANONYMOUS";
        return o;
    }
    if (!authorization && access_token) {
        return bearer(*access_token);
    }
    if (!authorization) {
        o.mechanism = "none";
        std::string how;
        if (_config.basic) {
            how = "Authorization: Basic with a user's name and password";
        }
        if (_config.token || _config.jwt) {
            how += how.empty() ? "" : " or ";
            how += "Authorization: Bearer TOKEN";
        }
        o.why = "this server requires credentials (" + how + ")";
        return o;
    }
    const auto value = trim(*authorization);
    if (has_scheme(value, "Bearer")) {
        return bearer(trim(value.substr(7)));
    }
    o.attempted = true;
    if (has_scheme(value, "Basic")) {
        o.mechanism = "basic";
        if (!_config.basic) {
            o.why = "this server does not take basic credentials";
            return o;
        }
        auto decoded = text::base64_decode(trim(value.substr(6)));
        auto colon = decoded ? decoded->find(':') : std::string::npos;
        if (colon == std::string::npos) {
            o.why = "the basic credentials are not base64 of USER:PASSWORD";
            return o;
        }
        auto user = std::string_view(*decoded).substr(0, colon);
        auto password = std::string_view(*decoded).substr(colon + 1);
        o.user = text::scrub_utf8(user.substr(0, 255));
        if (user.empty() || password.empty() || !_config.basic->check(user, password)) {
            o.why = "invalid user name or password";
            return o;
        }
        o.principal = "User:" + std::string(user);
        return o;
    }
    o.mechanism = "other";
    o.why = "the Authorization scheme is not one this server takes";
    return o;
}

std::string http_authenticator::challenge() const {
    std::string out;
    if (_config.basic) {
        out = "Basic realm=\"runnel\", charset=\"UTF-8\"";
    }
    if (_config.token || _config.jwt) {
        out += out.empty() ? "" : ", ";
        out += "Bearer realm=\"runnel\"";
    }
    return out;
}

} // namespace runnel::security
