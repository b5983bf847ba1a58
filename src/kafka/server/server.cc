#include "kafka/server/server.h"

#include <algorithm>
#include <cstring>
#include <deque>
#include <set>
#include <thread>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/write.hpp>

#include "kafka/server/handler.h"

namespace runnel::kafka {
namespace {

using tcp = asio::ip::tcp;

spdlog::logger& lg() { return logging::get("kafka"); }

constexpr proto::api_support implemented_table[] = {
  {proto::api_key::produce, "Produce", 3, 9, 9},
  {proto::api_key::fetch, "Fetch", 4, 17, 12},
  {proto::api_key::list_offsets, "ListOffsets", 1, 7, 6},
  {proto::api_key::metadata, "Metadata", 0, 12, 9},
  {proto::api_key::api_versions, "ApiVersions", 0, 3, 3},
  {proto::api_key::create_topics, "CreateTopics", 2, 7, 5},
  {proto::api_key::delete_topics, "DeleteTopics", 1, 6, 4},
  {proto::api_key::delete_records, "DeleteRecords", 1, 2, 2},
  {proto::api_key::init_producer_id, "InitProducerId", 0, 4, 2},
  {proto::api_key::describe_configs, "DescribeConfigs", 1, 4, 4},
  {proto::api_key::create_partitions, "CreatePartitions", 0, 3, 2},
  {proto::api_key::incremental_alter_configs, "IncrementalAlterConfigs", 0, 1, 1},
  {proto::api_key::find_coordinator, "FindCoordinator", 0, 4, 3},
  {proto::api_key::join_group, "JoinGroup", 0, 9, 6},
  {proto::api_key::sync_group, "SyncGroup", 0, 5, 4},
  {proto::api_key::heartbeat, "Heartbeat", 0, 4, 4},
  {proto::api_key::leave_group, "LeaveGroup", 0, 5, 4},
  {proto::api_key::offset_commit, "OffsetCommit", 2, 9, 8},
  {proto::api_key::offset_fetch, "OffsetFetch", 1, 8, 6},
  {proto::api_key::list_groups, "ListGroups", 0, 5, 3},
  {proto::api_key::describe_groups, "DescribeGroups", 0, 5, 5},
  {proto::api_key::delete_groups, "DeleteGroups", 0, 2, 2},
  {proto::api_key::offset_delete, "OffsetDelete", 0, 0, -1},
  {proto::api_key::offset_for_leader_epoch, "OffsetForLeaderEpoch", 2, 4, 4},
  {proto::api_key::describe_cluster, "DescribeCluster", 0, 1, 0},
  {proto::api_key::sasl_handshake, "SaslHandshake", 0, 1, -1},
  {proto::api_key::sasl_authenticate, "SaslAuthenticate", 0, 2, 2},
  {proto::api_key::consumer_group_heartbeat, "ConsumerGroupHeartbeat", 0, 1, 0},
  {proto::api_key::consumer_group_describe, "ConsumerGroupDescribe", 0, 1, 0},
  {proto::api_key::add_partitions_to_txn, "AddPartitionsToTxn", 0, 4, 3},
  {proto::api_key::add_offsets_to_txn, "AddOffsetsToTxn", 0, 3, 3},
  {proto::api_key::end_txn, "EndTxn", 0, 3, 3},
  {proto::api_key::txn_offset_commit, "TxnOffsetCommit", 0, 3, 3},
  {proto::api_key::describe_producers, "DescribeProducers", 0, 0, 0},
  {proto::api_key::describe_transactions, "DescribeTransactions", 0, 0, 0},
  {proto::api_key::list_transactions, "ListTransactions", 0, 1, 0},
  {proto::api_key::describe_acls, "DescribeAcls", 0, 3, 2},
  {proto::api_key::create_acls, "CreateAcls", 0, 3, 2},
  {proto::api_key::delete_acls, "DeleteAcls", 0, 3, 2},
  {proto::api_key::alter_configs, "AlterConfigs", 0, 2, 2},
  {proto::api_key::describe_user_scram_credentials, "DescribeUserScramCredentials", 0, 0, 0},
  {proto::api_key::alter_user_scram_credentials, "AlterUserScramCredentials", 0, 0, 0},
};

/// Per-api request metrics, looked up once: the update path is atomics only.
struct request_metrics {
    struct per_api {
        metrics::counter* requests = nullptr;
        metrics::counter* bytes_in = nullptr;
        metrics::counter* bytes_out = nullptr;
        metrics::histogram* seconds = nullptr;
    };
    std::array<per_api, 128> apis{};
    per_api other;

    request_metrics() {
        auto& reg = metrics::default_registry();
        auto& requests = reg.counters("runnel_kafka_requests_total", "Kafka requests answered, by API", {"api"});
        auto& in = reg.counters("runnel_kafka_request_bytes_total", "Bytes of Kafka request frames, by API", {"api"});
        auto& out = reg.counters("runnel_kafka_response_bytes_total", "Bytes of Kafka response frames, by API", {"api"});
        auto& seconds = reg.histograms("runnel_kafka_request_duration_seconds",
                                       "Time from reading a Kafka request to its answer being ready, by API", {"api"},
                                       metrics::histogram::exponential(0.0001, 2, 16));
        auto make = [&](std::string_view name) {
            std::string n(name);
            return per_api{&requests.with({n}), &in.with({n}), &out.with({n}), &seconds.with({n})};
        };
        for (const auto& a : implemented_table) {
            apis[static_cast<std::size_t>(a.key)] = make(a.name);
        }
        other = make("unsupported");
    }
    const per_api& of(int16_t key) const {
        if (key >= 0 && static_cast<std::size_t>(key) < apis.size() && apis[static_cast<std::size_t>(key)].requests) {
            return apis[static_cast<std::size_t>(key)];
        }
        return other;
    }
};

const request_metrics& kafka_metrics() {
    static const request_metrics m;
    return m;
}

/// Connection faults an operator acts on (a cap too low, descriptors running out, idle clients).
struct connection_metrics {
    metrics::gauge& open = metrics::default_registry().gauges("runnel_kafka_connections", "Open Kafka connections").with({});
    metrics::gauge& in_flight = metrics::default_registry()
                                  .gauges("runnel_kafka_requests_in_flight",
                                          "Kafka requests read and not yet answered (or dropped with their connection)")
                                  .with({});
    metrics::counter& refused = metrics::default_registry().counter_(
      "runnel_kafka_connections_refused_total", "Kafka connections closed on accept because --kafka-max-connections were open");
    metrics::counter& accept_errors = metrics::default_registry().counter_(
      "runnel_kafka_accept_errors_total", "Failed accepts on the Kafka listener (e.g. out of file descriptors)");
    metrics::counter& idle_closed = metrics::default_registry().counter_(
      "runnel_kafka_connections_idle_closed_total",
      "Kafka connections closed after --kafka-connections-max-idle-ms without a request");
};

connection_metrics& conn_metrics() {
    static connection_metrics m;
    return m;
}

/// Authentication outcomes, by listener and mechanism ("TLS" for certificate handshakes).
struct auth_metrics {
    metrics::family<metrics::counter>& failures = metrics::default_registry().counters(
      "runnel_auth_failures_total",
      "Failed authentications, by listener (a Kafka listener's name, or http) and mechanism (wrong password, "
      "unknown user, bad or expired token, bad or untrusted certificate)",
      {"listener", "mechanism"});
    metrics::family<metrics::counter>& successes = metrics::default_registry().counters(
      "runnel_auth_successes_total", "Successful authentications, by listener and mechanism", {"listener", "mechanism"});
    metrics::counter& timeouts = metrics::default_registry().counter_(
      "runnel_auth_timeouts_total",
      "Kafka connections closed for not finishing TLS and SASL authentication within --sasl-handshake-timeout-ms");
    metrics::counter& refused = metrics::default_registry().counter_(
      "runnel_auth_unauthenticated_requests_total",
      "Kafka connections closed for a request before authentication or after their SASL session expired");
};

auth_metrics& auth_stats() {
    static auth_metrics m;
    return m;
}

logging::rate_limit& auth_log_limit() {
    static logging::rate_limit limit(std::chrono::seconds(1), 5);
    return limit;
}

} // namespace

std::span<const proto::api_support> implemented_apis() noexcept { return implemented_table; }

bool implemented(int16_t key, int16_t version) noexcept {
    for (const auto& a : implemented_table) {
        if (static_cast<int16_t>(a.key) == key) {
            return a.supports(version);
        }
    }
    return false;
}

int16_t to_kafka_error(const std::error_code& ec) noexcept {
    using broker::errc;
    if (ec.category() != errc_category<errc>::instance()) {
        return kerr::unknown_server_error;
    }
    switch (static_cast<errc>(ec.value())) {
    case errc::success:
        return kerr::none;
    case errc::unknown_topic_or_partition:
        return kerr::unknown_topic_or_partition;
    case errc::invalid_topic:
        return kerr::invalid_topic_exception;
    case errc::topic_already_exists:
        return kerr::topic_already_exists;
    case errc::invalid_partitions:
        return kerr::invalid_partitions;
    case errc::invalid_replication_factor:
        return kerr::invalid_replication_factor;
    case errc::invalid_config:
        return kerr::invalid_config;
    case errc::corrupt_message:
        return kerr::corrupt_message;
    case errc::invalid_record:
        return kerr::invalid_record;
    case errc::message_too_large:
        return kerr::message_too_large;
    case errc::offset_out_of_range:
        return kerr::offset_out_of_range;
    case errc::storage_error:
    case errc::storage_full:
    case errc::storage_failed:
    case errc::storage_corrupt:
        return kerr::kafka_storage_error;
    case errc::shutting_down:
        return kerr::request_timed_out;
    case errc::out_of_order_sequence:
        return kerr::out_of_order_sequence_number;
    case errc::duplicate_sequence:
        return kerr::duplicate_sequence_number;
    case errc::invalid_producer_epoch:
        return kerr::invalid_producer_epoch;
    case errc::unknown_producer_id:
        return kerr::unknown_producer_id;
    case errc::coordinator_loading:
        return kerr::coordinator_load_in_progress;
    case errc::coordinator_not_available:
        return kerr::coordinator_not_available;
    case errc::invalid_group_id:
        return kerr::invalid_group_id;
    case errc::group_id_not_found:
        return kerr::group_id_not_found;
    case errc::non_empty_group:
        return kerr::non_empty_group;
    case errc::unknown_member_id:
        return kerr::unknown_member_id;
    case errc::illegal_generation:
        return kerr::illegal_generation;
    case errc::rebalance_in_progress:
        return kerr::rebalance_in_progress;
    case errc::member_id_required:
        return kerr::member_id_required;
    case errc::fenced_instance_id:
        return kerr::fenced_instance_id;
    case errc::inconsistent_group_protocol:
        return kerr::inconsistent_group_protocol;
    case errc::invalid_session_timeout:
        return kerr::invalid_session_timeout;
    case errc::group_subscribed_to_topic:
        return kerr::group_subscribed_to_topic;
    case errc::offset_metadata_too_large:
        return kerr::offset_metadata_too_large;
    case errc::invalid_request:
        return kerr::invalid_request;
    case errc::fenced_member_epoch:
        return kerr::fenced_member_epoch;
    case errc::stale_member_epoch:
        return kerr::stale_member_epoch;
    case errc::unreleased_instance_id:
        return kerr::unreleased_instance_id;
    case errc::unsupported_assignor:
        return kerr::unsupported_assignor;
    case errc::group_max_size_reached:
        return kerr::group_max_size_reached;
    case errc::producer_fenced:
        return kerr::producer_fenced;
    case errc::invalid_txn_state:
        return kerr::invalid_txn_state;
    case errc::invalid_producer_id_mapping:
        return kerr::invalid_producer_id_mapping;
    case errc::invalid_transaction_timeout:
        return kerr::invalid_transaction_timeout;
    case errc::concurrent_transactions:
        return kerr::concurrent_transactions;
    case errc::transactional_id_not_found:
        return kerr::transactional_id_not_found;
    case errc::operation_not_attempted:
        return kerr::operation_not_attempted;
    }
    return kerr::unknown_server_error;
}

asio::awaitable<std::pair<std::shared_ptr<const broker::topic_info>, int16_t>> find_or_create_topic(
  const request_context& ctx, const std::string& name, bool may_create) {
    if (auto t = ctx.broker.topic(name)) {
        co_return std::pair{t, kerr::none};
    }
    std::string why;
    if (!broker::valid_topic_name(name, why)) {
        co_return std::pair{nullptr, kerr::invalid_topic_exception};
    }
    if (!may_create || !ctx.config.auto_create_topics) {
        co_return std::pair{nullptr, kerr::unknown_topic_or_partition};
    }
    // Creating needs CREATE on the cluster or on the topic, as Kafka's auto-creation does.
    if (!authorize(ctx, security::acl_operation::create, security::resource_type::cluster,
                   security::cluster_resource_name, false)
        && !authorize(ctx, security::acl_operation::create, security::resource_type::topic, name)) {
        co_return std::pair{nullptr, kerr::topic_authorization_failed};
    }
    broker::topic_config cfg;
    cfg.partitions = ctx.config.default_partitions;
    auto created = co_await await_change([&](auto answer) { ctx.broker.create_topic(name, cfg, ctx.shard, answer); });
    // Losing a race with another creator is fine: the topic exists either way.
    if (!created.first && created.first.error() != broker::errc::topic_already_exists) {
        co_return std::pair{nullptr, to_kafka_error(created.first.error())};
    }
    co_return std::pair{ctx.broker.topic(name), kerr::none};
}

struct kafka_server::state {
    state(net::shard_group& sh, broker::broker& b, broker::group_coordinator& g, server_config c)
      : shards(sh), broker(b), groups(g), config(std::move(c)) {}

    net::shard_group& shards;
    broker::broker& broker;
    broker::group_coordinator& groups;
    server_config config;
    net::endpoint advertised;
    std::unique_ptr<tcp::acceptor> acceptor; // on shard 0
    std::unique_ptr<asio::steady_timer> accept_pause; // on shard 0: the wait after a failed accept
    std::vector<shard_connections> connections;
    unsigned next_shard = 0;
    bool stopping = false;
    std::atomic<std::size_t> open_connections{0}; ///< incremented on shard 0, decremented on any
};

namespace {

/// An answer for a request that cannot be decoded in its api's format (an unknown api or
/// version): the response header and the error code as the first field, which is where every
/// ApiVersions-aware client looks before it knows the format.
response_frame unsupported_answer(int32_t correlation_id) {
    proto::writer w;
    auto mark = w.begin_frame();
    w.write_int32(correlation_id);
    w.write_int16(kerr::unsupported_version);
    w.end_frame(mark);
    return w.take();
}

/// Apis the codec knows but the server does not answer yet; `implemented` keeps them out.
template <typename Request>
asio::awaitable<response_frame> handle(const request_context& ctx, Request) {
    co_return unsupported_answer(ctx.header.correlation_id);
}

asio::awaitable<response_frame> dispatch(const request_context& ctx, std::span<const std::byte> body) {
    const auto& h = ctx.header;
    if (h.request_api_key == static_cast<int16_t>(proto::api_key::api_versions)
        && !implemented(h.request_api_key, h.request_api_version)) {
        // Kafka answers an ApiVersions it cannot read in version 0, with the error and the
        // table, so the client can pick a version both sides speak.
        proto::api_versions_response r;
        r.error_code = kerr::unsupported_version;
        for (const auto& a : implemented_apis()) {
            r.api_keys.push_back({static_cast<int16_t>(a.key), a.min_version, a.max_version});
        }
        proto::writer w;
        proto::write_response_frame(w, 0, h.correlation_id, r);
        co_return w.take();
    }
    if (!implemented(h.request_api_key, h.request_api_version)) {
        lg().warn("unsupported api {} version {} from client '{}'", h.request_api_key, h.request_api_version,
                  h.client_id.value_or(""));
        co_return unsupported_answer(h.correlation_id);
    }
    auto req = proto::decode_request(h, body);
    if (!req) {
        throw std::system_error(req.error());
    }
    co_return co_await std::visit([&](auto& r) { return handle(ctx, std::move(r)); }, req.value());
}

/// Wakes the coroutines of one shard that wait on it. `wait` returns after the next `notify`.
class shard_event {
public:
    explicit shard_event(asio::any_io_executor ex) : _timer(ex, asio::steady_timer::time_point::max()) {}
    void notify() {
        ++_generation;
        _timer.cancel();
    }
    asio::awaitable<void> wait() {
        const auto seen = _generation;
        while (seen == _generation) {
            boost::system::error_code ec;
            co_await _timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
        }
    }

private:
    asio::steady_timer _timer;
    uint64_t _generation = 0;
};

/// A flag set once, which coroutines of its shard can wait for.
class shard_flag {
public:
    explicit shard_flag(asio::any_io_executor ex) : _changed(std::move(ex)) {}
    void set() {
        _set = true;
        _changed.notify();
    }
    asio::awaitable<void> wait() {
        while (!_set) {
            co_await _changed.wait();
        }
    }

private:
    shard_event _changed;
    bool _set = false;
};

/// One request between being read and its answer being written.
struct in_flight {
    explicit in_flight(asio::any_io_executor ex, std::vector<std::byte> f)
      : frame(std::move(f)), issued(ex), done(ex) {
        conn_metrics().in_flight.add(1);
    }
    ~in_flight() { conn_metrics().in_flight.sub(1); }
    in_flight(const in_flight&) = delete;
    in_flight& operator=(const in_flight&) = delete;
    std::vector<std::byte> frame;
    response_frame answer;
    bool close = false; ///< the request could not be decoded: end the connection after it
    bool close_after_answer = false; ///< a failed authentication: send the answer, then close
    shard_flag issued; ///< its order-sensitive work (appends) has been issued
    shard_flag done;   ///< `answer` is ready
};

using tls_stream = asio::ssl::stream<tcp::socket&>;

/// A client connection on its shard. The reader issues requests in arrival order, each one
/// once the previous has issued its order-sensitive work, so a connection's appends keep
/// their order while their syncs overlap (acks=all requests of one producer share group
/// commits). The writer answers in request order. At most `max_in_flight` requests and
/// `max_in_flight_bytes` of frames wait at a time. Lives while any of its coroutines runs.
struct connection : std::enable_shared_from_this<connection> {
    static constexpr std::size_t max_in_flight = 128;
    static constexpr std::size_t max_in_flight_bytes = 64 * 1024 * 1024;

    /// Takes over one of `open_connections`, counted by the acceptor.
    connection(kafka_server::state& s, unsigned sh, tcp::socket so)
      : st(s), shard(sh), sock(std::move(so)), queue_changed(sock.get_executor()), idle_timer(sock.get_executor()),
        last_active(std::chrono::steady_clock::now()) {
        st.connections[shard].sockets.insert(&sock);
    }
    ~connection() {
        boost::system::error_code ec;
        sock.close(ec);
        st.connections[shard].sockets.erase(&sock);
        st.open_connections.fetch_sub(1);
        conn_metrics().open.sub(1);
    }

    kafka_server::state& st;
    unsigned shard;
    tcp::socket sock;
    std::string peer;
    std::string client_host;
    std::deque<std::shared_ptr<in_flight>> queue;
    std::size_t queued_bytes = 0;
    bool reader_done = false;
    bool closing = false;
    shard_event queue_changed;
    asio::steady_timer idle_timer;                  ///< closes the connection once idle too long
    std::chrono::steady_clock::time_point last_active; ///< the last request read or answer written

    // Security: on SSL and SASL_SSL listeners every byte goes through `tls`, which wraps
    // `sock` (its context stays alive with it, whatever a reload does meanwhile).
    std::shared_ptr<asio::ssl::context> tls_context;
    std::unique_ptr<tls_stream> tls;
    /// PLAINTEXT and SSL connections are authenticated once accepted (and TLS-handshaken);
    /// SASL ones after a successful SaslAuthenticate.
    bool authenticated = false;
    std::string principal = "User:ANONYMOUS";
    std::chrono::steady_clock::time_point auth_deadline;
    std::chrono::steady_clock::time_point session_expiry = std::chrono::steady_clock::time_point::max();
    std::chrono::milliseconds session_lifetime{0}; ///< of the last exchange, told to the client (0: none)
    std::unique_ptr<security::sasl_server> sasl; ///< between SaslHandshake and the exchange's end
    bool sasl_raw_tokens = false; ///< after SaslHandshake v0: frames are bare SASL tokens (KIP-43)

    void notify() { queue_changed.notify(); }

    template <typename Buffer>
    asio::awaitable<void> read_exact(Buffer b) {
        if (tls) {
            co_await asio::async_read(*tls, b, asio::use_awaitable);
        } else {
            co_await asio::async_read(sock, b, asio::use_awaitable);
        }
    }
    template <typename Buffer>
    asio::awaitable<void> write_all(Buffer b) {
        if (tls) {
            co_await asio::async_write(*tls, b, asio::use_awaitable);
        } else {
            co_await asio::async_write(sock, b, asio::use_awaitable);
        }
    }
};

/// Closes `c` once it has had no request in flight for `connections_max_idle` (Kafka's
/// connections.max.idle.ms). A request waiting for its answer (a long-polling fetch) keeps
/// the connection busy. Ends when the connection's writer ends and cancels the timer.
asio::awaitable<void> close_when_idle(std::shared_ptr<connection> c) {
    const auto max_idle = c->st.config.connections_max_idle;
    while (!c->closing && !c->reader_done) {
        const auto now = std::chrono::steady_clock::now();
        if (!c->authenticated && now >= c->auth_deadline) {
            auth_stats().timeouts.inc();
            log_limited(auth_log_limit(), lg(), spdlog::level::warn,
                        "closing connection from {} on listener {}: not authenticated within {} ms", c->peer,
                        c->st.config.listener_name, c->st.config.auth_timeout.count());
            c->closing = true;
            boost::system::error_code ec;
            c->sock.close(ec);
            c->notify();
            break;
        }
        if (c->queue.empty() && now - c->last_active >= max_idle) {
            conn_metrics().idle_closed.inc();
            lg().debug("closing connection from {}: idle for {} ms", c->peer, max_idle.count());
            c->closing = true;
            boost::system::error_code ec;
            c->sock.close(ec); // ends the reader; the writer sees `closing`
            c->notify();
            break;
        }
        // A busy connection is looked at again after a whole period.
        auto next = c->queue.empty() ? c->last_active + max_idle : now + max_idle;
        if (!c->authenticated) {
            next = std::min(next, c->auth_deadline);
        }
        c->idle_timer.expires_at(next);
        boost::system::error_code ec;
        co_await c->idle_timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
        if (ec == asio::error::operation_aborted) {
            break;
        }
    }
}

asio::awaitable<void> run_request(std::shared_ptr<connection> c, std::shared_ptr<in_flight> req,
                                  proto::request_header header, std::span<const std::byte> body) {
    auto& st = c->st;
    request_context ctx{st.config,  st.advertised, st.broker,          st.groups,
                        st.shards.executor_of(c->shard), header, st.connections[c->shard], c->client_host,
                        [req] { req->issued.set(); },     c->principal};
    const auto started = std::chrono::steady_clock::now();
    try {
        req->answer = co_await dispatch(ctx, body);
        const auto& m = kafka_metrics().of(header.request_api_key);
        m.requests->inc();
        m.bytes_in->inc(req->frame.size() + 4);
        m.bytes_out->inc(req->answer ? req->answer->size() : 0);
        m.seconds->observe(std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
    } catch (const std::system_error& e) {
        lg().warn("closing connection from {}: cannot decode api {} v{}: {}", c->peer, header.request_api_key,
                  header.request_api_version, e.code().message());
        req->close = true;
    }
    req->issued.set();
    req->done.set();
    c->notify();
}

asio::awaitable<void> write_answers(std::shared_ptr<connection> c) {
    try {
        for (;;) {
            if (c->queue.empty()) {
                if (c->reader_done || c->closing) {
                    break;
                }
                co_await c->queue_changed.wait();
                continue;
            }
            auto req = c->queue.front();
            co_await req->done.wait();
            if (req->close) {
                c->closing = true;
                break;
            }
            if (req->answer) {
                co_await c->write_all(asio::buffer(*req->answer));
            }
            if (req->close_after_answer) {
                c->closing = true;
                break;
            }
            c->queued_bytes -= req->frame.size();
            c->queue.pop_front();
            c->last_active = std::chrono::steady_clock::now();
            c->notify();
        }
    } catch (const boost::system::system_error& e) {
        lg().debug("connection from {}: write failed: {}", c->peer, e.code().message());
        c->closing = true;
    }
    boost::system::error_code ec;
    c->sock.close(ec); // ends the reader too
    c->idle_timer.cancel();
    c->notify();
}

// -- authentication -------------------------------------------------------------------------

/// Checks the PLAIN password of `c`'s exchange on the password pool (or here, when there is
/// none), so the PBKDF2 derivation does not stall the shard; with the pool's queue full the
/// login is refused at once.
asio::awaitable<security::sasl_server::step_result> check_password(connection& c) {
    auto* pool = c.st.config.password_checks.get();
    if (pool == nullptr) {
        co_return c.sasl->finish_password_check(c.sasl->password_ok());
    }
    if (!pool->try_reserve()) {
        c.sasl->finish_password_check(false);
        co_return security::sasl_server::step_result{
          security::sasl_server::state::failed, {},
          "Authentication failed: the server is checking too many passwords at once; try again later",
          std::nullopt};
    }
    // The exchange stays alive and untouched while the pool reads it: the reader waits here.
    const security::sasl_server* exchange = c.sasl.get();
    const bool ok = co_await net::invoke_on(*pool, [exchange, pool] {
        const bool checked = exchange->password_ok();
        pool->release_current(); // before the answer goes back: the client may log in again at once
        return checked;
    });
    co_return c.sasl->finish_password_check(ok);
}

/// Feeds one SASL token to the connection's exchange. At its end the outcome is recorded: a
/// success authenticates the connection (a re-authentication must keep the user), a failure
/// is counted and logged at a bounded rate.
asio::awaitable<security::sasl_server::step_result> sasl_step(connection& c, std::string_view token) {
    const auto& cfg = c.st.config;
    auto r = c.sasl->step(token);
    if (r.st == security::sasl_server::state::check_password) {
        r = co_await check_password(c);
    }
    const std::string mech(security::mechanism_name(c.sasl->mech()));
    if (r.st == security::sasl_server::state::done) {
        const auto principal = "User:" + c.sasl->user();
        if (c.authenticated && principal != c.principal) {
            r = {security::sasl_server::state::failed, {},
                 "Authentication failed: re-authentication must keep the user " + c.principal, std::nullopt};
        } else {
            c.authenticated = true;
            c.principal = principal;
            // The configured lifetime; an OAUTHBEARER session ends with its token (KIP-368).
            auto lifetime = cfg.sasl_session_lifetime;
            if (r.expires) {
                auto left = std::max(std::chrono::milliseconds(1),
                                     std::chrono::duration_cast<std::chrono::milliseconds>(
                                       *r.expires - std::chrono::system_clock::now()));
                lifetime = lifetime.count() > 0 ? std::min(lifetime, left) : left;
            }
            c.session_lifetime = lifetime;
            c.session_expiry = lifetime.count() > 0 ? std::chrono::steady_clock::now() + lifetime
                                                    : std::chrono::steady_clock::time_point::max();
            auth_stats().successes.with({cfg.listener_name, mech}).inc();
            lg().debug("connection from {} on listener {} authenticated as {} ({})", c.peer, cfg.listener_name,
                       c.principal, mech);
        }
    }
    if (r.st == security::sasl_server::state::failed) {
        auth_stats().failures.with({cfg.listener_name, mech}).inc();
        log_limited(auth_log_limit(), lg(), spdlog::level::warn, "authentication failed on listener {} from {} ({}): {}",
                    cfg.listener_name, c.peer, mech, r.error);
    }
    if (r.st != security::sasl_server::state::more) {
        c.sasl.reset();
    }
    co_return r;
}

/// The answer to a SASL request, computed by the reader itself: it must know the outcome
/// before it reads the next request. `close`: the connection ends after the answer.
struct sasl_answer {
    response_frame answer;
    bool close = false;
};

template <typename Response>
response_frame frame_of(const proto::request_header& h, const Response& r) {
    proto::writer w;
    proto::write_response_frame(w, h.request_api_version, h.correlation_id, r);
    return w.take();
}

asio::awaitable<sasl_answer> answer_sasl(connection& c, const proto::request_header& h, std::span<const std::byte> body) {
    const auto& cfg = c.st.config;
    auto decoded = proto::decode_request(h, body);
    if (!decoded) {
        co_return sasl_answer{std::nullopt, true};
    }
    if (auto* hs = std::get_if<proto::sasl_handshake_request>(&decoded.value())) {
        proto::sasl_handshake_response r;
        for (auto m : cfg.sasl_mechanisms) {
            r.mechanisms.emplace_back(security::mechanism_name(m));
        }
        auto m = security::parse_mechanism(hs->mechanism);
        if (!security::uses_sasl(cfg.security_protocol) || c.sasl) {
            r.error_code = kerr::illegal_sasl_state;
            co_return sasl_answer{frame_of(h, r), true};
        }
        if (!m || std::find(cfg.sasl_mechanisms.begin(), cfg.sasl_mechanisms.end(), *m) == cfg.sasl_mechanisms.end()) {
            auth_stats().failures.with({cfg.listener_name, "unsupported"}).inc();
            log_limited(auth_log_limit(), lg(), spdlog::level::warn,
                        "authentication failed on listener {} from {}: mechanism '{}' is not enabled",
                        cfg.listener_name, c.peer, hs->mechanism.substr(0, 64));
            r.error_code = kerr::unsupported_sasl_mechanism;
            co_return sasl_answer{frame_of(h, r), true};
        }
        security::bearer_check bearer;
        if (cfg.jwt) {
            bearer = [jwt = cfg.jwt](std::string_view token, std::string& why) { return jwt->validate(token, why); };
        }
        c.sasl = std::make_unique<security::sasl_server>(*m, *cfg.credentials, std::move(bearer));
        c.sasl->defer_password_checks();
        c.sasl_raw_tokens = h.request_api_version == 0;
        co_return sasl_answer{frame_of(h, r), false};
    }
    auto* a = std::get_if<proto::sasl_authenticate_request>(&decoded.value());
    if (a == nullptr) {
        co_return sasl_answer{std::nullopt, true};
    }
    proto::sasl_authenticate_response r;
    if (!c.sasl) {
        r.error_code = kerr::illegal_sasl_state;
        r.error_message = "SaslAuthenticate without a SaslHandshake before it";
        co_return sasl_answer{frame_of(h, r), true};
    }
    auto step = co_await sasl_step(c, std::string_view(reinterpret_cast<const char*>(a->auth_bytes.data()), a->auth_bytes.size()));
    if (step.st == security::sasl_server::state::failed) {
        r.error_code = kerr::sasl_authentication_failed;
        r.error_message = step.error;
        co_return sasl_answer{frame_of(h, r), true};
    }
    const auto* p = reinterpret_cast<const std::byte*>(step.response.data());
    r.auth_bytes.assign(p, p + step.response.size());
    if (step.st == security::sasl_server::state::done && c.session_lifetime.count() > 0) {
        r.session_lifetime_ms = c.session_lifetime.count();
    }
    co_return sasl_answer{frame_of(h, r), false};
}

/// Why a request may not be answered on this connection now, or nothing when it may.
/// On SASL listeners only ApiVersions and the SASL requests come before authentication, and
/// only they once the session has expired (Kafka closes such connections).
std::optional<std::string_view> refused_before_auth(const connection& c, int16_t api_key) {
    if (!security::uses_sasl(c.st.config.security_protocol)
        || api_key == static_cast<int16_t>(proto::api_key::api_versions)) {
        return std::nullopt;
    }
    if (!c.authenticated) {
        return "request before SASL authentication";
    }
    if (std::chrono::steady_clock::now() >= c.session_expiry) {
        return "SASL session expired without re-authentication";
    }
    return std::nullopt;
}

asio::awaitable<void> read_requests(std::shared_ptr<connection> c) {
    auto& st = c->st;
    try {
        for (;;) {
            std::array<std::byte, 4> size_bytes{};
            co_await c->read_exact(asio::buffer(size_bytes));
            const auto size = read_be<int32_t>(size_bytes.data());
            const auto limit = c->authenticated ? st.config.max_frame_bytes : st.config.max_unauthenticated_frame_bytes;
            if (size < 0 || size > limit) {
                lg().warn("closing connection from {}: frame of {} bytes (limit {}{})", c->peer, size, limit,
                          c->authenticated ? "" : " before authentication");
                break;
            }
            while (!c->closing && !c->queue.empty()
                   && (c->queue.size() >= connection::max_in_flight
                       || c->queued_bytes + static_cast<std::size_t>(size) > connection::max_in_flight_bytes)) {
                co_await c->queue_changed.wait();
            }
            if (c->closing) {
                break;
            }
            std::vector<std::byte> frame(static_cast<std::size_t>(size));
            co_await c->read_exact(asio::buffer(frame));
            auto req = std::make_shared<in_flight>(c->sock.get_executor(), std::move(frame));
            auto queue_ready = [&] {
                req->issued.set();
                req->done.set();
                c->queue.push_back(req);
                c->queued_bytes += req->frame.size();
                c->last_active = std::chrono::steady_clock::now();
                c->notify();
            };
            if (c->sasl_raw_tokens) {
                // After SaslHandshake v0 the client sends bare tokens and gets bare tokens back.
                auto step = co_await sasl_step(*c, std::string_view(reinterpret_cast<const char*>(req->frame.data()), req->frame.size()));
                if (step.st == security::sasl_server::state::failed) {
                    break;
                }
                c->sasl_raw_tokens = step.st == security::sasl_server::state::more;
                std::vector<std::byte> out(4 + step.response.size());
                write_be<int32_t>(out.data(), static_cast<int32_t>(step.response.size()));
                std::memcpy(out.data() + 4, step.response.data(), step.response.size());
                req->answer = std::move(out);
                queue_ready();
                continue;
            }
            auto parsed = proto::parse_request_header(req->frame);
            if (!parsed) {
                lg().warn("closing connection from {}: undecodable request header: {}", c->peer,
                          parsed.error().message());
                break;
            }
            const auto api_key = parsed.value().header.request_api_key;
            const bool sasl_api = api_key == static_cast<int16_t>(proto::api_key::sasl_handshake)
                                  || api_key == static_cast<int16_t>(proto::api_key::sasl_authenticate);
            // A SASL request in a version not spoken gets UNSUPPORTED_VERSION like any other.
            if (sasl_api && implemented(api_key, parsed.value().header.request_api_version)) {
                auto out = co_await answer_sasl(*c, parsed.value().header, parsed.value().body);
                if (!out.answer) {
                    lg().warn("closing connection from {}: undecodable SASL request", c->peer);
                    break;
                }
                req->answer = std::move(out.answer);
                req->close_after_answer = out.close;
                queue_ready();
                if (out.close) {
                    break;
                }
                continue;
            }
            if (auto why = sasl_api ? std::nullopt : refused_before_auth(*c, api_key)) {
                auth_stats().refused.inc();
                log_limited(auth_log_limit(), lg(), spdlog::level::warn,
                            "closing connection from {} on listener {}: api {} refused: {}", c->peer,
                            st.config.listener_name, api_key, *why);
                break;
            }
            c->queue.push_back(req);
            c->queued_bytes += req->frame.size();
            c->last_active = std::chrono::steady_clock::now();
            c->notify();
            asio::co_spawn(c->sock.get_executor(),
                           run_request(c, req, std::move(parsed.value().header), parsed.value().body),
                           asio::detached);
            co_await req->issued.wait();
        }
    } catch (const boost::system::system_error& e) {
        if (e.code() != asio::error::eof && e.code() != asio::error::operation_aborted
            && e.code() != asio::error::connection_reset) {
            lg().debug("connection from {} ended: {}", c->peer, e.code().message());
        }
    }
    c->reader_done = true;
    c->notify();
}

/// The TLS handshake of a connection on an SSL or SASL_SSL listener, under the connection's
/// authentication deadline; then the certificate's subject becomes the principal and the
/// connection starts reading requests. A failed handshake is counted and closes it.
asio::awaitable<void> start_tls(std::shared_ptr<connection> c) {
    const auto& cfg = c->st.config;
    boost::system::error_code ec;
    co_await c->tls->async_handshake(asio::ssl::stream_base::server, asio::redirect_error(asio::use_awaitable, ec));
    std::optional<std::string> why;
    bool by_certificate = false;
    if (ec) {
        why = fmt::format("TLS handshake failed: {}", ec.message());
    } else if (cfg.tls->config().auth != security::client_auth::none) {
        if (auto subject = security::peer_subject(c->tls->native_handle())) {
            if (auto name = security::map_principal(cfg.principal_rules, *subject)) {
                c->principal = "User:" + *name;
                by_certificate = true;
            } else {
                why = fmt::format("no principal mapping rule matches the certificate subject '{}'", *subject);
            }
        }
    }
    if (why || c->closing) {
        if (why && !c->closing) {
            auth_stats().failures.with({cfg.listener_name, "TLS"}).inc();
            log_limited(auth_log_limit(), lg(), spdlog::level::warn, "closing connection from {} on listener {}: {}",
                        c->peer, cfg.listener_name, *why);
        }
        c->closing = true;
        c->reader_done = true;
        c->sock.close(ec);
        c->idle_timer.cancel();
        co_return;
    }
    if (by_certificate) {
        auth_stats().successes.with({cfg.listener_name, "TLS"}).inc();
    }
    if (!security::uses_sasl(cfg.security_protocol)) {
        c->authenticated = true;
    }
    asio::co_spawn(c->sock.get_executor(), read_requests(c), asio::detached);
    asio::co_spawn(c->sock.get_executor(), write_answers(c), asio::detached);
}

void serve_connection(kafka_server::state& st, unsigned shard, tcp::socket sock) {
    auto c = std::make_shared<connection>(st, shard, std::move(sock));
    boost::system::error_code ec;
    if (auto ep = c->sock.remote_endpoint(ec); !ec) {
        c->peer = fmt::format("{}:{}", ep.address().to_string(), ep.port());
        c->client_host = "/" + ep.address().to_string();
    }
    const auto proto = st.config.security_protocol;
    c->authenticated = !security::uses_tls(proto) && !security::uses_sasl(proto);
    c->auth_deadline = std::chrono::steady_clock::now() + st.config.auth_timeout;
    asio::co_spawn(c->sock.get_executor(), close_when_idle(c), asio::detached);
    if (security::uses_tls(proto)) {
        c->tls_context = st.config.tls->current();
        c->tls = std::make_unique<tls_stream>(c->sock, *c->tls_context);
        asio::co_spawn(c->sock.get_executor(), start_tls(c), asio::detached);
        return;
    }
    asio::co_spawn(c->sock.get_executor(), read_requests(c), asio::detached);
    asio::co_spawn(c->sock.get_executor(), write_answers(c), asio::detached);
}

asio::awaitable<void> accept_loop(kafka_server::state& st) {
    static logging::rate_limit accept_failures;
    static logging::rate_limit refusals;
    backoff pause;
    for (;;) {
        boost::system::error_code ec;
        tcp::socket sock(st.shards.context_of(0));
        co_await st.acceptor->async_accept(sock, asio::redirect_error(asio::use_awaitable, ec));
        if (st.stopping || ec == asio::error::operation_aborted) {
            co_return;
        }
        if (ec) {
            // Out of descriptors (EMFILE/ENFILE) or memory: the pending connection stays
            // queued, so retrying at once would spin. Wait, doubling the pause up to 1 s.
            conn_metrics().accept_errors.inc();
            const auto wait = pause.next();
            log_limited(accept_failures, lg(), spdlog::level::warn, "accept failed: {}; retrying in {} ms",
                        ec.message(), wait.count());
            st.accept_pause->expires_after(wait);
            co_await st.accept_pause->async_wait(asio::redirect_error(asio::use_awaitable, ec));
            continue;
        }
        pause.reset();
        if (st.open_connections.load() >= st.config.max_connections) {
            conn_metrics().refused.inc();
            log_limited(refusals, lg(), spdlog::level::warn,
                        "closing a new connection: {} Kafka connections are open (--kafka-max-connections)",
                        st.config.max_connections);
            sock.close(ec);
            continue;
        }
        sock.set_option(tcp::no_delay(true), ec);
        const unsigned target = st.next_shard++ % st.shards.size();
        // Move the connection to its shard: the descriptor travels, the socket is rebuilt there.
        auto protocol = sock.local_endpoint(ec).protocol();
        int fd = sock.release(ec);
        if (ec) {
            continue;
        }
        st.open_connections.fetch_add(1);
        conn_metrics().open.add(1);
        st.shards.executor_of(target).post([&st, target, protocol, fd] {
            tcp::socket moved(st.shards.context_of(target), protocol, fd);
            serve_connection(st, target, std::move(moved));
        });
    }
}

} // namespace

kafka_server::kafka_server(net::shard_group& shards, broker::broker& broker, broker::group_coordinator& groups,
                           server_config config)
  : _state(std::make_unique<state>(shards, broker, groups, std::move(config))) {
    _state->connections.resize(shards.size());
}

kafka_server::~kafka_server() { stop(); }

result<net::endpoint> kafka_server::start() {
    auto& st = *_state;
    const auto proto = st.config.security_protocol;
    if ((security::uses_tls(proto) && (!st.config.tls || !st.config.tls->current()))
        || (security::uses_sasl(proto) && (!st.config.credentials || st.config.sasl_mechanisms.empty()))
        || (std::find(st.config.sasl_mechanisms.begin(), st.config.sasl_mechanisms.end(),
                      security::mechanism::oauthbearer)
              != st.config.sasl_mechanisms.end()
            && !st.config.jwt)) {
        return std::make_error_code(std::errc::invalid_argument); // a TLS context or credentials missing
    }
    boost::system::error_code ec;
    auto address = asio::ip::make_address(st.config.listen.host, ec);
    if (ec) {
        return std::make_error_code(std::errc::invalid_argument);
    }
    std::optional<result<net::endpoint>> out;
    st.shards.run_on(0, [&] {
        auto acc = std::make_unique<tcp::acceptor>(st.shards.context_of(0));
        tcp::endpoint ep(address, st.config.listen.port);
        acc->open(ep.protocol(), ec);
        if (!ec) {
            acc->set_option(tcp::acceptor::reuse_address(true), ec);
        }
        if (!ec) {
            acc->bind(ep, ec);
        }
        if (!ec) {
            acc->listen(asio::socket_base::max_listen_connections, ec);
        }
        if (ec) {
            out = std::error_code(ec.value(), std::system_category());
            return;
        }
        auto bound = acc->local_endpoint();
        st.acceptor = std::move(acc);
        st.accept_pause = std::make_unique<asio::steady_timer>(st.shards.context_of(0));
        net::endpoint actual{bound.address().to_string(), bound.port()};
        st.advertised = st.config.advertise.value_or(actual);
        asio::co_spawn(st.shards.context_of(0), accept_loop(st), asio::detached);
        out = actual;
    });
    return *out;
}

void kafka_server::stop() {
    auto& st = *_state;
    if (st.stopping) {
        return;
    }
    st.stopping = true;
    // Stop accepting and stop reading: the receive side of every connection is shut, so its
    // reader takes only the requests already received (a client that keeps sending is cut at
    // the deadline below) and then sees end of file; its writer answers every request read,
    // in order, then closes. Long polls answer at once with what they have.
    for (unsigned s = 0; s < st.shards.size(); ++s) {
        st.shards.run_on(s, [&, s] {
            boost::system::error_code ec;
            if (s == 0 && st.acceptor) {
                st.acceptor->close(ec);
                st.accept_pause->cancel();
            }
            st.connections[s].draining = true;
            for (auto* sock : st.connections[s].sockets) {
                sock->shutdown(tcp::socket::shutdown_receive, ec);
            }
            for (auto* timer : st.connections[s].long_polls) {
                timer->cancel();
            }
        });
    }
    // Wait, while every shard still runs (a request in flight may need another shard to answer
    // it), until each connection has written its answers and closed, for at most
    // `drain_timeout`; then close the rest (a client that reads no answers, a stuck request)
    // and wait for their coroutines to end.
    constexpr auto drain_timeout = std::chrono::seconds(5);
    constexpr auto close_timeout = std::chrono::seconds(5);
    auto wait_for_connections = [&](std::chrono::steady_clock::time_point deadline, bool close_them) {
        std::size_t left_total = 0;
        for (unsigned s = 0; s < st.shards.size(); ++s) {
            for (;;) {
                std::size_t left = 0;
                st.shards.run_on(s, [&] {
                    boost::system::error_code ec;
                    left = st.connections[s].sockets.size();
                    for (auto* timer : st.connections[s].long_polls) {
                        timer->cancel(); // long polls that began after `draining` was set
                    }
                    if (close_them) {
                        for (auto* sock : st.connections[s].sockets) {
                            sock->close(ec);
                        }
                    }
                });
                if (left == 0 || std::chrono::steady_clock::now() >= deadline) {
                    left_total += left;
                    break;
                }
                std::this_thread::sleep_for(std::chrono::milliseconds(5)); // polling a shutdown, not a test
            }
        }
        return left_total;
    };
    if (auto left = wait_for_connections(std::chrono::steady_clock::now() + drain_timeout, false); left != 0) {
        lg().warn("{} Kafka connections had not written their answers within {} s of stop; closing them", left,
                  drain_timeout.count());
        if (left = wait_for_connections(std::chrono::steady_clock::now() + close_timeout, true); left != 0) {
            lg().warn("{} Kafka connections did not finish within {} s of being closed", left,
                      close_timeout.count());
        }
    }
}

} // namespace runnel::kafka
