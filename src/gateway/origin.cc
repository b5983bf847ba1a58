#include "gateway/origin.h"
#include "base/text.h"

#include <algorithm>
#include <cctype>

#include <fmt/format.h>

namespace runnel::gateway {
namespace {

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
}

/// "name:port" → "name"; "[::1]:8080" → "[::1]"; a name without port stays.
std::string_view without_port(std::string_view host) {
    if (host.empty()) {
        return host;
    }
    auto colon = host.rfind(':');
    if (colon == std::string_view::npos || (host.front() == '[' && host.find(']') > colon)) {
        return host;
    }
    return host.substr(0, colon);
}

bool contains(const std::vector<std::string>& v, std::string_view s) {
    return std::find(v.begin(), v.end(), s) != v.end();
}

} // namespace

origin_policy::origin_policy(std::string_view bound_host, uint16_t port, std::vector<std::string> allowed_hosts,
                             std::vector<std::string> allowed_origins) {
    const auto bound = text::to_lower(bound_host);
    const bool wildcard = bound == "0.0.0.0" || bound == "::" || bound == "[::]" || bound.empty();
    _check_host = !wildcard || !allowed_hosts.empty();
    const bool v6 = bound.find(':') != std::string::npos && bound.front() != '[';
    std::vector<std::string> names{v6 ? "[" + bound + "]" : bound, "localhost", "127.0.0.1", "[::1]"};
    for (const auto& n : names) {
        _hosts.push_back(fmt::format("{}:{}", n, port));
        if (port == 80) _hosts.push_back(n); // browsers leave out the default port
    }
    for (const auto& h : allowed_hosts) {
        auto t = text::to_lower(trim(h));
        if (t.empty()) continue;
        if (without_port(t) == t) _any_port.push_back(t);
        else _hosts.push_back(t);
    }
    for (const auto& o : allowed_origins) {
        auto t = text::to_lower(trim(o));
        while (!t.empty() && t.back() == '/') t.pop_back();
        if (!t.empty()) _origins.push_back(t);
    }
}

std::optional<std::string> origin_policy::check_host(std::optional<std::string_view> host) const {
    if (!_check_host || !host) return std::nullopt;
    const auto h = text::to_lower(trim(*host));
    if (contains(_hosts, h) || contains(_any_port, without_port(h))) return std::nullopt;
    return fmt::format("this server does not answer to the host name '{}' (allow it with --http-allowed-hosts)", h);
}

std::optional<std::string> origin_policy::check_origin(std::optional<std::string_view> origin,
                                                       std::optional<std::string_view> host) const {
    if (!origin) return std::nullopt;
    auto o = text::to_lower(trim(*origin));
    while (!o.empty() && o.back() == '/') o.pop_back();
    if (host) {
        const auto h = text::to_lower(trim(*host));
        if (!h.empty() && (o == "http://" + h || o == "https://" + h)) return std::nullopt;
    }
    if (contains(_origins, o)) return std::nullopt;
    return fmt::format("requests from the origin '{}' are refused: only this server's own pages and "
                       "--http-allowed-origins may send them", o);
}

std::string media_type(std::string_view content_type) {
    auto semi = content_type.find(';');
    return text::to_lower(trim(content_type.substr(0, semi)));
}

} // namespace runnel::gateway
