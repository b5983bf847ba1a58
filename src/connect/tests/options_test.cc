// The connector registry: what CREATE TABLE accepts and how it names a mistake.

#include <gtest/gtest.h>

#include "connect/options/options.h"

namespace runnel::connect {
namespace {

using opts = std::vector<std::pair<std::string, std::string>>;

std::optional<option_problem> check(const opts& o) { return connector_registry::global().check("t", o); }

TEST(connector_options, every_builtin_connector_is_found_by_id_and_alias_in_any_case) {
    const auto& r = connector_registry::global();
    for (const char* id : {"topic", "kafka", "datagen", "nexmark", "file", "blackhole"}) {
        ASSERT_NE(r.find(id), nullptr) << id;
    }
    ASSERT_NE(r.find("FileSystem"), nullptr);
    EXPECT_EQ(r.find("FileSystem")->id, "file");
    EXPECT_EQ(r.find("nope"), nullptr);
}

TEST(connector_options, a_valid_table_passes_and_a_table_without_connector_is_not_checked) {
    EXPECT_FALSE(check({{"connector", "topic"}, {"topic", "bids"}, {"scan.startup.mode", "LATEST-OFFSET"},
                        {"properties.bootstrap.servers", "127.0.0.1:9092"}, {"sink.partitions", "4"},
                        {"scan.watermark.idle-timeout", "5 s"}, {"json.ignore-parse-errors", "TRUE"}}));
    EXPECT_FALSE(check({{"whatever", "x"}}));
    EXPECT_FALSE(check({{"connector", "datagen"}, {"fields.id.kind", "sequence"}, {"rows-per-second", "10"}}));
    EXPECT_FALSE(check({{"connector", "nexmark"}, {"first-event.rate", "1000"}, {"bid.proportion", "46"}}));
}

TEST(connector_options, a_mistake_names_the_option_its_index_and_the_closest_name) {
    auto p = check({{"connector", "topic"}, {"topc", "bids"}});
    ASSERT_TRUE(p);
    EXPECT_EQ(p->index, std::optional<std::size_t>(1));
    EXPECT_NE(p->message.find("option 'topc' is not one the topic connector reads; did you mean 'topic'?"),
              std::string::npos)
      << p->message;

    p = check({{"connector", "datgen"}});
    ASSERT_TRUE(p);
    EXPECT_EQ(p->index, std::optional<std::size_t>(0));
    EXPECT_NE(p->message.find("did you mean 'datagen'?"), std::string::npos) << p->message;

    p = check({{"connector", "topic"}, {"topic", "t"}, {"scan.startup.mod", "latest-offset"}});
    ASSERT_TRUE(p);
    EXPECT_NE(p->message.find("did you mean 'scan.startup.mode'?"), std::string::npos) << p->message;

    // A prefix alone is not an option.
    p = check({{"connector", "topic"}, {"topic", "t"}, {"properties.", "x"}});
    ASSERT_TRUE(p);
    EXPECT_EQ(p->index, std::optional<std::size_t>(2));
}

TEST(connector_options, values_are_checked_by_type_and_required_options_by_presence) {
    auto p = check({{"connector", "topic"}, {"topic", "t"}, {"sink.partitions", "4x"}});
    ASSERT_TRUE(p);
    EXPECT_NE(p->message.find("'sink.partitions' must be a whole number, not '4x'"), std::string::npos) << p->message;
    p = check({{"connector", "topic"}, {"topic", "t"}, {"json.ignore-parse-errors", "yes"}});
    ASSERT_TRUE(p);
    EXPECT_NE(p->message.find("is true or false"), std::string::npos) << p->message;
    p = check({{"connector", "nexmark"}, {"rate", "fast"}});
    ASSERT_TRUE(p);
    EXPECT_NE(p->message.find("must be a number"), std::string::npos) << p->message;
    p = check({{"connector", "file"}, {"format", "json"}});
    ASSERT_TRUE(p);
    EXPECT_FALSE(p->index);
    EXPECT_NE(p->message.find("the file connector needs option 'path'"), std::string::npos) << p->message;
    p = check({{"connector", "blackhole"}, {"path", "x"}});
    ASSERT_TRUE(p);
    EXPECT_NE(p->message.find("(it reads none)"), std::string::npos) << p->message;
}

TEST(connector_options, durations_take_units_and_refuse_overflow) {
    EXPECT_EQ(duration_ms("250"), std::optional<int64_t>(250));
    EXPECT_EQ(duration_ms("5 s"), std::optional<int64_t>(5000));
    EXPECT_EQ(duration_ms("2min"), std::optional<int64_t>(120'000));
    EXPECT_EQ(duration_ms("1 h"), std::optional<int64_t>(3'600'000));
    EXPECT_EQ(duration_ms("2 days"), std::optional<int64_t>(172'800'000));
    EXPECT_FALSE(duration_ms("5 weeks"));
    EXPECT_FALSE(duration_ms("-1 s"));
    EXPECT_FALSE(duration_ms("9223372036854775807 d"));
    EXPECT_FALSE(duration_ms(""));
}

TEST(connector_options, kafka_security_options_are_checked_at_create_table) {
    EXPECT_FALSE(check({{"connector", "kafka"}, {"topic", "t"}, {"properties.bootstrap.servers", "h:1"},
                        {"properties.security.protocol", "SASL_SSL"}, {"properties.sasl.mechanism", "SCRAM-SHA-512"},
                        {"properties.sasl.jaas.config", "x required;"}, {"properties.ssl.truststore.location", "/ca"},
                        {"properties.ssl.endpoint.identification.algorithm", ""}}));
    auto p = check({{"connector", "kafka"}, {"topic", "t"}, {"properties.security.protocol", "TLS"}});
    ASSERT_TRUE(p);
    EXPECT_EQ(p->index, std::optional<std::size_t>(2));
    EXPECT_NE(p->message.find("option 'properties.security.protocol' is plaintext, ssl, sasl_plaintext or sasl_ssl, "
                              "not 'TLS'"),
              std::string::npos)
      << p->message;
    p = check({{"connector", "kafka"}, {"topic", "t"}, {"properties.sasl.mechanism", "GSSAPI"}});
    ASSERT_TRUE(p);
    EXPECT_NE(p->message.find("plain, scram-sha-256, scram-sha-512 or oauthbearer"), std::string::npos) << p->message;
}

} // namespace
} // namespace runnel::connect
