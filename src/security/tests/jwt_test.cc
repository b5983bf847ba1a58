#include <gtest/gtest.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>

#include "base/text.h"
#include "security/security.h"

namespace runnel::security {
namespace {

using namespace std::chrono_literals;
using text::base64url_encode;

struct pkey_free {
    void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
using pkey_ptr = std::unique_ptr<EVP_PKEY, pkey_free>;

std::string bn_param(EVP_PKEY* k, const char* name) {
    BIGNUM* bn = nullptr;
    EXPECT_EQ(EVP_PKEY_get_bn_param(k, name, &bn), 1);
    std::string out(static_cast<std::size_t>(BN_num_bytes(bn)), '\0');
    BN_bn2bin(bn, reinterpret_cast<unsigned char*>(out.data()));
    BN_free(bn);
    return out;
}

/// A key the test signs with, and its JWK.
struct test_key {
    pkey_ptr key;
    std::string alg;
    std::string kid;

    static test_key rsa(std::string kid) {
        test_key t{pkey_ptr(EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", static_cast<size_t>(2048))), "RS256", std::move(kid)};
        return t;
    }
    static test_key ec(std::string kid) {
        test_key t{pkey_ptr(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256")), "ES256", std::move(kid)};
        return t;
    }

    std::string jwk() const {
        if (alg == "RS256") {
            return fmt::format(R"({{"kty":"RSA","kid":"{}","use":"sig","n":"{}","e":"{}"}})", kid,
                               base64url_encode(bn_param(key.get(), OSSL_PKEY_PARAM_RSA_N)),
                               base64url_encode(bn_param(key.get(), OSSL_PKEY_PARAM_RSA_E)));
        }
        unsigned char point[65];
        size_t len = 0;
        EXPECT_EQ(EVP_PKEY_get_octet_string_param(key.get(), OSSL_PKEY_PARAM_PUB_KEY, point, sizeof point, &len), 1);
        EXPECT_EQ(len, 65u);
        std::string p(reinterpret_cast<const char*>(point), len);
        return fmt::format(R"({{"kty":"EC","crv":"P-256","kid":"{}","x":"{}","y":"{}"}})", kid,
                           base64url_encode(p.substr(1, 32)), base64url_encode(p.substr(33, 32)));
    }

    std::string sign(std::string_view data) const {
        EVP_MD_CTX* md = EVP_MD_CTX_new();
        EXPECT_EQ(EVP_DigestSignInit(md, nullptr, EVP_sha256(), nullptr, key.get()), 1);
        size_t len = 0;
        EXPECT_EQ(EVP_DigestSign(md, nullptr, &len, reinterpret_cast<const unsigned char*>(data.data()), data.size()), 1);
        std::string sig(len, '\0');
        EXPECT_EQ(EVP_DigestSign(md, reinterpret_cast<unsigned char*>(sig.data()), &len,
                                 reinterpret_cast<const unsigned char*>(data.data()), data.size()),
                  1);
        sig.resize(len);
        EVP_MD_CTX_free(md);
        if (alg == "ES256") {
            // DER to the R || S of JWS.
            const auto* p = reinterpret_cast<const unsigned char*>(sig.data());
            ECDSA_SIG* s = d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(sig.size()));
            std::string raw(64, '\0');
            BN_bn2binpad(ECDSA_SIG_get0_r(s), reinterpret_cast<unsigned char*>(raw.data()), 32);
            BN_bn2binpad(ECDSA_SIG_get0_s(s), reinterpret_cast<unsigned char*>(raw.data()) + 32, 32);
            ECDSA_SIG_free(s);
            return raw;
        }
        return sig;
    }

    std::string token(const std::string& claims, std::string header = "") const {
        if (header.empty()) {
            header = fmt::format(R"({{"alg":"{}","typ":"JWT","kid":"{}"}})", alg, kid);
        }
        auto signed_part = base64url_encode(header) + "." + base64url_encode(claims);
        return signed_part + "." + base64url_encode(sign(signed_part));
    }
};

int64_t now_s() {
    return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

class jwt_test : public ::testing::Test {
protected:
    void SetUp() override {
        std::string why;
        ASSERT_TRUE(validator.load_text(fmt::format(R"({{"keys":[{},{}]}})", rsa.jwk(), ec.jwk()), why)) << why;
        ASSERT_EQ(validator.key_count(), 2u);
    }
    std::string claims(int64_t exp_offset = 300, std::string extra = "") const {
        return fmt::format(R"({{"sub":"alice","exp":{}{}}})", now_s() + exp_offset, extra);
    }

    test_key rsa = test_key::rsa("r1");
    test_key ec = test_key::ec("e1");
    jwt_validator validator{jwt_config{}};
};

TEST_F(jwt_test, rs256_and_es256_tokens_name_their_subject) {
    for (const auto* k : {&rsa, &ec}) {
        std::string why;
        auto id = validator.validate(k->token(claims()), why);
        ASSERT_TRUE(id) << k->alg << ": " << why;
        EXPECT_EQ(id->user, "alice");
    }
}

TEST_F(jwt_test, a_bad_signature_is_refused) {
    auto t = rsa.token(claims());
    t[t.size() - 5] = t[t.size() - 5] == 'A' ? 'B' : 'A';
    std::string why;
    EXPECT_FALSE(validator.validate(t, why));
    EXPECT_EQ(why, "the token's signature is not valid");
    // The claims changed under a valid signature.
    auto good = ec.token(claims());
    auto dot1 = good.find('.');
    auto dot2 = good.find('.', dot1 + 1);
    auto forged = good.substr(0, dot1 + 1) + base64url_encode(R"({"sub":"root","exp":99999999999})") + good.substr(dot2);
    EXPECT_FALSE(validator.validate(forged, why));
    EXPECT_EQ(why, "the token's signature is not valid");
}

TEST_F(jwt_test, alg_none_and_hmac_are_refused) {
    std::string why;
    auto none = base64url_encode(R"({"alg":"none"})") + "." + base64url_encode(claims()) + ".";
    EXPECT_FALSE(validator.validate(none, why));
    EXPECT_NE(why.find("'none' is not accepted"), std::string::npos) << why;
    // HS256 keyed with the public key's bytes: the classic confusion attack.
    auto hs = rsa.token(claims(), R"({"alg":"HS256","kid":"r1"})");
    EXPECT_FALSE(validator.validate(hs, why));
    EXPECT_NE(why.find("'HS256' is not accepted"), std::string::npos) << why;
    // An RS256 header on the EC key's kid.
    EXPECT_FALSE(validator.validate(ec.token(claims(), R"({"alg":"RS256","kid":"e1"})"), why));
}

TEST_F(jwt_test, an_unknown_kid_is_refused) {
    auto other = test_key::rsa("r2");
    std::string why;
    EXPECT_FALSE(validator.validate(other.token(claims()), why));
    EXPECT_EQ(why, "no RS256 key in the JWKS has kid 'r2'");
    // Same kid as a known key, signed by another: the signature fails.
    auto impostor = test_key::rsa("r1");
    EXPECT_FALSE(validator.validate(impostor.token(claims()), why));
    EXPECT_EQ(why, "the token's signature is not valid");
}

TEST_F(jwt_test, exp_and_nbf_hold_within_the_clock_skew) {
    std::string why;
    EXPECT_FALSE(validator.validate(rsa.token(claims(-60)), why));
    EXPECT_EQ(why, "the token has expired");
    EXPECT_TRUE(validator.validate(rsa.token(claims(-10)), why)) << why; // within 30 s of skew
    EXPECT_FALSE(validator.validate(rsa.token(R"({"sub":"alice"})"), why));
    EXPECT_EQ(why, "the token has no exp");
    EXPECT_FALSE(validator.validate(rsa.token(claims(300, fmt::format(R"(,"nbf":{})", now_s() + 120))), why));
    EXPECT_EQ(why, "the token is not valid yet (nbf)");
    EXPECT_TRUE(validator.validate(rsa.token(claims(300, fmt::format(R"(,"nbf":{})", now_s() + 10))), why)) << why;
    EXPECT_FALSE(validator.validate(rsa.token(R"({"sub":"alice","exp":"tomorrow"})"), why));
    EXPECT_EQ(why, "the token's exp or nbf is not a NumericDate");
}

TEST_F(jwt_test, dates_past_the_clocks_range_are_its_last_instant) {
    // The system clock ends in 2262; a later exp never expires, a later nbf is never reached
    // (found by fuzz/jwt_fuzz: converting such a date overflowed).
    std::string why;
    auto id = validator.validate(rsa.token(R"({"sub":"alice","exp":17100000001.0})"), why);
    ASSERT_TRUE(id) << why;
    EXPECT_EQ(id->expires, std::chrono::system_clock::time_point::max());
    EXPECT_TRUE(validator.validate(rsa.token(R"({"sub":"alice","exp":253402300799})"), why)) << why;
    EXPECT_FALSE(validator.validate(rsa.token(claims(300, R"(,"nbf":17100000001.0)")), why));
    EXPECT_EQ(why, "the token is not valid yet (nbf)");
    EXPECT_FALSE(validator.validate(rsa.token(R"({"sub":"alice","exp":253402300800})"), why));
    EXPECT_EQ(why, "the token's exp or nbf is not a NumericDate");
}

TEST(jwt, issuer_audience_and_principal_claim_are_checked_when_configured) {
    auto k = test_key::ec("k");
    jwt_config c;
    c.issuer = "https://idp.example";
    c.audience = "runnel";
    c.principal_claim = "preferred_username";
    jwt_validator v(c);
    std::string why;
    ASSERT_TRUE(v.load_text(fmt::format(R"({{"keys":[{}]}})", k.jwk()), why)) << why;
    const auto exp = now_s() + 300;
    auto make = [&](std::string_view iss, std::string_view aud) {
        return k.token(fmt::format(R"({{"iss":"{}","aud":{},"preferred_username":"bob","sub":"x","exp":{}}})", iss, aud, exp));
    };
    auto id = v.validate(make("https://idp.example", R"(["other","runnel"])"), why);
    ASSERT_TRUE(id) << why;
    EXPECT_EQ(id->user, "bob");
    EXPECT_TRUE(v.validate(make("https://idp.example", R"("runnel")"), why)) << why;
    EXPECT_FALSE(v.validate(make("https://evil.example", R"("runnel")"), why));
    EXPECT_EQ(why, "the token's issuer is not 'https://idp.example'");
    EXPECT_FALSE(v.validate(make("https://idp.example", R"("other")"), why));
    EXPECT_EQ(why, "the token's audience does not include 'runnel'");
    EXPECT_FALSE(v.validate(k.token(fmt::format(R"({{"iss":"https://idp.example","aud":"runnel","exp":{}}})", exp)), why));
    EXPECT_NE(why.find("'preferred_username' claim is not a user name"), std::string::npos) << why;
}

TEST(jwt, hostile_tokens_and_key_sets_fail_with_a_reason) {
    auto k = test_key::rsa("k");
    jwt_validator v(jwt_config{});
    std::string why;
    EXPECT_FALSE(v.validate("a.b.c", why));
    EXPECT_EQ(why, "no JWKS is loaded");
    EXPECT_FALSE(v.load_text("[]", why));
    EXPECT_FALSE(v.load_text(R"({"keys":[{"kty":"oct","k":"c2VjcmV0"}]})", why));
    EXPECT_NE(why.find("not RSA or EC"), std::string::npos) << why;
    EXPECT_FALSE(v.load_text(R"({"keys":[{"kty":"EC","crv":"P-256","x":"AAAA","y":"AAAA"}]})", why));
    ASSERT_TRUE(v.load_text(fmt::format(R"({{"keys":[{}]}})", k.jwk()), why)) << why;
    for (std::string_view t : {"", "abc", "a.b", "a.b.c.d", "!!.??.**", "e30.e30.", "bnVsbA.e30.AAAA"}) {
        EXPECT_FALSE(v.validate(t, why)) << t;
        EXPECT_FALSE(why.empty());
    }
    EXPECT_FALSE(v.validate(std::string(20000, 'a'), why));
    EXPECT_NE(why.find("longer than"), std::string::npos);
    // No kid: the one key of its kind is used.
    EXPECT_TRUE(v.validate(k.token(fmt::format(R"({{"sub":"a","exp":{}}})", now_s() + 60), R"({"alg":"RS256"})"), why))
      << why;
}

TEST(http_auth, basic_credentials_are_checked_and_successes_remembered) {
    auto dir = std::filesystem::temp_directory_path() / fmt::format("runnel-http-auth-{}", ::getpid());
    std::filesystem::create_directories(dir);
    auto store = std::make_shared<credential_store>(dir / "creds");
    std::string why;
    ASSERT_TRUE(store->set("alice", make_scram_credential(mechanism::scram_sha_256, "secret", 4096), why)) << why;
    auto checker = std::make_shared<password_checker>(store, 2);
    http_authenticator auth({std::nullopt, checker, nullptr});
    auto basic = [](std::string_view up) { return "Basic " + text::base64_encode(up); };
    auto ok = auth.authenticate(basic("alice:secret"), std::nullopt);
    ASSERT_TRUE(ok.principal) << ok.why;
    EXPECT_EQ(*ok.principal, "User:alice");
    EXPECT_EQ(checker->cached(), 1u);
    EXPECT_TRUE(auth.authenticate(basic("alice:secret"), std::nullopt).principal);
    auto wrong = auth.authenticate(basic("alice:wrong"), std::nullopt);
    EXPECT_FALSE(wrong.principal);
    EXPECT_EQ(wrong.user, "alice");
    EXPECT_EQ(wrong.mechanism, "basic");
    EXPECT_FALSE(auth.authenticate(basic("nobody:secret"), std::nullopt).principal);
    EXPECT_FALSE(auth.authenticate("Basic !!!", std::nullopt).principal);
    EXPECT_FALSE(auth.authenticate("Bearer x", std::nullopt).principal);
    auto none = auth.authenticate(std::nullopt, std::nullopt);
    EXPECT_FALSE(none.principal);
    EXPECT_FALSE(none.attempted);
    EXPECT_EQ(auth.challenge(), "Basic realm=\"runnel\", charset=\"UTF-8\"");
    // A changed password takes effect at once, whatever was remembered.
    ASSERT_TRUE(store->set("alice", make_scram_credential(mechanism::scram_sha_256, "other", 4096), why)) << why;
    EXPECT_FALSE(auth.authenticate(basic("alice:secret"), std::nullopt).principal);
    EXPECT_TRUE(auth.authenticate(basic("alice:other"), std::nullopt).principal);
    std::filesystem::remove_all(dir);
}

TEST(http_auth, the_static_token_and_no_configuration) {
    http_authenticator open({});
    EXPECT_FALSE(open.required());
    EXPECT_EQ(*open.authenticate(std::nullopt, std::nullopt).principal, "User:ANONYMOUS");
    http_authenticator token({std::string("s3cret"), nullptr, nullptr});
    EXPECT_EQ(*token.authenticate("Bearer s3cret", std::nullopt).principal, "User:http-token");
    EXPECT_EQ(*token.authenticate(std::nullopt, "s3cret").principal, "User:http-token");
    EXPECT_FALSE(token.authenticate("Bearer s3cre", std::nullopt).principal);
    EXPECT_FALSE(token.authenticate("Basic YTpi", std::nullopt).principal);
}

TEST_F(jwt_test, sasl_oauthbearer_checks_the_token_with_the_validator) {
    auto dir = std::filesystem::temp_directory_path() / fmt::format("runnel-oauthbearer-{}", ::getpid());
    credential_store store(dir / "creds");
    bearer_check check = [this](std::string_view token, std::string& why) { return validator.validate(token, why); };
    auto first = [](std::string_view gs2, const std::string& token) {
        return std::string(gs2) + "\x01host=localhost\x01" "auth=Bearer " + token + "\x01\x01";
    };
    {
        sasl_server s(mechanism::oauthbearer, store, check);
        auto r = s.step(first("n,,", ec.token(claims())));
        ASSERT_EQ(r.st, sasl_server::state::done) << r.error;
        EXPECT_EQ(s.user(), "alice");
        ASSERT_TRUE(r.expires);
        EXPECT_GT(*r.expires, std::chrono::system_clock::now() + 200s);
    }
    {
        sasl_server s(mechanism::oauthbearer, store, check);
        EXPECT_EQ(s.step(first("n,a=alice,", rsa.token(claims()))).st, sasl_server::state::done);
    }
    {
        // RFC 7628: the error as JSON first, the failure at the client's %x01.
        sasl_server s(mechanism::oauthbearer, store, check);
        auto r = s.step(first("n,,", rsa.token(claims(-120))));
        EXPECT_EQ(r.st, sasl_server::state::more);
        EXPECT_EQ(r.response, R"({"status":"invalid_token"})");
        r = s.step("\x01");
        EXPECT_EQ(r.st, sasl_server::state::failed);
        EXPECT_EQ(r.error, "Authentication failed: the token has expired");
    }
    {
        sasl_server s(mechanism::oauthbearer, store, check);
        auto r = s.step(first("n,a=mallory,", rsa.token(claims())));
        EXPECT_EQ(r.st, sasl_server::state::more);
        EXPECT_EQ(s.step("\x01").error, "Authentication failed: the authorization id differs from the token's principal");
    }
    for (std::string_view bad : {std::string_view(""), std::string_view("n,,auth=Bearer x"), std::string_view("p=x,,\x01" "auth=Bearer x\x01\x01"),
                                 std::string_view("n,,\x01host=x\x01\x01"), std::string_view("n,,\x01" "auth=Basic x\x01\x01")}) {
        sasl_server s(mechanism::oauthbearer, store, check);
        EXPECT_EQ(s.step(bad).st, sasl_server::state::failed) << bad;
    }
    sasl_server unchecked(mechanism::oauthbearer, store);
    EXPECT_EQ(unchecked.step(first("n,,", rsa.token(claims()))).st, sasl_server::state::more);
}

} // namespace
} // namespace runnel::security
