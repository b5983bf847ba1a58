#include "security/tls.h"

#include <boost/asio/ssl/context.hpp>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

namespace runnel::security {

namespace ssl = boost::asio::ssl;

std::optional<client_auth> parse_client_auth(std::string_view text) noexcept {
    if (text == "none") {
        return client_auth::none;
    }
    if (text == "requested") {
        return client_auth::requested;
    }
    if (text == "required") {
        return client_auth::required;
    }
    return std::nullopt;
}

tls_server_context::tls_server_context(tls_config config) : _config(std::move(config)) {}
tls_server_context::~tls_server_context() = default;

result<void> tls_server_context::load(std::string& why) {
    auto ctx = std::make_shared<ssl::context>(ssl::context::tls_server);
    boost::system::error_code ec;
    ctx->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 | ssl::context::no_sslv3
                       | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1 | ssl::context::single_dh_use,
                     ec);
    SSL_CTX_set_min_proto_version(ctx->native_handle(), TLS1_2_VERSION);
    auto step = [&](std::string_view what, const std::filesystem::path& file, auto&& call) {
        if (ec) {
            return;
        }
        call();
        if (ec) {
            why = fmt::format("cannot load the {} {}: {}", what, file.string(), ec.message());
        }
    };
    step("certificate chain", _config.cert_file, [&] { ctx->use_certificate_chain_file(_config.cert_file.string(), ec); });
    step("private key", _config.key_file, [&] { ctx->use_private_key_file(_config.key_file.string(), ssl::context::pem, ec); });
    if (!ec && SSL_CTX_check_private_key(ctx->native_handle()) != 1) {
        why = fmt::format("the private key {} does not belong to the certificate {}", _config.key_file.string(),
                          _config.cert_file.string());
        return std::make_error_code(std::errc::invalid_argument);
    }
    if (!_config.ca_file.empty()) {
        step("CA file", _config.ca_file, [&] { ctx->load_verify_file(_config.ca_file.string(), ec); });
        if (!ec) {
            // Names of the accepted CAs in the CertificateRequest, so clients pick the right cert.
            if (auto* names = SSL_load_client_CA_file(_config.ca_file.string().c_str())) {
                SSL_CTX_set_client_CA_list(ctx->native_handle(), names);
            }
        }
    }
    if (ec) {
        return std::error_code(ec.value(), std::system_category());
    }
    switch (_config.auth) {
    case client_auth::none:
        ctx->set_verify_mode(ssl::verify_none, ec);
        break;
    case client_auth::requested:
        ctx->set_verify_mode(ssl::verify_peer, ec);
        break;
    case client_auth::required:
        ctx->set_verify_mode(ssl::verify_peer | ssl::verify_fail_if_no_peer_cert, ec);
        break;
    }
    std::lock_guard lock(_mu);
    _current = std::move(ctx);
    return outcome::success();
}

std::shared_ptr<ssl::context> tls_server_context::current() const {
    std::lock_guard lock(_mu);
    return _current;
}

std::optional<std::string> peer_subject(ssl_st* s) {
    X509* cert = SSL_get1_peer_certificate(s);
    if (cert == nullptr) {
        return std::nullopt;
    }
    std::string out;
    if (BIO* bio = BIO_new(BIO_s_mem())) {
        X509_NAME_print_ex(bio, X509_get_subject_name(cert), 0, XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB);
        char* data = nullptr;
        long len = BIO_get_mem_data(bio, &data);
        if (len > 0 && len < 16384) {
            out.assign(data, static_cast<std::size_t>(len));
        }
        BIO_free(bio);
    }
    X509_free(cert);
    return out;
}

std::string last_tls_error() {
    unsigned long e = ERR_peek_last_error();
    ERR_clear_error();
    if (e == 0) {
        return "no OpenSSL error";
    }
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    return buf;
}

} // namespace runnel::security
