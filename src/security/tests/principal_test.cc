#include <gtest/gtest.h>

#include "security/security.h"

namespace runnel::security {
namespace {

TEST(principal_rules, default_keeps_the_distinguished_name) {
    std::string why;
    auto rules = parse_principal_rules("", why);
    ASSERT_TRUE(rules) << why;
    EXPECT_EQ(map_principal(*rules, "CN=app,OU=eng"), "CN=app,OU=eng");
}

TEST(principal_rules, first_matching_rule_applies) {
    std::string why;
    auto rules = parse_principal_rules("RULE:^CN=(.*?),OU=ops$/$1-ops/U, RULE:^CN=(.*?),.*$/$1/L", why);
    ASSERT_TRUE(rules) << why;
    EXPECT_EQ(map_principal(*rules, "CN=App,OU=ops"), "APP-OPS");
    EXPECT_EQ(map_principal(*rules, "CN=App,OU=eng,O=corp"), "app");
    EXPECT_EQ(map_principal(*rules, "O=corp"), std::nullopt);
    rules = parse_principal_rules("RULE:^CN=(.*?),.*$/$1/,DEFAULT", why);
    ASSERT_TRUE(rules) << why;
    EXPECT_EQ(map_principal(*rules, "O=corp"), "O=corp");
}

TEST(principal_rules, bad_rules_say_why) {
    std::string why;
    EXPECT_FALSE(parse_principal_rules("RULE:^CN=(.*$/$1/", why));
    EXPECT_FALSE(why.empty());
    EXPECT_FALSE(parse_principal_rules("RULE:abc", why));
    EXPECT_FALSE(parse_principal_rules("SOMETHING", why));
}

TEST(listeners, parse_names_protocols_and_addresses) {
    std::string why;
    auto l = parse_listener("SASL_SSL://0.0.0.0:9094", why);
    ASSERT_TRUE(l) << why;
    EXPECT_EQ(l->name, "SASL_SSL");
    EXPECT_EQ(l->proto, protocol::sasl_ssl);
    EXPECT_EQ(l->address.port, 9094);
    l = parse_listener("external:ssl://[::1]:0", why);
    ASSERT_TRUE(l) << why;
    EXPECT_EQ(l->name, "EXTERNAL");
    EXPECT_EQ(l->proto, protocol::ssl);
    EXPECT_FALSE(parse_listener("TLS://1.2.3.4:9", why));
    EXPECT_FALSE(parse_listener("127.0.0.1:9092", why));
    auto a = parse_advertised_listener("external://kafka.example.com:9094", why);
    ASSERT_TRUE(a) << why;
    EXPECT_EQ(a->first, "EXTERNAL");
    EXPECT_EQ(a->second.host, "kafka.example.com");
}

} // namespace
} // namespace runnel::security
