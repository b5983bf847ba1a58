#include <CLI/CLI.hpp>

#include <memory>
#include <set>

#include "app/commands.h"
#include "security/security.h"

namespace runnel::app {
namespace {

/// The flags of `runnel acl`, named as Kafka's kafka-acls.sh names them.
struct acl_options {
    std::filesystem::path data_dir = "runnel-data";
    std::vector<std::string> allow_principals;
    std::vector<std::string> deny_principals;
    std::string host = "*";
    std::vector<std::string> operations;
    std::vector<std::string> topics;
    std::vector<std::string> groups;
    std::vector<std::string> transactional_ids;
    bool cluster = false;
    std::string pattern = "literal";
    std::string principal; ///< list and remove: only this principal's
};

/// The resources the flags name, as (type, name) pairs.
std::vector<std::pair<security::resource_type, std::string>> resources_of(const acl_options& o) {
    std::vector<std::pair<security::resource_type, std::string>> out;
    for (const auto& t : o.topics) {
        out.emplace_back(security::resource_type::topic, t);
    }
    for (const auto& g : o.groups) {
        out.emplace_back(security::resource_type::group, g);
    }
    for (const auto& t : o.transactional_ids) {
        out.emplace_back(security::resource_type::transactional_id, t);
    }
    if (o.cluster) {
        out.emplace_back(security::resource_type::cluster, std::string(security::cluster_resource_name));
    }
    return out;
}

std::unique_ptr<security::acl_store> open_store(const acl_options& o, std::string_view command) {
    auto store = std::make_unique<security::acl_store>(security::acl_store::file_in(o.data_dir), security::acl_options{});
    std::string why;
    if (!store->load(why)) {
        fmt::print(stderr, "runnel acl {}: {}\n", command, why);
        return nullptr;
    }
    return store;
}

int add_acls(const acl_options& o) {
    auto resources = resources_of(o);
    if (resources.empty() || (o.allow_principals.empty() && o.deny_principals.empty()) || o.operations.empty()) {
        fmt::print(stderr, "runnel acl add: name a resource (--topic, --group, --transactional-id, --cluster), a "
                           "principal (--allow-principal, --deny-principal) and an --operation\n");
        return 2;
    }
    auto pattern = security::parse_pattern_type(o.pattern);
    std::vector<security::acl_binding> bindings;
    for (const auto& [type, name] : resources) {
        for (const auto& op_name : o.operations) {
            auto op = security::parse_acl_operation(op_name);
            if (!op) {
                fmt::print(stderr, "runnel acl add: unknown operation '{}'\n", op_name);
                return 2;
            }
            auto make = [&](const std::string& principal, security::acl_permission perm) {
                bindings.push_back({type, name, pattern.value_or(security::pattern_type::unknown), principal, o.host, *op,
                                    perm});
            };
            for (const auto& p : o.allow_principals) {
                make(p, security::acl_permission::allow);
            }
            for (const auto& p : o.deny_principals) {
                make(p, security::acl_permission::deny);
            }
        }
    }
    for (const auto& b : bindings) {
        if (auto why = b.invalid()) {
            fmt::print(stderr, "runnel acl add: {}\n", *why);
            return 2;
        }
    }
    auto store = open_store(o, "add");
    if (!store) {
        return 1;
    }
    std::string why;
    if (!store->add(bindings, why)) {
        fmt::print(stderr, "runnel acl add: {}\n", why);
        return 1;
    }
    for (const auto& b : bindings) {
        fmt::print("added: {}\n", b.to_string());
    }
    fmt::print("running servers apply them within a second\n");
    return 0;
}

/// The filters of `list` and `remove`: each named resource (with the pattern type, or every
/// pattern type when none is given), or every resource; narrowed by principal and operation.
std::optional<std::vector<security::acl_filter>> filters_of(const acl_options& o, std::string_view command,
                                                           bool pattern_given) {
    std::vector<security::acl_filter> out;
    auto pattern = pattern_given ? security::parse_pattern_type(o.pattern) : security::pattern_type::any;
    if (!pattern) {
        fmt::print(stderr, "runnel acl {}: unknown --resource-pattern-type '{}'\n", command, o.pattern);
        return std::nullopt;
    }
    auto resources = resources_of(o);
    std::vector<std::optional<security::acl_operation>> ops;
    for (const auto& op_name : o.operations) {
        auto op = security::parse_acl_operation(op_name);
        if (!op) {
            fmt::print(stderr, "runnel acl {}: unknown operation '{}'\n", command, op_name);
            return std::nullopt;
        }
        ops.push_back(*op);
    }
    if (ops.empty()) {
        ops.push_back(security::acl_operation::any);
    }
    auto add = [&](security::resource_type type, std::optional<std::string> name) {
        for (auto op : ops) {
            security::acl_filter f;
            f.type = type;
            f.name = std::move(name);
            f.pattern = *pattern;
            if (!o.principal.empty()) {
                f.principal = o.principal;
            }
            f.operation = *op;
            out.push_back(f);
        }
    };
    if (resources.empty()) {
        add(security::resource_type::any, std::nullopt);
    }
    for (const auto& [type, name] : resources) {
        add(type, name);
    }
    return out;
}

int list_acls(const acl_options& o, bool pattern_given) {
    auto filters = filters_of(o, "list", pattern_given);
    if (!filters) {
        return 2;
    }
    auto store = open_store(o, "list");
    if (!store) {
        return 1;
    }
    std::set<security::acl_binding> found;
    for (const auto& f : *filters) {
        for (auto& b : store->list(f)) {
            found.insert(std::move(b));
        }
    }
    for (const auto& b : found) {
        fmt::print("{}\t{}\t{}\t{}\t{}\t{}\t{}\n", security::name_of(b.type), security::name_of(b.pattern), b.name,
                   b.principal, b.host, security::name_of(b.operation), security::name_of(b.permission));
    }
    return 0;
}

int remove_acls(const acl_options& o, bool pattern_given) {
    if (resources_of(o).empty() && o.principal.empty()) {
        fmt::print(stderr, "runnel acl remove: name the resources (--topic, --group, --transactional-id, --cluster) "
                           "or a --principal whose ACLs to remove\n");
        return 2;
    }
    auto filters = filters_of(o, "remove", pattern_given);
    if (!filters) {
        return 2;
    }
    auto store = open_store(o, "remove");
    if (!store) {
        return 1;
    }
    std::string why;
    auto removed = store->remove(*filters, why);
    if (!removed) {
        fmt::print(stderr, "runnel acl remove: {}\n", why);
        return 1;
    }
    std::set<security::acl_binding> gone;
    for (auto& per_filter : removed.value()) {
        gone.insert(per_filter.begin(), per_filter.end());
    }
    for (const auto& b : gone) {
        fmt::print("removed: {}\n", b.to_string());
    }
    if (gone.empty()) {
        fmt::print(stderr, "runnel acl remove: no ACL matched\n");
        return 1;
    }
    return 0;
}

} // namespace

void add_acl_command(CLI::App& app, std::function<int()>& run) {
    auto opts = std::make_shared<acl_options>();
    auto* cmd = app.add_subcommand("acl", "Manage the ACLs of `serve --authorizer acl` (in the data directory)");
    cmd->require_subcommand(1);
    auto common = [&opts](CLI::App* c) {
        c->add_option("--data-dir", opts->data_dir, "The server's data directory")->capture_default_str();
        c->add_option("--topic", opts->topics, "A topic (repeatable)");
        c->add_option("--group", opts->groups, "A consumer group (repeatable)");
        c->add_option("--transactional-id", opts->transactional_ids, "A transactional id (repeatable)");
        c->add_flag("--cluster", opts->cluster, "The cluster (kafka-cluster)");
        c->add_option("--operation", opts->operations,
                      "Read, Write, Create, Delete, Alter, Describe, ClusterAction, DescribeConfigs, AlterConfigs, "
                      "IdempotentWrite or All (repeatable)");
    };
    auto* add = cmd->add_subcommand("add", "Add ALLOW or DENY ACLs for principals on resources");
    common(add);
    add->add_option("--allow-principal", opts->allow_principals, "A principal to allow, User:NAME or User:* (repeatable)");
    add->add_option("--deny-principal", opts->deny_principals, "A principal to deny (repeatable)");
    add->add_option("--host", opts->host, "The client address the ACLs apply to")->capture_default_str();
    add->add_option("--resource-pattern-type", opts->pattern, "literal or prefixed")
      ->capture_default_str()
      ->check(CLI::IsMember({"literal", "prefixed", "LITERAL", "PREFIXED"}));
    add->callback([&run, opts] { run = [opts] { return add_acls(*opts); }; });
    for (auto [name, help] : {std::pair{"list", "List the ACLs (all, or those of the resources and principal named)"},
                              std::pair{"remove", "Remove the ACLs of the resources or principal named"}}) {
        auto* c = cmd->add_subcommand(name, help);
        common(c);
        c->add_option("--principal", opts->principal, "Only this principal's ACLs");
        auto* pattern = c->add_option("--resource-pattern-type", opts->pattern,
                                      "literal, prefixed, any or match (default: any)")
                          ->check(CLI::IsMember({"literal", "prefixed", "any", "match", "LITERAL", "PREFIXED", "ANY",
                                                 "MATCH"}));
        const bool is_list = std::string_view(name) == "list";
        c->callback([&run, opts, pattern, is_list] {
            const bool given = pattern->count() > 0;
            run = [opts, given, is_list] { return is_list ? list_acls(*opts, given) : remove_acls(*opts, given); };
        });
    }
}

} // namespace runnel::app
