// Round trips of every generated message at every supported version, and robustness of every
// decoder against truncated and corrupted input.

#include <gtest/gtest.h>

#include <random>

#include "kafka/protocol/tests/message_cases.h"

namespace runnel::kafka::protocol::testing {
namespace {

TEST(roundtrip, every_message_every_version_filled) {
    int checked = 0;
    for (const auto& c : all_message_cases()) {
        for (int16_t v = c.min_version; v <= c.max_version; ++v) {
            SCOPED_TRACE(std::string(c.name) + " v" + std::to_string(v));
            EXPECT_EQ(c.roundtrip(v, false), "");
            EXPECT_EQ(c.roundtrip(v, true), "");
            EXPECT_EQ(c.roundtrip_default(v), "");
            ++checked;
        }
    }
    // The 190 versions of the 42 apis in the table (as header_test counts them), request and
    // response each, plus the two headers.
    EXPECT_EQ(checked, 2 * 190 + 3 + 2);
}

TEST(roundtrip, filled_and_null_encodings_differ_where_nullable_fields_exist) {
    // A sanity check on the fills: at the newest version of a message with nullable fields,
    // the two fills must produce different bytes.
    for (const auto& c : all_message_cases()) {
        if (c.name == "metadata_request" || c.name == "produce_request"
            || c.name == "fetch_response" || c.name == "join_group_response") {
            EXPECT_NE(c.encode_filled(c.max_version, false), c.encode_filled(c.max_version, true))
              << c.name;
        }
    }
}

TEST(roundtrip, versions_change_the_encoding) {
    // Every api's encoding changes between its oldest and newest version (each range spans
    // at least one added field or a switch to flexible encoding), except single-version apis
    // and SaslHandshake, whose v1 differs only in what follows it (SaslAuthenticate requests
    // instead of bare tokens).
    for (const auto& c : all_message_cases()) {
        if (c.min_version == c.max_version || c.api_key == 17) {
            continue;
        }
        // Versions that changed only the other direction of their api (ListTransactions' v1
        // adds a request field only).
        if (c.name == "consumer_group_heartbeat_response" || c.name == "consumer_group_describe_request"
            || c.name == "list_transactions_response") {
            continue;
        }
        EXPECT_NE(c.encode_filled(c.min_version, false), c.encode_filled(c.max_version, false))
          << c.name;
    }
}

TEST(roundtrip, every_truncation_fails) {
    std::size_t attempts = 0;
    for (const auto& c : all_message_cases()) {
        for (int16_t v = c.min_version; v <= c.max_version; ++v) {
            for (bool nulls : {false, true}) {
                auto full = c.encode_filled(v, nulls);
                ASSERT_TRUE(c.decode(full, v)) << c.name << " v" << v;
                for (std::size_t len = 0; len < full.size(); ++len) {
                    // A copy of exactly `len` bytes, so ASan sees any read past it.
                    std::vector<std::byte> cut(full.begin(), full.begin() + static_cast<long>(len));
                    EXPECT_FALSE(c.decode(cut, v))
                      << c.name << " v" << v << " decoded from " << len << " of " << full.size()
                      << " bytes";
                    ++attempts;
                }
            }
        }
    }
    EXPECT_GT(attempts, 10000u);
}

TEST(roundtrip, corrupted_bytes_never_crash) {
    std::mt19937 rng(20240601);
    for (const auto& c : all_message_cases()) {
        for (int16_t v = c.min_version; v <= c.max_version; ++v) {
            auto good = c.encode_filled(v, false);
            if (good.empty()) {
                continue;
            }
            for (int round = 0; round < 64; ++round) {
                std::vector<std::byte> bad = good;
                int flips = 1 + static_cast<int>(rng() % 4);
                for (int i = 0; i < flips; ++i) {
                    auto at = rng() % bad.size();
                    bad[at] = static_cast<std::byte>(rng() & 0xff);
                }
                // Either outcome is fine; what matters is no crash, hang or sanitizer report.
                (void)c.decode(bad, v);
            }
            for (int round = 0; round < 16; ++round) {
                std::vector<std::byte> noise(rng() % 64);
                for (auto& b : noise) {
                    b = static_cast<std::byte>(rng() & 0xff);
                }
                (void)c.decode(noise, v);
            }
        }
    }
}

} // namespace
} // namespace runnel::kafka::protocol::testing
