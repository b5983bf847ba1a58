#include <CLI/CLI.hpp>

#include <csignal>
#include <future>
#include <thread>

#include "app/commands.h"
#include "broker/broker.h"
#include "app/demo.h"
#include "gateway/gateway.h"
#include "jobs/jobs.h"
#include "kafka/server/server.h"
#include "net/net.h"
#include "security/security.h"
#include "sql/sql.h"
#include "storage/storage.h"

namespace runnel::app {
namespace {

spdlog::logger& lg() { return logging::get("serve"); }

/// How often group sessions, rebalance timeouts and initial delays are checked: a member is
/// removed at most this long after its deadline (Kafka arms a timer per deadline, so clients
/// and tools expect a session to end within milliseconds of its timeout). A check of a shard
/// with nothing due reads each member's deadline once and allocates nothing.
constexpr std::chrono::milliseconds group_check_interval{20};
/// How often transactions past their timeout are looked for.
constexpr std::chrono::milliseconds txn_check_interval{1000};
/// How often the ACL file is looked at for changes made by `runnel acl`.
constexpr std::chrono::milliseconds acl_check_interval{1000};

/// One Kafka listener as the flags describe it, with what its security needs.
struct listener_setup {
    security::listener_spec spec;
    std::optional<net::endpoint> advertise;
    std::shared_ptr<security::tls_server_context> tls;
    std::shared_ptr<security::credential_store> credentials;
    std::shared_ptr<security::jwt_validator> jwt;
    std::vector<security::principal_rule> rules;
    std::vector<security::mechanism> mechanisms;
    std::chrono::milliseconds auth_timeout{};
    std::chrono::milliseconds session_lifetime{};

    void apply(kafka::server_config& cfg) const {
        cfg.listen = spec.address;
        cfg.advertise = advertise;
        cfg.listener_name = spec.name;
        cfg.security_protocol = spec.proto;
        cfg.tls = security::uses_tls(spec.proto) ? tls : nullptr;
        cfg.credentials = credentials;
        cfg.jwt = jwt;
        cfg.principal_rules = rules;
        cfg.sasl_mechanisms = mechanisms;
        cfg.auth_timeout = auth_timeout;
        cfg.sasl_session_lifetime = session_lifetime;
    }
};

struct listener_set {
    std::vector<listener_setup> listeners;
    /// SSL listeners check client certificates as --tls-client-auth says; SASL_SSL listeners
    /// authenticate by SASL and ask for none, as Kafka ignores ssl.client.auth there.
    std::shared_ptr<security::tls_server_context> tls;
    std::shared_ptr<security::tls_server_context> tls_for_sasl;
    std::shared_ptr<security::credential_store> credentials;
    /// The HTTP listener's TLS (--http-tls; no client certificates) and the JWT keys
    /// (--jwks-file), reloaded with the rest.
    std::shared_ptr<security::tls_server_context> http_tls;
    std::shared_ptr<security::jwt_validator> jwt;

    /// SIGHUP: new connections use the certificate and key as the files hold them now; the
    /// credential file and the JWKS are read again (credentials also on their own when they
    /// change).
    void reload() {
        std::string why;
        for (const auto& t : {tls, tls_for_sasl, http_tls}) {
            if (!t) {
                continue;
            }
            if (auto r = t->load(why); r) {
                lg().info("SIGHUP: reloaded the TLS certificate {} and key {}", t->config().cert_file.string(),
                          t->config().key_file.string());
            } else {
                lg().error("SIGHUP: keeping the previous TLS certificate: {}", why);
            }
        }
        if (credentials) {
            if (auto r = credentials->load(why); !r) {
                lg().error("SIGHUP: keeping the previous SCRAM credentials: {}", why);
            }
        }
        if (jwt) {
            if (auto r = jwt->load(why); r) {
                lg().info("SIGHUP: reloaded {} JWT keys from {}", jwt->key_count(), jwt->config().jwks_file.string());
            } else {
                lg().error("SIGHUP: keeping the previous JWT keys: {}", why);
            }
        }
    }
};

/// The Kafka listeners of the flags: `--kafka-addr` (PLAINTEXT; when no `--kafka-listener`
/// is given, or when it is given explicitly) and every `--kafka-listener`, checked, with their
/// TLS context and credential store loaded. Prints what is wrong and returns nothing on error.
std::optional<listener_set> kafka_listeners(const serve_options& opts, const net::endpoint& kafka_ep,
                                            const std::optional<net::endpoint>& advertise_ep) {
    auto fail = [](const std::string& why) {
        fmt::print(stderr, "runnel serve: {}\n", why);
        return std::nullopt;
    };
    listener_set out;
    if (opts.kafka_listeners.empty() || opts.kafka_addr_given) {
        listener_setup l;
        l.spec = {"PLAINTEXT", security::protocol::plaintext, kafka_ep};
        out.listeners.push_back(std::move(l));
    }
    for (const auto& text : opts.kafka_listeners) {
        std::string why;
        auto spec = security::parse_listener(text, why);
        if (!spec) {
            return fail(fmt::format("invalid --kafka-listener '{}': {}", text, why));
        }
        for (const auto& other : out.listeners) {
            if (other.spec.name == spec->name) {
                return fail(fmt::format("two Kafka listeners are named {}: name one NAME:{}://HOST:PORT", spec->name,
                            security::protocol_name(spec->proto)));
            }
        }
        listener_setup l;
        l.spec = std::move(*spec);
        out.listeners.push_back(std::move(l));
    }
    if (advertise_ep) {
        out.listeners.front().advertise = advertise_ep;
    }
    for (const auto& text : opts.kafka_advertised_listeners) {
        std::string why;
        auto a = security::parse_advertised_listener(text, why);
        if (!a) {
            return fail(fmt::format("invalid --kafka-advertised-listener '{}': {}", text, why));
        }
        auto it = std::find_if(out.listeners.begin(), out.listeners.end(),
                               [&](const listener_setup& l) { return l.spec.name == a->first; });
        if (it == out.listeners.end()) {
            return fail(fmt::format("--kafka-advertised-listener '{}' names no listener", text));
        }
        it->advertise = a->second;
    }
    bool any_tls = false;
    bool any_sasl = false;
    for (const auto& l : out.listeners) {
        any_tls |= security::uses_tls(l.spec.proto);
        any_sasl |= security::uses_sasl(l.spec.proto);
        if (l.spec.proto == security::protocol::plaintext && !net::is_loopback(l.spec.address.host)
            && !opts.allow_insecure_network) {
            return fail(fmt::format("the PLAINTEXT Kafka listener {} on {} would let anyone on the network read and write every "
                        "topic: listen on 127.0.0.1, use SSL or SASL_SSL listeners (docs/security.md), or pass "
                        "--allow-insecure-network",
                        l.spec.name, l.spec.address.to_string()));
        }
    }
    auto client_auth = security::parse_client_auth(opts.tls_client_auth);
    if (any_tls) {
        if (opts.tls_cert_file.empty() || opts.tls_key_file.empty()) {
            return fail("SSL and SASL_SSL listeners need --tls-cert-file and --tls-key-file");
        }
        if (*client_auth != security::client_auth::none && opts.tls_ca_file.empty()) {
            return fail(fmt::format("--tls-client-auth {} needs --tls-ca-file, the CAs client certificates chain to",
                        opts.tls_client_auth));
        }
        out.tls = std::make_shared<security::tls_server_context>(
          security::tls_config{opts.tls_cert_file, opts.tls_key_file, opts.tls_ca_file, *client_auth});
        out.tls_for_sasl = std::make_shared<security::tls_server_context>(
          security::tls_config{opts.tls_cert_file, opts.tls_key_file, opts.tls_ca_file, security::client_auth::none});
        std::string why;
        if (!out.tls->load(why) || !out.tls_for_sasl->load(why)) {
            return fail(why);
        }
    }
    std::vector<security::mechanism> mechanisms;
    for (const auto& m : opts.sasl_mechanisms) {
        mechanisms.push_back(*security::parse_mechanism(m));
    }
    if (opts.http_tls) {
        if (opts.tls_cert_file.empty() || opts.tls_key_file.empty()) {
            return fail("--http-tls needs --tls-cert-file and --tls-key-file");
        }
        out.http_tls = std::make_shared<security::tls_server_context>(
          security::tls_config{opts.tls_cert_file, opts.tls_key_file, {}, security::client_auth::none});
        std::string why;
        if (!out.http_tls->load(why)) {
            return fail(why);
        }
    }
    if (!opts.jwks_file.empty()) {
        security::jwt_config jc;
        jc.jwks_file = opts.jwks_file;
        if (!opts.jwt_issuer.empty()) {
            jc.issuer = opts.jwt_issuer;
        }
        if (!opts.jwt_audience.empty()) {
            jc.audience = opts.jwt_audience;
        }
        jc.principal_claim = opts.jwt_principal_claim;
        out.jwt = std::make_shared<security::jwt_validator>(std::move(jc));
        std::string why;
        if (!out.jwt->load(why)) {
            return fail(why);
        }
    } else if (!opts.jwt_issuer.empty() || !opts.jwt_audience.empty()) {
        return fail("--jwt-issuer and --jwt-audience need --jwks-file");
    }
    // The SCRAM credentials are kept whatever the listeners: AlterUserScramCredentials may
    // store them before a SASL listener uses them.
    out.credentials = std::make_shared<security::credential_store>(security::credential_store::file_in(opts.data_dir));
    if (std::string why; !out.credentials->load(why)) {
        return fail(why);
    }
    if (any_sasl || opts.http_basic_auth) {
        if (any_sasl && mechanisms.empty()) {
            return fail("SASL listeners need at least one of --sasl-mechanisms");
        }
        if (any_sasl && !out.jwt
            && std::find(mechanisms.begin(), mechanisms.end(), security::mechanism::oauthbearer) != mechanisms.end()) {
            return fail("--sasl-mechanisms OAUTHBEARER needs --jwks-file, the keys tokens are checked with");
        }
        if (out.credentials->list().empty()) {
            lg().warn("no users yet: add one with `runnel user create --data-dir {} NAME`", opts.data_dir.string());
        }
    }
    std::string why;
    auto rules = security::parse_principal_rules(opts.ssl_principal_mapping_rules, why);
    if (!rules) {
        return fail(fmt::format("invalid --ssl-principal-mapping-rules: {}", why));
    }
    for (auto& l : out.listeners) {
        l.tls = l.spec.proto == security::protocol::sasl_ssl ? out.tls_for_sasl : out.tls;
        l.credentials = out.credentials;
        l.jwt = out.jwt;
        l.rules = *rules;
        l.mechanisms = mechanisms;
        l.auth_timeout = std::chrono::milliseconds(opts.sasl_handshake_timeout_ms);
        l.session_lifetime = std::chrono::milliseconds(opts.sasl_session_lifetime_ms);
    }
    return out;
}

} // namespace

void add_serve_command(CLI::App& app, int (*&run)(const serve_options&), serve_options& opts) {
    auto* cmd = app.add_subcommand("serve", "Run the server: log, engine and gateway in one process");
    cmd->add_option("--data-dir", opts.data_dir, "Directory holding all data")->capture_default_str();
    cmd->add_option("--kafka-addr", opts.kafka_addr, "Kafka protocol listener, HOST:PORT (a PLAINTEXT listener)")
      ->capture_default_str()
      ->each([&opts](const std::string&) { opts.kafka_addr_given = true; });
    cmd->add_option("--kafka-listener", opts.kafka_listeners,
                    "A Kafka listener [NAME:]PROTOCOL://HOST:PORT, PROTOCOL one of PLAINTEXT, SSL, SASL_PLAINTEXT, "
                    "SASL_SSL (repeatable; with it, --kafka-addr listens only when given)");
    cmd->add_option("--kafka-advertised-listener", opts.kafka_advertised_listeners,
                    "What Metadata tells clients of listener NAME to connect to, NAME://HOST:PORT (repeatable)");
    cmd->add_option("--tls-cert-file", opts.tls_cert_file, "PEM certificate chain of the SSL and SASL_SSL listeners");
    cmd->add_option("--tls-key-file", opts.tls_key_file, "PEM private key of that certificate");
    cmd->add_option("--tls-ca-file", opts.tls_ca_file, "PEM CA certificates client certificates must chain to");
    cmd->add_option("--tls-client-auth", opts.tls_client_auth,
                    "Client certificates on SSL listeners: required, requested or none (ssl.client.auth; SASL_SSL asks for none)")
      ->capture_default_str()
      ->check(CLI::IsMember({"none", "requested", "required"}));
    cmd->add_option("--ssl-principal-mapping-rules", opts.ssl_principal_mapping_rules,
                    "How a client certificate subject becomes the user name: RULE:pattern/replacement/[LU],...,DEFAULT")
      ->capture_default_str();
    cmd->add_option("--sasl-mechanisms", opts.sasl_mechanisms,
                    "SASL mechanisms the SASL listeners offer: SCRAM-SHA-256, SCRAM-SHA-512, PLAIN, OAUTHBEARER")
      ->delimiter(',')
      ->capture_default_str()
      ->check(CLI::IsMember({"SCRAM-SHA-256", "SCRAM-SHA-512", "PLAIN", "OAUTHBEARER"}));
    cmd->add_option("--sasl-handshake-timeout-ms", opts.sasl_handshake_timeout_ms,
                    "Time a Kafka connection has to finish its TLS handshake and SASL authentication")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{100}, int64_t{600000}));
    cmd->add_option("--sasl-session-lifetime-ms", opts.sasl_session_lifetime_ms,
                    "SASL sessions last this long, then clients re-authenticate or are closed (0: forever)")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{0}, int64_t{365} * 24 * 3600 * 1000));
    cmd->add_option("--sasl-password-check-threads", opts.sasl_password_check_threads,
                    "Threads that check SASL/PLAIN passwords (a PBKDF2 derivation each), off the event loops "
                    "(0: on the connection's event loop, which stalls its other connections meanwhile)")
      ->capture_default_str()
      ->check(CLI::Range(0, 64));
    cmd->add_option("--sasl-password-check-queue", opts.sasl_password_check_queue,
                    "SASL/PLAIN password checks waiting or running at once; beyond it a login is refused with "
                    "SASL_AUTHENTICATION_FAILED")
      ->capture_default_str()
      ->check(CLI::Range(1, 100000));
    cmd->add_option("--authorizer", opts.authorizer,
                    "Authorization of Kafka and HTTP requests: acl (ACLs, managed with `runnel acl` or the "
                    "Kafka admin APIs) or none (every client may do everything)")
      ->capture_default_str()
      ->check(CLI::IsMember({"acl", "none"}));
    cmd->add_option("--super-users", opts.super_users,
                    "Principals the ACLs do not restrict, separated by ';' (User:admin;User:ops)");
    cmd->add_flag("--allow-everyone-if-no-acl-found", opts.allow_everyone_if_no_acl_found,
                  "With --authorizer acl, allow every principal on a resource no ACL names");
    cmd->add_flag("--allow-insecure-network", opts.allow_insecure_network,
                  "Allow a PLAINTEXT Kafka listener, or an HTTP listener without authentication, on a non-loopback "
                  "address");
    cmd->add_option("--http-addr", opts.http_addr, "HTTP, WebSocket and dashboard listener, HOST:PORT")
      ->capture_default_str();
    cmd->add_option("--http-token", opts.http_token,
                    "Bearer token the HTTP API takes (some authentication is required when --http-addr is not "
                    "loopback)");
    cmd->add_flag("--http-tls", opts.http_tls,
                  "Serve HTTPS (and WSS, SSE over TLS) with --tls-cert-file and --tls-key-file");
    cmd->add_flag("--http-basic-auth", opts.http_basic_auth,
                  "Take HTTP basic credentials, checked against the users of `runnel user`");
    cmd->add_option("--jwks-file", opts.jwks_file,
                    "JSON Web Key Set whose RS256/ES256 keys sign the JWTs the HTTP API and SASL OAUTHBEARER take");
    cmd->add_option("--jwt-issuer", opts.jwt_issuer, "The iss every JWT must have (default: any)");
    cmd->add_option("--jwt-audience", opts.jwt_audience, "A value the aud of every JWT must hold (default: any)");
    cmd->add_option("--jwt-principal-claim", opts.jwt_principal_claim, "The JWT claim naming the user")
      ->capture_default_str();
    cmd->add_option("--metrics-addr", opts.metrics_addr,
                    "A second, plain HTTP listener serving only /metrics without authentication, HOST:PORT");
    cmd->add_option("--http-max-body-bytes", opts.http_max_body_bytes, "Largest HTTP request body accepted")
      ->capture_default_str()
      ->check(CLI::Range(std::size_t{1}, std::size_t{1} << 30));
    cmd->add_option("--http-client-queue-bytes", opts.http_client_queue_bytes,
                    "Send queue bound of each WebSocket/event-stream client; overflow closes it as slow")
      ->capture_default_str()
      ->check(CLI::Range(std::size_t{4096}, std::size_t{1} << 30));
    cmd->add_option("--kafka-max-inflated-batch-bytes", opts.kafka_max_inflated_batch_bytes,
                    "Most bytes the records of one compressed produced batch may inflate to; larger: INVALID_RECORD")
      ->capture_default_str()
      ->check(CLI::Range(std::size_t{1} << 16, std::size_t{1} << 31));
    cmd->add_option("--kafka-transaction-max-timeout-ms", opts.kafka_transaction_max_timeout_ms,
                    "Longest transaction.timeout.ms a transactional producer may ask for; longer: "
                    "INVALID_TRANSACTION_TIMEOUT")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{INT32_MAX}));
    cmd->add_option("--kafka-max-connections", opts.kafka_max_connections,
                    "Kafka connections open at once (max.connections); more are closed on accept")
      ->capture_default_str()
      ->check(CLI::Range(std::size_t{1}, std::size_t{1} << 20));
    cmd->add_option("--kafka-connections-max-idle-ms", opts.kafka_connections_max_idle_ms,
                    "Close a Kafka connection with no request in flight for this long (connections.max.idle.ms)")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{10}, int64_t{7} * 24 * 3600 * 1000));
    cmd->add_option("--max-open-segment-files", opts.max_open_segment_files,
                    "Sealed segment files kept open at once (least recently read closed first); 0: all")
      ->capture_default_str()
      ->check(CLI::Range(std::size_t{0}, std::size_t{1} << 24));
    cmd->add_option("--http-header-timeout-ms", opts.http_header_timeout_ms,
                    "Time an HTTP request's line and headers may take to arrive; slower clients are disconnected")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{10}, int64_t{3600000}));
    cmd->add_option("--http-body-timeout-ms", opts.http_body_timeout_ms,
                    "Time an HTTP request's body may take to arrive after its headers")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{10}, int64_t{3600000}));
    cmd->add_option("--http-max-connections", opts.http_max_connections,
                    "Open HTTP connections (streams included); more are answered 503 and closed")
      ->capture_default_str()
      ->check(CLI::Range(std::size_t{1}, std::size_t{1} << 20));
    cmd->add_option("--dashboard-sample-interval-ms", opts.dashboard_sample_interval_ms,
                    "How often the dashboard's history (GET /v1/history) is sampled; it keeps 720 samples, one "
                    "hour at 5000 ms")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{50}, int64_t{3600000}));
    cmd->add_option("--temporary-view-idle-ms", opts.temporary_view_idle_ms,
                    "A temporary materialized view (a push query of the shell or the dashboard) nobody reads "
                    "or follows for this long is dropped with its pipeline")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{100}, int64_t{86400000}));
    cmd->add_option("--dashboard-history-max-series", opts.dashboard_history_max_series,
                    "Series the dashboard's history keeps (topics, three per pipeline); more are not kept")
      ->capture_default_str()
      ->check(CLI::Range(std::size_t{1}, std::size_t{100000}));
    cmd->add_option("--http-allowed-hosts", opts.http_allowed_hosts,
                    "Host names (NAME or NAME:PORT) the HTTP API answers to besides its address, localhost, "
                    "127.0.0.1 and [::1]")
      ->delimiter(',');
    cmd->add_option("--pipeline-max-memory-bytes", opts.pipeline_max_memory_bytes,
                    "Operator state plus buffers each pipeline instance may hold, checked at every checkpoint; "
                    "over it the pipeline fails (0: no limit)")
      ->capture_default_str();
    cmd->add_option("--sql-parallelism", opts.sql_parallelism,
                    "Instances a SQL pipeline runs as unless its script sets 'parallelism.default' (0: one per "
                    "shard)")
      ->capture_default_str()
      ->check(CLI::Range(0u, 256u));
    cmd->add_option("--sql-catalog-max-entries", opts.sql_catalog_max_entries,
                    "Tables and views the SQL catalog (DATA_DIR/catalog) may hold; a CREATE past it is refused")
      ->capture_default_str()
      ->check(CLI::Range(std::size_t{1}, std::size_t{1000000}));
    cmd->add_option("--sql-catalog-max-definition-bytes", opts.sql_catalog_max_definition_bytes,
                    "Bytes of one catalog entry's CREATE text; a longer one is refused")
      ->capture_default_str()
      ->check(CLI::Range(std::size_t{1024}, std::size_t{16} << 20));
    cmd->add_option("--http-allowed-origins", opts.http_allowed_origins,
                    "Origins (SCHEME://HOST[:PORT]) of other web pages allowed to send changes and open streams")
      ->delimiter(',');
    cmd->add_option("--retention-check-ms", opts.retention_check_ms,
                    "How often each shard applies retention (log.retention.check.interval.ms)")
      ->capture_default_str()
      ->check(CLI::Range(10u, 24u * 3600 * 1000));
    cmd->add_option("--log-cleaner-io-max-bytes-per-second", opts.log_cleaner_io_max_bytes_per_second,
                    "Disk bytes per second the log cleaner may read plus write (compacted topics)")
      ->capture_default_str()
      ->check(CLI::Range(uint64_t{1} << 16, uint64_t{1} << 40));
    cmd->add_option("--log-cleaner-dedupe-buffer-bytes", opts.log_cleaner_dedupe_buffer_bytes,
                    "Memory of the log cleaner's offset map (keys of one cleaning)")
      ->capture_default_str()
      ->check(CLI::Range(uint64_t{1} << 16, uint64_t{1} << 40));
    cmd->add_option("--log-cleaner-backoff-ms", opts.log_cleaner_backoff_ms,
                    "How often each shard looks for compacted logs due for cleaning, and rolls segments past segment.ms")
      ->capture_default_str()
      ->check(CLI::Range(10u, 3600u * 1000));
    cmd->add_option("--advertise-addr", opts.advertise_addr,
                    "Address Kafka clients are told to connect to, HOST:PORT (default: the listener's)");
    cmd->add_option("--auto-create-topics", opts.auto_create_topics,
                    "Create unknown topics on Metadata and Produce requests")
      ->capture_default_str();
    cmd->add_flag("--accept-any-replication-factor", opts.accept_any_replication_factor,
                  "CreateTopics takes any replication factor and keeps this node's one replica (for client test "
                  "suites written for three brokers); without it a factor above 1 is refused, as a single Kafka "
                  "broker refuses it");
    cmd->add_option("--default-partitions", opts.default_partitions, "Partitions of auto-created topics")
      ->capture_default_str()
      ->check(CLI::Range(1, 100000));
    cmd->add_option("--kafka-fetch-max-bytes", opts.kafka_fetch_max_bytes,
                    "Most record bytes one Fetch response carries, whatever the request asks (fetch.max.bytes)")
      ->capture_default_str()
      ->check(CLI::Range(1024, 1 << 30));
    cmd->add_option("--group-initial-rebalance-delay-ms", opts.group_initial_rebalance_delay_ms,
                    "How long a new consumer group waits for more members before its first rebalance")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{0}, int64_t{300000}));
    cmd->add_option("--group-min-session-timeout-ms", opts.group_min_session_timeout_ms,
                    "Smallest session timeout a group member may ask for")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{3600000}));
    cmd->add_option("--group-max-session-timeout-ms", opts.group_max_session_timeout_ms,
                    "Largest session timeout a group member may ask for")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{86400000}));
    cmd->add_option("--group-consumer-heartbeat-interval-ms", opts.group_consumer_heartbeat_interval_ms,
                    "How often members of consumer-protocol groups (KIP-848) are told to heartbeat")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{100}, int64_t{3600000}));
    cmd->add_option("--group-consumer-session-timeout-ms", opts.group_consumer_session_timeout_ms,
                    "How long a member of a consumer-protocol group stays without heartbeating before it is removed")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1000}, int64_t{86400000}));
    cmd->add_option("--group-consumer-max-size", opts.group_consumer_max_size,
                    "Most members of one consumer-protocol group; more are refused with GROUP_MAX_SIZE_REACHED")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{100000}));
    cmd->add_flag("--demo", opts.demo,
                  "Run a live demo: generated Nexmark bids into demo-bids, counted per channel in 5 s windows into "
                  "demo-bids-per-channel");
    cmd->add_option("--demo-rate", opts.demo_rate, "Events per second the demo generates")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{1000000}));
    cmd->add_option("--shards", opts.shards, "Event loop threads (default: one per core)");
    cmd->add_option("--log-level", opts.log_level, "trace, debug, info, warn, error or off")
      ->capture_default_str()
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "critical", "off"}));
    // The config file belongs to the top-level command (CLI11 reads it there) and names its
    // section: `[serve]` then `shards = 4` and so on. `serve --config FILE` falls through to it.
    app.set_config("--config", "", "Read options from a TOML or INI file ([serve] section; flags win)");
    cmd->fallthrough();
    run = &serve;
}

int serve(const serve_options& opts) {
    logging::set_level(spdlog::level::from_str(opts.log_level));
    std::optional<net::endpoint> kafka_ep;
    std::optional<net::endpoint> advertise_ep;
    std::optional<net::endpoint> http_ep;
    for (auto [flag, value, out] : {std::tuple{"--kafka-addr", &opts.kafka_addr, &kafka_ep},
                                    {"--http-addr", &opts.http_addr, &http_ep},
                                    {"--advertise-addr", &opts.advertise_addr, &advertise_ep}}) {
        if (value->empty() && out == &advertise_ep) {
            continue;
        }
        std::string why;
        auto ep = net::parse_endpoint(*value, why, out != &advertise_ep);
        if (!ep) {
            fmt::print(stderr, "runnel serve: invalid {} '{}': {}\n", flag, *value, why);
            return 2;
        }
        if (out) {
            *out = ep.value();
        }
    }
    std::optional<net::endpoint> metrics_ep;
    if (!opts.metrics_addr.empty()) {
        std::string why;
        auto ep = net::parse_endpoint(opts.metrics_addr, why, true);
        if (!ep) {
            fmt::print(stderr, "runnel serve: invalid --metrics-addr '{}': {}\n", opts.metrics_addr, why);
            return 2;
        }
        metrics_ep = ep.value();
    }
    auto listeners = kafka_listeners(opts, *kafka_ep, advertise_ep);
    if (!listeners) {
        return 2;
    }
    security::acl_options acl_opts;
    acl_opts.allow_everyone_if_no_acl_found = opts.allow_everyone_if_no_acl_found;
    for (std::size_t start = 0; start <= opts.super_users.size();) {
        auto end = std::min(opts.super_users.find(';', start), opts.super_users.size());
        auto user = opts.super_users.substr(start, end - start);
        start = end + 1;
        if (user.find_first_not_of(' ') == std::string::npos) {
            continue;
        }
        user.erase(0, user.find_first_not_of(' '));
        user.erase(user.find_last_not_of(' ') + 1);
        if (user.find(':') == std::string::npos || user.front() == ':' || user.back() == ':') {
            fmt::print(stderr, "runnel serve: invalid --super-users entry '{}': a principal is TYPE:NAME (User:admin)\n",
                       user);
            return 2;
        }
        acl_opts.super_users.push_back(std::move(user));
    }
    if (opts.authorizer != "acl" && (!acl_opts.super_users.empty() || opts.allow_everyone_if_no_acl_found)) {
        fmt::print(stderr, "runnel serve: --super-users and --allow-everyone-if-no-acl-found need --authorizer acl\n");
        return 2;
    }
    const unsigned shard_count = opts.shards ? opts.shards : std::max(1u, std::thread::hardware_concurrency());

    // Signals are taken by sigwait on this thread; every thread started below inherits the mask.
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGINT);
    sigaddset(&signals, SIGTERM);
    sigaddset(&signals, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &signals, nullptr);

    std::error_code ec;
    std::filesystem::create_directories(opts.data_dir / "topics", ec);
    if (ec) {
        fmt::print(stderr, "runnel serve: cannot create data directory {}: {}\n", opts.data_dir.string(), ec.message());
        return 1;
    }
    auto lock = file_handle::open(opts.data_dir / ".lock", O_RDWR | O_CREAT);
    if (!lock || !lock.value().try_lock()) {
        fmt::print(stderr, "runnel serve: data directory {} is in use by another runnel serve\n",
                   opts.data_dir.string());
        return 1;
    }

    if (const char* point = std::getenv("RUNNEL_TEST_KILL_AT"); point && *point) {
        // Crash tests only (tests/crash/compaction_crash_test.py); armed in base/fail_point.cc.
        lg().warn("RUNNEL_TEST_KILL_AT={}: the process kills itself when it gets there", point);
    }
    const auto started = std::chrono::steady_clock::now();
    net::shard_group shards(shard_count);
    // SASL/PLAIN password checks run here, off the shards; destroyed before the shards, since
    // a check still queued then answers to one of them.
    std::shared_ptr<security::password_pool> password_checks;
    if (listeners->credentials && opts.sasl_password_check_threads > 0) {
        password_checks = std::make_shared<security::password_pool>(
          static_cast<unsigned>(opts.sasl_password_check_threads),
          static_cast<std::size_t>(opts.sasl_password_check_queue));
    }
    std::vector<std::unique_ptr<storage::flusher>> flushers;
    std::vector<executor*> executors;
    std::vector<storage::flusher*> flusher_ptrs;
    for (unsigned s = 0; s < shard_count; ++s) {
        flushers.push_back(std::make_unique<storage::flusher>(fmt::format("flush-{}", s)));
        executors.push_back(&shards.executor_of(s));
        flusher_ptrs.push_back(flushers.back().get());
    }
    // Every partition opens (and recovers) on the shard that owns it.
    broker::broker brk(broker::broker_config{opts.data_dir, opts.auto_create_topics, opts.default_partitions,
                                             opts.kafka_max_inflated_batch_bytes, opts.max_open_segment_files,
                                             opts.kafka_transaction_max_timeout_ms},
                       executors, flusher_ptrs);
    // The log cleaner's thread compacts logs of topics with cleanup.policy=compact.
    storage::log_cleaner cleaner(
      storage::cleaner_limits{opts.log_cleaner_dedupe_buffer_bytes, opts.log_cleaner_io_max_bytes_per_second});
    std::optional<std::string> failure;
    if (auto r = brk.start(); !r) {
        failure = fmt::format("cannot load topics: {}", r.error().message());
    }
    kafka::server_config kcfg;
    if (opts.authorizer == "acl") {
        kcfg.acls = std::make_shared<security::acl_store>(security::acl_store::file_in(opts.data_dir), acl_opts);
        std::string why;
        if (auto r = kcfg.acls->load(why); !r) {
            failure = fmt::format("cannot load the ACLs: {}", why);
        }
    }
    kcfg.auto_create_topics = opts.auto_create_topics;
    kcfg.default_partitions = opts.default_partitions;
    kcfg.accept_any_replication_factor = opts.accept_any_replication_factor;
    kcfg.fetch_max_bytes = opts.kafka_fetch_max_bytes;
    kcfg.max_connections = opts.kafka_max_connections;
    kcfg.connections_max_idle = std::chrono::milliseconds(opts.kafka_connections_max_idle_ms);
    broker::group_config gcfg;
    gcfg.initial_rebalance_delay = std::chrono::milliseconds(opts.group_initial_rebalance_delay_ms);
    gcfg.min_session_timeout = std::chrono::milliseconds(opts.group_min_session_timeout_ms);
    gcfg.max_session_timeout = std::chrono::milliseconds(opts.group_max_session_timeout_ms);
    gcfg.consumer.heartbeat_interval = std::chrono::milliseconds(opts.group_consumer_heartbeat_interval_ms);
    gcfg.consumer.session_timeout = std::chrono::milliseconds(opts.group_consumer_session_timeout_ms);
    gcfg.consumer.max_size = static_cast<std::size_t>(opts.group_consumer_max_size);
    broker::group_coordinator groups(brk, gcfg, executors);
    brk.on_topic_deleted([&groups](const std::string& topic) { groups.on_topic_deleted(topic); });
    if (!failure) {
        if (auto r = groups.start(); !r) {
            failure = fmt::format("cannot open the consumer offsets topic: {}", r.error().message());
        }
    }
    // Transactions recover after the groups they commit offsets to, before clients connect.
    if (!failure) {
        if (auto r = brk.transactions().start(&groups); !r) {
            failure = fmt::format("cannot open the transaction log: {}", r.error().message());
        }
    }
    std::vector<std::unique_ptr<kafka::kafka_server>> kafka_servers;
    std::vector<std::string> listener_lines;
    for (const auto& l : listeners->listeners) {
        if (failure) {
            break;
        }
        auto cfg = kcfg;
        l.apply(cfg);
        cfg.password_checks = password_checks;
        kafka_servers.push_back(std::make_unique<kafka::kafka_server>(shards, brk, groups, cfg));
        if (auto bound = kafka_servers.back()->start(); !bound) {
            failure = fmt::format("cannot listen on {} for Kafka clients ({}): {}", l.spec.address.to_string(),
                                  l.spec.name, bound.error().message());
        } else {
            if (&l == &listeners->listeners.front()) {
                kafka_ep = bound.value();
            }
            listener_lines.push_back(fmt::format("Kafka listener {} ({}) on {}{}", l.spec.name,
                                                 security::protocol_name(l.spec.proto), bound.value().to_string(),
                                                 l.advertise ? ", advertised as " + l.advertise->to_string() : ""));
        }
    }
    // Durable jobs (DATA_DIR/jobs) resume from their last checkpoints; every template they may
    // name is registered first.
    register_demo_template();
    jobs::manager job_manager(brk, shards, opts.data_dir / "jobs", &groups);
    job_manager.set_max_memory_bytes(opts.pipeline_max_memory_bytes);
    if (!failure) {
        if (auto r = job_manager.start(); !r) {
            failure = fmt::format("cannot start the stored jobs: {}", r.error().message());
        }
    }
    // The SQL catalog (DATA_DIR/catalog): tables and views every POST /v1/sql sees. A damaged
    // entry is logged and counted in /metrics, and the server serves on without it.
    sql::catalog_store sql_catalog(opts.data_dir / "catalog",
                                   sql::catalog_limits{opts.sql_catalog_max_entries, opts.sql_catalog_max_definition_bytes});
    if (!failure) {
        auto loaded = sql_catalog.load();
        if (!loaded.damaged.empty()) {
            lg().error("SQL catalog: {} of {} entries damaged and skipped (runnel_sql_catalog_damaged_entries)",
                       loaded.damaged.size(), loaded.damaged.size() + loaded.loaded);
        }
    }
    gateway::options gopts;
    gopts.listen = *http_ep;
    if (!opts.http_token.empty()) {
        gopts.token = opts.http_token;
    }
    gopts.max_body_bytes = opts.http_max_body_bytes;
    gopts.client_queue_bytes = opts.http_client_queue_bytes;
    gopts.header_timeout = std::chrono::milliseconds(opts.http_header_timeout_ms);
    gopts.body_timeout = std::chrono::milliseconds(opts.http_body_timeout_ms);
    gopts.max_connections = opts.http_max_connections;
    gopts.history_interval = std::chrono::milliseconds(opts.dashboard_sample_interval_ms);
    gopts.history_max_series = opts.dashboard_history_max_series;
    gopts.temporary_view_idle = std::chrono::milliseconds(opts.temporary_view_idle_ms);
    gopts.sql_parallelism = opts.sql_parallelism ? opts.sql_parallelism : shard_count;
    gopts.allowed_hosts = opts.http_allowed_hosts;
    gopts.allowed_origins = opts.http_allowed_origins;
    gopts.data_dir = opts.data_dir.string();
    gopts.allow_insecure_network = opts.allow_insecure_network;
    gopts.tls = listeners->http_tls;
    gopts.jwt = listeners->jwt;
    gopts.acls = kcfg.acls; // the same ACLs on HTTP as on Kafka (decision 0023)
    if (opts.http_basic_auth) {
        gopts.basic_auth = std::make_shared<security::password_checker>(listeners->credentials);
    }
    gopts.metrics_listen = metrics_ep;
    gopts.groups = &groups;
    gopts.jobs = &job_manager;
    gopts.catalog = &sql_catalog;
    gateway::server http_listener(shards, brk, gopts);
    if (!failure) {
        if (auto bound = http_listener.start(); !bound) {
            failure = fmt::format("cannot start the HTTP gateway on {}: {}", opts.http_addr, bound.error().message());
        } else {
            http_ep = bound.value();
            if (auto m = http_listener.metrics_endpoint()) {
                listener_lines.push_back(fmt::format("metrics listener on {} (/metrics only, no authentication)",
                                                     m->to_string()));
            }
        }
    }
    demo live_demo(brk, job_manager, opts.demo_rate);
    if (!failure && opts.demo) {
        if (auto r = live_demo.start(); !r) {
            failure = fmt::format("cannot start the demo: {}", r.error().message());
        }
    }
    if (!failure) {
        for (unsigned s = 0; s < shard_count; ++s) {
            shards.every(s, std::chrono::milliseconds(opts.retention_check_ms),
                         [&brk, s] { brk.apply_retention(s, model::processing_now()); });
            shards.every(s, std::chrono::milliseconds(opts.log_cleaner_backoff_ms),
                         [&brk, &cleaner, s] { brk.schedule_cleaning(s, cleaner, model::processing_now()); });
            shards.every(s, group_check_interval,
                         [&groups, s] { groups.tick(s, broker::coordinator_clock::now()); });
            if (s == 0) {
                shards.every(s, txn_check_interval, [&brk] { brk.transactions().tick(); });
            }
            if (s == 0 && kcfg.acls) {
                // Changes `runnel acl` makes in the data directory take effect within a second.
                shards.every(s, acl_check_interval, [acls = kcfg.acls] { acls->refresh(); });
            }
        }
        auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started);
        std::size_t topic_count = 0;
        int64_t partition_count = 0;
        for (const auto& [name, t] : *brk.topics()) {
            if (!broker::is_internal_topic(name)) {
                ++topic_count;
                partition_count += t->config.partitions;
            }
        }
        lg().info("ready in {} ms: data dir {}, {}, {} ({}), {}, Kafka listener on {}, "
                  "HTTP listener on {}",
                  ms.count(), opts.data_dir.string(), counted(shard_count, "shard"), counted(int64_t(topic_count), "topic"),
                  counted(partition_count, "partition"), counted(int64_t(job_manager.status().size()), "pipeline"),
                  kafka_ep->to_string(), http_ep->to_string());
        for (const auto& line : listener_lines) {
            lg().info("{}", line);
        }
        const char* scheme = opts.http_tls ? "https" : "http";
        lg().info("dashboard: {}://{}/", scheme, http_ep->to_string());

        int sig = 0;
        for (;;) {
            sigwait(&signals, &sig);
            if (sig != SIGHUP) {
                break;
            }
            listeners->reload();
        }
        lg().info("{} received: flushing {}", sig == SIGINT ? "SIGINT" : "SIGTERM",
                  counted(int64_t(brk.partition_count()), "partition"));
        if (opts.demo) {
            lg().info("dashboard was at {}://{}/", opts.http_tls ? "https" : "http", http_ep->to_string());
        }
    }
    live_demo.stop();
    job_manager.stop();

    // Clean shutdown: the listeners stop accepting and reading; Kafka connections write the
    // answers of the requests already read (at most 5 s; long polls answer at once) and close,
    // while the broker and every shard still run to finish them. Then every log flushes and
    // records its durable point.
    http_listener.stop();
    for (auto& k : kafka_servers) {
        k->stop();
    }
    int code = failure ? 1 : 0;
    if (auto r = brk.stop(); !r) {
        lg().error("flush at shutdown failed: {}", r.error().message());
        code = 1;
    }
    shards.stop();
    if (failure) {
        lg().error("{}", *failure);
    } else {
        lg().info("stopped cleanly");
    }
    return code;
}

} // namespace runnel::app
