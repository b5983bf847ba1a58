#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>

#include <map>

#include "gateway/internal.h"

namespace runnel::gateway {

const char* errc_message(errc e) noexcept {
    switch (e) {
    case errc::success:
        return "success";
    case errc::token_required:
        return "authentication is required when the HTTP listener is not on a loopback address (--http-token, "
               "--http-basic-auth or --jwks-file; or --allow-insecure-network)";
    case errc::bind_failed:
        return "cannot listen on the HTTP address";
    }
    return "unknown gateway error";
}

namespace {

spdlog::logger& lg() { return logging::get("gateway"); }

gateway_metrics register_metrics(metrics::registry& r) {
    gateway_metrics m{};
    m.requests = &r.counters("runnel_http_requests_total", "HTTP requests answered, by route, method and status",
                             {"route", "method", "status"});
    m.durations = &r.histograms("runnel_http_request_duration_seconds",
                                "Time from a request's last byte read to its answer, by route", {"route"},
                                {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10});
    m.ws_clients = &r.gauge_("runnel_ws_clients", "Connected WebSocket clients");
    m.sse_clients = &r.gauge_("runnel_sse_clients", "Connected event-stream (SSE) clients");
    m.hubs = &r.gauge_("runnel_stream_partition_readers", "Partitions read by a shared fan-out reader");
    m.messages_sent = &r.counters("runnel_stream_messages_sent_total",
                                  "WebSocket messages and SSE events sent to clients", {"protocol"});
    m.bytes_sent = &r.counters("runnel_stream_bytes_sent_total", "Bytes of messages sent to stream clients",
                               {"protocol"});
    m.slow_closes = &r.counters("runnel_stream_slow_consumer_closes_total",
                                "Stream clients closed because their send queue overflowed", {"protocol"});
    m.closes = &r.counters("runnel_stream_closes_total",
                           "Stream clients the server closed, by protocol and reason (slow_consumer, idle_timeout, "
                           "bad_message, write_failed, token_expired)",
                           {"protocol", "reason"});
    m.records_produced = &r.counter_("runnel_http_records_produced_total", "Records produced through the HTTP API");
    m.connections = &r.gauge_("runnel_http_connections", "Open HTTP connections (WebSocket and event streams included)");
    m.refused = &r.counters("runnel_http_requests_refused_total",
                            "HTTP requests and connections refused before any route ran, by reason "
                            "(host, origin, media_type, encoding, connections, unauthenticated)",
                            {"reason"});
    m.timeouts = &r.counters("runnel_http_read_timeouts_total",
                             "HTTP connections closed because a request did not arrive in time, by phase (header, body)",
                             {"phase"});
    m.history_dropped = &r.counter_("runnel_dashboard_history_dropped_total",
                                   "Samples the dashboard history did not keep because it holds "
                                   "--dashboard-history-max-series series already");
    m.views_expired = &r.counter_("runnel_views_expired_total",
                                  "Temporary materialized views (push queries of the shell or the dashboard) dropped "
                                  "with their pipelines because no client read them for --temporary-view-idle-ms");
    m.auth_failures = &r.counters(
      "runnel_auth_failures_total",
      "Failed authentications, by listener (a Kafka listener's name, or http) and mechanism (wrong password, "
      "unknown user, bad or expired token, bad or untrusted certificate)",
      {"listener", "mechanism"});
    m.auth_successes = &r.counters("runnel_auth_successes_total", "Successful authentications, by listener and mechanism",
                                   {"listener", "mechanism"});
    m.tls_failures = &r.counter_("runnel_http_tls_handshake_failures_total",
                                 "HTTPS connections whose TLS handshake failed or timed out");
    return m;
}

security::http_auth_config auth_config(const options& o) {
    security::http_auth_config c;
    if (o.token && !o.token->empty()) {
        c.token = o.token;
    }
    c.basic = o.basic_auth;
    c.jwt = o.jwt;
    return c;
}

} // namespace

server::state::state(net::shard_group& s, broker::broker& b, options o)
  : shards(s)
  , broker(b)
  , opts(std::move(o))
  , registry(opts.registry ? *opts.registry : metrics::default_registry())
  , m(register_metrics(registry))
  , routes(build_routes())
  , acls(opts.acls)
  , auth(auth_config(opts))
  , local(s.size())
  , hist(std::make_unique<history>(
      std::clamp<std::size_t>(3600000 / std::max<int64_t>(1, opts.history_interval.count()), 2, 720),
      opts.history_max_series)) {}

router<route> build_routes() {
    router<route> r;
    add_rest_routes(r);
    add_stream_routes(r);
    add_metrics_routes(r);
    add_dashboard_routes(r);
    add_pipeline_routes(r);
    add_history_routes(r);
    return r;
}

uint64_t add_closer(server::state& st, unsigned shard, std::function<void()> fn) {
    auto& l = st.local[shard];
    auto id = l.next_closer++;
    l.closers.emplace(id, std::move(fn));
    return id;
}

void remove_closer(server::state& st, unsigned shard, uint64_t id) { st.local[shard].closers.erase(id); }

reply json_reply(unsigned status, std::string body) {
    reply r;
    r.status = status;
    r.body = std::move(body);
    return r;
}

bool authorized(const server::state& st, const security::access_check& check, bool audit, std::string_view what) {
    if (!st.acls) {
        return true;
    }
    return security::authorize_audited(*st.acls, check, audit, lg(), [what] { return std::string(what); });
}

bool authorized(const request_ctx& ctx, security::acl_operation op, security::resource_type type,
                std::string_view name, bool audit) {
    if (!ctx.st.acls) {
        return true;
    }
    return security::authorize_audited(*ctx.st.acls, {ctx.principal, ctx.address, op, type, name}, audit, lg(), [&ctx] {
        const auto method = ctx.req.method_string();
        return fmt::format("HTTP {} {}", std::string_view(method.data(), method.size()),
                           text::scrub_utf8(ctx.path.substr(0, 256)));
    });
}

problem forbidden(const request_ctx& ctx, security::acl_operation op, security::resource_type type,
                  std::string_view name) {
    return ctx.fail("forbidden", security::denial_text({ctx.principal, ctx.address, op, type, name}));
}

problem broker_problem(const request_ctx& ctx, const std::error_code& ec, std::string_view what) {
    using broker::errc;
    if (ec.category() == errc_category<errc>::instance()) {
        switch (static_cast<errc>(ec.value())) {
        case errc::unknown_topic_or_partition:
            return ctx.fail("unknown-topic", fmt::format("{}: {}", what, ec.message()));
        case errc::invalid_topic:
            return ctx.fail("invalid-topic", fmt::format("{}: {}", what, ec.message()));
        case errc::topic_already_exists:
            return ctx.fail("topic-exists", fmt::format("{}: {}", what, ec.message()));
        case errc::invalid_partitions:
        case errc::invalid_replication_factor:
        case errc::invalid_config:
            return ctx.fail("invalid-config", fmt::format("{}: {}", what, ec.message()));
        case errc::offset_out_of_range:
            return ctx.fail("offset-out-of-range", fmt::format("{}: {}", what, ec.message()));
        case errc::corrupt_message:
        case errc::invalid_record:
        case errc::message_too_large:
            return ctx.fail("invalid-record", fmt::format("{}: {}", what, ec.message()));
        case errc::shutting_down:
            return ctx.fail("unavailable", fmt::format("{}: {}", what, ec.message()));
        case errc::storage_error:
        case errc::storage_full:
        case errc::storage_failed:
        case errc::storage_corrupt:
            // The partition (in `what`) and the cause; the log line beside it has the details.
            return ctx.fail("storage-error", fmt::format("{}: {}", what, ec.message()));
        default:
            break;
        }
    }
    return ctx.fail("internal-error", fmt::format("{}: {}", what, ec.message()));
}

namespace {

std::string_view sv(beast::string_view s) { return {s.data(), s.size()}; }

std::optional<std::string_view> header(const request_ctx& ctx, http::field f) {
    auto h = ctx.req.find(f);
    if (h == ctx.req.end()) {
        return std::nullopt;
    }
    return sv(h->value());
}

/// The problem for a request a browser page of another site could have sent (DNS rebinding,
/// cross-site forms and WebSockets), or nullopt.
std::optional<problem> check_browser(request_ctx& ctx) {
    const auto host = header(ctx, http::field::host);
    if (auto why = ctx.st.policy.check_host(host)) {
        ctx.st.m.refused->with({"host"}).inc();
        return ctx.fail("forbidden-host", std::move(*why));
    }
    if (auto why = ctx.st.policy.check_origin(header(ctx, http::field::origin), host)) {
        ctx.st.m.refused->with({"origin"}).inc();
        return ctx.fail("forbidden-origin", std::move(*why));
    }
    return std::nullopt;
}

/// Who sent the request, into `ctx.principal`: the one place every request is authenticated
/// (ACL checks read `ctx.principal`). The problem to answer instead (401), or nullopt. Failures
/// are counted by mechanism and logged at a bounded rate with the address and user.
std::optional<problem> authenticate(request_ctx& ctx) {
    auto& st = ctx.st;
    // The dashboard's page and files hold no data: a browser loads them without credentials,
    // then the page sends them with every API request it makes.
    if (!st.auth.required() || ctx.path == "/v1/health" || ctx.path == "/" || ctx.path.starts_with("/assets/")) {
        return std::nullopt;
    }
    std::optional<std::string_view> authorization = header(ctx, http::field::authorization);
    std::optional<std::string_view> access_token;
    // Browsers cannot set headers on WebSocket and EventSource requests: the same value in
    // the query (`authorization=Basic …`), or a bearer token alone (`access_token=`).
    if (auto q = ctx.query.find("authorization"); !authorization && q != ctx.query.end()) {
        authorization = q->second;
    }
    if (auto q = ctx.query.find("access_token"); q != ctx.query.end()) {
        access_token = q->second;
    }
    auto out = st.auth.authenticate(authorization, access_token);
    if (out.principal) {
        st.m.auth_successes->with({"http", out.mechanism}).inc();
        ctx.principal = std::move(*out.principal);
        ctx.expires = out.expires;
        return std::nullopt;
    }
    if (out.attempted) {
        static logging::rate_limit failures_log(std::chrono::seconds(1), 5); // as the Kafka listeners
        st.m.auth_failures->with({"http", out.mechanism}).inc();
        log_limited(failures_log, lg(), spdlog::level::warn, "HTTP authentication failed from {} ({}{}): {}", ctx.peer,
                    out.mechanism, out.user.empty() ? "" : ", user " + out.user, out.why);
    } else {
        st.m.refused->with({"unauthenticated"}).inc();
    }
    auto p = ctx.fail("unauthorized", out.why);
    p.headers.emplace_back("WWW-Authenticate", st.auth.challenge());
    return p;
}

/// The one authorization step of every route: the check its `access` rule declares, after
/// `authenticate`. The 403 to answer instead, or nullopt. Rules of kind `handler` are checked
/// by the handler, per resource, through the same `authorized`.
std::optional<problem> authorize_route(const request_ctx& ctx, const access& need) {
    auto name = need.resource(ctx.params);
    if (!name || authorized(ctx, need.op, need.type, *name)) {
        return std::nullopt;
    }
    return forbidden(ctx, need.op, need.type, *name);
}

std::string utf8_error(std::string_view what, std::string_view s, std::size_t at) {
    return fmt::format("{} is not UTF-8: byte {} (0x{:02x}) does not start a valid UTF-8 sequence", what, at,
                       static_cast<unsigned char>(s[at]));
}

/// The problem for a body the route cannot take as text: a media type it does not read, or
/// bytes that are not UTF-8; or nullopt. Path parameters and the query must be UTF-8 too.
std::optional<problem> check_text(request_ctx& ctx, std::string_view route) {
    for (const auto* m : {&ctx.params, &ctx.query}) {
        for (const auto& [name, value] : *m) {
            if (auto at = text::invalid_utf8_at(value)) {
                ctx.st.m.refused->with({"encoding"}).inc();
                return ctx.fail("invalid-encoding", utf8_error(fmt::format("parameter '{}'", text::scrub_utf8(name)),
                                                               value, *at));
            }
        }
    }
    const auto& body = ctx.req.body();
    if (body.empty()) {
        return std::nullopt;
    }
    // POST /v1/sql reads a script as text, or {"sql": …} as JSON; every other body is JSON.
    const auto type = media_type(header(ctx, http::field::content_type).value_or(""));
    const bool sql = route == "/v1/sql";
    if (type != "application/json" && !(sql && (type == "application/sql" || type == "text/plain"))) {
        ctx.st.m.refused->with({"media_type"}).inc();
        return ctx.fail("unsupported-media-type",
                        fmt::format("the body's Content-Type is '{}'; {} takes {}", type.empty() ? "(none)" : type,
                                    route, sql ? "application/sql, text/plain or application/json" : "application/json"));
    }
    if (auto at = text::invalid_utf8_at(body)) {
        ctx.st.m.refused->with({"encoding"}).inc();
        return ctx.fail("invalid-encoding", utf8_error("the body", body, *at));
    }
    return std::nullopt;
}

asio::awaitable<std::optional<reply>> dispatch(request_ctx& ctx, std::string& route) {
    std::string why;
    auto [path, query] = split_target(sv(ctx.req.target()));
    ctx.path = std::string(path);
    const auto method = sv(ctx.req.method_string());
    if (ctx.metrics_listener && ctx.path != "/metrics") {
        // Prometheus scrapes this one without credentials: it serves nothing else.
        co_return to_reply(ctx.fail("not-found", fmt::format("the metrics listener serves only /metrics, not {}", ctx.path)));
    }
    if (!ctx.metrics_listener) {
        if (auto p = check_browser(ctx)) {
            co_return to_reply(*p);
        }
    }
    auto q = parse_query(query, why);
    if (!q) {
        co_return to_reply(ctx.fail("invalid-parameter", why));
    }
    ctx.query = std::move(*q);
    if (!ctx.metrics_listener) {
        if (auto p = authenticate(ctx)) {
            co_return to_reply(*p);
        }
    }
    // Credentials are not parameters of any route.
    ctx.query.erase("access_token");
    ctx.query.erase("authorization");
    auto m = ctx.st.routes.find(method, ctx.path);
    using outcome = router<gateway::route>::match::outcome; // `route` is the parameter here
    switch (m.result) {
    case outcome::no_route:
        co_return to_reply(ctx.fail("not-found", fmt::format("no route for {} {}", method, ctx.path)));
    case outcome::bad_path:
        co_return to_reply(ctx.fail("invalid-parameter", fmt::format("broken percent escape in path {}", ctx.path)));
    case outcome::wrong_method: {
        route = m.pattern;
        auto p = ctx.fail("method-not-allowed",
                          fmt::format("{} does not support {}; allowed: {}", m.pattern, method, m.allow));
        p.headers.emplace_back("Allow", m.allow);
        co_return to_reply(p);
    }
    case outcome::found:
        break;
    }
    route = m.pattern;
    ctx.params = std::move(m.params);
    if (auto p = check_text(ctx, route)) {
        co_return to_reply(*p);
    }
    if (auto p = authorize_route(ctx, m.handler->need)) {
        co_return to_reply(*p);
    }
    try {
        co_return co_await m.handler->fn(ctx);
    } catch (const boost::system::system_error&) {
        throw; // the connection failed under the handler
    } catch (const std::exception& e) {
        lg().error("{} {} failed: {}", method, ctx.path, e.what());
        co_return to_reply(ctx.fail("internal-error", e.what()));
    }
}

void count_request(server::state& st, unsigned shard, const std::string& route, std::string_view method,
                   unsigned status, double seconds) {
    auto& l = st.local[shard];
    auto key = std::tuple{route, std::string(method), status};
    auto it = l.request_counters.find(key);
    if (it == l.request_counters.end()) {
        it = l.request_counters
               .emplace(key, &st.m.requests->with({route, std::string(method), std::to_string(status)}))
               .first;
    }
    it->second->inc();
    auto d = l.request_durations.find(route);
    if (d == l.request_durations.end()) {
        d = l.request_durations.emplace(route, &st.m.durations->with({route})).first;
    }
    d->second->observe(seconds);
}

http::response<http::string_body> to_response(reply&& r, unsigned version, bool keep_alive) {
    // The last guard of "every answer is JSON": bytes that are not UTF-8 (from a record, a
    // pipeline's error, a client's own text) become U+FFFD rather than break the document.
    if (r.content_type.find("json") != std::string::npos && !text::valid_utf8(r.body)) {
        r.body = text::scrub_utf8(r.body);
    }
    http::response<http::string_body> res{static_cast<http::status>(r.status), version};
    res.set(http::field::server, "runnel");
    if (!r.body.empty() || r.status != 204) {
        res.set(http::field::content_type, r.content_type);
    }
    for (auto& [k, v] : r.headers) {
        res.set(k, v);
    }
    res.body() = std::move(r.body);
    res.keep_alive(keep_alive);
    res.prepare_payload();
    return res;
}

/// Counts an open connection for as long as it lives. The count is taken when the connection
/// is accepted (on the accepting shard, in accept order), so the connection refused is always
/// the one past the limit, whichever shard serves it.
class connection_slot {
public:
    /// Takes a place in the count; true when it is past --http-max-connections.
    static bool take(server::state& st) {
        st.m.connections->add(1);
        return st.connections.fetch_add(1) >= st.opts.max_connections;
    }
    /// Gives back a place taken by take() for a connection that will not be served.
    static void give_back(server::state& st) {
        st.connections.fetch_sub(1);
        st.m.connections->add(-1);
    }
    /// Owns a place already taken.
    connection_slot(server::state& st, bool over)
      : _st(st)
      , _over(over) {}
    ~connection_slot() { give_back(_st); }
    connection_slot(const connection_slot&) = delete;
    connection_slot& operator=(const connection_slot&) = delete;
    /// True when this connection is past --http-max-connections.
    bool over() const { return _over; }

private:
    server::state& _st;
    bool _over;
};

/// Serves the requests of one connection over `stream` until either side ends it or a route
/// takes the stream over.
asio::awaitable<void> serve_requests(server::state& st, unsigned shard, connection_stream& stream, connection_slot& slot,
                                     bool metrics_only) {
    auto& tcp_layer = stream.tcp();
    std::string peer;
    std::string address;
    {
        boost::system::error_code ec;
        auto ep = tcp_layer.socket().remote_endpoint(ec);
        address = ec ? "" : ep.address().to_string();
        peer = ec ? "an unknown address" : fmt::format("{}:{}", address, ep.port());
    }
    if (slot.over()) {
        // Answer without reading the request, so a flood of idle connections costs one write each.
        st.m.refused->with({"connections"}).inc();
        auto p = make_problem("unavailable", fmt::format("the server has {} HTTP connections open, its limit "
                                                         "(--http-max-connections); try again later",
                                                         st.opts.max_connections));
        p.headers.emplace_back("Retry-After", "1");
        auto res = to_response(to_reply(p), 11, false);
        tcp_layer.expires_after(std::chrono::seconds(5));
        beast::error_code ec;
        co_await http::async_write(stream, res, asio::redirect_error(asio::use_awaitable, ec));
        tcp_layer.socket().shutdown(tcp::socket::shutdown_both, ec);
        tcp_layer.socket().close(ec);
        co_return;
    }
    // A route that took the stream over (WebSocket) closes it itself: the moved-from
    // stream here has no socket left.
    request_ctx* current = nullptr; ///< the request being dispatched
    bool taken_over = false;        ///< a route took the stream over
    auto closer = add_closer(st, shard, [&tcp_layer, &current] {
        if (current && current->taken) {
            return;
        }
        beast::error_code ec;
        tcp_layer.socket().shutdown(tcp::socket::shutdown_both, ec);
        tcp_layer.socket().close(ec);
    });
    beast::flat_buffer buffer;
    try {
        while (!st.stopping.load()) {
            http::request_parser<http::string_body> parser;
            parser.body_limit(st.opts.max_body_bytes);
            parser.header_limit(16 * 1024);
            // The line and headers within the header deadline (from the end of the previous
            // answer), then the body within the body deadline.
            tcp_layer.expires_after(st.opts.header_timeout);
            beast::error_code ec;
            co_await http::async_read_header(stream, buffer, parser, asio::redirect_error(asio::use_awaitable, ec));
            const char* phase = "header";
            if (!ec && !parser.is_done()) {
                phase = "body";
                tcp_layer.expires_after(st.opts.body_timeout);
                co_await http::async_read(stream, buffer, parser, asio::redirect_error(asio::use_awaitable, ec));
            }
            if (ec == beast::error::timeout) {
                // An idle kept-alive connection ends here too; only a started request is counted.
                if (phase[0] == 'b' || buffer.size() > 0 || parser.got_some()) {
                    st.m.timeouts->with({phase}).inc();
                }
                break;
            }
            if (ec == http::error::end_of_stream || ec == asio::error::eof || ec == beast::error::timeout
                || ec == asio::error::operation_aborted || ec == asio::error::connection_reset) {
                break;
            }
            if (ec) {
                // The request cannot be read to its end: answer, then close the connection.
                const bool too_big = ec == http::error::body_limit;
                auto p = too_big ? make_problem("payload-too-large",
                                                fmt::format("the request body exceeds the limit of {} bytes",
                                                            st.opts.max_body_bytes),
                                                std::string(split_target(sv(parser.get().target())).first))
                                 : make_problem("invalid-request", fmt::format("malformed HTTP request: {}", ec.message()));
                auto res = to_response(to_reply(p), 11, false);
                count_request(st, shard, too_big ? "unread" : "malformed", sv(parser.get().method_string()), p.status, 0);
                co_await http::async_write(stream, res, asio::redirect_error(asio::use_awaitable, ec));
                // Lingering close: a client still sending its body would get a reset instead
                // of the answer if unread bytes were left at close. Read and drop what comes,
                // bounded in bytes and time, until it closes its side.
                tcp_layer.socket().shutdown(tcp::socket::shutdown_send, ec);
                tcp_layer.expires_after(std::chrono::seconds(5));
                std::size_t drained = 0;
                std::array<char, 16384> sink{};
                while (!ec && drained < 64 * st.opts.max_body_bytes) {
                    drained += co_await stream.async_read_some(asio::buffer(sink),
                                                               asio::redirect_error(asio::use_awaitable, ec));
                }
                break;
            }
            tcp_layer.expires_never();
            auto& req = parser.get();
            const auto started = std::chrono::steady_clock::now();
            request_ctx ctx{st,      shard,        st.shards.executor_of(shard), req, stream, peer, address,
                            metrics_only, "User:ANONYMOUS", std::nullopt, {}, {}, {}, false};
            std::string route = "unmatched";
            // Tracks the request for the closer, and whether it took the stream, however
            // dispatch ends (a handler may throw).
            struct dispatching {
                request_ctx*& current;
                bool& taken_over;
                ~dispatching() {
                    taken_over = taken_over || (current && current->taken);
                    current = nullptr;
                }
            };
            std::optional<reply> answer;
            {
                current = &ctx;
                dispatching guard{current, taken_over};
                answer = co_await dispatch(ctx, route);
            }
            if (taken_over) {
                break; // the stream is gone with the route that took it
            }
            if (!answer) {
                break; // a WebSocket or event stream ran on this connection and has ended
            }
            const double secs =
              std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
            count_request(st, shard, route, sv(req.method_string()), answer->status, secs);
            const bool keep = req.keep_alive() && !st.stopping.load();
            auto res = to_response(std::move(*answer), req.version(), keep);
            co_await http::async_write(stream, res, asio::use_awaitable);
            if (!keep) {
                break;
            }
        }
    } catch (const boost::system::system_error& e) {
        lg().debug("HTTP connection ended: {}", e.code().message());
    }
    remove_closer(st, shard, closer);
    if (taken_over) {
        co_return;
    }
    beast::error_code ec;
    tcp_layer.socket().shutdown(tcp::socket::shutdown_send, ec);
    tcp_layer.socket().close(ec);
}

/// One accepted connection: over TLS when the gateway has a context (the handshake within the
/// header deadline), then its requests.
asio::awaitable<void> serve_connection(server::state& st, unsigned shard, tcp::socket sock, bool over,
                                       bool metrics_only) {
    connection_slot slot(st, over);
    if (!st.opts.tls || metrics_only) {
        connection_stream stream(std::move(sock));
        co_await serve_requests(st, shard, stream, slot, metrics_only);
        co_return;
    }
    // Each connection keeps the context it started with; SIGHUP swaps it for later ones.
    auto ctx = st.opts.tls->current();
    connection_stream stream(std::move(sock), *ctx);
    auto& tcp_layer = stream.tcp();
    auto closer = add_closer(st, shard, [&tcp_layer] {
        beast::error_code ec;
        tcp_layer.socket().close(ec);
    });
    tcp_layer.expires_after(st.opts.header_timeout);
    beast::error_code ec;
    co_await stream.tls()->async_handshake(asio::ssl::stream_base::server,
                                           asio::redirect_error(asio::use_awaitable, ec));
    remove_closer(st, shard, closer);
    if (ec) {
        static logging::rate_limit handshake_log;
        st.m.tls_failures->inc();
        log_limited(handshake_log, lg(), spdlog::level::info, "HTTPS handshake failed: {}", ec.message());
        tcp_layer.socket().close(ec);
        co_return;
    }
    co_await serve_requests(st, shard, stream, slot, metrics_only);
}



/// Accepts on `acceptor` (the main listener, or the metrics listener when `metrics_only`) and
/// hands each connection to the next shard in turn.
asio::awaitable<void> accept_loop(server::state& st, tcp::acceptor& acceptor, bool metrics_only) {
    static logging::rate_limit accept_failures;
    backoff pause;
    asio::steady_timer pause_timer(st.shards.context_of(0));
    for (;;) {
        boost::system::error_code ec;
        tcp::socket sock(st.shards.context_of(0));
        co_await acceptor.async_accept(sock, asio::redirect_error(asio::use_awaitable, ec));
        if (ec) {
            if (st.stopping.load() || ec == asio::error::operation_aborted) {
                co_return;
            }
            // Out of descriptors: the connection stays pending, so retrying at once would spin.
            const auto wait = pause.next();
            log_limited(accept_failures, lg(), spdlog::level::warn, "accept failed: {}; retrying in {} ms",
                        ec.message(), wait.count());
            pause_timer.expires_after(wait);
            co_await pause_timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
            if (st.stopping.load()) {
                co_return;
            }
            continue;
        }
        pause.reset();
        sock.set_option(tcp::no_delay(true), ec);
        const unsigned target = st.next_shard++ % st.shards.size();
        auto protocol = sock.local_endpoint(ec).protocol();
        int fd = sock.release(ec);
        if (ec) {
            continue;
        }
        st.running.enter();
        const bool over = connection_slot::take(st);
        st.shards.executor_of(target).post([&st, target, protocol, fd, over, metrics_only] {
            tcp::socket moved(st.shards.context_of(target), protocol, fd);
            if (st.stopping.load()) {
                connection_slot::give_back(st);
                st.running.leave();
                return; // the socket closes here
            }
            asio::co_spawn(st.shards.context_of(target), serve_connection(st, target, std::move(moved), over, metrics_only),
                           [&st](std::exception_ptr e) {
                               if (e) {
                                   try {
                                       std::rethrow_exception(e);
                                   } catch (const std::exception& ex) {
                                       lg().error("HTTP connection failed: {}", ex.what());
                                   }
                               }
                               st.running.leave();
                           });
        });
    }
}

} // namespace

server::server(net::shard_group& shards, broker::broker& broker, options opts)
  : _state(std::make_unique<state>(shards, broker, std::move(opts))) {}

server::~server() { stop(); }

namespace {

/// A listening acceptor on `where`, on shard 0's context; null (and logged) when it cannot be.
std::unique_ptr<tcp::acceptor> listen_on(server::state& st, const net::endpoint& where, std::string_view what) {
    boost::system::error_code ec;
    tcp::resolver resolver(st.shards.context_of(0));
    auto found = resolver.resolve(where.host, std::to_string(where.port),
                                  tcp::resolver::passive | tcp::resolver::numeric_service, ec);
    if (ec || found.empty()) {
        lg().error("cannot resolve {} address {}: {}", what, where.to_string(), ec.message());
        return nullptr;
    }
    auto ep = found.begin()->endpoint();
    auto acc = std::make_unique<tcp::acceptor>(st.shards.context_of(0));
    acc->open(ep.protocol(), ec);
    if (!ec) {
        acc->set_option(tcp::acceptor::reuse_address(true), ec);
        acc->bind(ep, ec);
    }
    if (!ec) {
        acc->listen(asio::socket_base::max_listen_connections, ec);
    }
    if (ec) {
        lg().error("cannot listen on {} for {}: {}", where.to_string(), what, ec.message());
        return nullptr;
    }
    return acc;
}

} // namespace

std::optional<net::endpoint> server::metrics_endpoint() const {
    auto& st = *_state;
    if (!st.metrics_acceptor) {
        return std::nullopt;
    }
    boost::system::error_code ec;
    auto local = st.metrics_acceptor->local_endpoint(ec);
    if (ec) {
        return std::nullopt;
    }
    return net::endpoint{local.address().to_string(), local.port()};
}

result<net::endpoint> server::start() {
    auto& st = *_state;
    if (!net::is_loopback(st.opts.listen.host) && !st.auth.required() && !st.opts.allow_insecure_network) {
        return errc::token_required;
    }
    result<net::endpoint> bound = errc::bind_failed;
    st.shards.run_on(0, [&] {
        auto acc = listen_on(st, st.opts.listen, "HTTP");
        if (!acc) {
            return;
        }
        std::unique_ptr<tcp::acceptor> metrics_acc;
        if (st.opts.metrics_listen) {
            metrics_acc = listen_on(st, *st.opts.metrics_listen, "metrics");
            if (!metrics_acc) {
                return;
            }
        }
        boost::system::error_code ec;
        auto local = acc->local_endpoint(ec);
        st.policy = origin_policy(st.opts.listen.host, local.port(), st.opts.allowed_hosts, st.opts.allowed_origins);
        st.acceptor = std::move(acc);
        st.metrics_acceptor = std::move(metrics_acc);
        bound = net::endpoint{local.address().to_string(), local.port()};
        asio::co_spawn(st.shards.context_of(0), accept_loop(st, *st.acceptor, false), asio::detached);
        if (st.metrics_acceptor) {
            asio::co_spawn(st.shards.context_of(0), accept_loop(st, *st.metrics_acceptor, true), asio::detached);
        }
    });
    if (bound) {
        start_history(st);
    }
    if (bound && !st.auth.required()) {
        lg().debug("HTTP API without authentication on {}", bound.value().to_string());
    }
    if (bound && !st.opts.tls && (st.opts.basic_auth || st.opts.jwt || st.opts.token)
        && !net::is_loopback(st.opts.listen.host)) {
        lg().warn("HTTP credentials cross the network in clear text on {}: add --http-tls (docs/security.md)",
                  bound.value().to_string());
    }
    if (bound) {
        st.collector = st.registry.add_collector([&st](metrics::sample_sink& s) {
            // Process memory and descriptors, read from /proc at scrape time.
            if (FILE* f = std::fopen("/proc/self/statm", "r")) {
                long pages_total = 0;
                long pages_resident = 0;
                if (std::fscanf(f, "%ld %ld", &pages_total, &pages_resident) == 2) {
                    const double page = static_cast<double>(sysconf(_SC_PAGESIZE));
                    s.gauge("process_resident_memory_bytes", "Resident memory size in bytes", {},
                            static_cast<double>(pages_resident) * page);
                    s.gauge("process_virtual_memory_bytes", "Virtual memory size in bytes", {},
                            static_cast<double>(pages_total) * page);
                }
                std::fclose(f);
            }
            std::error_code ec;
            std::size_t fds = 0;
            for (auto it = std::filesystem::directory_iterator("/proc/self/fd", ec);
                 !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
                ++fds;
            }
            s.gauge("process_open_fds", "Open file descriptors", {}, static_cast<double>(fds));
            std::lock_guard lock(st.snapshot_mu);
            collect_standard_series(st.offsets_snapshot, s);
            for (const auto& [topic, p, start, end] : st.offsets_snapshot) {
                std::vector<metrics::label> labels{{"topic", topic}, {"partition", std::to_string(p)}};
                s.gauge("runnel_partition_log_start_offset", "First offset still in the partition's log", labels,
                        static_cast<double>(start));
                s.gauge("runnel_partition_log_end_offset", "Offset the partition's next record will get", labels,
                        static_cast<double>(end));
                if (!st.opts.data_dir.empty()) {
                    // The partition's segment and index files, as on disk.
                    uint64_t bytes = 0;
                    auto dir = std::filesystem::path(st.opts.data_dir) / "topics" / topic / std::to_string(p);
                    for (auto it = std::filesystem::directory_iterator(dir, ec);
                         !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
                        std::error_code ec2;
                        if (it->is_regular_file(ec2)) {
                            auto sz = it->file_size(ec2);
                            bytes += ec2 ? 0 : sz;
                        }
                    }
                    s.gauge("runnel_partition_size_bytes", "Bytes of the partition's files on disk", labels,
                            static_cast<double>(bytes));
                }
            }
            // Consumer groups, in kafka_exporter's names: committed offset and lag per partition,
            // lag summed per topic.
            std::map<std::pair<std::string, int32_t>, int64_t> log_end;
            for (const auto& [topic, p, start, end] : st.offsets_snapshot) {
                log_end[{topic, p}] = end;
            }
            for (const auto& g : st.groups_snapshot) {
                std::map<std::string, int64_t> lag_sum;
                for (const auto& [tp, committed] : g.offsets) {
                    std::vector<metrics::label> labels{
                      {"consumergroup", g.group_id}, {"topic", tp.topic}, {"partition", std::to_string(tp.partition())}};
                    s.gauge("kafka_consumergroup_current_offset", "Offset the consumer group committed", labels,
                            static_cast<double>(committed));
                    auto end = log_end.find({tp.topic, tp.partition()});
                    if (end == log_end.end() || committed < 0) {
                        continue;
                    }
                    const auto lag = std::max<int64_t>(0, end->second - committed);
                    s.gauge("kafka_consumergroup_lag", "Records the consumer group has not committed yet", labels,
                            static_cast<double>(lag));
                    lag_sum[tp.topic] += lag;
                }
                for (const auto& [topic, lag] : lag_sum) {
                    s.gauge("kafka_consumergroup_lag_sum", "Lag of the consumer group summed over a topic's partitions",
                            {{"consumergroup", g.group_id}, {"topic", topic}}, static_cast<double>(lag));
                }
            }
        });
    }
    return bound;
}

void server::stop() {
    auto& st = *_state;
    if (st.stopping.exchange(true)) {
        return;
    }
    st.collector.reset();
    if (!st.acceptor) {
        return;
    }
    st.shards.run_on(0, [&] {
        boost::system::error_code ec;
        st.acceptor->cancel(ec);
        st.acceptor->close(ec);
        if (st.metrics_acceptor) {
            st.metrics_acceptor->cancel(ec);
            st.metrics_acceptor->close(ec);
        }
    });
    for (unsigned s = 0; s < st.shards.size(); ++s) {
        st.shards.run_on(s, [&st, s] {
            stop_hubs(st, s);
            auto closers = st.local[s].closers; // a closer may remove itself
            for (auto& [id, fn] : closers) {
                fn();
            }
        });
    }
    if (!st.running.wait(std::chrono::seconds(10))) {
        lg().warn("{} HTTP connections still open 10 s after stop", st.running.count());
    }
    st.shards.run_on(0, [&] {
        st.acceptor.reset();
        st.metrics_acceptor.reset();
    });
}

} // namespace runnel::gateway
