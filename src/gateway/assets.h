#pragma once

// The dashboard's files (web/), embedded into the binary at build time by
// cmake/embed_files.cmake. Internal to the gateway.

#include <span>
#include <string_view>

namespace runnel::gateway {

struct asset {
    std::string_view name;         ///< path under /assets/ ("index.html" is also served at /)
    std::string_view content_type;
    std::string_view body;
    std::string_view etag;         ///< quoted, for ETag / If-None-Match
};

/// Every embedded file.
std::span<const asset> embedded_assets() noexcept;

} // namespace runnel::gateway
