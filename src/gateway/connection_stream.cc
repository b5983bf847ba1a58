// The one place the gateway's reads and writes reach a plain or TLS stream
// (`connection_stream.h`).

#include "gateway/connection_stream.h"

#include <boost/asio/bind_executor.hpp>
#include <boost/beast/websocket/ssl.hpp>
#include <boost/beast/websocket/teardown.hpp>

namespace runnel::gateway {

connection_stream::connection_stream(boost::asio::ip::tcp::socket s)
  : _s(std::in_place_type<boost::beast::tcp_stream>, std::move(s)) {}

connection_stream::connection_stream(boost::asio::ip::tcp::socket s, boost::asio::ssl::context& ctx)
  : _s(std::in_place_type<tls_stream>, std::move(s), ctx) {}

connection_stream::executor_type connection_stream::get_executor() noexcept {
    return std::visit([](auto& s) -> executor_type { return s.get_executor(); }, _s);
}

boost::beast::tcp_stream& connection_stream::tcp() noexcept {
    if (auto* t = std::get_if<tls_stream>(&_s)) return t->next_layer();
    return std::get<boost::beast::tcp_stream>(_s);
}

void connection_stream::read_some(const buffer_list<boost::asio::mutable_buffer>& b, executor_type ex, handler done) {
    std::visit([&](auto& s) { s.async_read_some(b, boost::asio::bind_executor(std::move(ex), std::move(done))); }, _s);
}

void connection_stream::write_some(const buffer_list<boost::asio::const_buffer>& b, executor_type ex, handler done) {
    std::visit([&](auto& s) { s.async_write_some(b, boost::asio::bind_executor(std::move(ex), std::move(done))); },
               _s);
}

void connection_stream::teardown(boost::beast::role_type role, boost::system::error_code& ec) {
    using boost::beast::websocket::teardown;
    std::visit([&](auto& s) { teardown(role, s, ec); }, _s);
}

void connection_stream::async_teardown(boost::beast::role_type role, executor_type ex, teardown_handler done) {
    using boost::beast::websocket::async_teardown;
    std::visit([&](auto& s) { async_teardown(role, s, boost::asio::bind_executor(std::move(ex), std::move(done))); }, _s);
}

} // namespace runnel::gateway
