#include "base/text.h"
#include "base/secret.h"

#include <gtest/gtest.h>

namespace runnel::text {
namespace {

TEST(text, utf8_checks_and_the_first_bad_byte) {
    EXPECT_TRUE(valid_utf8("plain"));
    EXPECT_TRUE(valid_utf8("h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80"));
    EXPECT_FALSE(valid_utf8("\xc3"));          // cut off
    EXPECT_FALSE(valid_utf8("\xc0\x80"));      // overlong
    EXPECT_FALSE(valid_utf8("\xed\xa0\x80"));  // surrogate
    EXPECT_FALSE(valid_utf8("\xf4\x90\x80\x80")); // past U+10FFFF
    EXPECT_FALSE(valid_utf8("\xff"));
    EXPECT_EQ(invalid_utf8_at("abc"), std::nullopt);
    EXPECT_EQ(invalid_utf8_at("\xff"), 0u);
    EXPECT_EQ(invalid_utf8_at("ab\xc3\xa9\xff"), 4u);
    EXPECT_EQ(invalid_utf8_at("ab\xe2\x82"), 2u);
}

TEST(text, json_strings_are_always_json) {
    EXPECT_EQ(json_string("a\"b\\c\n"), R"("a\"b\\c\n")");
    EXPECT_EQ(json_string(std::string_view("\x01", 1)), R"("\u0001")");
    EXPECT_EQ(json_string("\xc3\xa9"), "\"\xc3\xa9\"");
    EXPECT_EQ(json_string("a\xff" "b"), R"("a\ufffdb")");
}

TEST(text, scrub_replaces_only_bad_bytes) {
    EXPECT_EQ(scrub_utf8("ok \xc3\xa9"), "ok \xc3\xa9");
    EXPECT_EQ(scrub_utf8("a\xff\xfe" "b"), "a\xef\xbf\xbd\xef\xbf\xbd" "b");
    EXPECT_TRUE(valid_utf8(scrub_utf8("\xe2\x82")));
}

TEST(text, base64_both_ways) {
    EXPECT_EQ(base64_encode(""), "");
    EXPECT_EQ(base64_encode("f"), "Zg==");
    EXPECT_EQ(base64_encode("fo"), "Zm8=");
    EXPECT_EQ(base64_encode("foo"), "Zm9v");
    EXPECT_EQ(base64_encode("foobar"), "Zm9vYmFy");
    EXPECT_EQ(base64_decode("Zm9vYmFy"), "foobar");
    EXPECT_EQ(base64_decode("Zm8"), "fo");
    EXPECT_EQ(base64_decode("Z!=="), std::nullopt);
}

TEST(text, secrets_are_the_keys_flink_masks) {
    for (const char* k : {"properties.sasl.jaas.config", "properties.sasl.password", "properties.ssl.key.password",
                          "properties.SSL.KEYSTORE.PASSWORD", "properties.sasl.oauthbearer.client.secret",
                          "properties.ssl.key.pem", "sasl.password"}) {
        EXPECT_TRUE(text::secret_key(k)) << k;
    }
    for (const char* k : {"properties.sasl.username", "properties.sasl.mechanism", "properties.ssl.key.location",
                          "topic", "properties.bootstrap.servers"}) {
        EXPECT_FALSE(text::secret_key(k)) << k;
    }
}

} // namespace
} // namespace runnel::text
