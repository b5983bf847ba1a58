// Feeds arbitrary SASL tokens to the server side of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 and
// OAUTHBEARER. The first byte picks the mechanism (0x80 set: OAUTHBEARER, whose token check
// refuses every token; 0x40 set: PLAIN's password check is deferred, as the Kafka listener
// does, and finished by hand); the rest is one or two tokens separated by the first 0xff byte (a
// client-first and a client-final message for SCRAM, the client's %x01 after an error for
// OAUTHBEARER). A user "alice" exists,
// so both the known-user and the unknown-user paths run. Nothing may crash, read out of
// bounds or succeed without the password.

#include <stdlib.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <string_view>

#include "security/credentials.h"
#include "security/sasl.h"

namespace {

using namespace runnel::security;

void check(bool cond) {
    if (!cond) {
        __builtin_trap();
    }
}

credential_store& store() {
    static credential_store* s = [] {
        std::string pattern = (std::filesystem::temp_directory_path() / "runnel-sasl-fuzz-XXXXXX").string();
        static std::filesystem::path dir = ::mkdtemp(pattern.data());
        std::atexit([] {
            std::error_code ec;
            std::filesystem::remove_all(dir, ec);
        });
        auto* st = new credential_store(credential_store::file_in(dir));
        std::string why;
        for (auto m : {mechanism::scram_sha_256, mechanism::scram_sha_512}) {
            check(st->set("alice", make_scram_credential(m, "a password no fuzzer finds", 4096), why).has_value());
        }
        return st;
    }();
    return *s;
}

/// No token handed to the check is longer than the input.
std::size_t input_limit = 0;

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size < 1) {
        return 0;
    }
    const mechanism m = (data[0] & 0x80) != 0 ? mechanism::oauthbearer
                        : data[0] % 3 == 0    ? mechanism::plain
                        : data[0] % 3 == 1    ? mechanism::scram_sha_256
                                              : mechanism::scram_sha_512;
    std::string_view input(reinterpret_cast<const char*>(data + 1), size - 1);
    input_limit = input.size();
    auto sep = input.find('\xff');
    std::string_view first = input.substr(0, sep);
    sasl_server server(m, store(), [](std::string_view token, std::string& why) -> std::optional<jwt_identity> {
        check(token.size() <= input_limit);
        why = "refused";
        return std::nullopt;
    });
    if ((data[0] & 0x40) != 0) {
        server.defer_password_checks(); // PLAIN answers check_password; the check runs below
    }
    auto r = server.step(first);
    if (r.st == sasl_server::state::check_password) {
        check(m == mechanism::plain);
        r = server.finish_password_check(server.password_ok());
    }
    if (m == mechanism::oauthbearer) {
        check(r.st != sasl_server::state::done);
        if (r.st == sasl_server::state::more) {
            check(server.step(input.substr(sep == std::string_view::npos ? input.size() : sep + 1)).st
                  == sasl_server::state::failed);
        }
        return 0;
    }
    if (m == mechanism::plain) {
        check(r.st != sasl_server::state::done); // the password is not in any corpus
        return 0;
    }
    if (r.st == sasl_server::state::more && sep != std::string_view::npos) {
        auto last = server.step(input.substr(sep + 1));
        check(last.st != sasl_server::state::done);
        // A finished exchange takes nothing more.
        check(server.step("x").st == sasl_server::state::failed);
    }
    return 0;
}
