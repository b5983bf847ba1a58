#include <map>
#include <tuple>

#include "kafka/server/handler.h"

namespace runnel::kafka {
namespace {

using security::acl_binding;
using security::acl_filter;

constexpr std::string_view no_authorizer = "No Authorizer is configured on the broker (serve --authorizer acl)";

template <typename T>
T as(int8_t v) {
    return static_cast<T>(v);
}

template <typename Wire>
acl_filter filter_of(const Wire& f) {
    return {as<security::resource_type>(f.resource_type_filter), f.resource_name_filter,
            as<security::pattern_type>(f.pattern_type_filter),  f.principal_filter,
            f.host_filter,                                       as<security::acl_operation>(f.operation),
            as<security::acl_permission>(f.permission_type)};
}

/// What CreateAcls and DeleteAcls check before their items: an authorizer, and ALTER on the
/// cluster. On refusal every result gets the error and true is returned.
template <typename Results>
bool refuse_change(const request_context& ctx, Results& results, std::string_view what) {
    int16_t code = kerr::none;
    std::string why;
    if (!ctx.config.acls) {
        code = kerr::security_disabled;
        why = no_authorizer;
    } else if (!authorize(ctx, security::acl_operation::alter, security::resource_type::cluster,
                          security::cluster_resource_name)) {
        code = kerr::cluster_authorization_failed;
        why = fmt::format("{} ACLs needs ALTER on the cluster", what);
    }
    for (auto& out : results) {
        out.error_code = code;
        out.error_message = code == kerr::none ? std::nullopt : std::optional<std::string>(why);
    }
    return code != kerr::none;
}

/// The items `convert` makes of the request's, with their indexes; an item it cannot use
/// (`invalid()` says why) gets INVALID_REQUEST and the reason in its result.
template <typename Item, typename Wire, typename Results, typename Convert>
std::pair<std::vector<Item>, std::vector<std::size_t>> valid_items(const std::vector<Wire>& wire, Results& results,
                                                                  Convert convert) {
    std::pair<std::vector<Item>, std::vector<std::size_t>> out;
    for (std::size_t i = 0; i < wire.size(); ++i) {
        Item item = convert(wire[i]);
        if (auto why = item.invalid()) {
            results[i].error_code = kerr::invalid_request;
            results[i].error_message = *why;
            continue;
        }
        out.first.push_back(std::move(item));
        out.second.push_back(i);
    }
    return out;
}

} // namespace

// DescribeAcls: the bindings the filter matches, grouped by resource pattern. Needs DESCRIBE
// on the cluster.
asio::awaitable<response_frame> handle(const request_context& ctx, proto::describe_acls_request req) {
    proto::describe_acls_response r;
    if (!ctx.config.acls) {
        r.error_code = kerr::security_disabled;
        r.error_message = std::string(no_authorizer);
        co_return respond(ctx, r);
    }
    if (!authorize(ctx, security::acl_operation::describe, security::resource_type::cluster,
                   security::cluster_resource_name)) {
        r.error_code = kerr::cluster_authorization_failed;
        r.error_message = "describing ACLs needs DESCRIBE on the cluster";
        co_return respond(ctx, r);
    }
    auto filter = filter_of(req);
    if (auto why = filter.invalid()) {
        r.error_code = kerr::invalid_request;
        r.error_message = *why;
        co_return respond(ctx, r);
    }
    std::map<std::tuple<security::resource_type, std::string, security::pattern_type>,
             std::vector<const acl_binding*>>
      by_resource;
    auto found = ctx.config.acls->list(filter);
    for (const auto& b : found) {
        by_resource[{b.type, b.name, b.pattern}].push_back(&b);
    }
    for (const auto& [key, bindings] : by_resource) {
        auto& res = r.resources.emplace_back();
        res.resource_type = static_cast<int8_t>(std::get<0>(key));
        res.resource_name = std::get<1>(key);
        res.pattern_type = static_cast<int8_t>(std::get<2>(key));
        for (const auto* b : bindings) {
            res.acls.push_back({b->principal, b->host, static_cast<int8_t>(b->operation), static_cast<int8_t>(b->permission)});
        }
    }
    co_return respond(ctx, r);
}

// CreateAcls: one result per creation, in order; invalid ones get INVALID_REQUEST and do not
// stop the others. Needs ALTER on the cluster. The valid ones are written in one change.
asio::awaitable<response_frame> handle(const request_context& ctx, proto::create_acls_request req) {
    proto::create_acls_response r;
    r.results.resize(req.creations.size());
    if (refuse_change(ctx, r.results, "creating")) {
        co_return respond(ctx, r);
    }
    auto items = valid_items<acl_binding>(req.creations, r.results, [](const auto& c) {
        return acl_binding{as<security::resource_type>(c.resource_type),
                           c.resource_name,
                           as<security::pattern_type>(c.resource_pattern_type),
                           c.principal,
                           c.host,
                           as<security::acl_operation>(c.operation),
                           as<security::acl_permission>(c.permission_type)};
    });
    auto& valid = items.first;
    auto& valid_at = items.second;
    if (!valid.empty()) {
        using change = security::acl_store::change_result;
        auto done = co_await await_callback<change>([&](std::function<void(change)> answer) {
            ctx.config.acls->add_async(std::move(valid), ctx.shard, std::move(answer));
        });
        if (!done.status) {
            for (auto i : valid_at) {
                r.results[i].error_code = kerr::unknown_server_error;
                r.results[i].error_message = done.why;
            }
        }
    }
    co_return respond(ctx, r);
}

// DeleteAcls: every binding some filter matches is removed; each filter's result lists the
// bindings it matched. Needs ALTER on the cluster.
asio::awaitable<response_frame> handle(const request_context& ctx, proto::delete_acls_request req) {
    proto::delete_acls_response r;
    r.filter_results.resize(req.filters.size());
    if (refuse_change(ctx, r.filter_results, "deleting")) {
        co_return respond(ctx, r);
    }
    auto items = valid_items<acl_filter>(req.filters, r.filter_results, [](const auto& f) { return filter_of(f); });
    auto& valid = items.first;
    auto& valid_at = items.second;
    if (!valid.empty()) {
        using change = security::acl_store::change_result;
        auto done = co_await await_callback<change>([&](std::function<void(change)> answer) {
            ctx.config.acls->remove_async(std::move(valid), ctx.shard, std::move(answer));
        });
        for (std::size_t k = 0; k < valid_at.size(); ++k) {
            auto& out = r.filter_results[valid_at[k]];
            if (!done.status) {
                out.error_code = kerr::unknown_server_error;
                out.error_message = done.why;
                continue;
            }
            for (const auto& b : done.removed[k]) {
                auto& m = out.matching_acls.emplace_back();
                m.resource_type = static_cast<int8_t>(b.type);
                m.resource_name = b.name;
                m.pattern_type = static_cast<int8_t>(b.pattern);
                m.principal = b.principal;
                m.host = b.host;
                m.operation = static_cast<int8_t>(b.operation);
                m.permission_type = static_cast<int8_t>(b.permission);
            }
        }
    }
    co_return respond(ctx, r);
}

} // namespace runnel::kafka
