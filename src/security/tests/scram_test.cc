#include <stdlib.h>

#include <atomic>
#include <condition_variable>
#include <filesystem>
#include <mutex>
#include <thread>
#include <fstream>

#include <gtest/gtest.h>

#include "base/text.h"
#include "security/security.h"
#include "security/tests/temp_dir.h"

namespace runnel::security {
namespace {

using testing::temp_dir;

std::string b64(std::string_view s) { return text::base64_encode(s); }
std::string unb64(std::string_view s) { return text::base64_decode(s).value(); }

/// A SCRAM client as RFC 5802 describes it, to drive the server in tests.
struct scram_client {
    mechanism mech;
    std::string user;
    std::string password;
    std::string nonce = "fyko+d2lbbFgONRv9qkxdawL";
    std::string client_first_bare = {};
    std::string server_first = {};

    std::string first() {
        client_first_bare = "n=" + user + ",r=" + nonce;
        return "n,," + client_first_bare;
    }
    std::string final_message(const std::string& server_first_msg, std::string* expected_server_sig = nullptr,
                              bool corrupt = false) {
        server_first = server_first_msg;
        // r=...,s=...,i=...
        auto r = server_first.substr(2, server_first.find(',') - 2);
        auto s_at = server_first.find(",s=") + 3;
        auto salt = unb64(server_first.substr(s_at, server_first.find(",i=") - s_at));
        int iterations = std::stoi(server_first.substr(server_first.find(",i=") + 3));
        auto cred = derive_scram_credential(mech, password, salt, iterations);
        std::string without_proof = "c=" + b64("n,,") + ",r=" + r;
        std::string auth = client_first_bare + "," + server_first + "," + without_proof;
        // ClientKey = HMAC(SaltedPassword, "Client Key"); we only know StoredKey, so derive again.
        // proof = ClientKey ^ HMAC(StoredKey, AuthMessage)
        auto client_key = client_key_of(salt, iterations);
        auto sig = scram_hmac(mech, cred.stored_key, auth);
        std::string proof = client_key;
        for (std::size_t i = 0; i < proof.size(); ++i) {
            proof[i] = static_cast<char>(proof[i] ^ sig[i]);
        }
        if (corrupt) {
            proof[0] = static_cast<char>(proof[0] ^ 1);
        }
        if (expected_server_sig) {
            *expected_server_sig = "v=" + b64(scram_hmac(mech, cred.server_key, auth));
        }
        return without_proof + ",p=" + b64(proof);
    }
    std::string client_key_of(const std::string& salt, int iterations);
};

} // namespace
} // namespace runnel::security

#include <openssl/evp.h>

namespace runnel::security {
namespace {

std::string scram_client::client_key_of(const std::string& salt, int iterations) {
    const EVP_MD* md = mech == mechanism::scram_sha_256 ? EVP_sha256() : EVP_sha512();
    std::string salted(static_cast<std::size_t>(EVP_MD_get_size(md)), '\0');
    PKCS5_PBKDF2_HMAC(password.data(), static_cast<int>(password.size()),
                      reinterpret_cast<const unsigned char*>(salt.data()), static_cast<int>(salt.size()), iterations, md,
                      static_cast<int>(salted.size()), reinterpret_cast<unsigned char*>(salted.data()));
    return scram_hmac(mech, salted, "Client Key");
}

TEST(scram, rfc7677_vector_verifies_against_the_derived_credential) {
    // RFC 7677 section 3: user "user", password "pencil".
    const auto salt = unb64("W22ZaJ0SNY7soEsUEjb6gQ==");
    auto cred = derive_scram_credential(mechanism::scram_sha_256, "pencil", salt, 4096);
    const std::string auth =
      "n=user,r=rOprNGfwEbeRWgbNEkqO,"
      "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,"
      "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
    auto proof = unb64("dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=");
    auto sig = scram_hmac(mechanism::scram_sha_256, cred.stored_key, auth);
    for (std::size_t i = 0; i < proof.size(); ++i) {
        proof[i] = static_cast<char>(proof[i] ^ sig[i]);
    }
    EXPECT_EQ(scram_hash(mechanism::scram_sha_256, proof), cred.stored_key);
    EXPECT_EQ(b64(scram_hmac(mechanism::scram_sha_256, cred.server_key, auth)),
              "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=");
    EXPECT_TRUE(password_matches(cred, "pencil"));
    EXPECT_FALSE(password_matches(cred, "pencil "));
}

struct store_fixture : ::testing::Test {
    temp_dir dir;
    credential_store store{credential_store::file_in(dir.path)};
    void SetUp() override {
        std::string why;
        ASSERT_TRUE(store.set("alice", make_scram_credential(mechanism::scram_sha_512, "s3cret", 4096), why)) << why;
        ASSERT_TRUE(store.set("alice", make_scram_credential(mechanism::scram_sha_256, "s3cret", 4096), why)) << why;
    }
};

TEST_F(store_fixture, scram_exchanges_succeed_and_fail_as_the_password_says) {
    for (auto m : {mechanism::scram_sha_256, mechanism::scram_sha_512}) {
        for (bool wrong : {false, true}) {
            sasl_server server(m, store);
            scram_client client{m, "alice", wrong ? "nope" : "s3cret"};
            auto first = server.step(client.first());
            ASSERT_EQ(first.st, sasl_server::state::more) << first.error;
            std::string expected_sig;
            auto last = server.step(client.final_message(first.response, &expected_sig));
            if (wrong) {
                EXPECT_EQ(last.st, sasl_server::state::failed);
                EXPECT_NE(last.error.find("Authentication failed"), std::string::npos);
            } else {
                ASSERT_EQ(last.st, sasl_server::state::done) << last.error;
                EXPECT_EQ(last.response, expected_sig);
                EXPECT_EQ(server.user(), "alice");
            }
        }
    }
}

TEST_F(store_fixture, unknown_users_fail_at_the_proof_with_a_stable_salt) {
    std::string salts[2];
    for (auto& salt : salts) {
        sasl_server server(mechanism::scram_sha_512, store);
        scram_client client{mechanism::scram_sha_512, "mallory", "x"};
        auto first = server.step(client.first());
        ASSERT_EQ(first.st, sasl_server::state::more);
        salt = first.response.substr(first.response.find(",s="));
        EXPECT_EQ(server.step(client.final_message(first.response)).st, sasl_server::state::failed);
    }
    EXPECT_EQ(salts[0], salts[1]);
}

TEST_F(store_fixture, plain_checks_against_the_scram_credential) {
    using namespace std::string_literals;
    EXPECT_EQ(sasl_server(mechanism::plain, store).step("\0alice\0s3cret"s).st, sasl_server::state::done);
    EXPECT_EQ(sasl_server(mechanism::plain, store).step("alice\0alice\0s3cret"s).st, sasl_server::state::done);
    EXPECT_EQ(sasl_server(mechanism::plain, store).step("\0alice\0wrong"s).st, sasl_server::state::failed);
    EXPECT_EQ(sasl_server(mechanism::plain, store).step("\0bob\0s3cret"s).st, sasl_server::state::failed);
    EXPECT_EQ(sasl_server(mechanism::plain, store).step("bob\0alice\0s3cret"s).st, sasl_server::state::failed);
    EXPECT_EQ(sasl_server(mechanism::plain, store).step("alice"s).st, sasl_server::state::failed);
}

TEST_F(store_fixture, deferred_plain_checks_wait_for_the_caller) {
    using namespace std::string_literals;
    for (auto [token, ok] : {std::pair{"\0alice\0s3cret"s, true}, std::pair{"\0alice\0wrong"s, false},
                             std::pair{"\0nobody\0s3cret"s, false}}) {
        sasl_server server(mechanism::plain, store);
        server.defer_password_checks();
        ASSERT_EQ(server.step(token).st, sasl_server::state::check_password) << token;
        EXPECT_EQ(server.password_ok(), ok) << token;
        // The outcome handed back decides, whatever the caller computed it with.
        auto r = server.finish_password_check(server.password_ok());
        EXPECT_EQ(r.st, ok ? sasl_server::state::done : sasl_server::state::failed) << token;
        EXPECT_EQ(server.user(), ok ? "alice" : "");
        // Nothing more to check, and nothing more taken.
        EXPECT_FALSE(server.password_ok());
        EXPECT_EQ(server.finish_password_check(true).st, sasl_server::state::failed);
    }
    sasl_server refused(mechanism::plain, store);
    refused.defer_password_checks();
    ASSERT_EQ(refused.step("\0alice\0s3cret"s).st, sasl_server::state::check_password);
    EXPECT_EQ(refused.finish_password_check(false).st, sasl_server::state::failed);
    EXPECT_EQ(refused.user(), "");
    // SCRAM never defers: its proof is checked with a few HMACs.
    sasl_server scram(mechanism::scram_sha_256, store);
    scram.defer_password_checks();
    EXPECT_EQ(scram.step("n,,n=alice,r=abc").st, sasl_server::state::more);
    EXPECT_FALSE(scram.password_ok());
}

TEST(password_pool, runs_reserved_tasks_and_refuses_beyond_its_queue) {
    std::mutex mu;
    std::condition_variable cv;
    bool release = false;
    int ran = 0;
    password_pool pool(1, 2); // destroyed first: its last task uses the above
    auto task = [&] {
        std::unique_lock lock(mu);
        cv.wait(lock, [&] { return release; });
        ++ran;
        cv.notify_all();
    };
    ASSERT_TRUE(pool.try_reserve());
    pool.post(task);
    ASSERT_TRUE(pool.try_reserve());
    pool.post(task);
    EXPECT_EQ(pool.pending(), 2u);
    EXPECT_FALSE(pool.try_reserve()); // the first runs, the second waits: full
    {
        std::lock_guard lock(mu);
        release = true;
    }
    cv.notify_all();
    {
        std::unique_lock lock(mu);
        ASSERT_TRUE(cv.wait_for(lock, std::chrono::seconds(60), [&] { return ran == 2; }));
    }
    // A place comes back once its task has finished, just after `ran` counted it.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (pool.pending() != 0 && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::yield();
    }
    EXPECT_EQ(pool.pending(), 0u);
    ASSERT_TRUE(pool.try_reserve());
    pool.post([&] {
        std::lock_guard lock(mu);
        ++ran;
    });
}

TEST(password_pool, a_task_can_give_its_place_back_before_it_returns) {
    std::mutex mu;
    std::condition_variable cv;
    bool released = false;
    bool finish = false;
    password_pool pool(1, 1); // destroyed first: its task uses the above
    ASSERT_TRUE(pool.try_reserve());
    pool.post([&] {
        pool.release_current();
        std::unique_lock lock(mu);
        released = true;
        cv.notify_all();
        cv.wait(lock, [&] { return finish; });
    });
    {
        std::unique_lock lock(mu);
        ASSERT_TRUE(cv.wait_for(lock, std::chrono::seconds(60), [&] { return released; }));
    }
    // The task still runs, yet its place is free: the next check is taken, not refused.
    EXPECT_EQ(pool.pending(), 0u);
    EXPECT_TRUE(pool.try_reserve());
    pool.post([] {});
    {
        std::lock_guard lock(mu);
        finish = true;
    }
    cv.notify_all();
}

TEST(password_pool, the_destructor_runs_what_is_queued) {
    std::atomic<int> ran{0};
    {
        password_pool pool(1, 8);
        for (int i = 0; i < 8; ++i) {
            ASSERT_TRUE(pool.try_reserve());
            pool.post([&ran] { ran.fetch_add(1); });
        }
    }
    EXPECT_EQ(ran.load(), 8);
}

TEST_F(store_fixture, malformed_scram_messages_fail_with_a_message) {
    for (std::string bad : {"", "n,", "p=tls-unique,,n=alice,r=abc", "n,,r=abc,n=alice", "n,,n=al=ice,r=abc",
                            "n,,n=alice,r=", "n,a=bob,n=alice,r=abc", "x,,n=alice,r=abc"}) {
        sasl_server server(mechanism::scram_sha_256, store);
        auto r = server.step(bad);
        EXPECT_EQ(r.st, sasl_server::state::failed) << bad;
        EXPECT_FALSE(r.error.empty());
    }
    sasl_server server(mechanism::scram_sha_256, store);
    scram_client client{mechanism::scram_sha_256, "alice", "s3cret"};
    auto first = server.step(client.first());
    ASSERT_EQ(first.st, sasl_server::state::more);
    EXPECT_EQ(server.step("c=biws,r=wrongnonce,p=AAAA").st, sasl_server::state::failed);
    // A failed exchange stays failed.
    EXPECT_EQ(server.step(client.final_message(first.response)).st, sasl_server::state::failed);
}

TEST_F(store_fixture, the_file_holds_no_password_and_survives_a_reload) {
    std::ifstream in(credential_store::file_in(dir.path));
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    EXPECT_EQ(text.find("s3cret"), std::string::npos);
    credential_store again(credential_store::file_in(dir.path));
    std::string why;
    ASSERT_TRUE(again.load(why)) << why;
    EXPECT_EQ(again.find("alice", mechanism::scram_sha_512), store.find("alice", mechanism::scram_sha_512));
    auto users = again.list();
    ASSERT_EQ(users.size(), 1u);
    EXPECT_EQ(users["alice"].size(), 2u);
    ASSERT_TRUE(again.remove("alice", mechanism::scram_sha_256, why).value());
    // The other store sees the change on its next lookup.
    EXPECT_FALSE(store.find("alice", mechanism::scram_sha_256));
    EXPECT_TRUE(store.find("alice", mechanism::scram_sha_512));
    EXPECT_FALSE(again.remove("nobody", std::nullopt, why).value());
    EXPECT_FALSE(again.set("bad\tname", make_scram_credential(mechanism::scram_sha_512, "x", 4096), why));
}

TEST(credential_store, bad_files_name_the_line) {
    temp_dir dir;
    auto file = credential_store::file_in(dir.path);
    std::filesystem::create_directories(file.parent_path());
    std::ofstream(file) << "# comment\nalice\tSCRAM-SHA-512\t12\tc2FsdA==\tAA==\tAA==\n";
    credential_store store(file);
    std::string why;
    EXPECT_FALSE(store.load(why));
    EXPECT_NE(why.find("line 2"), std::string::npos) << why;
}

TEST(scram, a_credential_from_the_clients_salted_password_equals_the_derived_one) {
    // What AlterUserScramCredentials receives: PBKDF2's output, computed by the client.
    for (auto m : {mechanism::scram_sha_256, mechanism::scram_sha_512}) {
        const auto derived = derive_scram_credential(m, "pencil", "some salt", 4096);
        // SaltedPassword = Hi(password, salt, i); recompute it the RFC 5802 way for the check.
        const std::size_t n = m == mechanism::scram_sha_256 ? 32 : 64;
        std::string block = std::string("some salt") + std::string("\0\0\0\1", 4);
        std::string u = scram_hmac(m, "pencil", block);
        std::string salted = u;
        for (int i = 1; i < 4096; ++i) {
            u = scram_hmac(m, "pencil", u);
            for (std::size_t k = 0; k < n; ++k) {
                salted[k] = static_cast<char>(salted[k] ^ u[k]);
            }
        }
        const auto from_salted = scram_credential_from_salted(m, salted, "some salt", 4096);
        EXPECT_EQ(from_salted, derived);
        EXPECT_TRUE(password_matches(from_salted, "pencil"));
    }
}

TEST_F(store_fixture, alter_applies_upserts_and_deletions_with_one_write) {
    std::string why;
    const auto bob = make_scram_credential(mechanism::scram_sha_256, "hunter2", 8192);
    auto r = store.alter({{"bob", mechanism::scram_sha_256, bob},
                          {"alice", mechanism::scram_sha_512, std::nullopt},
                          {"carol", mechanism::scram_sha_512, std::nullopt}},
                         why);
    ASSERT_TRUE(r) << why;
    using outcome = credential_store::change_outcome;
    EXPECT_EQ(r.value(), (std::vector<outcome>{outcome::applied, outcome::applied, outcome::not_found}));
    EXPECT_EQ(store.find("bob", mechanism::scram_sha_256), bob);
    EXPECT_FALSE(store.find("alice", mechanism::scram_sha_512));
    EXPECT_TRUE(store.find("alice", mechanism::scram_sha_256));
    // Durable: a fresh store reads the same.
    credential_store again(credential_store::file_in(dir.path));
    ASSERT_TRUE(again.load(why)) << why;
    EXPECT_EQ(again.find("bob", mechanism::scram_sha_256), bob);
    EXPECT_FALSE(again.find("alice", mechanism::scram_sha_512));
}

TEST_F(store_fixture, alter_async_answers_on_the_callers_executor) {
    manual_executor caller;
    std::optional<result<std::vector<credential_store::change_outcome>>> got;
    store.alter_async({{"alice", mechanism::scram_sha_256, std::nullopt}}, caller,
                      [&](result<std::vector<credential_store::change_outcome>> r, std::string) { got = r; });
    ASSERT_TRUE(caller.run_until([&] { return got.has_value(); }, std::chrono::seconds(30)));
    ASSERT_TRUE(*got);
    EXPECT_EQ(got->value().front(), credential_store::change_outcome::applied);
    EXPECT_FALSE(store.find("alice", mechanism::scram_sha_256));
}

} // namespace
} // namespace runnel::security
