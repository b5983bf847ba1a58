#include "gateway/router.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>

namespace runnel::gateway {
namespace {

namespace json = boost::json;

TEST(router, matches_literal_and_parameter_segments) {
    router<int> r;
    r.add("GET", "/v1/topics", 1);
    r.add("POST", "/v1/topics", 2);
    r.add("GET", "/v1/topics/{name}", 3);
    r.add("GET", "/v1/topics/{name}/records", 4);
    auto m = r.find("POST", "/v1/topics");
    ASSERT_EQ(m.result, router<int>::match::outcome::found);
    EXPECT_EQ(*m.handler, 2);
    m = r.find("GET", "/v1/topics/or%2Fders");
    ASSERT_EQ(m.result, router<int>::match::outcome::found);
    EXPECT_EQ(*m.handler, 3);
    EXPECT_EQ(m.params.at("name"), "or/ders");
    EXPECT_EQ(m.pattern, "/v1/topics/{name}");
    m = r.find("GET", "/v1/topics/a/records");
    EXPECT_EQ(*m.handler, 4);
    EXPECT_EQ(m.params.at("name"), "a");
}

TEST(router, unknown_paths_wrong_methods_and_broken_escapes) {
    router<int> r;
    r.add("GET", "/v1/topics/{name}", 1);
    r.add("DELETE", "/v1/topics/{name}", 2);
    EXPECT_EQ(r.find("GET", "/v1/nothing").result, router<int>::match::outcome::no_route);
    EXPECT_EQ(r.find("GET", "/v1/topics/").result, router<int>::match::outcome::no_route);
    EXPECT_EQ(r.find("GET", "/v1/topics/a/b").result, router<int>::match::outcome::no_route);
    auto m = r.find("PUT", "/v1/topics/a");
    EXPECT_EQ(m.result, router<int>::match::outcome::wrong_method);
    EXPECT_EQ(m.allow, "GET, DELETE");
    EXPECT_EQ(r.find("GET", "/v1/topics/a%zz").result, router<int>::match::outcome::bad_path);
}

TEST(router, query_strings) {
    std::string why;
    auto q = parse_query("partition=1&offset=%32&x=a+b&flag", why);
    ASSERT_TRUE(q);
    EXPECT_EQ(q->at("partition"), "1");
    EXPECT_EQ(q->at("offset"), "2");
    EXPECT_EQ(q->at("x"), "a b");
    EXPECT_EQ(q->at("flag"), "");
    EXPECT_FALSE(parse_query("a=%4", why));
    EXPECT_NE(why.find("a=%4"), std::string::npos);
    EXPECT_EQ(split_target("/a/b?x=1").first, "/a/b");
    EXPECT_EQ(split_target("/a/b?x=1").second, "x=1");
    EXPECT_EQ(split_target("/a").second, "");
}

TEST(problem, rfc9457_fields) {
    auto p = make_problem("unknown-topic", "topic 'x' does not exist", "/v1/topics/x");
    EXPECT_EQ(p.status, 404u);
    auto r = to_reply(p);
    EXPECT_EQ(r.status, 404u);
    EXPECT_EQ(r.content_type, "application/problem+json");
    auto doc = json::parse(r.body).as_object();
    EXPECT_EQ(doc.at("type").as_string(), "urn:runnel:problem:unknown-topic");
    EXPECT_EQ(doc.at("title").as_string(), "Unknown topic");
    EXPECT_EQ(doc.at("status").as_int64(), 404);
    EXPECT_EQ(doc.at("detail").as_string(), "topic 'x' does not exist");
    EXPECT_EQ(doc.at("instance").as_string(), "/v1/topics/x");
    EXPECT_EQ(make_problem("payload-too-large", "").status, 413u);
    EXPECT_EQ(make_problem("method-not-allowed", "").status, 405u);
    EXPECT_EQ(make_problem("unauthorized", "").status, 401u);
}

} // namespace
} // namespace runnel::gateway
