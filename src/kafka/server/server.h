#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "base/base.h"
#include "net/net.h"
#include "security/security.h"

namespace runnel::broker {
class broker;
class group_coordinator;
} // namespace runnel::broker

namespace runnel::kafka {

struct server_config {
    net::endpoint listen{"127.0.0.1", 9092};
    /// What Metadata tells clients to connect to; the bound address when unset.
    std::optional<net::endpoint> advertise;
    /// Frames larger than this close the connection (Kafka's socket.request.max.bytes).
    int32_t max_frame_bytes = 100 * 1024 * 1024;
    /// Create unknown topics named by Metadata (when the client allows) and Produce.
    bool auto_create_topics = true;
    int32_t default_partitions = 1;
    /// CreateTopics takes any replication factor and keeps the one replica this node has (a
    /// client test suite written for three brokers); otherwise a factor above 1 is refused with
    /// INVALID_REPLICATION_FACTOR, as a single Kafka broker refuses it.
    bool accept_any_replication_factor = false;
    /// The most record bytes one Fetch response carries, whatever the request asks (Kafka's
    /// `fetch.max.bytes`); with the partitions' own limits it bounds a fetch's memory.
    int32_t fetch_max_bytes = 55 * 1024 * 1024;
    /// Connections open at once on this listener (Kafka's max.connections); beyond it a new
    /// connection is closed as soon as it is accepted and counted in /metrics.
    std::size_t max_connections = 10000;
    /// A connection with no request in flight for this long is closed (Kafka's
    /// connections.max.idle.ms); a long-polling fetch keeps its connection busy.
    std::chrono::milliseconds connections_max_idle{600000};
    int32_t node_id = 0;
    std::string cluster_id = "runnel";

    /// The listener's name (labels in /metrics, log lines) and its Kafka security protocol.
    std::string listener_name = "PLAINTEXT";
    security::protocol security_protocol = security::protocol::plaintext;
    /// SSL and SASL_SSL: the server certificate and how client certificates are checked.
    std::shared_ptr<security::tls_server_context> tls;
    /// How the subject of a client certificate becomes the user name (ssl.principal.mapping.rules).
    std::vector<security::principal_rule> principal_rules = {security::principal_rule{}};
    /// SASL_PLAINTEXT and SASL_SSL: the mechanisms offered and the users' credentials.
    std::vector<security::mechanism> sasl_mechanisms;
    std::shared_ptr<security::credential_store> credentials;
    /// Where SASL/PLAIN passwords are checked (PBKDF2, milliseconds each), off the shards'
    /// loops; shared by every listener. Null: on the connection's shard (tests).
    std::shared_ptr<security::password_pool> password_checks;
    /// OAUTHBEARER: the JWT validator tokens are checked with (the HTTP gateway's too).
    std::shared_ptr<security::jwt_validator> jwt;
    /// A connection must finish its TLS handshake and SASL authentication within this time
    /// of being accepted, or it is closed.
    std::chrono::milliseconds auth_timeout{10000};
    /// How long a SASL session lasts (KIP-368); 0: forever. A request other than a
    /// re-authentication after it closes the connection. OAUTHBEARER sessions end at the
    /// token's expiry at the latest.
    std::chrono::milliseconds sasl_session_lifetime{0};
    /// Frames larger than this before authentication close the connection
    /// (Kafka's sasl.server.max.receive.size).
    int32_t max_unauthenticated_frame_bytes = 524288;
    /// The ACLs every request is checked against (`--authorizer acl`), shared by every
    /// listener; null: every authenticated client may do everything (`--authorizer none`).
    std::shared_ptr<security::acl_store> acls;
};

/// The Kafka protocol listener: accepts connections and answers them from the broker.
///
/// One acceptor runs on shard 0 and hands each connection to the next shard in turn (at most
/// `max_connections` at once; when accepting fails, as when descriptors run out, it retries
/// after a pause that doubles from 10 ms to 1 s, logging a few lines a second at most); a
/// connection then lives on that shard, pipelines its requests (appends issued in arrival
/// order, syncs overlapping) and answers in order.
/// Malformed frames close only their own connection. Asio stays in the `.cc` files.
/// `start` and `stop` are called by the main thread; `stop` closes every connection so the
/// shards can finish.
class kafka_server {
public:
    kafka_server(net::shard_group& shards, broker::broker& broker, broker::group_coordinator& groups,
                 server_config config);
    ~kafka_server();
    kafka_server(const kafka_server&) = delete;
    kafka_server& operator=(const kafka_server&) = delete;

    /// Binds and starts accepting; returns the bound address (port 0 picks a free port).
    result<net::endpoint> start();
    void stop();

    struct state;

private:
    std::unique_ptr<state> _state;
};

} // namespace runnel::kafka
