#pragma once

// Routing and problem answers of the gateway, free of Beast and Asio so they can be tested
// alone. Internal to the module.

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/base.h"
#include "security/acl.h"

namespace runnel::gateway {

/// An HTTP answer before it is written: status, headers and body.
struct reply {
    unsigned status = 200;
    std::string content_type = "application/json";
    std::string body;
    std::vector<std::pair<std::string, std::string>> headers;
};

/// An RFC 9457 problem: `type` is `urn:runnel:problem:<kind>`; `title` is fixed per kind;
/// `detail` says what was wrong with this request; `instance` is the request's path.
struct problem {
    unsigned status = 500;
    std::string kind;
    std::string title;
    std::string detail;
    std::string instance;
    std::vector<std::pair<std::string, std::string>> headers;
};

/// The problem of a given kind (its status and title come from the table in router.cc; an
/// unknown kind is a bug).
problem make_problem(std::string_view kind, std::string detail, std::string instance = {});
/// The problem as `application/problem+json`.
reply to_reply(const problem& p);
std::string problem_json(const problem& p);

using text::percent_decode;

/// The query string (`a=1&b=x%20y`) as a map; a repeated name keeps the last value. Fails with
/// a description of the bad part.
std::optional<std::map<std::string, std::string>> parse_query(std::string_view q, std::string& why);

/// Splits a request target into path and query (without the '?').
std::pair<std::string_view, std::string_view> split_target(std::string_view target);

/// What a route needs of the ACLs, declared beside it in the route table (docs/security.md
/// lists them): the operation and resource type Kafka would check, and where the resource's
/// name comes from. The gateway checks it in one place after authentication, before the
/// handler runs.
struct access {
    enum class source {
        open,    ///< nothing: the route serves no data (health, the OpenAPI document, /metrics, the dashboard's files)
        cluster, ///< the CLUSTER resource (`kafka-cluster`)
        path,    ///< the resource named by the path parameter `param`
        handler, ///< named in the body or in stream messages, or a list shown filtered: the handler
                 ///< checks each one through the same `authorized`
    };
    source from = source::open;
    security::acl_operation op = security::acl_operation::unknown;
    security::resource_type type = security::resource_type::unknown;
    std::string_view param;

    static constexpr access open() noexcept { return {}; }
    static constexpr access on_cluster(security::acl_operation op) noexcept {
        return {source::cluster, op, security::resource_type::cluster, {}};
    }
    static constexpr access on_path(security::acl_operation op, security::resource_type type,
                                    std::string_view param) noexcept {
        return {source::path, op, type, param};
    }
    static constexpr access in_handler(security::acl_operation op, security::resource_type type) noexcept {
        return {source::handler, op, type, {}};
    }

    /// The name of the resource the rule checks for a request whose path parameters are
    /// `params`; nothing for `open` and `handler` rules.
    std::optional<std::string_view> resource(const std::map<std::string, std::string>& params) const {
        switch (from) {
        case source::cluster:
            return security::cluster_resource_name;
        case source::path: {
            auto it = params.find(std::string(param));
            RUNNEL_ASSERT(it != params.end(), "an access rule names a parameter its route does not have");
            return std::string_view(it->second);
        }
        case source::open:
        case source::handler:
            break;
        }
        return std::nullopt;
    }
};

/// Maps (method, path) to a handler. Patterns are paths whose `{name}` segments match one
/// non-empty segment, percent-decoded into `params`. Built at start-up, then read-only, so
/// every shard may match concurrently.
template <typename Handler>
class router {
public:
    void add(std::string_view method, std::string pattern, Handler h) {
        for (auto& r : _routes) {
            if (r.pattern == pattern) {
                r.methods.emplace_back(std::string(method), std::move(h));
                return;
            }
        }
        auto& r = _routes.emplace_back();
        r.pattern = std::move(pattern);
        r.segments = split(r.pattern);
        r.methods.emplace_back(std::string(method), std::move(h));
    }

    struct match {
        enum class outcome { found, no_route, wrong_method, bad_path };
        outcome result = outcome::no_route;
        const Handler* handler = nullptr;
        std::string pattern;                      ///< the route's pattern (a metrics label)
        std::map<std::string, std::string> params;
        std::string allow;                        ///< for wrong_method: "GET, POST"
    };

    match find(std::string_view method, std::string_view path) const {
        match m;
        auto segs = split(path);
        for (const auto& r : _routes) {
            if (r.segments.size() != segs.size()) {
                continue;
            }
            std::map<std::string, std::string> params;
            bool ok = true;
            bool bad = false;
            for (std::size_t i = 0; i < segs.size() && ok; ++i) {
                const auto& p = r.segments[i];
                if (p.size() > 2 && p.front() == '{' && p.back() == '}') {
                    auto decoded = percent_decode(segs[i]);
                    if (!decoded || decoded->empty()) {
                        bad = !decoded.has_value();
                        ok = false;
                    } else {
                        params[p.substr(1, p.size() - 2)] = *decoded;
                    }
                } else if (p != segs[i]) {
                    ok = false;
                }
            }
            if (bad) {
                m.result = match::outcome::bad_path;
                return m;
            }
            if (!ok) {
                continue;
            }
            m.pattern = r.pattern;
            m.params = std::move(params);
            for (const auto& [meth, h] : r.methods) {
                if (meth == method) {
                    m.result = match::outcome::found;
                    m.handler = &h;
                    return m;
                }
            }
            m.result = match::outcome::wrong_method;
            for (const auto& [meth, h] : r.methods) {
                m.allow += m.allow.empty() ? meth : ", " + meth;
            }
            return m;
        }
        return m;
    }

    /// Every pattern with its methods, in the order added (the OpenAPI check walks these).
    std::vector<std::pair<std::string, std::vector<std::string>>> routes() const {
        std::vector<std::pair<std::string, std::vector<std::string>>> out;
        for (const auto& r : _routes) {
            auto& e = out.emplace_back(r.pattern, std::vector<std::string>{});
            for (const auto& [meth, h] : r.methods) {
                e.second.push_back(meth);
            }
        }
        return out;
    }

private:
    struct route {
        std::string pattern;
        std::vector<std::string> segments;
        std::vector<std::pair<std::string, Handler>> methods;
    };

    static std::vector<std::string> split(std::string_view path) {
        std::vector<std::string> out;
        std::size_t i = 0;
        while (i < path.size()) {
            if (path[i] == '/') {
                ++i;
                continue;
            }
            auto j = path.find('/', i);
            if (j == std::string_view::npos) {
                j = path.size();
            }
            out.emplace_back(path.substr(i, j - i));
            i = j;
        }
        // A trailing slash is a different path (GET /v1/topics/ is not GET /v1/topics).
        if (path.size() > 1 && path.back() == '/') {
            out.emplace_back();
        }
        return out;
    }

    std::vector<route> _routes;
};

} // namespace runnel::gateway
