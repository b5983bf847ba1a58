#include "gateway/origin.h"

#include <gtest/gtest.h>

namespace runnel::gateway {
namespace {

TEST(origin_policy, host_must_name_this_server) {
    origin_policy p("127.0.0.1", 8080, {"runnel.internal", "proxy.example:8443"}, {});
    for (const char* ok : {"127.0.0.1:8080", "localhost:8080", "LocalHost:8080", "[::1]:8080", "runnel.internal",
                           "runnel.internal:9000", "proxy.example:8443"}) {
        EXPECT_EQ(p.check_host(std::string_view(ok)), std::nullopt) << ok;
    }
    for (const char* bad : {"attacker.example:8080", "127.0.0.1:8081", "localhost", "proxy.example:9999", "",
                            "127.0.0.1.attacker.example:8080"}) {
        EXPECT_NE(p.check_host(std::string_view(bad)), std::nullopt) << bad;
    }
    EXPECT_EQ(p.check_host(std::nullopt), std::nullopt) << "HTTP/1.0 tools send no Host";
}

TEST(origin_policy, a_wildcard_listener_checks_host_only_when_told_names) {
    EXPECT_EQ(origin_policy("0.0.0.0", 80, {}, {}).check_host(std::string_view("box.lan")), std::nullopt);
    origin_policy named("0.0.0.0", 80, {"box.lan"}, {});
    EXPECT_EQ(named.check_host(std::string_view("box.lan")), std::nullopt);
    EXPECT_EQ(named.check_host(std::string_view("localhost")), std::nullopt) << "port 80 may be left out";
    EXPECT_NE(named.check_host(std::string_view("evil.example")), std::nullopt);
}

TEST(origin_policy, origin_must_be_the_servers_own_or_allowed) {
    origin_policy p("127.0.0.1", 8080, {}, {"https://app.example/"});
    const std::string_view host = "127.0.0.1:8080";
    EXPECT_EQ(p.check_origin(std::nullopt, host), std::nullopt) << "not a browser";
    EXPECT_EQ(p.check_origin(std::string_view("http://127.0.0.1:8080"), host), std::nullopt);
    EXPECT_EQ(p.check_origin(std::string_view("HTTP://127.0.0.1:8080"), host), std::nullopt);
    EXPECT_EQ(p.check_origin(std::string_view("https://app.example"), host), std::nullopt);
    for (const char* bad : {"http://attacker.example", "null", "http://127.0.0.1:8081", "http://localhost:8080",
                            "https://app.example:444", ""}) {
        EXPECT_NE(p.check_origin(std::string_view(bad), host), std::nullopt) << bad;
    }
}

TEST(origin_policy, media_type_drops_parameters_and_case) {
    EXPECT_EQ(media_type("Application/JSON; charset=utf-8"), "application/json");
    EXPECT_EQ(media_type(" text/plain "), "text/plain");
    EXPECT_EQ(media_type(""), "");
}

} // namespace
} // namespace runnel::gateway
