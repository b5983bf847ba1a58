#pragma once

// Shared by the gateway's `.cc` files: the server state, the request context and the helpers
// that await broker callbacks. Includes Beast and Asio: only files of this module include it.

#include <atomic>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/async_result.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

#include <variant>

#include "broker/broker.h"
#include "gateway/connection_stream.h"
#include "gateway/gateway.h"
#include "gateway/history.h"
#include "gateway/origin.h"
#include "gateway/records.h"
#include "gateway/router.h"
#include "net/invoke.h"
#include "security/security.h"

namespace runnel::gateway {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

struct request_ctx;
/// A route's handler. Answers with a reply, or nullopt when it took the connection over
/// (WebSocket, event stream) and the connection loop must end.
using handler_fn = asio::awaitable<std::optional<reply>> (*)(request_ctx&);

using acl_op = security::acl_operation;
using acl_type = security::resource_type;

/// A route: its handler and what it needs of the ACLs (checked by `dispatch` before the
/// handler runs). Routes are added as `{&handler, access::…}`: leaving the rule out is a
/// missing initializer, an error under -Wextra -Werror.
struct route {
    handler_fn fn;
    access need;
};

class hub;

/// Counts running coroutines so `stop` can wait for them (a gate).
class gate {
public:
    void enter() { _n.fetch_add(1); }
    void leave() {
        if (_n.fetch_sub(1) == 1) {
            std::lock_guard lock(_mu);
            _cv.notify_all();
        }
    }
    /// Waits until nothing is inside, or `timeout`; false on timeout.
    bool wait(std::chrono::milliseconds timeout) {
        std::unique_lock lock(_mu);
        return _cv.wait_for(lock, timeout, [this] { return _n.load() == 0; });
    }
    int count() const { return _n.load(); }

private:
    std::atomic<int> _n{0};
    std::mutex _mu;
    std::condition_variable _cv;
};

/// What one shard keeps: its open connections (to close at stop) and the fan-out hubs of the
/// partitions it owns. Touched only on that shard's thread.
struct shard_local {
    std::map<uint64_t, std::function<void()>> closers;
    uint64_t next_closer = 0;
    std::map<std::pair<std::string, int32_t>, std::shared_ptr<hub>> hubs;
    /// HTTP request counters by (route, method, status), looked up once per shard.
    std::map<std::tuple<std::string, std::string, unsigned>, metrics::counter*> request_counters;
    std::map<std::string, metrics::histogram*> request_durations;
};

/// The gateway's metrics, registered once at construction.
struct gateway_metrics {
    metrics::family<metrics::counter>* requests;
    metrics::family<metrics::histogram>* durations;
    metrics::gauge* ws_clients;
    metrics::gauge* sse_clients;
    metrics::gauge* hubs;
    metrics::family<metrics::counter>* messages_sent;
    metrics::family<metrics::counter>* bytes_sent;
    metrics::family<metrics::counter>* slow_closes;
    metrics::family<metrics::counter>* closes; ///< stream clients the server closed, by protocol and reason
    metrics::counter* records_produced;
    metrics::gauge* connections;                ///< open HTTP connections
    metrics::family<metrics::counter>* refused; ///< requests refused before any route ran, by reason
    metrics::family<metrics::counter>* timeouts; ///< connections closed on a read deadline, by phase
    metrics::counter* history_dropped; ///< history values not kept: --dashboard-history-max-series reached
    metrics::counter* views_expired;   ///< temporary views dropped as unread (--temporary-view-idle-ms)
    metrics::family<metrics::counter>* auth_failures; ///< failed authentications, by mechanism
    metrics::family<metrics::counter>* auth_successes; ///< authentications that succeeded, by mechanism
    metrics::counter* tls_failures; ///< TLS handshakes that failed
};

/// Everything the gateway shares across its files. Made by `server`'s constructor on the main
/// thread; afterwards `local[s]` is touched only on shard `s`, the route table only read, and
/// the rest is atomic or under `snapshot_mu`.
struct server::state {
    state(net::shard_group& s, broker::broker& b, options o);

    net::shard_group& shards;
    broker::broker& broker;
    options opts;
    metrics::registry& registry;
    gateway_metrics m;
    router<route> routes;
    /// The ACLs every route is checked against (`options::acls`); null: `--authorizer none`.
    std::shared_ptr<const security::authorizer> acls;
    std::unique_ptr<tcp::acceptor> acceptor; // on shard 0
    std::unique_ptr<tcp::acceptor> metrics_acceptor; // on shard 0, when options::metrics_listen is set
    security::http_authenticator auth; ///< who each request is (built from the options)
    std::vector<shard_local> local;
    unsigned next_shard = 0;
    std::atomic<bool> stopping{false};
    std::atomic<uint32_t> round_robin{0}; ///< for records without key or partition
    std::atomic<std::size_t> connections{0}; ///< open HTTP connections, on every shard
    origin_policy policy;                 ///< set by `start` before the first accept
    gate running;
    metrics::registry::collector_handle collector;
    std::unique_ptr<history> hist; ///< the dashboard's recent past, filled by `start_history`

    /// Partition offsets gathered just before a scrape, read by the collector.
    std::mutex snapshot_mu;
    std::vector<std::tuple<std::string, int32_t, int64_t, int64_t>> offsets_snapshot; // topic, p, start, end
    std::vector<broker::group_offsets> groups_snapshot; ///< committed offsets per group
};

/// What a handler knows about its request. Lives in the connection's coroutine; runs on the
/// connection's shard.
struct request_ctx {
    server::state& st;
    unsigned shard;
    executor& exec;
    http::request<http::string_body>& req;
    connection_stream& stream;
    /// The client's address and port, for the audit log.
    std::string peer;
    /// The client's address alone (`127.0.0.1`), as ACLs name hosts.
    std::string address;
    /// Served on the plain metrics listener (`options::metrics_listen`): only /metrics.
    bool metrics_listener = false;
    /// Who sent the request ("User:name"; "User:ANONYMOUS" when the server needs no
    /// credentials or the route is open); set by `dispatch` before any route runs.
    std::string principal = "User:ANONYMOUS";
    /// When the credentials stop being valid (a JWT's `exp`); a stream the request opens ends
    /// then. Nothing: they do not expire.
    std::optional<std::chrono::system_clock::time_point> expires;
    std::string path;
    std::map<std::string, std::string> params;
    std::map<std::string, std::string> query;
    /// Set by a handler that took the stream over.
    bool taken = false;

    problem fail(std::string_view kind, std::string detail) const {
        return make_problem(kind, std::move(detail), path);
    }
};

using net::await_callback;

/// The gateway's one ACL check, for route rules, the resources a handler finds in a body or
/// a stream message, and lists (with `audit` false: a resource left out is no refusal).
/// Always true without an authorizer (`--authorizer none`); super users pass. Counts and logs
/// as the Kafka listeners do (`security::authorize_audited`), with `what` (the request) as
/// the log line's context. Thread-safe.
bool authorized(const server::state& st, const security::access_check& check, bool audit, std::string_view what);
/// `authorized` for the request's principal and address.
bool authorized(const request_ctx& ctx, security::acl_operation op, security::resource_type type,
                std::string_view name, bool audit = true);
/// The 403 (`forbidden`) of a denied check, naming the operation and the resource.
problem forbidden(const request_ctx& ctx, security::acl_operation op, security::resource_type type,
                  std::string_view name);

/// A JSON reply.
reply json_reply(unsigned status, std::string body);
/// The problem for a broker error (unknown topic → 404, …).
problem broker_problem(const request_ctx& ctx, const std::error_code& ec, std::string_view what);

/// Every route of the gateway.
router<route> build_routes();

// Route tables, one per file.
void add_rest_routes(router<route>& r);
void add_stream_routes(router<route>& r);
void add_metrics_routes(router<route>& r);
/// Every partition's log start and end offsets (topic, partition, start, end), asked of the
/// owning shards one partition at a time; partitions that fail to answer are left out.
asio::awaitable<std::vector<std::tuple<std::string, int32_t, int64_t, int64_t>>>
partition_offsets(server::state& st, executor& exec);
/// The series every Prometheus exporter has and kafka_exporter's topic families, beside
/// Runnel's own: process CPU seconds and start time, and per topic its partitions and each
/// partition's oldest and current offset (from `offsets`: topic, partition, start, end).
/// Called by the gateway's collector at scrape time, under `snapshot_mu`.
void collect_standard_series(const std::vector<std::tuple<std::string, int32_t, int64_t, int64_t>>& offsets,
                             metrics::sample_sink& s);
void add_dashboard_routes(router<route>& r);
void add_history_routes(router<route>& r);
/// Starts the history sampler on shard 0 (every `options::history_interval`, until `stop`).
void start_history(server::state& st);
void add_pipeline_routes(router<route>& r);

/// The OpenAPI document embedded at build time (openapi.json).
std::string_view openapi_document() noexcept;

/// Stops the hubs owned by `shard`; on that shard's thread.
void stop_hubs(server::state& st, unsigned shard);

/// Registers a closer for the connection (run by `stop` on this shard); returns its id.
uint64_t add_closer(server::state& st, unsigned shard, std::function<void()> fn);
void remove_closer(server::state& st, unsigned shard, uint64_t id);

} // namespace runnel::gateway
