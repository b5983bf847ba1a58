#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace runnel::security {

/// A SASL mechanism a Kafka listener offers.
enum class mechanism : uint8_t { plain, scram_sha_256, scram_sha_512, oauthbearer };

/// Whether `m` is SCRAM-SHA-256 or SCRAM-SHA-512 (a mechanism with stored credentials).
constexpr bool is_scram(mechanism m) noexcept {
    return m == mechanism::scram_sha_256 || m == mechanism::scram_sha_512;
}

/// Kafka's name of the mechanism: "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER".
std::string_view mechanism_name(mechanism m) noexcept;
std::optional<mechanism> parse_mechanism(std::string_view name) noexcept;

/// The fewest and most PBKDF2 iterations a stored credential may use (Kafka's bounds).
inline constexpr int32_t min_scram_iterations = 4096;
inline constexpr int32_t max_scram_iterations = 16384;

/// A user's SCRAM credential as RFC 5802 stores it: never the password, only the salt, the
/// iteration count, StoredKey = H(HMAC(SaltedPassword, "Client Key")) and
/// ServerKey = HMAC(SaltedPassword, "Server Key"). Keys and salt are raw bytes.
struct scram_credential {
    mechanism mech = mechanism::scram_sha_512;
    std::string salt;
    int32_t iterations = min_scram_iterations;
    std::string stored_key;
    std::string server_key;

    bool operator==(const scram_credential&) const = default;
};

/// Derives the credential of `password` with a fresh random salt (PBKDF2 through OpenSSL).
/// Precondition: `m` is a SCRAM mechanism and the iterations lie within the bounds.
scram_credential make_scram_credential(mechanism m, std::string_view password, int32_t iterations);

/// Derives the credential of `password` with the given salt (tests, and checking a password).
scram_credential derive_scram_credential(mechanism m, std::string_view password, std::string_view salt,
                                         int32_t iterations);

/// The credential of a SaltedPassword a client derived itself (AlterUserScramCredentials): the
/// password never reaches the server, only PBKDF2's output for `salt` and `iterations`.
scram_credential scram_credential_from_salted(mechanism m, std::string_view salted_password, std::string_view salt,
                                              int32_t iterations);
/// Whether `password` is the one `c` was made from; compares in constant time.
bool password_matches(const scram_credential& c, std::string_view password);

/// The hash and HMAC of the mechanism's digest (SHA-256 or SHA-512), as raw bytes.
std::string scram_hash(mechanism m, std::string_view data);
std::string scram_hmac(mechanism m, std::string_view key, std::string_view data);

/// `n` bytes from OpenSSL's RAND_bytes.
std::string random_bytes(std::size_t n);

/// Compares without an early exit, so the time taken says nothing about where they differ.
bool equal_constant_time(std::string_view a, std::string_view b) noexcept;

} // namespace runnel::security
