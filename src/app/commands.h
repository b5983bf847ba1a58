#pragma once

#include <filesystem>
#include <cstddef>
#include <functional>
#include <string>
#include <vector>

#include "model/model.h"

namespace CLI {
class App;
} // namespace CLI

namespace runnel::app {

/// Options of `runnel serve`, from flags or a config file.
struct serve_options {
    std::filesystem::path data_dir = "runnel-data";
    std::string kafka_addr = "127.0.0.1:9092";
    std::string http_addr = "127.0.0.1:8080";
    std::string advertise_addr; ///< empty: the Kafka listener's bound address
    std::string http_token;     ///< bearer token of the HTTP API; required off loopback
    std::size_t http_max_body_bytes = 1 << 20;
    std::size_t http_client_queue_bytes = 1 << 20;
    int64_t http_header_timeout_ms = 10000;
    int64_t http_body_timeout_ms = 30000;
    std::size_t http_max_connections = 1024;
    int64_t dashboard_sample_interval_ms = 5000;
    std::size_t dashboard_history_max_series = 256;
    int64_t temporary_view_idle_ms = 60000;
    std::vector<std::string> http_allowed_hosts;
    std::vector<std::string> http_allowed_origins;
    std::size_t pipeline_max_memory_bytes = std::size_t{1} << 30;
    std::size_t sql_catalog_max_entries = 10000;
    unsigned sql_parallelism = 0; ///< 0: the shards
    std::size_t sql_catalog_max_definition_bytes = 256 * 1024;
    unsigned retention_check_ms = 5 * 60 * 1000;
    uint64_t log_cleaner_io_max_bytes_per_second = 64ull << 20;
    uint64_t log_cleaner_dedupe_buffer_bytes = 128ull << 20;
    unsigned log_cleaner_backoff_ms = 1000;
    std::size_t kafka_max_inflated_batch_bytes = model::max_inflated_bytes;
    int64_t kafka_transaction_max_timeout_ms = 900000;
    std::size_t kafka_max_connections = 10000;
    int64_t kafka_connections_max_idle_ms = 600000;
    std::size_t max_open_segment_files = 1024;
    bool demo = false;          ///< run the live demo pipeline (`make run`)
    int64_t demo_rate = 2000;   ///< its generated events per second
    bool auto_create_topics = true;
    int32_t default_partitions = 1;
    bool accept_any_replication_factor = false;
    int32_t kafka_fetch_max_bytes = 55 * 1024 * 1024;
    unsigned shards = 0; ///< 0: one per core
    std::string log_level = "info";
    int64_t group_initial_rebalance_delay_ms = 3000;
    int64_t group_min_session_timeout_ms = 6000;
    int64_t group_max_session_timeout_ms = 1800000;
    // Security of the Kafka listeners (docs/security.md).
    bool kafka_addr_given = false;                  ///< --kafka-addr was on the command line
    std::vector<std::string> kafka_listeners;       ///< [NAME:]PROTOCOL://HOST:PORT
    std::vector<std::string> kafka_advertised_listeners; ///< NAME://HOST:PORT
    std::string tls_cert_file;
    std::string tls_key_file;
    std::string tls_ca_file;
    std::string tls_client_auth = "none";
    std::string ssl_principal_mapping_rules = "DEFAULT";
    std::vector<std::string> sasl_mechanisms = {"SCRAM-SHA-256", "SCRAM-SHA-512"};
    int64_t sasl_handshake_timeout_ms = 10000;
    int64_t sasl_session_lifetime_ms = 0;
    int32_t sasl_password_check_threads = 1;  ///< threads checking SASL/PLAIN passwords (PBKDF2)
    int32_t sasl_password_check_queue = 64;   ///< checks waiting at once before logins are refused
    bool allow_insecure_network = false;
    // Authorization of Kafka requests (docs/security.md, "ACLs").
    std::string authorizer = "none";      ///< `acl`: check DATA_DIR/security/acls; `none`: allow all
    std::string super_users;              ///< `User:admin;User:ops`
    bool allow_everyone_if_no_acl_found = false;
    // Security of the HTTP listener (docs/security.md).
    bool http_tls = false;          ///< HTTPS with --tls-cert-file and --tls-key-file
    bool http_basic_auth = false;   ///< basic credentials checked against the SCRAM users
    std::string jwks_file;          ///< bearer JWTs checked against these keys
    std::string jwt_issuer;         ///< required `iss` (empty: any)
    std::string jwt_audience;       ///< required `aud` (empty: any)
    std::string jwt_principal_claim = "sub";
    std::string metrics_addr;       ///< a plain listener for /metrics alone (empty: none)
    int64_t group_consumer_heartbeat_interval_ms = 5000;
    int64_t group_consumer_session_timeout_ms = 45000;
    int64_t group_consumer_max_size = 1000;
};

/// Adds `serve` to the command line; `run` is set to the function the subcommand runs.
void add_serve_command(CLI::App& app, int (*&run)(const serve_options&), serve_options& opts);

/// Runs the server until SIGINT or SIGTERM; returns the process exit code.
int serve(const serve_options& opts);

/// Adds the Kafka client commands `topic`, `produce`, `consume` and `group` (librdkafka; any Kafka
/// cluster). `run` is set to the command the command line chose; it returns the exit code.
void add_client_commands(CLI::App& app, std::function<int()>& run);

/// Adds `user create|delete|list`: SCRAM credentials in a data directory's credential file.
void add_user_command(CLI::App& app, std::function<int()>& run);

/// Adds `acl add|list|remove`: the ACLs in a data directory's ACL file, which a running server
/// rereads within a second.
void add_acl_command(CLI::App& app, std::function<int()>& run);

/// Adds `sql`: a script sent to a server's HTTP API (`POST /v1/sql`).
void add_sql_command(CLI::App& app, std::function<int()>& run);

} // namespace runnel::app
