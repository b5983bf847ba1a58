#pragma once

#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "base/base.h"

namespace boost::asio::ssl {
class context;
} // namespace boost::asio::ssl
struct ssl_st;

namespace runnel::security {

/// Whether a TLS listener asks clients for a certificate (Kafka's `ssl.client.auth`).
enum class client_auth { none, requested, required };
std::optional<client_auth> parse_client_auth(std::string_view text) noexcept;

struct tls_config {
    std::filesystem::path cert_file; ///< PEM certificate chain of the server
    std::filesystem::path key_file;  ///< PEM private key
    std::filesystem::path ca_file;   ///< PEM CAs that client certificates must chain to
    client_auth auth = client_auth::none;
};

/// The server side TLS settings of a listener: TLS 1.2 and newer only, the certificate and
/// key, and the CAs trusted for client certificates.
///
/// `load` builds a new OpenSSL context from the files; the connections accepted afterwards use
/// it, while open ones keep the one they started with (SIGHUP rotates certificates this way).
/// A failed reload keeps the previous context. Thread-safe; Asio's SSL types stay in `.cc`
/// files that include `<boost/asio/ssl.hpp>` themselves.
class tls_server_context {
public:
    explicit tls_server_context(tls_config config);
    ~tls_server_context();

    result<void> load(std::string& why);
    std::shared_ptr<boost::asio::ssl::context> current() const;
    const tls_config& config() const noexcept { return _config; }

private:
    tls_config _config;
    mutable std::mutex _mu;
    std::shared_ptr<boost::asio::ssl::context> _current;
};

/// The subject of the verified peer certificate of `ssl` in RFC 2253 form
/// ("CN=app,OU=eng,O=corp"); nullopt when the client sent none.
std::optional<std::string> peer_subject(ssl_st* ssl);

/// The last OpenSSL error of this thread as text, for a failed handshake's log line.
std::string last_tls_error();

} // namespace runnel::security
