#pragma once

// A gateway connection's byte stream, plain TCP or TLS over it, behind one type.

#include <array>
#include <chrono>
#include <cstddef>
#include <utility>
#include <variant>

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/beast/core/role.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>

namespace runnel::gateway {

using tls_stream = boost::beast::ssl_stream<boost::beast::tcp_stream>;

/// Up to `N` buffers of a buffer sequence, copied: what a type-erased read or write carries.
/// A read or write of some bytes may transfer less than it is given, so a longer sequence is
/// cut to its first `N` buffers (the callers loop, as `async_write` does).
template <typename Buffer, std::size_t N = 16>
struct buffer_list {
    std::array<Buffer, N> items{};
    std::size_t count = 0;

    template <typename Sequence>
    explicit buffer_list(const Sequence& s) {
        for (auto it = boost::asio::buffer_sequence_begin(s); it != boost::asio::buffer_sequence_end(s) && count < N;
             ++it) {
            items[count++] = Buffer(*it);
        }
    }
    const Buffer* begin() const noexcept { return items.data(); }
    const Buffer* end() const noexcept { return items.data() + count; }
};

/// A connection's byte stream: plain TCP, or TLS over it (`options::tls`). The HTTP server,
/// WebSocket and event-stream code above it is written once against this one type, so it is
/// compiled once rather than once per kind of stream (which doubled the gateway's compile
/// time); each read and write reaches the stream it holds in `connection_stream.cc`, with its
/// completion handler type-erased. Meets Asio's AsyncReadStream and AsyncWriteStream, and
/// Beast's WebSocket teardown (below). Used on its connection's shard only.
class connection_stream {
public:
    using executor_type = boost::asio::any_io_executor;
    using handler = boost::asio::any_completion_handler<void(boost::system::error_code, std::size_t)>;
    using teardown_handler = boost::asio::any_completion_handler<void(boost::system::error_code)>;

    /// Plain TCP over `s`.
    explicit connection_stream(boost::asio::ip::tcp::socket s);
    /// TLS over `s`, with the context the connection keeps (the handshake is the caller's).
    connection_stream(boost::asio::ip::tcp::socket s, boost::asio::ssl::context& ctx);

    executor_type get_executor() noexcept;

    /// The TCP layer under either kind: its socket and its read and write deadline.
    boost::beast::tcp_stream& tcp() noexcept;
    boost::asio::ip::tcp::socket& socket() noexcept { return tcp().socket(); }
    void expires_after(std::chrono::steady_clock::duration d) { tcp().expires_after(d); }
    void expires_never() { tcp().expires_never(); }
    /// The TLS stream, or null over plain TCP.
    tls_stream* tls() noexcept { return std::get_if<tls_stream>(&_s); }

    template <typename MutableBufferSequence, typename Token>
    auto async_read_some(const MutableBufferSequence& buffers, Token&& token) {
        return boost::asio::async_initiate<Token, void(boost::system::error_code, std::size_t)>(
          [this](auto done, const buffer_list<boost::asio::mutable_buffer>& b) {
              auto ex = executor_of(done);
              read_some(b, std::move(ex), handler(std::move(done)));
          },
          token, buffer_list<boost::asio::mutable_buffer>(buffers));
    }

    template <typename ConstBufferSequence, typename Token>
    auto async_write_some(const ConstBufferSequence& buffers, Token&& token) {
        return boost::asio::async_initiate<Token, void(boost::system::error_code, std::size_t)>(
          [this](auto done, const buffer_list<boost::asio::const_buffer>& b) {
              auto ex = executor_of(done);
              write_some(b, std::move(ex), handler(std::move(done)));
          },
          token, buffer_list<boost::asio::const_buffer>(buffers));
    }

    /// A WebSocket's closing of its stream (Beast's teardown), for either kind.
    void teardown(boost::beast::role_type role, boost::system::error_code& ec);
    void async_teardown(boost::beast::role_type role, executor_type ex, teardown_handler done);

    /// The executor `done` completes on (the stream's when it names none), taken before its
    /// type is erased: the erased handler's own executor type cannot be asked not to block
    /// (Asio 1.81), which Beast's operations ask of it when they post a completion.
    template <typename Handler>
    executor_type executor_of(const Handler& done) noexcept {
        return boost::asio::get_associated_executor(done, get_executor());
    }

private:
    void read_some(const buffer_list<boost::asio::mutable_buffer>& b, executor_type ex, handler done);
    void write_some(const buffer_list<boost::asio::const_buffer>& b, executor_type ex, handler done);

    std::variant<boost::beast::tcp_stream, tls_stream> _s;
};

/// Beast's closing of a `connection_stream` (a WebSocket closes its socket on a failure or a
/// timeout), found by argument-dependent lookup.
inline void beast_close_socket(connection_stream& s) {
    boost::system::error_code ec;
    s.socket().close(ec);
}

/// Beast's WebSocket teardown of a `connection_stream`, found by argument-dependent lookup.
inline void teardown(boost::beast::role_type role, connection_stream& s, boost::system::error_code& ec) {
    s.teardown(role, ec);
}

template <typename TeardownHandler>
void async_teardown(boost::beast::role_type role, connection_stream& s, TeardownHandler&& done) {
    auto ex = s.executor_of(done);
    s.async_teardown(role, std::move(ex), connection_stream::teardown_handler(std::forward<TeardownHandler>(done)));
}

} // namespace runnel::gateway
