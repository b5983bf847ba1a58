// The route table as the server builds it: every route is documented in openapi.json and
// declares the ACL Kafka would check. Built with the gateway itself (an integration-labelled
// test of the release build), since the table is the whole gateway's.
#include "gateway/internal.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>

namespace runnel::gateway {
namespace {

namespace json = boost::json;

TEST(openapi, documents_every_route_and_method) {
    auto doc = json::parse(openapi_document()).as_object();
    EXPECT_EQ(doc.at("openapi").as_string(), "3.1.0");
    const auto& paths = doc.at("paths").as_object();
    auto routes = build_routes().routes();
    ASSERT_GE(routes.size(), 8u);
    for (const auto& [pattern, methods] : routes) {
        ASSERT_TRUE(paths.contains(pattern)) << pattern << " is routed but not in openapi.json";
        const auto& item = paths.at(pattern).as_object();
        for (auto m : methods) {
            std::transform(m.begin(), m.end(), m.begin(), [](unsigned char c) { return std::tolower(c); });
            EXPECT_TRUE(item.contains(m)) << pattern << " " << m << " is routed but not in openapi.json";
        }
    }
    for (const auto& [path, item] : paths) {
        bool routed = false;
        for (const auto& [pattern, methods] : routes) {
            routed = routed || pattern == path;
        }
        EXPECT_TRUE(routed) << std::string(path) << " is in openapi.json but not routed";
    }
}

TEST(access, names_the_cluster_or_the_path_parameter) {
    std::map<std::string, std::string> params{{"name", "orders"}};
    EXPECT_EQ(access::on_cluster(acl_op::alter).resource(params), security::cluster_resource_name);
    EXPECT_EQ(access::on_path(acl_op::read, acl_type::topic, "name").resource(params), "orders");
    EXPECT_FALSE(access::open().resource(params));
    EXPECT_FALSE(access::in_handler(acl_op::describe, acl_type::topic).resource(params));
}

// The ACL each route needs (docs/security.md has the same table): a route added without an
// entry here, or with another rule, fails.
TEST(access, every_route_declares_the_acl_kafka_would_check) {
    using src = access::source;
    struct want {
        src from;
        acl_op op;
        acl_type type;
        std::string_view param;
    };
    const auto none = want{src::open, acl_op::unknown, acl_type::unknown, ""};
    const auto cluster = [](acl_op op) { return want{src::cluster, op, acl_type::cluster, ""}; };
    const auto topic = [](acl_op op) { return want{src::path, op, acl_type::topic, "name"}; };
    const std::map<std::pair<std::string, std::string>, want> table{
      {{"GET", "/"}, none},
      {{"GET", "/assets/{name}"}, none},
      {{"GET", "/metrics"}, none},
      {{"GET", "/v1/health"}, none},
      {{"GET", "/v1/openapi.json"}, none},
      {{"GET", "/v1/history"}, cluster(acl_op::describe)},
      {{"GET", "/v1/topics"}, {src::handler, acl_op::describe, acl_type::topic, ""}},
      {{"POST", "/v1/topics"}, {src::handler, acl_op::create, acl_type::topic, ""}},
      {{"GET", "/v1/topics/{name}"}, topic(acl_op::describe)},
      {{"DELETE", "/v1/topics/{name}"}, topic(acl_op::remove)},
      {{"GET", "/v1/topics/{name}/records"}, topic(acl_op::read)},
      {{"POST", "/v1/topics/{name}/records"}, topic(acl_op::write)},
      {{"GET", "/v1/topics/{name}/events"}, topic(acl_op::read)},
      {{"GET", "/v1/ws"}, {src::handler, acl_op::read, acl_type::topic, ""}},
      {{"POST", "/v1/sql"}, cluster(acl_op::alter)},
      {{"GET", "/v1/groups"}, {src::handler, acl_op::describe, acl_type::group, ""}},
      {{"GET", "/v1/groups/{id}"}, {src::path, acl_op::describe, acl_type::group, "id"}},
      {{"GET", "/v1/pipelines"}, cluster(acl_op::describe)},
      {{"POST", "/v1/pipelines"}, cluster(acl_op::alter)},
      {{"GET", "/v1/pipelines/{id}"}, cluster(acl_op::describe)},
      {{"DELETE", "/v1/pipelines/{id}"}, cluster(acl_op::alter)},
      {{"POST", "/v1/pipelines/{id}/stop"}, cluster(acl_op::alter)},
      {{"POST", "/v1/pipelines/{id}/restart"}, cluster(acl_op::alter)},
      {{"GET", "/v1/views"}, cluster(acl_op::describe)},
      {{"GET", "/v1/views/{name}"}, topic(acl_op::describe)},
      {{"GET", "/v1/views/{name}/rows"}, topic(acl_op::read)},
      {{"GET", "/v1/views/{name}/rows/{key}"}, topic(acl_op::read)},
      {{"GET", "/v1/views/{name}/events"}, topic(acl_op::read)},
    };
    auto r = build_routes();
    std::size_t seen = 0;
    for (const auto& [pattern, methods] : r.routes()) {
        for (const auto& m : methods) {
            auto it = table.find({m, pattern});
            ASSERT_NE(it, table.end()) << m << " " << pattern << " has no expected ACL here";
            ++seen;
            // A concrete path for the pattern: each {param} becomes "x".
            std::string path;
            for (std::size_t i = 0; i < pattern.size();) {
                if (pattern[i] == '{') {
                    path += "x";
                    i = pattern.find('}', i) + 1;
                } else {
                    path += pattern[i++];
                }
            }
            auto found = r.find(m, path);
            ASSERT_EQ(found.result, router<route>::match::outcome::found) << m << " " << path;
            const auto& need = found.handler->need;
            const auto& w = it->second;
            EXPECT_EQ(need.from, w.from) << m << " " << pattern;
            if (w.from != src::open) {
                EXPECT_EQ(need.op, w.op) << m << " " << pattern;
                EXPECT_EQ(need.type, w.type) << m << " " << pattern;
            }
            EXPECT_EQ(need.param, w.param) << m << " " << pattern;
            if (w.from == src::path) {
                EXPECT_EQ(need.resource(found.params), "x") << m << " " << pattern;
            }
        }
    }
    EXPECT_EQ(seen, table.size());
}

} // namespace
} // namespace runnel::gateway
