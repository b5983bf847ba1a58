#pragma once

// Which browsers may talk to the gateway: the Host and Origin checks that keep web pages of
// other sites from driving the API on a loopback port (cross-site requests and DNS
// rebinding), and the Content-Type a body must declare. Free of Beast and Asio; internal.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace runnel::gateway {

/// The names a request may address the server by (Host) and the pages that may send it
/// state-changing or streaming requests (Origin). Built once at start from the bound address
/// and the operator's lists, then read-only, so every shard may consult it.
///
/// Host: the bound address with its port, `localhost`, `127.0.0.1` and `[::1]` with the
/// port, and every name in `allowed_hosts` (`name` for any port, or `name:port`). A server
/// bound to a wildcard address (0.0.0.0, ::) is reached by names it cannot know, so there
/// Host is checked only when `allowed_hosts` is given. A request without Host (HTTP/1.0
/// tools) passes: browsers always send one.
///
/// Origin: absent (not a browser, or a same-origin GET) passes; otherwise it must be the
/// server's own origin as the request addressed it (`http://` or `https://` and the Host
/// header) or one of `allowed_origins` (`scheme://host[:port]`, compared without case).
class origin_policy {
public:
    origin_policy() = default;
    origin_policy(std::string_view bound_host, uint16_t port, std::vector<std::string> allowed_hosts,
                  std::vector<std::string> allowed_origins);

    /// Nullopt when `host` (the Host header, nullopt when absent) names this server; else why not.
    std::optional<std::string> check_host(std::optional<std::string_view> host) const;
    /// Nullopt when a request from `origin` (nullopt when absent) that addressed `host` may
    /// proceed; else why not.
    std::optional<std::string> check_origin(std::optional<std::string_view> origin,
                                            std::optional<std::string_view> host) const;

private:
    bool _check_host = true;
    std::vector<std::string> _hosts;      ///< lower case, with port
    std::vector<std::string> _any_port;   ///< lower case names allowed on any port
    std::vector<std::string> _origins;    ///< lower case, no trailing slash
};

/// The media type of a Content-Type value: lower case, parameters (`; charset=…`) and spaces
/// dropped.
std::string media_type(std::string_view content_type);

} // namespace runnel::gateway
