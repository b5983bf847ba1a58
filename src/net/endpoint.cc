#include "net/endpoint.h"

#include <charconv>

#include <boost/asio/ip/address.hpp>

namespace runnel::net {

std::string endpoint::to_string() const {
    return host.find(':') != std::string::npos ? fmt::format("[{}]:{}", host, port)
                                               : fmt::format("{}:{}", host, port);
}

result<endpoint> parse_endpoint(std::string_view text, std::string& why, bool listen) {
    auto colon = text.rfind(':');
    if (colon == std::string_view::npos) {
        why = "expected HOST:PORT";
        return std::make_error_code(std::errc::invalid_argument);
    }
    auto host = text.substr(0, colon);
    auto port_text = text.substr(colon + 1);
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
        host = host.substr(1, host.size() - 2);
    } else if (host.find(':') != std::string_view::npos) {
        why = "an IPv6 host needs brackets, as in [::1]:9092";
        return std::make_error_code(std::errc::invalid_argument);
    }
    if (host.empty()) {
        why = "the host is empty";
        return std::make_error_code(std::errc::invalid_argument);
    }
    unsigned port = 0;
    auto [end, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
    if (ec != std::errc() || end != port_text.data() + port_text.size() || (port == 0 && !listen) || port > 65535) {
        why = listen ? "the port must be a number from 0 (any free port) to 65535"
                     : "the port must be a number from 1 to 65535";
        return std::make_error_code(std::errc::invalid_argument);
    }
    return endpoint{std::string(host), static_cast<uint16_t>(port)};
}

bool is_loopback(const std::string& host) {
    if (host == "localhost") {
        return true;
    }
    boost::system::error_code ec;
    auto a = boost::asio::ip::make_address(host, ec);
    return !ec && a.is_loopback();
}

} // namespace runnel::net
