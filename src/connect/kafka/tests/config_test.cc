// A table's `properties.*` as a Kafka client configuration: Flink's JAAS form translated,
// Java keystores refused with the option named, librdkafka's refusals found when planning, and
// no secret in any message.

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <unistd.h>

#include <fmt/format.h>

#include "connect/kafka/kafka.h"

namespace runnel::connect {
namespace {

using opts = std::vector<std::pair<std::string, std::string>>;
using props = std::vector<std::pair<std::string, std::string>>;

constexpr const char* password = "s3cr3t-Pa55";

std::string scram(std::string_view pw = password) {
    return fmt::format("org.apache.kafka.common.security.scram.ScramLoginModule required username=\"app\" "
                       "password=\"{}\";",
                       pw);
}

/// A temporary directory, removed at the end of the test.
class files {
public:
    files()
      : _dir(std::filesystem::temp_directory_path() / fmt::format("runnel-kclient-{}-{}", ::getpid(), ++_n)) {
        std::filesystem::create_directories(_dir);
    }
    ~files() { std::filesystem::remove_all(_dir); }
    std::string write(const std::string& name, const std::string& bytes) const {
        auto p = _dir / name;
        std::ofstream(p, std::ios::binary) << bytes;
        return p.string();
    }

private:
    static inline int _n = 0;
    std::filesystem::path _dir;
};

const std::string pem_cert = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
const std::string pem_key = "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n";

TEST(kafka_jaas, scram_login_module_gives_username_and_password) {
    std::string why;
    auto t = translate_jaas_config(scram(), "SCRAM-SHA-512", why);
    ASSERT_TRUE(t) << why;
    EXPECT_EQ(t.value(), (props{{"sasl.username", "app"}, {"sasl.password", password}}));
}

TEST(kafka_jaas, plain_login_module_implies_plain_and_quotes_escape) {
    std::string why;
    auto t = translate_jaas_config("  org.apache.kafka.common.security.plain.PlainLoginModule required\n"
                                   "   username=app password=\"a \\\"quoted\\\" pass;word\" ;  ",
                                   "", why);
    ASSERT_TRUE(t) << why;
    EXPECT_EQ(t.value(), (props{{"sasl.mechanism", "PLAIN"}, {"sasl.username", "app"},
                                {"sasl.password", "a \"quoted\" pass;word"}}));
    // Flink's shaded class names are the same modules.
    t = translate_jaas_config("org.apache.flink.kafka.shaded.org.apache.kafka.common.security.plain.PlainLoginModule "
                              "required username=\"u\" password=\"p\";",
                              "PLAIN", why);
    ASSERT_TRUE(t) << why;
}

TEST(kafka_jaas, oauthbearer_unsecured_and_oidc) {
    std::string why;
    auto t = translate_jaas_config("org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required "
                                   "unsecuredLoginStringClaim_sub=\"alice\";",
                                   "OAUTHBEARER", why);
    ASSERT_TRUE(t) << why;
    EXPECT_EQ(t.value(), (props{{"enable.sasl.oauthbearer.unsecure.jwt", "true"},
                                {"sasl.oauthbearer.config", "principal=alice"}}));
    t = translate_jaas_config("org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required "
                              "clientId=\"id\" clientSecret=\"sec\";",
                              "", why);
    ASSERT_TRUE(t) << why;
    EXPECT_EQ(t.value(), (props{{"sasl.mechanism", "OAUTHBEARER"}, {"sasl.oauthbearer.method", "oidc"},
                                {"sasl.oauthbearer.client.id", "id"}, {"sasl.oauthbearer.client.secret", "sec"}}));
}

TEST(kafka_jaas, mistakes_are_named_without_the_password) {
    struct bad_case {
        std::string text, mechanism, want;
    };
    const std::vector<bad_case> cases{
      {scram(), "", "needs 'properties.sasl.mechanism' SCRAM-SHA-256 or SCRAM-SHA-512"},
      {scram(), "PLAIN", "ScramLoginModule is for sasl.mechanism SCRAM-SHA-256 or SCRAM-SHA-512, not PLAIN"},
      {fmt::format("org.apache.kafka.common.security.plain.PlainLoginModule required username=\"u\" "
                   "password=\"{}\";",
                   password),
       "SCRAM-SHA-256", "PlainLoginModule is for sasl.mechanism PLAIN"},
      {fmt::format("com.sun.security.auth.module.Krb5LoginModule required password=\"{}\";", password), "",
       "is not one Runnel's Kafka client understands"},
      {fmt::format("x.ScramLoginModule required username=\"u\" password=\"{}\"", password), "SCRAM-SHA-512",
       "it must end with ';'"},
      {fmt::format("x.ScramLoginModule username=\"u\" password=\"{}\";", password), "SCRAM-SHA-512",
       "must be followed by a control flag"},
      {fmt::format("x.ScramLoginModule required username=\"u\" password=\"{};", password), "SCRAM-SHA-512",
       "the value of password has no closing"},
      {"x.ScramLoginModule required username=\"u\";", "SCRAM-SHA-512", "needs username=\"…\" and password=\"…\""},
      {fmt::format("x.ScramLoginModule required username=\"u\" password=\"{}\" tokenauth=true;", password),
       "SCRAM-SHA-512", "has no option 'tokenauth'"},
      {fmt::format("x.ScramLoginModule required username=\"u\" password=\"{}\"; y.PlainLoginModule required;",
                   password),
       "SCRAM-SHA-512", "more than one login module"},
      {"", "", "must start with a login module class"},
    };
    for (const auto& c : cases) {
        std::string why;
        EXPECT_FALSE(translate_jaas_config(c.text, c.mechanism, why)) << c.text;
        EXPECT_NE(why.find(c.want), std::string::npos) << why;
        EXPECT_EQ(why.find(password), std::string::npos) << why;
    }
}

TEST(kafka_client_config, flink_names_become_librdkafka_names) {
    files f;
    const auto ca = f.write("ca.pem", pem_cert);
    const auto keystore = f.write("client.pem", pem_cert + pem_key);
    std::string why;
    auto c = kafka_client_config_of("orders",
                                    opts{{"connector", "kafka"}, {"topic", "t"},
                                         {"properties.bootstrap.servers", "127.0.0.1:1"},
                                         {"properties.security.protocol", "SASL_PLAINTEXT"},
                                         {"properties.sasl.mechanism", "scram-sha-512"},
                                         {"properties.sasl.jaas.config", scram()},
                                         {"properties.ssl.truststore.location", ca},
                                         {"properties.ssl.truststore.type", "PEM"},
                                         {"properties.ssl.keystore.location", keystore},
                                         {"properties.ssl.endpoint.identification.algorithm", ""},
                                         {"properties.group.id", "kept-by-the-job"},
                                         {"properties.fetch.wait.max.ms", "50"}},
                                    why);
    ASSERT_TRUE(c) << why;
    const auto& k = c.value();
    EXPECT_EQ(k.get("bootstrap.servers"), "127.0.0.1:1");
    EXPECT_EQ(k.get("security.protocol"), "sasl_plaintext");
    EXPECT_EQ(k.get("sasl.mechanism"), "SCRAM-SHA-512");
    EXPECT_EQ(k.get("sasl.username"), "app");
    EXPECT_EQ(k.get("sasl.password"), password);
    EXPECT_EQ(k.get("ssl.ca.location"), ca);
    EXPECT_EQ(k.get("ssl.certificate.location"), keystore);
    EXPECT_EQ(k.get("ssl.key.location"), keystore);
    EXPECT_EQ(k.get("ssl.endpoint.identification.algorithm"), "none");
    EXPECT_EQ(k.get("fetch.wait.max.ms"), "50");
    EXPECT_EQ(k.get("group.id"), "");
    EXPECT_EQ(k.get("ssl.truststore.type"), "");
    EXPECT_EQ(k.mask(fmt::format("login with {} failed", password)), "login with ****** failed");
}

TEST(kafka_client_config, native_sasl_username_and_password_pass_unchanged) {
    std::string why;
    auto c = kafka_client_config_of("t",
                                    opts{{"properties.security.protocol", "sasl_plaintext"},
                                         {"properties.sasl.mechanism", "PLAIN"},
                                         {"properties.sasl.username", "u"},
                                         {"properties.sasl.password", password}},
                                    why);
    ASSERT_TRUE(c) << why;
    EXPECT_EQ(c.value().get("sasl.password"), password);
    EXPECT_EQ(c.value().secrets, std::vector<std::string>{password});
}

struct refusal {
    opts options;
    std::string want;
};

void expect_refused(const refusal& r) {
    std::string why;
    EXPECT_FALSE(kafka_client_config_of("orders", r.options, why)) << r.want;
    EXPECT_NE(why.find("table orders: "), std::string::npos) << why;
    EXPECT_NE(why.find(r.want), std::string::npos) << why;
    EXPECT_EQ(why.find(password), std::string::npos) << why;
}

TEST(kafka_client_config, java_keystores_are_refused_naming_the_option) {
    files f;
    const auto jks = f.write("trust.bin", std::string("\xFE\xED\xFE\xED\x00\x00\x00\x02", 8));
    const auto p12 = f.write("client.p12", std::string("\x30\x82\x0a\x01", 4));
    const auto cert_only = f.write("cert.pem", pem_cert);
    expect_refused({{{"properties.ssl.truststore.location", jks}},
                    "option 'properties.ssl.truststore.location': '" + jks + "' is a Java keystore (JKS)"});
    expect_refused({{{"properties.ssl.truststore.location", jks}}, "give a PEM file"});
    expect_refused({{{"properties.ssl.keystore.location", p12}},
                    "option 'properties.ssl.keystore.location': '" + p12 + "' is a PKCS12 (or DER) file"});
    expect_refused({{{"properties.ssl.ca.location", p12}}, "option 'properties.ssl.ca.location'"});
    expect_refused({{{"properties.ssl.keystore.location", cert_only}}, "holds no private key"});
    expect_refused({{{"properties.ssl.truststore.type", "JKS"}}, "option 'properties.ssl.truststore.type': type 'JKS'"});
    expect_refused({{{"properties.ssl.keystore.password", password}},
                    "give the private key's password as 'properties.ssl.key.password'"});
    expect_refused({{{"properties.ssl.truststore.location", f.write("none", "")}, {"x", "y"}}, "not a PEM file"});
    expect_refused({{{"properties.ssl.truststore.location", "/nonexistent/ca.pem"}},
                    "option 'properties.ssl.truststore.location': cannot read '/nonexistent/ca.pem'"});
}

TEST(kafka_client_config, librdkafka_refusals_name_the_table_option_and_reason) {
    expect_refused({{{"properties.no.such.property", "1"}},
                    "option 'properties.no.such.property': the Kafka client refuses it: No such configuration property"});
    expect_refused({{{"properties.acks", "most"}}, "option 'properties.acks': the Kafka client refuses it: Invalid value"});
    // A JAAS option's translation is named by the option the user wrote.
    expect_refused({{{"properties.sasl.mechanism", "SCRAM-SHA-512"},
                     {"properties.sasl.jaas.config", scram()},
                     {"properties.sasl.username", "other"}},
                    "options 'properties.sasl.jaas.config' and 'properties.sasl.username' both set the Kafka "
                    "client's sasl.username"});
    expect_refused({{{"properties.sasl.mechanism", "SCRAM-SHA-512"}, {"properties.sasl.jaas.config", "nonsense " + std::string(password)}},
                    "option 'properties.sasl.jaas.config': the login module nonsense must be followed by a control flag"});
}

TEST(kafka_client_config, a_client_that_cannot_start_is_found_when_planning) {
    files f;
    // librdkafka loads certificates only for TLS: a certificate that is PEM in name only fails
    // when the client is made, not when the pipeline first connects.
    expect_refused({{{"properties.security.protocol", "ssl"},
                     {"properties.ssl.ca.location", f.write("ca.pem", pem_cert)},
                     {"properties.ssl.key.password", password}},
                    "the Kafka client cannot start with these options"});
}

} // namespace
} // namespace runnel::connect
