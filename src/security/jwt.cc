#include "security/jwt.h"

#include <boost/json.hpp>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>

#include <cmath>
#include <fstream>
#include <iterator>
#include <vector>

#include "base/text.h"
#include "security/credentials.h"

namespace runnel::security {

namespace json = boost::json;

namespace {

/// Tokens longer than this are refused before any parsing (headers rarely pass 8 KiB anyway).
constexpr std::size_t max_token_bytes = 16 * 1024;
/// A key set file larger than this is refused.
constexpr std::size_t max_jwks_bytes = 1 << 20;
/// RSA keys shorter than this are refused (RFC 7518 §3.3 asks for 2048 bits or more).
constexpr int min_rsa_bits = 2048;


struct pkey_free {
    void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
using pkey_ptr = std::unique_ptr<EVP_PKEY, pkey_free>;

enum class alg { rs256, es256 };

/// Client text quoted in a reason: printable ASCII, at most 64 bytes.
std::string shown(std::string_view s) {
    std::string out;
    for (char c : s.substr(0, 64)) {
        out.push_back(c >= 0x20 && c < 0x7f ? c : '?');
    }
    if (s.size() > 64) {
        out += "…";
    }
    return "'" + out + "'";
}

} // namespace

/// The usable keys of a JWKS, by `kid` (keys without one are kept under "").
struct jwt_validator::key_set {
    struct key {
        alg kind;
        pkey_ptr pkey;
    };
    std::multimap<std::string, key> keys;
};

namespace {

std::optional<std::string> string_member(const json::object& o, std::string_view name) {
    auto* v = o.if_contains(name);
    if (!v || !v->is_string()) {
        return std::nullopt;
    }
    return std::string(v->get_string());
}

std::optional<std::string> decoded_member(const json::object& o, std::string_view name) {
    auto v = string_member(o, name);
    return v ? text::base64url_decode(*v) : std::nullopt;
}

struct bn_free {
    void operator()(BIGNUM* b) const { BN_free(b); }
};
using bn_ptr = std::unique_ptr<BIGNUM, bn_free>;

bn_ptr to_bn(std::string_view bytes) {
    return bn_ptr(BN_bin2bn(reinterpret_cast<const unsigned char*>(bytes.data()), static_cast<int>(bytes.size()), nullptr));
}

/// Builds a public key from OpenSSL parameters of `type` ("RSA" or "EC").
pkey_ptr from_params(const char* type, OSSL_PARAM_BLD* bld) {
    EVP_PKEY* out = nullptr;
    OSSL_PARAM* params = OSSL_PARAM_BLD_to_param(bld);
    EVP_PKEY_CTX* ctx = EVP_PKEY_CTX_new_from_name(nullptr, type, nullptr);
    if (params && ctx && EVP_PKEY_fromdata_init(ctx) == 1) {
        if (EVP_PKEY_fromdata(ctx, &out, EVP_PKEY_PUBLIC_KEY, params) != 1) {
            out = nullptr;
        }
    }
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    return pkey_ptr(out);
}

/// The key of one JWK, or nullopt with `why` (kinds other than RSA and EC P-256 too).
std::optional<jwt_validator::key_set::key> parse_jwk(const json::object& o, std::string& why) {
    auto kty = string_member(o, "kty");
    auto use = string_member(o, "use");
    if (use && *use != "sig") {
        why = "its use is not sig";
        return std::nullopt;
    }
    auto stated_alg = string_member(o, "alg");
    std::unique_ptr<OSSL_PARAM_BLD, decltype(&OSSL_PARAM_BLD_free)> bld(OSSL_PARAM_BLD_new(), &OSSL_PARAM_BLD_free);
    if (kty == "RSA") {
        if (stated_alg && *stated_alg != "RS256") {
            why = "its alg is not RS256";
            return std::nullopt;
        }
        auto n = decoded_member(o, "n");
        auto e = decoded_member(o, "e");
        if (!n || !e || n->empty() || e->empty() || e->size() > 8) {
            why = "n or e is missing or not base64url";
            return std::nullopt;
        }
        auto bn_n = to_bn(*n);
        auto bn_e = to_bn(*e);
        if (!bn_n || !bn_e || !OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_N, bn_n.get())
            || !OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_E, bn_e.get())) {
            why = "OpenSSL refused n or e";
            return std::nullopt;
        }
        auto pkey = from_params("RSA", bld.get());
        if (!pkey) {
            why = "OpenSSL refused the RSA key";
            return std::nullopt;
        }
        if (EVP_PKEY_get_bits(pkey.get()) < min_rsa_bits) {
            why = fmt::format("the RSA key has {} bits, fewer than {}", EVP_PKEY_get_bits(pkey.get()), min_rsa_bits);
            return std::nullopt;
        }
        return jwt_validator::key_set::key{alg::rs256, std::move(pkey)};
    }
    if (kty == "EC") {
        if (stated_alg && *stated_alg != "ES256") {
            why = "its alg is not ES256";
            return std::nullopt;
        }
        if (string_member(o, "crv") != "P-256") {
            why = "its curve is not P-256";
            return std::nullopt;
        }
        auto x = decoded_member(o, "x");
        auto y = decoded_member(o, "y");
        if (!x || !y || x->size() != 32 || y->size() != 32) {
            why = "x or y is missing or not 32 bytes of base64url";
            return std::nullopt;
        }
        std::string point = "\x04" + *x + *y;
        char group[] = "prime256v1";
        if (!OSSL_PARAM_BLD_push_utf8_string(bld.get(), OSSL_PKEY_PARAM_GROUP_NAME, group, 0)
            || !OSSL_PARAM_BLD_push_octet_string(bld.get(), OSSL_PKEY_PARAM_PUB_KEY, point.data(), point.size())) {
            why = "OpenSSL refused x or y";
            return std::nullopt;
        }
        auto pkey = from_params("EC", bld.get());
        if (!pkey) {
            why = "the point is not on the P-256 curve";
            return std::nullopt;
        }
        return jwt_validator::key_set::key{alg::es256, std::move(pkey)};
    }
    why = kty ? fmt::format("its kty {} is not RSA or EC", shown(*kty)) : "it has no kty";
    return std::nullopt;
}

bool verify(const jwt_validator::key_set::key& k, std::string_view signed_part, std::string_view sig) {
    std::string der;
    if (k.kind == alg::es256) {
        // JWS carries R || S (RFC 7518 §3.4); OpenSSL verifies the DER ECDSA-Sig-Value.
        if (sig.size() != 64) {
            return false;
        }
        ECDSA_SIG* s = ECDSA_SIG_new();
        auto r = to_bn(sig.substr(0, 32));
        auto ss = to_bn(sig.substr(32));
        if (!s || !r || !ss || ECDSA_SIG_set0(s, r.get(), ss.get()) != 1) {
            ECDSA_SIG_free(s);
            return false;
        }
        r.release();
        ss.release();
        unsigned char* out = nullptr;
        const int len = i2d_ECDSA_SIG(s, &out);
        ECDSA_SIG_free(s);
        if (len <= 0) {
            return false;
        }
        der.assign(reinterpret_cast<const char*>(out), static_cast<std::size_t>(len));
        OPENSSL_free(out);
        sig = der;
    }
    EVP_MD_CTX* md = EVP_MD_CTX_new();
    const bool ok = md && EVP_DigestVerifyInit(md, nullptr, EVP_sha256(), nullptr, k.pkey.get()) == 1
                    && EVP_DigestVerify(md, reinterpret_cast<const unsigned char*>(sig.data()), sig.size(),
                                        reinterpret_cast<const unsigned char*>(signed_part.data()), signed_part.size())
                         == 1;
    EVP_MD_CTX_free(md);
    return ok;
}

std::optional<json::object> parse_object(std::string_view text) {
    boost::system::error_code ec;
    auto v = json::parse(json::string_view(text.data(), text.size()), ec);
    if (ec || !v.is_object()) {
        return std::nullopt;
    }
    return std::move(v.get_object());
}

/// A NumericDate claim (seconds since the epoch) as a time point, or nullopt when absent;
/// `bad` when present but not a finite number in years 1970..9999.
std::optional<std::chrono::system_clock::time_point> date_claim(const json::object& o, std::string_view name, bool& bad) {
    auto* v = o.if_contains(name);
    if (!v) {
        return std::nullopt;
    }
    double secs = 0;
    if (v->is_int64()) {
        secs = static_cast<double>(v->get_int64());
    } else if (v->is_uint64()) {
        secs = static_cast<double>(v->get_uint64());
    } else if (v->is_double()) {
        secs = v->get_double();
    } else {
        bad = true;
        return std::nullopt;
    }
    if (!std::isfinite(secs) || secs < 0 || secs > 253402300799.0) {
        bad = true;
        return std::nullopt;
    }
    // The clock counts nanoseconds in 64 bits, up to the year 2262: a later date is the
    // clock's last instant (converting it would overflow).
    constexpr double clock_end = std::chrono::duration<double>(std::chrono::system_clock::duration::max()).count();
    if (secs >= clock_end) {
        return std::chrono::system_clock::time_point::max();
    }
    return std::chrono::system_clock::time_point(
      std::chrono::duration_cast<std::chrono::system_clock::duration>(std::chrono::duration<double>(secs)));
}

} // namespace

jwt_validator::jwt_validator(jwt_config config) : _config(std::move(config)) {}
jwt_validator::~jwt_validator() = default;

result<void> jwt_validator::load(std::string& why) {
    std::ifstream in(_config.jwks_file, std::ios::binary);
    if (!in) {
        why = fmt::format("cannot read the JWKS file {}", _config.jwks_file.string());
        return std::make_error_code(std::errc::no_such_file_or_directory);
    }
    std::string text;
    text.resize(max_jwks_bytes + 1);
    in.read(text.data(), static_cast<std::streamsize>(text.size()));
    text.resize(static_cast<std::size_t>(in.gcount()));
    if (text.size() > max_jwks_bytes) {
        why = fmt::format("the JWKS file {} is larger than {} bytes", _config.jwks_file.string(), max_jwks_bytes);
        return std::make_error_code(std::errc::file_too_large);
    }
    if (auto r = load_text(text, why); !r) {
        why = fmt::format("the JWKS file {}: {}", _config.jwks_file.string(), why);
        return r;
    }
    return outcome::success();
}

result<void> jwt_validator::load_text(std::string_view jwks, std::string& why) {
    auto doc = parse_object(jwks);
    auto* keys = doc ? doc->if_contains("keys") : nullptr;
    if (!keys || !keys->is_array()) {
        why = "not a JSON Web Key Set (an object with a \"keys\" array)";
        return std::make_error_code(std::errc::invalid_argument);
    }
    auto set = std::make_shared<key_set>();
    std::size_t index = 0;
    std::string skipped;
    for (const auto& k : keys->get_array()) {
        std::string key_why;
        std::optional<key_set::key> key;
        if (k.is_object()) {
            key = parse_jwk(k.get_object(), key_why);
        } else {
            key_why = "it is not an object";
        }
        if (key) {
            set->keys.emplace(string_member(k.get_object(), "kid").value_or(""), std::move(*key));
        } else if (skipped.empty()) {
            skipped = fmt::format("key {} is not usable: {}", index, key_why);
        }
        ++index;
    }
    if (set->keys.empty()) {
        why = fmt::format("no RS256 or ES256 signing key{}", skipped.empty() ? "" : " (" + skipped + ")");
        return std::make_error_code(std::errc::invalid_argument);
    }
    std::lock_guard lock(_mu);
    _keys = std::move(set);
    return outcome::success();
}

std::size_t jwt_validator::key_count() const {
    std::lock_guard lock(_mu);
    return _keys ? _keys->keys.size() : 0;
}

std::optional<jwt_identity> jwt_validator::validate(std::string_view token, std::string& why,
                                                    std::chrono::system_clock::time_point now) const {
    std::shared_ptr<const key_set> keys;
    {
        std::lock_guard lock(_mu);
        keys = _keys;
    }
    if (!keys) {
        why = "no JWKS is loaded";
        return std::nullopt;
    }
    if (token.size() > max_token_bytes) {
        why = fmt::format("the token is longer than {} bytes", max_token_bytes);
        return std::nullopt;
    }
    const auto dot1 = token.find('.');
    const auto dot2 = dot1 == std::string_view::npos ? dot1 : token.find('.', dot1 + 1);
    if (dot2 == std::string_view::npos || token.find('.', dot2 + 1) != std::string_view::npos) {
        why = "the token is not a JWT (three base64url parts joined by dots)";
        return std::nullopt;
    }
    auto header_text = text::base64url_decode(token.substr(0, dot1));
    auto payload_text = text::base64url_decode(token.substr(dot1 + 1, dot2 - dot1 - 1));
    auto sig = text::base64url_decode(token.substr(dot2 + 1));
    if (!header_text || !payload_text || !sig) {
        why = "a part of the token is not base64url";
        return std::nullopt;
    }
    auto header = parse_object(*header_text);
    if (!header) {
        why = "the token's header is not a JSON object";
        return std::nullopt;
    }
    auto alg_name = string_member(*header, "alg");
    alg kind = alg::rs256;
    if (alg_name == "RS256") {
        kind = alg::rs256;
    } else if (alg_name == "ES256") {
        kind = alg::es256;
    } else {
        why = alg_name ? fmt::format("the token's alg {} is not accepted (RS256 or ES256)", shown(*alg_name))
                       : "the token's header has no alg";
        return std::nullopt;
    }
    if (header->if_contains("crit")) {
        why = "the token's header has crit extensions, which are not supported";
        return std::nullopt;
    }
    const key_set::key* key = nullptr;
    auto kid = string_member(*header, "kid");
    if (kid) {
        auto [lo, hi] = keys->keys.equal_range(*kid);
        for (auto it = lo; it != hi && !key; ++it) {
            key = it->second.kind == kind ? &it->second : nullptr;
        }
        if (!key) {
            why = fmt::format("no {} key in the JWKS has kid {}", *alg_name, shown(*kid));
            return std::nullopt;
        }
    } else {
        std::size_t candidates = 0;
        for (const auto& [id, k] : keys->keys) {
            if (k.kind == kind) {
                key = &k;
                ++candidates;
            }
        }
        if (candidates != 1) {
            why = fmt::format("the token names no kid and the JWKS has {} {} keys", candidates, *alg_name);
            return std::nullopt;
        }
    }
    if (!verify(*key, token.substr(0, dot2), *sig)) {
        why = "the token's signature is not valid";
        return std::nullopt;
    }
    auto claims = parse_object(*payload_text);
    if (!claims) {
        why = "the token's claims are not a JSON object";
        return std::nullopt;
    }
    bool bad = false;
    auto exp = date_claim(*claims, "exp", bad);
    auto nbf = date_claim(*claims, "nbf", bad);
    if (bad) {
        why = "the token's exp or nbf is not a NumericDate";
        return std::nullopt;
    }
    if (!exp) {
        why = "the token has no exp";
        return std::nullopt;
    }
    if (now - _config.clock_skew >= *exp) {
        why = "the token has expired";
        return std::nullopt;
    }
    if (nbf && now + _config.clock_skew < *nbf) {
        why = "the token is not valid yet (nbf)";
        return std::nullopt;
    }
    if (_config.issuer && string_member(*claims, "iss") != *_config.issuer) {
        why = fmt::format("the token's issuer is not {}", shown(*_config.issuer));
        return std::nullopt;
    }
    if (_config.audience) {
        bool found = false;
        if (auto* aud = claims->if_contains("aud")) {
            if (aud->is_string()) {
                found = aud->get_string() == *_config.audience;
            } else if (aud->is_array()) {
                for (const auto& a : aud->get_array()) {
                    found |= a.is_string() && a.get_string() == *_config.audience;
                }
            }
        }
        if (!found) {
            why = fmt::format("the token's audience does not include {}", shown(*_config.audience));
            return std::nullopt;
        }
    }
    auto user = string_member(*claims, _config.principal_claim);
    std::string name_why;
    if (!user || !credential_store::valid_user_name(*user, name_why)) {
        why = fmt::format("the token's {} claim is not a user name{}", shown(_config.principal_claim),
                          user ? ": " + name_why : "");
        return std::nullopt;
    }
    return jwt_identity{std::move(*user), *exp};
}

} // namespace runnel::security
