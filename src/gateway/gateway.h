#pragma once

// The public header of `gateway`: the HTTP server (REST under /v1, WebSocket and Server-Sent
// Events subscriptions, /metrics). Boost.Beast and Asio stay in the `.cc` files.

#include <chrono>
#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/base.h"
#include "net/net.h"

namespace runnel::broker {
class broker;
class group_coordinator;
} // namespace runnel::broker

namespace runnel::security {
class authorizer;
class jwt_validator;
class password_checker;
class tls_server_context;
} // namespace runnel::security

namespace runnel::jobs {
class manager;
} // namespace runnel::jobs

namespace runnel::sql {
class catalog_store;
} // namespace runnel::sql

namespace runnel::gateway {

/// Why the gateway could not start.
enum class errc {
    success = 0,
    token_required, ///< bound to a non-loopback address without authentication
    bind_failed,    ///< the address is taken, not local, or not an address
};
const char* errc_message(errc e) noexcept;
RUNNEL_ERRC_ENUM(errc);

struct options {
    net::endpoint listen{"127.0.0.1", 8080};
    /// A shared bearer token requests may carry (`Authorization: Bearer …`, or `access_token=`
    /// in the query of WebSocket and event-stream requests). `start` refuses a non-loopback
    /// address when neither it, `basic_auth` nor `jwt` is set.
    std::optional<std::string> token;
    /// HTTP basic credentials checked against the SCRAM users (`--http-basic-auth`); null: none.
    std::shared_ptr<security::password_checker> basic_auth;
    /// Bearer JWTs checked against a JWKS (`--jwks-file`); null: none.
    std::shared_ptr<security::jwt_validator> jwt;
    /// The ACLs every request is checked against (`--authorizer acl`: the Kafka listeners'
    /// store); null: `--authorizer none`, every authenticated request may do everything.
    std::shared_ptr<const security::authorizer> acls;
    /// Serve HTTPS, WSS and SSE over TLS with this context (`--http-tls`); null: plain HTTP.
    std::shared_ptr<security::tls_server_context> tls;
    /// A second, plain listener serving only /metrics without authentication
    /// (`--metrics-addr`), so Prometheus needs no credentials.
    std::optional<net::endpoint> metrics_listen;
    /// Serve without authentication on a non-loopback address (`--allow-insecure-network`).
    bool allow_insecure_network = false;
    /// Largest request body accepted; larger bodies are answered 413.
    std::size_t max_body_bytes = 1 << 20;
    /// Time a request's line and headers may take to arrive, counted from the end of the
    /// previous answer on a kept-alive connection; a client slower than that is disconnected.
    std::chrono::milliseconds header_timeout{10000};
    /// Time a request's body may take to arrive after its headers.
    std::chrono::milliseconds body_timeout{30000};
    /// Open HTTP connections (WebSocket and event streams included); a connection past it is
    /// answered 503 and closed.
    std::size_t max_connections = 1024;
    /// Host names (`name` or `name:port`) the server answers to besides its own address,
    /// `localhost`, `127.0.0.1` and `[::1]` (see `origin_policy` in origin.h).
    std::vector<std::string> allowed_hosts;
    /// Origins (`scheme://host[:port]`) of web pages other than the server's own that may send
    /// state-changing requests and open WebSocket and event streams.
    std::vector<std::string> allowed_origins;
    /// Bytes of messages a WebSocket or event-stream client may have queued for sending; a
    /// client whose live stream would pass it is closed as a slow consumer.
    std::size_t client_queue_bytes = 1 << 20;
    /// A WebSocket client that has not answered within this time (pings go out at half of it)
    /// is closed.
    std::chrono::milliseconds ws_idle_timeout{30000};
    /// Most records one GET /v1/topics/{name}/records answers with.
    std::size_t max_records_per_get = 10000;
    /// Where metrics are registered and what /metrics serves (default: the process registry).
    metrics::registry* registry = nullptr;
    /// Data directory of the broker, for partition sizes in /metrics (empty: not reported).
    std::string data_dir;
    /// Consumer groups, for committed offsets and lag in /metrics (null: not reported).
    broker::group_coordinator* groups = nullptr;
    /// Durable jobs, for /v1/pipelines (null: the routes answer 503).
    jobs::manager* jobs = nullptr;
    /// The server's SQL catalog, shared by every POST /v1/sql (null: each request declares its
    /// own tables, forgotten after it).
    sql::catalog_store* catalog = nullptr;
    /// The instances a SQL pipeline runs as unless its script sets `parallelism.default`
    /// (`--sql-parallelism`; a server's default is its shards).
    uint32_t sql_parallelism = 1;
    /// How often the dashboard's history (GET /v1/history) is sampled. It keeps at most 720
    /// samples: one hour at the default 5 s, less at a shorter interval.
    std::chrono::milliseconds history_interval{5000};
    /// Series the history keeps at most (topics, and three per pipeline); more are not kept.
    std::size_t history_max_series = 256;
    /// A temporary materialized view (a push query of the shell or the dashboard) that no
    /// client has read or followed for this long is dropped with its pipeline, so a closed tab
    /// or a killed shell leaves nothing running. Checked at each history sample.
    std::chrono::milliseconds temporary_view_idle{60000};
};

/// The HTTP gateway: one port for REST, WebSocket, Server-Sent Events and /metrics.
///
/// One acceptor on shard 0 hands each connection to the next shard in turn; a connection and
/// its subscriptions live on that shard. Topic subscriptions share one reader per partition,
/// running on the shard that owns the partition (a fan-out hub), which posts decoded records
/// to the subscribers' shards. `start` and `stop` are called by the main thread while the
/// shards run; `stop` closes every connection and waits for them before returning.
class server {
public:
    server(net::shard_group& shards, broker::broker& broker, options opts);
    ~server();
    server(const server&) = delete;
    server& operator=(const server&) = delete;

    /// Binds and starts accepting; returns the bound address (port 0 picks a free port).
    result<net::endpoint> start();
    /// The bound address of the metrics listener, once `start` succeeded with one.
    std::optional<net::endpoint> metrics_endpoint() const;
    /// Closes the listener and every connection; idempotent.
    void stop();

    struct state;

private:
    std::unique_ptr<state> _state;
};

} // namespace runnel::gateway

RUNNEL_ERRC_REGISTER(runnel::gateway::errc, "gateway");
