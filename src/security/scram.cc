#include "security/scram.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "base/assert.h"

namespace runnel::security {
namespace {

const EVP_MD* digest(mechanism m) {
    RUNNEL_ASSERT(is_scram(m), "only SCRAM mechanisms have a digest");
    return m == mechanism::scram_sha_256 ? EVP_sha256() : EVP_sha512();
}

} // namespace

std::string_view mechanism_name(mechanism m) noexcept {
    switch (m) {
    case mechanism::plain:
        return "PLAIN";
    case mechanism::scram_sha_256:
        return "SCRAM-SHA-256";
    case mechanism::scram_sha_512:
        return "SCRAM-SHA-512";
    case mechanism::oauthbearer:
        return "OAUTHBEARER";
    }
    return "?";
}

std::optional<mechanism> parse_mechanism(std::string_view name) noexcept {
    for (auto m : {mechanism::plain, mechanism::scram_sha_256, mechanism::scram_sha_512, mechanism::oauthbearer}) {
        if (name == mechanism_name(m)) {
            return m;
        }
    }
    return std::nullopt;
}

std::string scram_hash(mechanism m, std::string_view data) {
    unsigned char out[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    const bool ok = EVP_Digest(data.data(), data.size(), out, &len, digest(m), nullptr) == 1;
    RUNNEL_ASSERT(ok, "EVP_Digest failed");
    return std::string(reinterpret_cast<const char*>(out), len);
}

std::string scram_hmac(mechanism m, std::string_view key, std::string_view data) {
    unsigned char out[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    const auto* r = HMAC(digest(m), key.data(), static_cast<int>(key.size()),
                         reinterpret_cast<const unsigned char*>(data.data()), data.size(), out, &len);
    RUNNEL_ASSERT(r != nullptr, "HMAC failed");
    return std::string(reinterpret_cast<const char*>(out), len);
}

std::string random_bytes(std::size_t n) {
    std::string out(n, '\0');
    const bool ok = RAND_bytes(reinterpret_cast<unsigned char*>(out.data()), static_cast<int>(n)) == 1;
    RUNNEL_ASSERT(ok, "RAND_bytes failed");
    return out;
}

bool equal_constant_time(std::string_view a, std::string_view b) noexcept {
    if (a.size() != b.size()) {
        return false;
    }
    return a.empty() || CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

scram_credential derive_scram_credential(mechanism m, std::string_view password, std::string_view salt,
                                         int32_t iterations) {
    const EVP_MD* md = digest(m);
    std::string salted(static_cast<std::size_t>(EVP_MD_get_size(md)), '\0');
    const bool ok = PKCS5_PBKDF2_HMAC(password.data(), static_cast<int>(password.size()),
                                      reinterpret_cast<const unsigned char*>(salt.data()), static_cast<int>(salt.size()),
                                      iterations, md, static_cast<int>(salted.size()),
                                      reinterpret_cast<unsigned char*>(salted.data()))
                    == 1;
    RUNNEL_ASSERT(ok, "PKCS5_PBKDF2_HMAC failed");
    auto c = scram_credential_from_salted(m, salted, salt, iterations);
    OPENSSL_cleanse(salted.data(), salted.size());
    return c;
}

scram_credential scram_credential_from_salted(mechanism m, std::string_view salted_password, std::string_view salt,
                                              int32_t iterations) {
    scram_credential c;
    c.mech = m;
    c.salt = std::string(salt);
    c.iterations = iterations;
    c.stored_key = scram_hash(m, scram_hmac(m, salted_password, "Client Key"));
    c.server_key = scram_hmac(m, salted_password, "Server Key");
    return c;
}

scram_credential make_scram_credential(mechanism m, std::string_view password, int32_t iterations) {
    RUNNEL_ASSERT(iterations >= min_scram_iterations && iterations <= max_scram_iterations, "iterations out of bounds");
    return derive_scram_credential(m, password, random_bytes(32), iterations);
}

bool password_matches(const scram_credential& c, std::string_view password) {
    if (c.iterations < 1 || c.iterations > max_scram_iterations) {
        return false;
    }
    auto derived = derive_scram_credential(c.mech, password, c.salt, c.iterations);
    return equal_constant_time(derived.stored_key, c.stored_key);
}

} // namespace runnel::security
