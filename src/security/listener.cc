#include "security/listener.h"

#include <algorithm>
#include <cctype>

namespace runnel::security {

std::string_view protocol_name(protocol p) noexcept {
    switch (p) {
    case protocol::plaintext:
        return "PLAINTEXT";
    case protocol::ssl:
        return "SSL";
    case protocol::sasl_plaintext:
        return "SASL_PLAINTEXT";
    case protocol::sasl_ssl:
        return "SASL_SSL";
    }
    return "?";
}

std::optional<protocol> parse_protocol(std::string_view name) noexcept {
    std::string upper(name);
    std::transform(upper.begin(), upper.end(), upper.begin(), [](unsigned char c) { return std::toupper(c); });
    for (auto p : {protocol::plaintext, protocol::ssl, protocol::sasl_plaintext, protocol::sasl_ssl}) {
        if (upper == protocol_name(p)) {
            return p;
        }
    }
    return std::nullopt;
}

namespace {

bool valid_name(std::string_view n) {
    return !n.empty() && n.size() <= 64 && std::all_of(n.begin(), n.end(), [](unsigned char c) {
        return std::isalnum(c) || c == '_' || c == '-';
    });
}

} // namespace

std::optional<listener_spec> parse_listener(std::string_view text, std::string& why) {
    auto sep = text.find("://");
    if (sep == std::string_view::npos) {
        why = "expected [NAME:]PROTOCOL://HOST:PORT, e.g. SASL_SSL://0.0.0.0:9094";
        return std::nullopt;
    }
    auto head = text.substr(0, sep);
    std::string_view name = head;
    std::string_view proto_text = head;
    if (auto colon = head.find(':'); colon != std::string_view::npos) {
        name = head.substr(0, colon);
        proto_text = head.substr(colon + 1);
    }
    auto proto = parse_protocol(proto_text);
    if (!proto) {
        why = fmt::format("unknown security protocol '{}' (PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL)", proto_text);
        return std::nullopt;
    }
    if (!valid_name(name)) {
        why = fmt::format("invalid listener name '{}' (letters, digits, '_' and '-')", name);
        return std::nullopt;
    }
    auto ep = net::parse_endpoint(text.substr(sep + 3), why, true);
    if (!ep) {
        return std::nullopt;
    }
    listener_spec s;
    s.name = std::string(name);
    std::transform(s.name.begin(), s.name.end(), s.name.begin(), [](unsigned char c) { return std::toupper(c); });
    s.proto = *proto;
    s.address = ep.value();
    return s;
}

std::optional<std::pair<std::string, net::endpoint>> parse_advertised_listener(std::string_view text, std::string& why) {
    auto sep = text.find("://");
    if (sep == std::string_view::npos || !valid_name(text.substr(0, sep))) {
        why = "expected NAME://HOST:PORT, where NAME is a listener's name";
        return std::nullopt;
    }
    auto ep = net::parse_endpoint(text.substr(sep + 3), why, false);
    if (!ep) {
        return std::nullopt;
    }
    std::string name(text.substr(0, sep));
    std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return std::toupper(c); });
    return std::pair{name, ep.value()};
}

} // namespace runnel::security
