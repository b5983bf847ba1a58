// Feeds hostile text to the JWT validator (security::jwt_validator). The first byte picks
// what the rest of the input is:
//   0 (mod 3)  a compact token, validated as is against a key set of one RS256 and one ES256
//              key (made here at start-up): the split, base64url, header JSON, alg, kid and
//              signature checks. No input can carry a valid signature, so none is accepted.
//   1 (mod 3)  a header and a claims text separated by the first 0xff byte: both are
//              base64url-encoded and signed with the ES256 key here, so the claim checks
//              (exp, nbf, iss, aud, the principal claim) run behind a valid signature. What
//              is accepted must name a valid user name and an unexpired exp.
//   2 (mod 3)  a JWKS document for `load_text`; then a token signed here is validated
//              against whatever key set is current.
// Nothing may crash, throw, read out of bounds or leak.

#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "base/text.h"
#include "security/credentials.h"
#include "security/jwt.h"

namespace {

using namespace runnel;
using namespace runnel::security;

void check(bool cond) {
    if (!cond) {
        __builtin_trap();
    }
}

/// A fixed clock, so a run's outcome depends on its input only.
const auto now = std::chrono::system_clock::time_point(std::chrono::seconds(1'800'000'000));

std::string bn_param(EVP_PKEY* k, const char* name, std::size_t width) {
    BIGNUM* bn = nullptr;
    check(EVP_PKEY_get_bn_param(k, name, &bn) == 1);
    std::string out(width ? width : static_cast<std::size_t>(BN_num_bytes(bn)), '\0');
    check(BN_bn2binpad(bn, reinterpret_cast<unsigned char*>(out.data()), static_cast<int>(out.size())) > 0);
    BN_free(bn);
    return out;
}

/// The keys made at start-up and the validator that trusts them.
struct fixture {
    EVP_PKEY* es = EVP_EC_gen("P-256");
    EVP_PKEY* rs = EVP_RSA_gen(2048);
    std::string jwks;
    jwt_validator validator{jwt_config{{}, "https://issuer.example", "runnel", "sub", std::chrono::seconds(30)}};

    fixture() {
        check(es && rs);
        jwks = R"({"keys":[{"kty":"EC","crv":"P-256","kid":"ec1","x":")"
               + text::base64url_encode(bn_param(es, OSSL_PKEY_PARAM_EC_PUB_X, 32)) + R"(","y":")"
               + text::base64url_encode(bn_param(es, OSSL_PKEY_PARAM_EC_PUB_Y, 32))
               + R"("},{"kty":"RSA","kid":"rsa1","alg":"RS256","n":")"
               + text::base64url_encode(bn_param(rs, OSSL_PKEY_PARAM_RSA_N, 0)) + R"(","e":")"
               + text::base64url_encode(bn_param(rs, OSSL_PKEY_PARAM_RSA_E, 0)) + R"("}]})";
        reset();
    }

    void reset() {
        std::string why;
        check(validator.load_text(jwks, why).has_value());
        check(validator.key_count() == 2);
    }

    /// `header`.`claims`.signature, signed with the ES256 key (JWS's R || S form).
    std::string sign(std::string_view header, std::string_view claims) const {
        std::string signed_part = text::base64url_encode(header) + "." + text::base64url_encode(claims);
        EVP_MD_CTX* md = EVP_MD_CTX_new();
        std::size_t len = 0;
        check(md && EVP_DigestSignInit(md, nullptr, EVP_sha256(), nullptr, es) == 1);
        check(EVP_DigestSign(md, nullptr, &len, reinterpret_cast<const unsigned char*>(signed_part.data()),
                             signed_part.size())
              == 1);
        std::string der(len, '\0');
        check(EVP_DigestSign(md, reinterpret_cast<unsigned char*>(der.data()), &len,
                             reinterpret_cast<const unsigned char*>(signed_part.data()), signed_part.size())
              == 1);
        EVP_MD_CTX_free(md);
        const auto* p = reinterpret_cast<const unsigned char*>(der.data());
        ECDSA_SIG* sig = d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(len));
        check(sig != nullptr);
        std::string rs(64, '\0');
        check(BN_bn2binpad(ECDSA_SIG_get0_r(sig), reinterpret_cast<unsigned char*>(rs.data()), 32) == 32);
        check(BN_bn2binpad(ECDSA_SIG_get0_s(sig), reinterpret_cast<unsigned char*>(rs.data()) + 32, 32) == 32);
        ECDSA_SIG_free(sig);
        return signed_part + "." + text::base64url_encode(rs);
    }
};

fixture& fix() {
    static fixture* f = new fixture();
    return *f;
}

void check_accepted(const std::optional<jwt_identity>& id, const std::string& why) {
    if (id) {
        std::string name_why;
        check(credential_store::valid_user_name(id->user, name_why));
        check(id->expires > now - std::chrono::seconds(30));
    } else {
        check(!why.empty());
    }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size < 1) {
        return 0;
    }
    auto& f = fix();
    const std::string_view input(reinterpret_cast<const char*>(data + 1), size - 1);
    std::string why;
    switch (data[0] % 3) {
    case 0: {
        auto id = f.validator.validate(input, why, now);
        check(!id && !why.empty()); // no input carries a signature made by the keys here
        break;
    }
    case 1: {
        const auto sep = input.find('\xff');
        const auto header = input.substr(0, sep);
        const auto claims = sep == std::string_view::npos ? std::string_view() : input.substr(sep + 1);
        auto id = f.validator.validate(f.sign(header, claims), why, now);
        check_accepted(id, why);
        break;
    }
    default: {
        if (f.validator.load_text(input, why).has_value()) {
            check(f.validator.key_count() > 0);
        }
        why.clear();
        auto id = f.validator.validate(
          f.sign(R"({"alg":"ES256","kid":"ec1"})",
                 R"({"sub":"alice","iss":"https://issuer.example","aud":"runnel","exp":1800000600})"),
          why, now);
        check_accepted(id, why);
        f.reset();
        break;
    }
    }
    return 0;
}
