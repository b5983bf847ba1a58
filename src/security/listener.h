#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "net/net.h"

namespace runnel::security {

/// Kafka's `security.protocol` of a listener.
enum class protocol { plaintext, ssl, sasl_plaintext, sasl_ssl };

std::string_view protocol_name(protocol p) noexcept;
std::optional<protocol> parse_protocol(std::string_view name) noexcept;
inline bool uses_tls(protocol p) noexcept { return p == protocol::ssl || p == protocol::sasl_ssl; }
inline bool uses_sasl(protocol p) noexcept { return p == protocol::sasl_plaintext || p == protocol::sasl_ssl; }

/// A `--kafka-listener` value: `[NAME:]PROTOCOL://HOST:PORT`. The name defaults to the
/// protocol's; `--kafka-advertised-listener NAME://HOST:PORT` refers to it.
struct listener_spec {
    std::string name;
    protocol proto = protocol::plaintext;
    net::endpoint address;
};

/// Parses a listener (`listen`: port 0 allowed) or an advertised address (`NAME://HOST:PORT`,
/// where the protocol part is only the name). `why` says what is wrong.
std::optional<listener_spec> parse_listener(std::string_view text, std::string& why);
std::optional<std::pair<std::string, net::endpoint>> parse_advertised_listener(std::string_view text, std::string& why);

} // namespace runnel::security
