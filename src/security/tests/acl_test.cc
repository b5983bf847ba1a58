#include <gtest/gtest.h>

#include <fstream>

#include "security/security.h"
#include "security/tests/temp_dir.h"

namespace runnel::security {
namespace {

acl_binding allow(std::string principal, acl_operation op, resource_type type, std::string name,
                  pattern_type pattern = pattern_type::literal, std::string host = "*") {
    return {type, std::move(name), pattern, std::move(principal), std::move(host), op, acl_permission::allow};
}

acl_binding deny(std::string principal, acl_operation op, resource_type type, std::string name,
                 pattern_type pattern = pattern_type::literal, std::string host = "*") {
    auto b = allow(std::move(principal), op, type, std::move(name), pattern, std::move(host));
    b.permission = acl_permission::deny;
    return b;
}

constexpr auto topic = resource_type::topic;
constexpr auto group = resource_type::group;

TEST(acl_set, literal_allow_is_per_principal_operation_and_name) {
    acl_set s({allow("User:alice", acl_operation::write, topic, "orders")});
    acl_options o;
    EXPECT_TRUE(s.allowed(o, "User:alice", "10.0.0.1", acl_operation::write, topic, "orders"));
    EXPECT_FALSE(s.allowed(o, "User:bob", "10.0.0.1", acl_operation::write, topic, "orders"));
    EXPECT_FALSE(s.allowed(o, "User:alice", "10.0.0.1", acl_operation::read, topic, "orders"));
    EXPECT_FALSE(s.allowed(o, "User:alice", "10.0.0.1", acl_operation::write, topic, "orders2"));
    EXPECT_FALSE(s.allowed(o, "User:alice", "10.0.0.1", acl_operation::write, group, "orders"));
}

TEST(acl_set, implications_follow_kafka) {
    acl_set s({allow("User:a", acl_operation::read, topic, "t"), allow("User:b", acl_operation::alter_configs, topic, "t"),
               allow("User:c", acl_operation::all, topic, "t"), allow("User:d", acl_operation::describe, topic, "t")});
    acl_options o;
    EXPECT_TRUE(s.allowed(o, "User:a", "h", acl_operation::describe, topic, "t"));
    EXPECT_FALSE(s.allowed(o, "User:a", "h", acl_operation::describe_configs, topic, "t"));
    EXPECT_TRUE(s.allowed(o, "User:b", "h", acl_operation::describe_configs, topic, "t"));
    EXPECT_FALSE(s.allowed(o, "User:b", "h", acl_operation::describe, topic, "t"));
    EXPECT_TRUE(s.allowed(o, "User:c", "h", acl_operation::remove, topic, "t"));
    EXPECT_TRUE(s.allowed(o, "User:c", "h", acl_operation::idempotent_write, topic, "t"));
    // DESCRIBE implies nothing else.
    EXPECT_FALSE(s.allowed(o, "User:d", "h", acl_operation::read, topic, "t"));
}

TEST(acl_set, deny_wins_over_allow_but_only_for_its_operation) {
    acl_set s({allow("User:*", acl_operation::all, topic, "*"), deny("User:eve", acl_operation::write, topic, "secret"),
               deny("User:mallory", acl_operation::all, topic, "secret", pattern_type::literal, "10.0.0.9")});
    acl_options o;
    EXPECT_TRUE(s.allowed(o, "User:eve", "h", acl_operation::write, topic, "public"));
    EXPECT_FALSE(s.allowed(o, "User:eve", "h", acl_operation::write, topic, "secret"));
    EXPECT_TRUE(s.allowed(o, "User:eve", "h", acl_operation::read, topic, "secret"));
    // A DENY on WRITE does not deny DESCRIBE, which WRITE implies only for ALLOW.
    EXPECT_TRUE(s.allowed(o, "User:eve", "h", acl_operation::describe, topic, "secret"));
    EXPECT_FALSE(s.allowed(o, "User:mallory", "10.0.0.9", acl_operation::describe, topic, "secret"));
    EXPECT_TRUE(s.allowed(o, "User:mallory", "10.0.0.8", acl_operation::describe, topic, "secret"));
}

TEST(acl_set, prefixed_patterns_and_wildcards) {
    acl_set s({allow("User:app", acl_operation::read, topic, "sales-", pattern_type::prefixed),
               allow("User:app", acl_operation::write, topic, "sales-eu-", pattern_type::prefixed),
               deny("User:app", acl_operation::read, topic, "sales-eu-secret", pattern_type::prefixed),
               allow("User:ops", acl_operation::describe, group, "*")});
    acl_options o;
    EXPECT_TRUE(s.allowed(o, "User:app", "h", acl_operation::read, topic, "sales-us"));
    EXPECT_TRUE(s.allowed(o, "User:app", "h", acl_operation::read, topic, "sales-"));
    EXPECT_FALSE(s.allowed(o, "User:app", "h", acl_operation::read, topic, "sales"));
    EXPECT_FALSE(s.allowed(o, "User:app", "h", acl_operation::write, topic, "sales-us"));
    EXPECT_TRUE(s.allowed(o, "User:app", "h", acl_operation::write, topic, "sales-eu-1"));
    EXPECT_FALSE(s.allowed(o, "User:app", "h", acl_operation::read, topic, "sales-eu-secret-2"));
    EXPECT_TRUE(s.allowed(o, "User:ops", "h", acl_operation::describe, group, "anything"));
    // The literal "*" is a wildcard; a prefixed "sal" is not "sales-".
    EXPECT_FALSE(s.allowed(o, "User:ops", "h", acl_operation::describe, topic, "anything"));
}

TEST(acl_set, super_users_and_resources_without_acls) {
    acl_set s({allow("User:alice", acl_operation::read, topic, "t")});
    acl_options o;
    o.super_users = {"User:admin", "User:ops"};
    EXPECT_TRUE(s.allowed(o, "User:admin", "h", acl_operation::remove, topic, "t"));
    EXPECT_TRUE(s.allowed(o, "User:ops", "h", acl_operation::alter, resource_type::cluster, "kafka-cluster"));
    EXPECT_FALSE(s.allowed(o, "User:alice", "h", acl_operation::read, topic, "untouched"));
    o.allow_everyone_if_no_acl_found = true;
    EXPECT_TRUE(s.allowed(o, "User:alice", "h", acl_operation::read, topic, "untouched"));
    // A resource some binding names is decided by its bindings, whoever they name.
    EXPECT_FALSE(s.allowed(o, "User:bob", "h", acl_operation::read, topic, "t"));
}

TEST(acl_binding, invalid_bindings_say_why) {
    auto ok = allow("User:a", acl_operation::read, topic, "t");
    EXPECT_FALSE(ok.invalid());
    auto b = ok;
    b.principal = "alice";
    EXPECT_TRUE(b.invalid());
    b = ok;
    b.type = resource_type::cluster;
    EXPECT_TRUE(b.invalid());
    b.name = "kafka-cluster";
    EXPECT_FALSE(b.invalid());
    b = ok;
    b.operation = acl_operation::any;
    EXPECT_TRUE(b.invalid());
    b = ok;
    b.permission = acl_permission::unknown;
    EXPECT_TRUE(b.invalid());
    b = ok;
    b.pattern = pattern_type::match;
    EXPECT_TRUE(b.invalid());
    b = ok;
    b.type = resource_type::any;
    EXPECT_TRUE(b.invalid());
}

TEST(acl_filter, any_match_and_exact_patterns) {
    auto lit = allow("User:a", acl_operation::read, topic, "orders");
    auto wild = allow("User:a", acl_operation::read, topic, "*");
    auto pre = allow("User:b", acl_operation::write, topic, "ord", pattern_type::prefixed);
    auto grp = allow("User:a", acl_operation::read, group, "orders");
    acl_filter any;
    for (const auto& b : {lit, wild, pre, grp}) {
        EXPECT_TRUE(any.matches(b));
    }
    acl_filter match{topic, "orders", pattern_type::match, {}, {}};
    EXPECT_TRUE(match.matches(lit));
    EXPECT_TRUE(match.matches(wild));
    EXPECT_TRUE(match.matches(pre));
    EXPECT_FALSE(match.matches(grp));
    acl_filter literal{topic, "orders", pattern_type::literal, {}, {}};
    EXPECT_TRUE(literal.matches(lit));
    EXPECT_FALSE(literal.matches(wild));
    EXPECT_FALSE(literal.matches(pre));
    acl_filter by_name{resource_type::any, "orders", pattern_type::any, {}, {}};
    EXPECT_TRUE(by_name.matches(lit));
    EXPECT_TRUE(by_name.matches(grp));
    EXPECT_FALSE(by_name.matches(pre));
    acl_filter who;
    who.principal = "User:b";
    who.operation = acl_operation::write;
    EXPECT_TRUE(who.matches(pre));
    EXPECT_FALSE(who.matches(lit));
    acl_filter bad;
    bad.type = resource_type::unknown;
    EXPECT_TRUE(bad.invalid());
    EXPECT_FALSE(any.invalid());
}

TEST(acl_names, round_trip_and_lenient_parsing) {
    EXPECT_EQ(parse_resource_type("transactional-id"), resource_type::transactional_id);
    EXPECT_EQ(parse_acl_operation("describe_configs"), acl_operation::describe_configs);
    EXPECT_EQ(parse_acl_operation("Delete"), acl_operation::remove);
    EXPECT_EQ(name_of(acl_operation::remove), "DELETE");
    EXPECT_EQ(parse_pattern_type("prefixed"), pattern_type::prefixed);
    EXPECT_EQ(parse_acl_permission("deny"), acl_permission::deny);
    EXPECT_FALSE(parse_acl_operation("fly"));
}

using testing::temp_dir;

TEST(acl_store, changes_persist_and_odd_names_survive) {
    temp_dir dir;
    const auto file = acl_store::file_in(dir.path);
    std::string why;
    {
        acl_store s(file, {});
        ASSERT_TRUE(s.load(why)) << why;
        EXPECT_FALSE(s.allowed("User:a", "h", acl_operation::read, group, "g\tweird%\n"));
        ASSERT_TRUE(s.add({allow("User:a", acl_operation::read, group, "g\tweird%\n"),
                           allow("User:a", acl_operation::write, topic, "t"), allow("User:a", acl_operation::write, topic, "t")},
                          why))
          << why;
        EXPECT_TRUE(s.allowed("User:a", "h", acl_operation::read, group, "g\tweird%\n"));
        EXPECT_EQ(s.list({}).size(), 2u);
    }
    acl_store again(file, {});
    ASSERT_TRUE(again.load(why)) << why;
    EXPECT_TRUE(again.allowed("User:a", "h", acl_operation::read, group, "g\tweird%\n"));
    acl_filter writes;
    writes.operation = acl_operation::write;
    auto removed = again.remove({writes, writes}, why);
    ASSERT_TRUE(removed) << why;
    ASSERT_EQ(removed.value().size(), 2u);
    EXPECT_EQ(removed.value()[0].size(), 1u);
    EXPECT_FALSE(again.allowed("User:a", "h", acl_operation::write, topic, "t"));
    EXPECT_EQ(again.list({}).size(), 1u);
}

TEST(acl_store, refresh_sees_another_writer_and_keeps_the_old_set_on_a_bad_file) {
    temp_dir dir;
    const auto file = acl_store::file_in(dir.path);
    std::string why;
    acl_store server(file, {});
    ASSERT_TRUE(server.load(why)) << why;
    acl_store cli(file, {});
    ASSERT_TRUE(cli.load(why)) << why;
    ASSERT_TRUE(cli.add({allow("User:a", acl_operation::read, topic, "t")}, why)) << why;
    server.refresh();
    EXPECT_TRUE(server.allowed("User:a", "h", acl_operation::read, topic, "t"));
    {
        std::ofstream out(file, std::ios::app);
        out << "TOPIC\tLITERAL\tonly-three-fields\n";
    }
    server.refresh();
    EXPECT_TRUE(server.allowed("User:a", "h", acl_operation::read, topic, "t"));
    acl_store fresh(file, {});
    EXPECT_FALSE(fresh.load(why));
    EXPECT_NE(why.find("line"), std::string::npos);
}

TEST(acl_store, asynchronous_changes_answer_on_the_callers_executor) {
    temp_dir dir;
    std::string why;
    acl_store s(acl_store::file_in(dir.path), {});
    ASSERT_TRUE(s.load(why)) << why;
    manual_executor ex;
    bool added = false;
    s.add_async({allow("User:a", acl_operation::read, topic, "t")}, ex, [&](acl_store::change_result r) {
        EXPECT_TRUE(r.status);
        added = true;
    });
    ASSERT_TRUE(ex.run_until([&] { return added; }));
    EXPECT_TRUE(s.allowed("User:a", "h", acl_operation::read, topic, "t"));
    std::optional<acl_store::change_result> removed;
    s.remove_async({acl_filter{}}, ex, [&](acl_store::change_result r) { removed = std::move(r); });
    ASSERT_TRUE(ex.run_until([&] { return removed.has_value(); }));
    ASSERT_EQ(removed->removed.size(), 1u);
    EXPECT_EQ(removed->removed[0].size(), 1u);
    EXPECT_FALSE(s.allowed("User:a", "h", acl_operation::read, topic, "t"));
}

/// Allows what is named "ok".
class names_ok final : public authorizer {
public:
    bool allowed(std::string_view, std::string_view, acl_operation, resource_type, std::string_view name) const override {
        return name == "ok";
    }
};

TEST(authz_audit, counts_allowed_and_denied_and_leaves_probes_out) {
    auto& reg = metrics::default_registry();
    auto& denied = reg.counters("runnel_authz_denied_total", "", {"resource_type", "operation"}).with({"TOPIC", "WRITE"});
    auto& allowed = reg.counters("runnel_authz_allowed_total", "", {"resource_type"}).with({"TOPIC"});
    const auto denied0 = denied.value();
    const auto allowed0 = allowed.value();
    names_ok acls;
    auto& log = logging::get("security");
    int contexts = 0;
    auto context = [&] {
        ++contexts;
        return std::string("test");
    };
    EXPECT_TRUE(authorize_audited(acls, {"User:a", "127.0.0.1", acl_operation::write, topic, "ok"}, true, log, context));
    EXPECT_FALSE(authorize_audited(acls, {"User:a", "127.0.0.1", acl_operation::write, topic, "no"}, true, log, context));
    EXPECT_FALSE(authorize_audited(acls, {"User:a", "127.0.0.1", acl_operation::write, topic, "no"}, false, log, context));
    EXPECT_EQ(allowed.value(), allowed0 + 1);
    EXPECT_EQ(denied.value(), denied0 + 1); // the probe is not a refusal
    EXPECT_EQ(contexts, 1);                 // formatted only for the recorded denial
    EXPECT_EQ(denial_text({"User:bob", "h", acl_operation::read, topic, "orders"}),
              "User:bob is not authorized to READ TOPIC 'orders'");
}

} // namespace
} // namespace runnel::security
