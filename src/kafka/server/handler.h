#pragma once

// Shared by the server and its handlers (one `.cc` per Kafka api in `handlers/`). Includes
// Asio: only files of this module include it.

#include <memory>
#include <optional>
#include <vector>

#include <set>

#include <boost/asio/async_result.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "broker/broker.h"
#include "kafka/protocol/protocol.h"
#include "kafka/server/server.h"
#include "net/invoke.h"

namespace runnel::kafka {

namespace asio = boost::asio;
namespace proto = protocol;

/// The bytes of a whole response frame, or nothing for requests that get no answer
/// (Produce with acks=0).
using response_frame = std::optional<std::vector<std::byte>>;

/// The connections of one shard and the long polls waiting in them, so `stop` can end them.
/// Touched only on that shard's thread.
struct shard_connections {
    std::set<asio::ip::tcp::socket*> sockets;
    std::set<asio::steady_timer*> long_polls;
    /// Set by `stop`: connections read no new request, answer the ones in flight, then close;
    /// fetches answer at once instead of long-polling.
    bool draining = false;
};

/// What a handler knows about the request it answers. Lives in the connection's coroutine
/// for the duration of the request; runs on the connection's shard.
struct request_context {
    const server_config& config;
    net::endpoint advertised;
    broker::broker& broker;
    broker::group_coordinator& groups;
    executor& shard;
    const proto::request_header& header;
    shard_connections& connections;
    /// The client's address as Kafka shows it in group descriptions ("/127.0.0.1").
    std::string client_host;
    /// Lets the connection read its next request. A handler whose later work needs no
    /// ordering calls it once its order-sensitive work is issued (Produce: after its appends
    /// are posted); otherwise the connection waits until the answer is ready.
    std::function<void()> issued;
    /// Who sent the request: `User:` and the SASL user or certificate name, or `User:ANONYMOUS`.
    std::string principal = "User:ANONYMOUS";
};

/// Whether the request's principal may do `op` on a resource (always, without an
/// authorizer: `--authorizer none`). A denial is counted in /metrics and logged at a bounded
/// rate with principal, client address, operation and resource, unless `audit` is false: a
/// probe whose refusal the client never sees as an error (topics left out of a list). Every handler
/// checks each resource it touches through this one call.
bool authorize(const request_context& ctx, security::acl_operation op, security::resource_type type,
               std::string_view name, bool audit = true);
/// Kafka's authorized-operations bit set for a resource (Metadata, DescribeCluster,
/// DescribeGroups): bit `op` is set for each operation Kafka defines on resources of `type`
/// that `authorize` allows the request's principal (every one without an authorizer).
/// Probes, so refusals are not audited.
int32_t authorized_operations(const request_context& ctx, security::resource_type type, std::string_view name);
/// The client's address as ACLs name hosts: `127.0.0.1`, without Kafka's leading `/`.
std::string_view client_address(const request_context& ctx) noexcept;

template <typename Response>
response_frame respond(const request_context& ctx, const Response& body) {
    proto::writer w;
    proto::write_response_frame(w, ctx.header.request_api_version, ctx.header.correlation_id, body);
    return w.take();
}

using net::await_callback;

/// Awaits a broker metadata change (create, alter, grow), which answers `(result, why)`.
/// `start(answer)` begins it with the callback to pass to the broker.
template <typename Start>
asio::awaitable<std::pair<result<void>, std::string>> await_change(Start start) {
    co_return co_await net::await_pair<result<void>, std::string>(std::move(start));
}

/// Starts `n` callback operations at once (`start(i, done)`) and awaits all of their results.
template <typename T, typename Start>
asio::awaitable<std::vector<T>> await_all(std::size_t n, Start start) {
    if (n == 0) {
        co_return std::vector<T>{};
    }
    auto init = [&start, n](auto handler) {
        struct gather {
            std::size_t left;
            std::vector<std::optional<T>> results;
            decltype(handler) done;
        };
        auto g = std::make_shared<gather>(gather{n, std::vector<std::optional<T>>(n), std::move(handler)});
        for (std::size_t i = 0; i < n; ++i) {
            start(i, std::function<void(T)>([g, i](T v) {
                g->results[i].emplace(std::move(v));
                if (--g->left == 0) {
                    std::vector<T> out;
                    out.reserve(g->results.size());
                    for (auto& r : g->results) {
                        out.push_back(std::move(*r));
                    }
                    std::move(g->done)(std::move(out));
                }
            }));
        }
    };
    co_return co_await asio::async_initiate<const asio::use_awaitable_t<>&, void(std::vector<T>)>(
      init, asio::use_awaitable);
}

/// Kafka error codes the handlers answer with.
namespace kerr {
inline constexpr int16_t none = 0;
inline constexpr int16_t unknown_server_error = -1;
inline constexpr int16_t offset_out_of_range = 1;
inline constexpr int16_t corrupt_message = 2;
inline constexpr int16_t unknown_topic_or_partition = 3;
inline constexpr int16_t request_timed_out = 7;
inline constexpr int16_t offset_metadata_too_large = 12;
inline constexpr int16_t coordinator_load_in_progress = 14;
inline constexpr int16_t coordinator_not_available = 15;
inline constexpr int16_t illegal_generation = 22;
inline constexpr int16_t inconsistent_group_protocol = 23;
inline constexpr int16_t invalid_group_id = 24;
inline constexpr int16_t unknown_member_id = 25;
inline constexpr int16_t invalid_session_timeout = 26;
inline constexpr int16_t rebalance_in_progress = 27;
inline constexpr int16_t non_empty_group = 68;
inline constexpr int16_t group_id_not_found = 69;
inline constexpr int16_t member_id_required = 79;
inline constexpr int16_t fenced_instance_id = 82;
inline constexpr int16_t group_subscribed_to_topic = 86;
inline constexpr int16_t message_too_large = 10;
inline constexpr int16_t invalid_topic_exception = 17;
inline constexpr int16_t invalid_required_acks = 21;
inline constexpr int16_t out_of_order_sequence_number = 45;
inline constexpr int16_t duplicate_sequence_number = 46;
inline constexpr int16_t invalid_producer_epoch = 47;
inline constexpr int16_t unknown_producer_id = 59;
inline constexpr int16_t unsupported_version = 35;
inline constexpr int16_t unsupported_sasl_mechanism = 33;
inline constexpr int16_t illegal_sasl_state = 34;
inline constexpr int16_t sasl_authentication_failed = 58;
inline constexpr int16_t topic_already_exists = 36;
inline constexpr int16_t invalid_partitions = 37;
inline constexpr int16_t invalid_replication_factor = 38;
inline constexpr int16_t invalid_replica_assignment = 39;
inline constexpr int16_t invalid_config = 40;
inline constexpr int16_t invalid_request = 42;
inline constexpr int16_t policy_violation = 44;
inline constexpr int16_t kafka_storage_error = 56;
inline constexpr int16_t fetch_session_id_not_found = 70;
inline constexpr int16_t invalid_record = 87;
inline constexpr int16_t unknown_topic_id = 100;
inline constexpr int16_t group_max_size_reached = 81;
inline constexpr int16_t fenced_member_epoch = 110;
inline constexpr int16_t unreleased_instance_id = 111;
inline constexpr int16_t unsupported_assignor = 112;
inline constexpr int16_t stale_member_epoch = 113;
inline constexpr int16_t invalid_txn_state = 48;
inline constexpr int16_t invalid_producer_id_mapping = 49;
inline constexpr int16_t invalid_transaction_timeout = 50;
inline constexpr int16_t concurrent_transactions = 51;
inline constexpr int16_t operation_not_attempted = 55;
inline constexpr int16_t producer_fenced = 90;
inline constexpr int16_t transactional_id_not_found = 105;
inline constexpr int16_t topic_authorization_failed = 29;
inline constexpr int16_t group_authorization_failed = 30;
inline constexpr int16_t cluster_authorization_failed = 31;
inline constexpr int16_t transactional_id_authorization_failed = 53;
inline constexpr int16_t security_disabled = 54;
inline constexpr int16_t resource_not_found = 91;
inline constexpr int16_t duplicate_resource = 92;
inline constexpr int16_t unacceptable_credential = 93;
} // namespace kerr

/// The Kafka error code for a broker error.
int16_t to_kafka_error(const std::error_code& ec) noexcept;
inline int16_t to_kafka_error(broker::errc e) noexcept { return to_kafka_error(make_error_code(e)); }

/// PRODUCER_FENCED exists from `fenced_since` of an api on; older versions answer
/// INVALID_PRODUCER_EPOCH instead, as Kafka does.
inline int16_t txn_error(int16_t code, int16_t version, int16_t fenced_since) noexcept {
    return code == kerr::producer_fenced && version < fenced_since ? kerr::invalid_producer_epoch : code;
}

/// Looks up `name`, creating it with the default partition count when auto-creation is on.
/// Returns the topic, or the Kafka error to answer with.
asio::awaitable<std::pair<std::shared_ptr<const broker::topic_info>, int16_t>> find_or_create_topic(
  const request_context& ctx, const std::string& name, bool may_create);

// One handler per api; each answers its request on the connection's shard.
asio::awaitable<response_frame> handle(const request_context&, proto::api_versions_request);
asio::awaitable<response_frame> handle(const request_context&, proto::metadata_request);
asio::awaitable<response_frame> handle(const request_context&, proto::produce_request);
asio::awaitable<response_frame> handle(const request_context&, proto::fetch_request);
asio::awaitable<response_frame> handle(const request_context&, proto::list_offsets_request);
asio::awaitable<response_frame> handle(const request_context&, proto::create_topics_request);
asio::awaitable<response_frame> handle(const request_context&, proto::delete_topics_request);
asio::awaitable<response_frame> handle(const request_context&, proto::delete_records_request);
asio::awaitable<response_frame> handle(const request_context&, proto::describe_configs_request);
asio::awaitable<response_frame> handle(const request_context&, proto::incremental_alter_configs_request);
asio::awaitable<response_frame> handle(const request_context&, proto::create_partitions_request);
asio::awaitable<response_frame> handle(const request_context&, proto::init_producer_id_request);
asio::awaitable<response_frame> handle(const request_context&, proto::find_coordinator_request);
asio::awaitable<response_frame> handle(const request_context&, proto::join_group_request);
asio::awaitable<response_frame> handle(const request_context&, proto::sync_group_request);
asio::awaitable<response_frame> handle(const request_context&, proto::heartbeat_request);
asio::awaitable<response_frame> handle(const request_context&, proto::leave_group_request);
asio::awaitable<response_frame> handle(const request_context&, proto::offset_commit_request);
asio::awaitable<response_frame> handle(const request_context&, proto::offset_fetch_request);
asio::awaitable<response_frame> handle(const request_context&, proto::offset_delete_request);
asio::awaitable<response_frame> handle(const request_context&, proto::list_groups_request);
asio::awaitable<response_frame> handle(const request_context&, proto::describe_groups_request);
asio::awaitable<response_frame> handle(const request_context&, proto::delete_groups_request);
asio::awaitable<response_frame> handle(const request_context&, proto::offset_for_leader_epoch_request);
asio::awaitable<response_frame> handle(const request_context&, proto::describe_cluster_request);
asio::awaitable<response_frame> handle(const request_context&, proto::consumer_group_heartbeat_request);
asio::awaitable<response_frame> handle(const request_context&, proto::consumer_group_describe_request);
asio::awaitable<response_frame> handle(const request_context&, proto::add_partitions_to_txn_request);
asio::awaitable<response_frame> handle(const request_context&, proto::add_offsets_to_txn_request);
asio::awaitable<response_frame> handle(const request_context&, proto::end_txn_request);
asio::awaitable<response_frame> handle(const request_context&, proto::txn_offset_commit_request);
asio::awaitable<response_frame> handle(const request_context&, proto::describe_transactions_request);
asio::awaitable<response_frame> handle(const request_context&, proto::list_transactions_request);
asio::awaitable<response_frame> handle(const request_context&, proto::describe_producers_request);
asio::awaitable<response_frame> handle(const request_context&, proto::describe_acls_request);
asio::awaitable<response_frame> handle(const request_context&, proto::create_acls_request);
asio::awaitable<response_frame> handle(const request_context&, proto::delete_acls_request);
asio::awaitable<response_frame> handle(const request_context&, proto::alter_configs_request);
asio::awaitable<response_frame> handle(const request_context&, proto::describe_user_scram_credentials_request);
asio::awaitable<response_frame> handle(const request_context&, proto::alter_user_scram_credentials_request);

/// The apis the server answers, with the versions it answers: what ApiVersions advertises.
std::span<const proto::api_support> implemented_apis() noexcept;
bool implemented(int16_t key, int16_t version) noexcept;

} // namespace runnel::kafka
