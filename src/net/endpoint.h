#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "base/base.h"

namespace runnel::net {

/// A listen or connect address as users write it: `HOST:PORT`, `[v6]:PORT`.
struct endpoint {
    std::string host;
    uint16_t port = 0;

    std::string to_string() const;
};

/// Parses `HOST:PORT`; the error message says what is wrong with the text. Port 0 (any free
/// port) is accepted only for an address to listen on.
result<endpoint> parse_endpoint(std::string_view text, std::string& why, bool listen = false);

/// Whether `host` is a loopback address (127.0.0.0/8, ::1) or "localhost": a listener bound
/// there cannot be reached from another machine.
bool is_loopback(const std::string& host);

} // namespace runnel::net
