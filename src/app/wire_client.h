#pragma once

// A direct Kafka connection through Runnel's own protocol codec, for requests the linked
// librdkafka cannot send (IncrementalAlterConfigs arrived in librdkafka 2.2; Debian bookworm
// ships 2.0.2). Included only by the client command that needs it.

#include "app/client.h"
#include "kafka/protocol/protocol.h"

#include <fmt/format.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace runnel::app {

/// One blocking PLAINTEXT connection to one broker, for a handful of request/response pairs.
///
/// Opened by the command's thread and used only there; every read and write is bounded by the
/// timeout given at connect. Learns the broker's api versions (ApiVersions v0) on first need.
/// Failures are `command_error`s (exit code 1) naming the broker.
class wire_connection {
public:
    wire_connection(std::string host, int port, std::chrono::milliseconds timeout);
    ~wire_connection();
    wire_connection(const wire_connection&) = delete;
    wire_connection& operator=(const wire_connection&) = delete;

    /// The highest version of `key` that both the broker and Runnel's codec speak, or
    /// nullopt when they share none.
    std::optional<int16_t> version_for(kafka::protocol::api_key key);

    /// Sends `req` at `version` and decodes the matching response.
    template <typename Response, typename Request>
    Response call(const Request& req, int16_t version) {
        kafka::protocol::writer w;
        kafka::protocol::request_header h;
        h.request_api_key = static_cast<int16_t>(Request::api);
        h.request_api_version = version;
        h.correlation_id = ++_correlation;
        h.client_id = "runnel-cli";
        kafka::protocol::write_request_frame(w, h, req);
        auto frame = exchange(w.span());
        kafka::protocol::reader r(frame);
        auto header = kafka::protocol::parse_response_header(r, h.request_api_key, version);
        Response resp;
        if (!header || header.value().correlation_id != h.correlation_id ||
            !resp.decode(r, version)) {
            throw failure(fmt::format("broker {}:{} sent a malformed answer to api {} v{}", _host,
                                      _port, h.request_api_key, version));
        }
        return resp;
    }

    std::string address() const { return fmt::format("{}:{}", _host, _port); }

private:
    /// Writes one request frame and reads one response frame (without its size prefix).
    std::vector<std::byte> exchange(std::span<const std::byte> frame);

    std::string _host;
    int _port;
    std::chrono::milliseconds _timeout;
    int _fd = -1;
    int32_t _correlation = 0;
    std::optional<kafka::protocol::api_versions_response> _versions;
};

} // namespace runnel::app
