// acl_bench: what an ACL check costs on the produce/fetch path, beside the floor it sits on.
// With B bindings (users × topics, LITERAL, plus PREFIXED patterns and a few DENYs), each
// measured in the same run:
//   - lookup:    one hash-map lookup of the topic name (what finding the topic already costs
//                every produce; the floor of any per-name check);
//   - authorize: security::acl_store::allowed for a principal, host, WRITE and the topic, the
//                call every produced topic makes (thread-local snapshot, indexed set).
// The ratio authorize / lookup says how many topic lookups one check is worth. CPU only.
// Prints a table, then one JSON document.
//
//   acl_bench [--users 1000] [--topics 100] [--prefixes 50] [--seconds 0.5] [--runs 3] [--json out.json]

#include "security/security.h"

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>
#include <unordered_map>
#include <vector>

namespace runnel::bench {
namespace {

using clock = std::chrono::steady_clock;

/// Best of `runs` of ns per call of `fn(i)` over `seconds`.
template <typename Fn>
double ns_per_call(double seconds, int runs, Fn fn) {
    double best = 1e18;
    for (int r = 0; r < runs; ++r) {
        std::size_t calls = 0;
        const auto start = clock::now();
        const auto until = start + std::chrono::duration<double>(seconds);
        while (clock::now() < until) {
            for (int k = 0; k < 1024; ++k) {
                fn(calls++);
            }
        }
        const double ns = std::chrono::duration<double, std::nano>(clock::now() - start).count();
        best = std::min(best, ns / double(calls));
    }
    return best;
}

} // namespace
} // namespace runnel::bench

int main(int argc, char** argv) {
    using namespace runnel;
    int users = 1000;
    int topics = 100;
    int prefixes = 50;
    double seconds = 0.5;
    int runs = 3;
    std::string json_path;
    CLI::App app{"Cost of an ACL check against a topic lookup"};
    app.add_option("--users", users)->check(CLI::Range(1, 1000000));
    app.add_option("--topics", topics)->check(CLI::Range(1, 100000));
    app.add_option("--prefixes", prefixes)->check(CLI::Range(0, 100000));
    app.add_option("--seconds", seconds)->check(CLI::Range(0.01, 60.0));
    app.add_option("--runs", runs)->check(CLI::Range(1, 100));
    app.add_option("--json", json_path);
    CLI11_PARSE(app, argc, argv);

    std::vector<std::string> topic_names;
    std::unordered_map<std::string, int> topic_map;
    for (int t = 0; t < topics; ++t) {
        topic_names.push_back(fmt::format("events-{}-orders", t));
        topic_map.emplace(topic_names.back(), t);
    }
    // Each user may write 1 topic literally; every tenth a prefix; a few DENYs.
    std::vector<security::acl_binding> bindings;
    for (int u = 0; u < users; ++u) {
        const auto principal = fmt::format("User:user-{}", u);
        bindings.push_back({security::resource_type::topic, topic_names[std::size_t(u % topics)],
                            security::pattern_type::literal, principal, "*", security::acl_operation::write,
                            security::acl_permission::allow});
        bindings.push_back({security::resource_type::group, fmt::format("group-{}", u), security::pattern_type::literal,
                            principal, "*", security::acl_operation::read, security::acl_permission::allow});
    }
    for (int p = 0; p < prefixes; ++p) {
        bindings.push_back({security::resource_type::topic, fmt::format("events-{}", p), security::pattern_type::prefixed,
                            fmt::format("User:user-{}", p), "*", security::acl_operation::read,
                            security::acl_permission::allow});
    }
    bindings.push_back({security::resource_type::topic, topic_names[0], security::pattern_type::literal,
                        "User:user-0", "10.0.0.1", security::acl_operation::all, security::acl_permission::deny});

    const auto dir = std::filesystem::temp_directory_path() / fmt::format("acl-bench-{}", ::getpid());
    security::acl_store store(security::acl_store::file_in(dir), {});
    std::string why;
    if (!store.load(why) || !store.add(bindings, why)) {
        fmt::print(stderr, "acl_bench: {}\n", why);
        return 1;
    }

    // The principals and topics a produce would bring, cycling so caches see many names.
    std::vector<std::string> principals;
    for (int u = 0; u < users; ++u) {
        principals.push_back(fmt::format("User:user-{}", u));
    }
    // The two are measured in turns, best of each over the runs, so a busy machine's changing
    // load falls on both alike.
    std::size_t sink = 0;
    std::size_t allowed = 0;
    double lookup = 1e18;
    double authorize = 1e18;
    for (int r = 0; r < runs; ++r) {
        lookup = std::min(lookup, bench::ns_per_call(seconds, 1, [&](std::size_t i) {
            sink += topic_map.find(topic_names[i % topic_names.size()])->second;
        }));
        authorize = std::min(authorize, bench::ns_per_call(seconds, 1, [&](std::size_t i) {
            const auto u = i % principals.size();
            allowed += store.allowed(principals[u], "127.0.0.1", security::acl_operation::write,
                                     security::resource_type::topic, topic_names[u % topic_names.size()]);
        }));
    }
    std::filesystem::remove_all(dir);

    fmt::print("{:<12} {:>10} {:>10}\n", "check", "ns/call", "x lookup");
    fmt::print("{:<12} {:>10.1f} {:>10.2f}\n", "lookup", lookup, 1.0);
    fmt::print("{:<12} {:>10.1f} {:>10.2f}\n", "authorize", authorize, authorize / lookup);
    fmt::print("({} bindings; {} checks allowed; sink {})\n", bindings.size(), allowed, sink % 10);
    const auto json = fmt::format(
      R"({{"bench":"acl","bindings":{},"users":{},"topics":{},"prefixes":{},"lookup_ns":{:.1f},"authorize_ns":{:.1f},"ratio":{:.2f}}})",
      bindings.size(), users, topics, prefixes, lookup, authorize, authorize / lookup);
    fmt::print("{}\n", json);
    if (!json_path.empty()) {
        if (auto* f = std::fopen(json_path.c_str(), "w")) {
            fmt::print(f, "{}\n", json);
            std::fclose(f);
        }
    }
    return 0;
}
