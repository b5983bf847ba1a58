// GET / and GET /assets/{name}: the dashboard, served from the files embedded at build time
// (web/, see cmake/embed_files.cmake), with ETags so a browser revalidates instead of
// downloading again.

#include "gateway/assets.h"
#include "gateway/internal.h"

namespace runnel::gateway {
namespace {

std::optional<reply> serve_asset(request_ctx& ctx, std::string_view name) {
    for (const auto& a : embedded_assets()) {
        if (a.name != name) {
            continue;
        }
        reply out;
        out.content_type = std::string(a.content_type);
        out.headers.emplace_back("ETag", std::string(a.etag));
        out.headers.emplace_back("Cache-Control", "no-cache");
        if (auto inm = ctx.req.find(http::field::if_none_match); inm != ctx.req.end() && inm->value() == a.etag) {
            out.status = 304;
            return out;
        }
        out.body = std::string(a.body);
        return out;
    }
    return std::nullopt;
}

asio::awaitable<std::optional<reply>> get_index(request_ctx& ctx) {
    co_return serve_asset(ctx, "index.html");
}

asio::awaitable<std::optional<reply>> get_asset(request_ctx& ctx) {
    const auto& name = ctx.params.at("name");
    if (auto r = serve_asset(ctx, name)) {
        co_return r;
    }
    co_return to_reply(ctx.fail("not-found", fmt::format("no dashboard asset named '{}'", name)));
}

} // namespace

void add_dashboard_routes(router<route>& r) {
    // The page and its files hold no data: the API requests the page makes are checked.
    r.add("GET", "/", {&get_index, access::open()});
    r.add("GET", "/assets/{name}", {&get_asset, access::open()});
}

} // namespace runnel::gateway
