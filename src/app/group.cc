// `runnel group list|describe|delete|reset-offsets`: consumer-group administration through
// the Kafka Admin API (librdkafka): groups and their members, committed offsets against the
// log end offsets (lag), deleting groups and moving a stopped group's committed offsets.
// Groups of the consumer protocol (KIP-848) are listed with ListGroups v5 and described with
// ConsumerGroupDescribe, sent directly (see wire_client.h): librdkafka 2.0 has neither.

#include "app/client.h"
#include "app/wire_client.h"
#include "base/text.h"

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <chrono>
#include <librdkafka/rdkafka.h>
#include <limits>
#include <map>
#include <optional>
#include <set>

namespace runnel::app {
namespace {

struct list_options {
    client_options client;
    std::string format = "text";
};

struct describe_options {
    client_options client;
    std::string group;
    std::string format = "text";
};

struct delete_options {
    client_options client;
    std::vector<std::string> groups;
};

struct reset_options {
    client_options client;
    std::string group;
    std::vector<std::string> topics; ///< TOPIC or TOPIC:P,P,…
    bool to_earliest = false;
    bool to_latest = false;
    std::optional<int64_t> to_offset;
    std::string to_timestamp; ///< milliseconds since the epoch or ISO 8601; empty: not given
    bool dry_run = false;
    std::string format = "text";
};

using partition_key = std::pair<std::string, int32_t>; ///< topic, partition

using partition_list_ptr = std::unique_ptr<rd_kafka_topic_partition_list_t,
                                           decltype(&rd_kafka_topic_partition_list_destroy)>;

partition_list_ptr new_partition_list(int size) {
    return {rd_kafka_topic_partition_list_new(size), &rd_kafka_topic_partition_list_destroy};
}

std::string json_optional(const std::optional<int64_t>& v) {
    return v ? std::to_string(*v) : "null";
}

void print_stdout(const std::string& text) {
    if (std::fwrite(text.data(), 1, text.size(), stdout) != text.size()) {
        throw failure("cannot write to stdout");
    }
}

/// A broker's error as a sentence: its message when it sent one, and the error's name.
std::string broker_error(rd_kafka_resp_err_t err, const char* message) {
    if (message && *message) {
        return fmt::format("{} ({})", message, rd_kafka_err2name(err));
    }
    return fmt::format("{} ({})", rd_kafka_err2str(err), rd_kafka_err2name(err));
}

std::string error_text(const rd_kafka_error_t* error) {
    return broker_error(rd_kafka_error_code(error), rd_kafka_error_string(error));
}

// -- reading a group ------------------------------------------------------------------------

/// One member of a group, as DescribeGroups reports it.
struct member_info {
    std::string member_id;
    std::optional<std::string> instance_id; ///< group.instance.id of a static member
    std::string client_id;
    std::string host;
    std::vector<partition_key> assignment; ///< decoded from the ConsumerProtocol assignment
};

/// A group as DescribeGroups reports it.
struct group_info {
    std::string id;
    std::string state; ///< Empty, PreparingRebalance, CompletingRebalance, Stable, Dead, Unknown
    std::string protocol_type; ///< "consumer" for consumer groups; "" for offsets-only groups
    std::string protocol;      ///< the assignor chosen (range, roundrobin, cooperative-sticky)
    std::string type = "classic"; ///< or "consumer": the consumer protocol of KIP-848
    std::optional<broker_metadata> coordinator;
    std::vector<member_info> members;
};

/// The groups of the cluster with their state and protocol type (ListGroups and
/// DescribeGroups on every broker).
std::vector<group_info> list_groups(kafka_client& client, const char* only = nullptr) {
    const rd_kafka_group_list* list = nullptr;
    auto err = rd_kafka_list_groups(client.handle(), only, &list, client.options().timeout_ms);
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR && err != RD_KAFKA_RESP_ERR__PARTIAL) {
        throw failure(fmt::format("listing the groups of {} failed: {}", client.options().brokers,
                                  broker_error(err, nullptr)));
    }
    std::unique_ptr<const rd_kafka_group_list, decltype(&rd_kafka_group_list_destroy)> owned(
        list, &rd_kafka_group_list_destroy);
    std::vector<group_info> out;
    for (int i = 0; i < list->group_cnt; ++i) {
        const auto& g = list->groups[i];
        if (g.err != RD_KAFKA_RESP_ERR_NO_ERROR) {
            throw failure(fmt::format("describing group '{}' failed: {}", g.group,
                                      broker_error(g.err, nullptr)));
        }
        group_info info;
        info.id = g.group;
        info.state = g.state ? g.state : "";
        info.protocol_type = g.protocol_type ? g.protocol_type : "";
        info.protocol = g.protocol ? g.protocol : "";
        info.coordinator =
            broker_metadata{g.broker.id, g.broker.host ? g.broker.host : "", g.broker.port};
        out.push_back(std::move(info));
    }
    if (err == RD_KAFKA_RESP_ERR__PARTIAL) {
        fmt::print(stderr, "runnel group: not every broker answered; the list may be incomplete\n");
    }
    std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.id < b.id; });
    return out;
}

/// Describes one group (DescribeGroups through its coordinator): state, assignor and members
/// with their assignments. A group the coordinator does not know comes back as Dead.
group_info describe_group(kafka_client& client, const std::string& group) {
    const char* name = group.c_str();
    auto ev = client.admin(
        [&](auto* opts, auto* q) {
            rd_kafka_DescribeConsumerGroups(client.handle(), &name, 1, opts, q);
        },
        RD_KAFKA_ADMIN_OP_DESCRIBECONSUMERGROUPS);
    std::size_t n = 0;
    const auto** groups = rd_kafka_DescribeConsumerGroups_result_groups(
        rd_kafka_event_DescribeConsumerGroups_result(ev.get()), &n);
    for (std::size_t i = 0; i < n; ++i) {
        const auto* d = groups[i];
        if (group != rd_kafka_ConsumerGroupDescription_group_id(d)) {
            continue;
        }
        if (const auto* error = rd_kafka_ConsumerGroupDescription_error(d)) {
            throw failure(
                fmt::format("describing group '{}' failed: {}", group, error_text(error)));
        }
        group_info info;
        info.id = group;
        info.state = rd_kafka_consumer_group_state_name(rd_kafka_ConsumerGroupDescription_state(d));
        if (const char* p = rd_kafka_ConsumerGroupDescription_partition_assignor(d)) {
            info.protocol = p;
        }
        info.protocol_type =
            rd_kafka_ConsumerGroupDescription_is_simple_consumer_group(d) ? "" : "consumer";
        if (const auto* node = rd_kafka_ConsumerGroupDescription_coordinator(d)) {
            info.coordinator = broker_metadata{
                rd_kafka_Node_id(node), rd_kafka_Node_host(node) ? rd_kafka_Node_host(node) : "",
                rd_kafka_Node_port(node)};
        }
        const auto count = rd_kafka_ConsumerGroupDescription_member_count(d);
        for (std::size_t m = 0; m < count; ++m) {
            const auto* md = rd_kafka_ConsumerGroupDescription_member(d, m);
            member_info mi;
            mi.member_id = rd_kafka_MemberDescription_consumer_id(md);
            if (const char* s = rd_kafka_MemberDescription_group_instance_id(md); s && *s) {
                mi.instance_id = s;
            }
            mi.client_id = rd_kafka_MemberDescription_client_id(md);
            mi.host = rd_kafka_MemberDescription_host(md);
            if (const auto* assignment = rd_kafka_MemberDescription_assignment(md)) {
                if (const auto* parts = rd_kafka_MemberAssignment_partitions(assignment)) {
                    for (int p = 0; p < parts->cnt; ++p) {
                        mi.assignment.emplace_back(parts->elems[p].topic,
                                                   parts->elems[p].partition);
                    }
                }
            }
            std::sort(mi.assignment.begin(), mi.assignment.end());
            info.members.push_back(std::move(mi));
        }
        std::sort(info.members.begin(), info.members.end(),
                  [](const auto& a, const auto& b) { return a.member_id < b.member_id; });
        return info;
    }
    throw failure(fmt::format("the brokers did not describe group '{}'", group));
}

/// A committed offset and the metadata string committed with it.
struct committed_offset {
    int64_t offset = -1;
    std::string metadata;
};

/// Every offset the group has committed (OffsetFetch of all topics, through its coordinator).
std::map<partition_key, committed_offset> committed_offsets(kafka_client& client,
                                                            const std::string& group) {
    std::unique_ptr<rd_kafka_ListConsumerGroupOffsets_t,
                    decltype(&rd_kafka_ListConsumerGroupOffsets_destroy)>
        request(rd_kafka_ListConsumerGroupOffsets_new(group.c_str(), nullptr),
                &rd_kafka_ListConsumerGroupOffsets_destroy);
    auto* req = request.get();
    auto ev = client.admin(
        [&](auto* opts, auto* q) {
            rd_kafka_ListConsumerGroupOffsets(client.handle(), &req, 1, opts, q);
        },
        RD_KAFKA_ADMIN_OP_LISTCONSUMERGROUPOFFSETS);
    std::size_t n = 0;
    const auto** groups = rd_kafka_ListConsumerGroupOffsets_result_groups(
        rd_kafka_event_ListConsumerGroupOffsets_result(ev.get()), &n);
    std::map<partition_key, committed_offset> out;
    for (std::size_t i = 0; i < n; ++i) {
        if (const auto* error = rd_kafka_group_result_error(groups[i])) {
            throw failure(
                fmt::format("committed offsets of group '{}': {}", group, error_text(error)));
        }
        const auto* parts = rd_kafka_group_result_partitions(groups[i]);
        if (!parts) {
            continue;
        }
        for (int p = 0; p < parts->cnt; ++p) {
            const auto& e = parts->elems[p];
            if (e.err != RD_KAFKA_RESP_ERR_NO_ERROR) {
                throw failure(fmt::format("committed offset of group '{}' on {} partition {}: {}",
                                          group, e.topic, e.partition,
                                          broker_error(e.err, nullptr)));
            }
            if (e.offset < 0) {
                continue; // nothing committed
            }
            committed_offset c;
            c.offset = e.offset;
            if (e.metadata && e.metadata_size > 0) {
                c.metadata.assign(static_cast<const char*>(e.metadata), e.metadata_size);
            }
            out[{e.topic, e.partition}] = std::move(c);
        }
    }
    return out;
}

// -- groups of the consumer protocol (KIP-848), on the wire ------------------------------------

namespace proto = kafka::protocol;

/// Marks the groups of the consumer protocol in `groups` (adding those librdkafka did not list)
/// with their state, as ListGroups v5 on each broker names them. Brokers without v5 have none.
void add_consumer_protocol_groups(kafka_client& client, const std::vector<broker_metadata>& brokers,
                                  std::vector<group_info>& groups, const std::string& only = {}) {
    for (const auto& b : brokers) {
        wire_connection conn(b.host, b.port, client.timeout());
        auto version = conn.version_for(proto::api_key::list_groups);
        if (!version || *version < 5) {
            continue;
        }
        proto::list_groups_request req;
        req.types_filter = {"consumer"};
        auto resp = conn.call<proto::list_groups_response>(req, *version);
        for (auto& listed : resp.groups) {
            if (listed.group_type != "consumer" || (!only.empty() && listed.group_id != only)) {
                continue;
            }
            auto it = std::find_if(groups.begin(), groups.end(), [&](const auto& g) { return g.id == listed.group_id; });
            if (it == groups.end()) {
                it = groups.insert(groups.end(), group_info{});
                it->id = listed.group_id;
                it->coordinator = b;
            }
            it->type = "consumer";
            it->state = listed.group_state;
            it->protocol_type = listed.protocol_type;
        }
    }
    std::sort(groups.begin(), groups.end(), [](const auto& a, const auto& b) { return a.id < b.id; });
}

/// The group as ConsumerGroupDescribe shows it, or nullopt when `broker` does not speak it or
/// the group is not of the consumer protocol there.
std::optional<group_info> describe_consumer_protocol_group(kafka_client& client, const broker_metadata& broker,
                                                           const std::string& id) {
    wire_connection conn(broker.host, broker.port, client.timeout());
    auto version = conn.version_for(proto::api_key::consumer_group_describe);
    if (!version) {
        return std::nullopt;
    }
    proto::consumer_group_describe_request req;
    req.group_ids = {id};
    auto resp = conn.call<proto::consumer_group_describe_response>(req, *version);
    if (resp.groups.size() != 1 || resp.groups[0].error_code != 0) {
        return std::nullopt;
    }
    auto& d = resp.groups[0];
    group_info info;
    info.id = id;
    info.type = "consumer";
    info.state = d.group_state;
    info.protocol_type = "consumer";
    info.protocol = d.assignor_name;
    info.coordinator = broker;
    for (auto& m : d.members) {
        member_info mi;
        mi.member_id = std::move(m.member_id);
        mi.instance_id = std::move(m.instance_id);
        mi.client_id = std::move(m.client_id);
        mi.host = std::move(m.client_host);
        for (const auto& t : m.assignment.topic_partitions) {
            for (auto p : t.partitions) {
                mi.assignment.emplace_back(t.topic_name, p);
            }
        }
        std::sort(mi.assignment.begin(), mi.assignment.end());
        info.members.push_back(std::move(mi));
    }
    return info;
}

// -- list -------------------------------------------------------------------------------------

void group_list(const list_options& o) {
    kafka_client client(kafka_client::role::producer, o.client);
    const auto brokers = client.connect();
    auto groups = list_groups(client);
    add_consumer_protocol_groups(client, brokers, groups);
    std::string out;
    if (o.format == "json") {
        out = "[";
        for (std::size_t i = 0; i < groups.size(); ++i) {
            const auto& g = groups[i];
            out +=
                fmt::format("{}{{\"group\":{},\"state\":{},\"protocol_type\":{},\"protocol\":{},\"type\":{}}}",
                            i ? "," : "", text::json_string(g.id), text::json_string(g.state),
                            text::json_string(g.protocol_type), text::json_string(g.protocol),
                            text::json_string(g.type));
        }
        out += "]\n";
    } else if (!groups.empty()) {
        std::size_t width = 5;
        for (const auto& g : groups) {
            width = std::max(width, g.id.size());
        }
        out = fmt::format("{:<{}}  {:<19}  {:<8}  {}\n", "GROUP", width, "STATE", "TYPE", "PROTOCOL TYPE");
        for (const auto& g : groups) {
            out += fmt::format("{:<{}}  {:<19}  {:<8}  {}\n", g.id, width, g.state, g.type,
                               g.protocol_type.empty() ? "-" : g.protocol_type);
        }
    }
    print_stdout(out);
}

// -- describe ---------------------------------------------------------------------------------

/// One line of the offsets table of `group describe`.
struct offset_row {
    partition_key tp;
    std::optional<int64_t> committed;
    std::optional<int64_t> log_end;
    std::optional<int64_t> lag;
    const member_info* owner = nullptr;
    std::string metadata;
    std::string error; ///< why the log end offset is missing
};

void group_describe(const describe_options& o) {
    kafka_client client(kafka_client::role::producer, o.client);
    const auto brokers = client.connect();
    auto group = describe_group(client, o.group);
    // DescribeConsumerGroups only says whether the protocol type is empty; DescribeGroups
    // through rd_kafka_list_groups names it (consumer, connect, …). A group of the consumer
    // protocol is Dead to both: ConsumerGroupDescribe at its coordinator describes it.
    std::optional<group_info> modern;
    if (group.state == "Dead" && group.members.empty()) {
        if (group.coordinator) {
            modern = describe_consumer_protocol_group(client, *group.coordinator, o.group);
        }
        for (std::size_t i = 0; !modern && i < brokers.size(); ++i) {
            modern = describe_consumer_protocol_group(client, brokers[i], o.group);
        }
    }
    if (modern) {
        group = std::move(*modern);
    } else {
        for (const auto& g : list_groups(client, o.group.c_str())) {
            if (g.id == o.group) {
                group.protocol_type = g.protocol_type;
            }
        }
    }
    auto offsets = committed_offsets(client, o.group);
    if (group.state == "Dead" && group.members.empty() && offsets.empty()) {
        throw failure(fmt::format("group '{}' does not exist", o.group));
    }

    std::map<partition_key, offset_row> rows;
    for (const auto& [tp, c] : offsets) {
        auto& r = rows[tp];
        r.tp = tp;
        r.committed = c.offset;
        r.metadata = c.metadata;
    }
    for (const auto& m : group.members) {
        for (const auto& tp : m.assignment) {
            auto& r = rows[tp];
            r.tp = tp;
            r.owner = &m;
        }
    }
    int64_t total_lag = 0;
    int64_t total_committed = 0;
    int64_t total_log_end = 0;
    std::optional<std::string> failed;
    for (auto& [tp, r] : rows) {
        try {
            r.log_end = client.watermarks(tp.first, tp.second).high;
            total_log_end += *r.log_end;
        } catch (const command_error& e) {
            r.error = e.what();
            failed = failed ? *failed : r.error;
        }
        if (r.committed) {
            total_committed += *r.committed;
        }
        if (r.committed && r.log_end) {
            r.lag = std::max<int64_t>(0, *r.log_end - *r.committed);
            total_lag += *r.lag;
        }
    }

    std::string out;
    if (o.format == "json") {
        out = fmt::format("{{\"group\":{},\"state\":{},\"type\":{},\"protocol_type\":{},\"protocol\":{}",
                          text::json_string(group.id), text::json_string(group.state),
                          text::json_string(group.type), text::json_string(group.protocol_type),
                          text::json_string(group.protocol));
        if (group.coordinator) {
            out += fmt::format(",\"coordinator\":{{\"id\":{},\"host\":{},\"port\":{}}}",
                               group.coordinator->id, text::json_string(group.coordinator->host),
                               group.coordinator->port);
        }
        out += ",\"members\":[";
        for (std::size_t i = 0; i < group.members.size(); ++i) {
            const auto& m = group.members[i];
            out +=
                fmt::format("{}{{\"member_id\":{},\"instance_id\":{},\"client_id\":{},\"host\":{},"
                            "\"assignment\":[",
                            i ? "," : "", text::json_string(m.member_id),
                            m.instance_id ? text::json_string(*m.instance_id) : "null",
                            text::json_string(m.client_id), text::json_string(m.host));
            for (std::size_t a = 0; a < m.assignment.size(); ++a) {
                out += fmt::format("{}{{\"topic\":{},\"partition\":{}}}", a ? "," : "",
                                   text::json_string(m.assignment[a].first), m.assignment[a].second);
            }
            out += "]}";
        }
        out += "],\"partitions\":[";
        bool first = true;
        for (const auto& [tp, r] : rows) {
            out += fmt::format(
                "{}{{\"topic\":{},\"partition\":{},\"committed_offset\":{},"
                "\"log_end_offset\":{},\"lag\":{},\"member_id\":{},\"metadata\":{}",
                first ? "" : ",", text::json_string(tp.first), tp.second, json_optional(r.committed),
                json_optional(r.log_end), json_optional(r.lag),
                r.owner ? text::json_string(r.owner->member_id) : "null", text::json_string(r.metadata));
            if (!r.error.empty()) {
                out += ",\"error\":" + text::json_string(r.error);
            }
            out += "}";
            first = false;
        }
        out += fmt::format("],\"total_committed_offset\":{},\"total_log_end_offset\":{},"
                           "\"total_lag\":{}}}\n",
                           total_committed, total_log_end, total_lag);
    } else {
        out = fmt::format("Group: {}\nState: {}\nType: {}\nProtocol type: {}\nProtocol: {}\n", group.id,
                          group.state, group.type, group.protocol_type.empty() ? "-" : group.protocol_type,
                          group.protocol.empty() ? "-" : group.protocol);
        if (group.coordinator) {
            out += fmt::format("Coordinator: {} ({}:{})\n", group.coordinator->id,
                               group.coordinator->host, group.coordinator->port);
        }
        out += fmt::format("Members: {}\n", group.members.size());
        if (!group.members.empty()) {
            std::size_t id_width = 9;
            std::size_t instance_width = 11;
            std::size_t client_width = 9;
            std::size_t host_width = 4;
            for (const auto& m : group.members) {
                id_width = std::max(id_width, m.member_id.size());
                instance_width = std::max(instance_width, m.instance_id.value_or("-").size());
                client_width = std::max(client_width, m.client_id.size());
                host_width = std::max(host_width, m.host.size());
            }
            out += fmt::format("\n{:<{}}  {:<{}}  {:<{}}  {:<{}}  {}\n", "MEMBER ID", id_width,
                               "INSTANCE ID", instance_width, "CLIENT ID", client_width, "HOST",
                               host_width, "ASSIGNMENT");
            for (const auto& m : group.members) {
                // topic(p,p,…) per topic, in topic order
                std::string assigned;
                for (std::size_t a = 0; a < m.assignment.size(); ++a) {
                    const auto& tp = m.assignment[a];
                    if (a == 0 || m.assignment[a - 1].first != tp.first) {
                        assigned += fmt::format("{}{}:{}", a ? " " : "", tp.first, tp.second);
                    } else {
                        assigned += fmt::format(",{}", tp.second);
                    }
                }
                out += fmt::format("{:<{}}  {:<{}}  {:<{}}  {:<{}}  {}\n", m.member_id, id_width,
                                   m.instance_id.value_or("-"), instance_width, m.client_id,
                                   client_width, m.host, host_width,
                                   assigned.empty() ? "-" : assigned);
            }
        }
        if (!rows.empty()) {
            std::size_t topic_width = 5;
            for (const auto& [tp, r] : rows) {
                topic_width = std::max(topic_width, tp.first.size());
            }
            auto shown = [](const std::optional<int64_t>& v) {
                return v ? std::to_string(*v) : std::string("-");
            };
            out +=
                fmt::format("\n{:<{}}  {:>9}  {:>16}  {:>14}  {:>10}  {}\n", "TOPIC", topic_width,
                            "PARTITION", "COMMITTED OFFSET", "LOG END OFFSET", "LAG", "MEMBER ID");
            for (const auto& [tp, r] : rows) {
                out += fmt::format("{:<{}}  {:>9}  {:>16}  {:>14}  {:>10}  {}{}\n", tp.first,
                                   topic_width, tp.second, shown(r.committed), shown(r.log_end),
                                   shown(r.lag), r.owner ? r.owner->member_id : "-",
                                   r.error.empty() ? "" : "  " + r.error);
            }
            out += fmt::format("{:<{}}  {:>9}  {:>16}  {:>14}  {:>10}\n", "TOTAL", topic_width,
                               rows.size(), total_committed, total_log_end, total_lag);
        }
    }
    print_stdout(out);
    if (failed) {
        throw failure(*failed);
    }
}

// -- delete -----------------------------------------------------------------------------------

void group_delete(const delete_options& o) {
    kafka_client client(kafka_client::role::producer, o.client);
    client.connect();
    std::vector<rd_kafka_DeleteGroup_t*> requests;
    for (const auto& g : o.groups) {
        requests.push_back(rd_kafka_DeleteGroup_new(g.c_str()));
    }
    std::shared_ptr<rd_kafka_event_t> ev;
    try {
        ev = client.admin(
            [&](auto* opts, auto* q) {
                rd_kafka_DeleteGroups(client.handle(), requests.data(), requests.size(), opts, q);
            },
            RD_KAFKA_ADMIN_OP_DELETEGROUPS);
    } catch (...) {
        rd_kafka_DeleteGroup_destroy_array(requests.data(), requests.size());
        throw;
    }
    rd_kafka_DeleteGroup_destroy_array(requests.data(), requests.size());
    std::size_t n = 0;
    const auto** results =
        rd_kafka_DeleteGroups_result_groups(rd_kafka_event_DeleteGroups_result(ev.get()), &n);
    std::size_t failed = 0;
    std::string first_failure;
    for (std::size_t i = 0; i < n; ++i) {
        const std::string name = rd_kafka_group_result_name(results[i]);
        const auto* error = rd_kafka_group_result_error(results[i]);
        if (!error) {
            fmt::print(stderr, "runnel group delete: deleted group '{}'\n", name);
            continue;
        }
        std::string why;
        switch (rd_kafka_error_code(error)) {
        case RD_KAFKA_RESP_ERR_GROUP_ID_NOT_FOUND:
            why = fmt::format("group '{}' does not exist", name);
            break;
        case RD_KAFKA_RESP_ERR_NON_EMPTY_GROUP:
            why = fmt::format("group '{}' still has members; stop its consumers first", name);
            break;
        default:
            why = fmt::format("cannot delete group '{}': {}", name, error_text(error));
        }
        if (failed++ == 0) {
            first_failure = why;
        } else {
            fmt::print(stderr, "runnel group delete: {}\n", why);
        }
    }
    if (failed > 1) {
        throw failure(
            fmt::format("{} (and {} more groups not deleted)", first_failure, failed - 1));
    }
    if (failed == 1) {
        throw failure(first_failure);
    }
}

// -- reset-offsets ----------------------------------------------------------------------------

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's civil algorithm).
int64_t days_from_civil(int64_t y, unsigned m, unsigned d) {
    y -= m <= 2;
    const int64_t era = (y >= 0 ? y : y - 399) / 400;
    const auto yoe = static_cast<unsigned>(y - era * 400);
    const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

/// Reads exactly `digits` decimal digits at `pos`.
std::optional<int> read_digits(std::string_view s, std::size_t& pos, std::size_t digits) {
    if (pos + digits > s.size()) {
        return std::nullopt;
    }
    int v = 0;
    for (std::size_t i = 0; i < digits; ++i) {
        const char c = s[pos + i];
        if (c < '0' || c > '9') {
            return std::nullopt;
        }
        v = v * 10 + (c - '0');
    }
    pos += digits;
    return v;
}

/// Parses milliseconds since the epoch, or ISO 8601 `YYYY-MM-DDTHH:MM[:SS[.fff]](Z|±HH:MM)`
/// (a date alone means its midnight UTC; without a zone the time is UTC).
std::optional<int64_t> parse_timestamp(std::string_view text) {
    int64_t ms = 0;
    auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), ms);
    if (!text.empty() && ec == std::errc() && ptr == text.data() + text.size()) {
        return ms >= 0 ? std::optional<int64_t>(ms) : std::nullopt;
    }
    std::size_t pos = 0;
    auto expect = [&](char c) {
        if (pos < text.size() && text[pos] == c) {
            ++pos;
            return true;
        }
        return false;
    };
    auto year = read_digits(text, pos, 4);
    if (!year || !expect('-')) {
        return std::nullopt;
    }
    auto month = read_digits(text, pos, 2);
    if (!month || !expect('-')) {
        return std::nullopt;
    }
    auto day = read_digits(text, pos, 2);
    if (!day || *month < 1 || *month > 12 || *day < 1) {
        return std::nullopt;
    }
    static constexpr std::array<int, 12> month_days{31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    const bool leap = (*year % 4 == 0 && *year % 100 != 0) || *year % 400 == 0;
    if (*day > month_days[*month - 1] || (*month == 2 && *day == 29 && !leap)) {
        return std::nullopt;
    }
    int hour = 0;
    int minute = 0;
    int second = 0;
    int millis = 0;
    int64_t offset_minutes = 0;
    if (pos < text.size()) {
        if (!expect('T') && !expect(' ')) {
            return std::nullopt;
        }
        auto h = read_digits(text, pos, 2);
        if (!h || !expect(':')) {
            return std::nullopt;
        }
        auto mi = read_digits(text, pos, 2);
        if (!mi) {
            return std::nullopt;
        }
        hour = *h;
        minute = *mi;
        if (expect(':')) {
            auto s = read_digits(text, pos, 2);
            if (!s) {
                return std::nullopt;
            }
            second = *s;
            if (expect('.')) {
                int scale = 100;
                std::size_t digits = 0;
                while (pos < text.size() && text[pos] >= '0' && text[pos] <= '9') {
                    millis += (text[pos] - '0') * scale;
                    scale /= 10;
                    ++pos;
                    ++digits;
                }
                if (digits == 0) {
                    return std::nullopt;
                }
            }
        }
        if (hour > 23 || minute > 59 || second > 59) {
            return std::nullopt;
        }
        if (expect('Z')) {
        } else if (pos < text.size() && (text[pos] == '+' || text[pos] == '-')) {
            const int sign = text[pos] == '-' ? -1 : 1;
            ++pos;
            auto oh = read_digits(text, pos, 2);
            expect(':');
            auto om = read_digits(text, pos, 2);
            if (!oh || !om || *oh > 23 || *om > 59) {
                return std::nullopt;
            }
            offset_minutes = sign * (*oh * 60 + *om);
        }
    }
    if (pos != text.size()) {
        return std::nullopt;
    }
    const int64_t seconds =
        days_from_civil(*year, static_cast<unsigned>(*month), static_cast<unsigned>(*day)) * 86400 +
        hour * 3600 + minute * 60 + second - offset_minutes * 60;
    if (seconds < 0) {
        return std::nullopt;
    }
    return seconds * 1000 + millis;
}

/// Parses `TOPIC` or `TOPIC:P,P,…` into the topic and its partitions (empty: all of them).
std::pair<std::string, std::vector<int32_t>> parse_topic_partitions(const std::string& text) {
    const auto colon = text.rfind(':');
    if (colon == std::string::npos) {
        return {text, {}};
    }
    std::string topic = text.substr(0, colon);
    std::vector<int32_t> partitions;
    std::string_view rest(text);
    rest.remove_prefix(colon + 1);
    while (true) {
        const auto comma = rest.find(',');
        const auto item = rest.substr(0, comma);
        int32_t p = 0;
        auto [ptr, ec] = std::from_chars(item.data(), item.data() + item.size(), p);
        if (item.empty() || ec != std::errc() || ptr != item.data() + item.size() || p < 0) {
            throw usage(
                fmt::format("--topic '{}': expected TOPIC or TOPIC:PARTITION,PARTITION,...", text));
        }
        partitions.push_back(p);
        if (comma == std::string_view::npos) {
            break;
        }
        rest.remove_prefix(comma + 1);
    }
    if (topic.empty()) {
        throw usage(fmt::format("--topic '{}': the topic name is empty", text));
    }
    std::sort(partitions.begin(), partitions.end());
    partitions.erase(std::unique(partitions.begin(), partitions.end()), partitions.end());
    return {std::move(topic), std::move(partitions)};
}

/// One partition's move in `group reset-offsets`.
struct reset_row {
    partition_key tp;
    std::optional<int64_t> current;
    int64_t target = 0;
};

void group_reset_offsets(const reset_options& o) {
    const int modes = int(o.to_earliest) + int(o.to_latest) + int(o.to_offset.has_value()) +
                      int(!o.to_timestamp.empty());
    if (modes != 1) {
        throw usage("give exactly one of --to-earliest, --to-latest, --to-offset N, "
                    "--to-timestamp TIME");
    }
    std::optional<int64_t> timestamp;
    if (!o.to_timestamp.empty()) {
        timestamp = parse_timestamp(o.to_timestamp);
        if (!timestamp) {
            throw usage(fmt::format("--to-timestamp '{}': expected milliseconds since the epoch "
                                    "or ISO 8601 (2026-01-31T12:00:00Z)",
                                    o.to_timestamp));
        }
    }
    std::vector<std::pair<std::string, std::vector<int32_t>>> wanted;
    for (const auto& t : o.topics) {
        wanted.push_back(parse_topic_partitions(t));
    }

    kafka_client client(kafka_client::role::producer, o.client);
    client.connect();
    auto group = describe_group(client, o.group);
    if (group.state != "Empty" && group.state != "Dead") {
        throw failure(fmt::format(
            "group '{}' is active (state {}, {} member(s)); stop its consumers before resetting "
            "its offsets",
            o.group, group.state, group.members.size()));
    }

    std::vector<reset_row> rows;
    for (const auto& [topic, partitions] : wanted) {
        auto md = client.topic(topic);
        std::vector<int32_t> chosen = partitions;
        if (chosen.empty()) {
            for (const auto& p : md.partitions) {
                chosen.push_back(p.id);
            }
        }
        for (auto p : chosen) {
            if (std::none_of(md.partitions.begin(), md.partitions.end(),
                             [&](const auto& pm) { return pm.id == p; })) {
                throw failure(fmt::format("topic '{}' has no partition {} (it has {})", topic, p,
                                          md.partitions.size()));
            }
            rows.push_back({{topic, p}, std::nullopt, 0});
        }
    }
    auto committed = committed_offsets(client, o.group);
    std::map<partition_key, int64_t> by_time;
    if (timestamp) {
        auto list = new_partition_list(static_cast<int>(rows.size()));
        for (const auto& r : rows) {
            rd_kafka_topic_partition_list_add(list.get(), r.tp.first.c_str(), r.tp.second)->offset =
                *timestamp;
        }
        auto err = rd_kafka_offsets_for_times(client.handle(), list.get(), o.client.timeout_ms);
        if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
            throw failure(fmt::format("looking up offsets for timestamp {} failed: {}", *timestamp,
                                      rd_kafka_err2str(err)));
        }
        for (int i = 0; i < list->cnt; ++i) {
            const auto& e = list->elems[i];
            if (e.err != RD_KAFKA_RESP_ERR_NO_ERROR) {
                throw failure(fmt::format("looking up timestamp {} in {} partition {} failed: {}",
                                          *timestamp, e.topic, e.partition,
                                          rd_kafka_err2str(e.err)));
            }
            by_time[{e.topic, e.partition}] = e.offset;
        }
    }
    for (auto& r : rows) {
        if (auto it = committed.find(r.tp); it != committed.end()) {
            r.current = it->second.offset;
        }
        const auto marks = client.watermarks(r.tp.first, r.tp.second);
        if (o.to_earliest) {
            r.target = marks.low;
        } else if (o.to_latest) {
            r.target = marks.high;
        } else if (o.to_offset) {
            r.target = std::clamp(*o.to_offset, marks.low, marks.high);
            if (r.target != *o.to_offset) {
                fmt::print(stderr,
                           "runnel group reset-offsets: {} partition {} keeps offsets {}..{}; "
                           "offset {} becomes {}\n",
                           r.tp.first, r.tp.second, marks.low, marks.high, *o.to_offset, r.target);
            }
        } else {
            // -1: no record at or after the timestamp; the group starts at the end.
            const auto found = by_time[r.tp];
            r.target = found < 0 ? marks.high : found;
        }
    }

    if (!o.dry_run) {
        auto list = new_partition_list(static_cast<int>(rows.size()));
        for (const auto& r : rows) {
            rd_kafka_topic_partition_list_add(list.get(), r.tp.first.c_str(), r.tp.second)->offset =
                r.target;
        }
        std::unique_ptr<rd_kafka_AlterConsumerGroupOffsets_t,
                        decltype(&rd_kafka_AlterConsumerGroupOffsets_destroy)>
            request(rd_kafka_AlterConsumerGroupOffsets_new(o.group.c_str(), list.get()),
                    &rd_kafka_AlterConsumerGroupOffsets_destroy);
        auto* req = request.get();
        auto ev = client.admin(
            [&](auto* opts, auto* q) {
                rd_kafka_AlterConsumerGroupOffsets(client.handle(), &req, 1, opts, q);
            },
            RD_KAFKA_ADMIN_OP_ALTERCONSUMERGROUPOFFSETS);
        std::size_t n = 0;
        const auto** groups = rd_kafka_AlterConsumerGroupOffsets_result_groups(
            rd_kafka_event_AlterConsumerGroupOffsets_result(ev.get()), &n);
        for (std::size_t i = 0; i < n; ++i) {
            if (const auto* error = rd_kafka_group_result_error(groups[i])) {
                if (rd_kafka_error_code(error) == RD_KAFKA_RESP_ERR_UNKNOWN_MEMBER_ID) {
                    throw failure(fmt::format("group '{}' became active; its offsets were not "
                                              "reset ({})",
                                              o.group, error_text(error)));
                }
                throw failure(fmt::format("cannot reset the offsets of group '{}': {}", o.group,
                                          error_text(error)));
            }
            const auto* parts = rd_kafka_group_result_partitions(groups[i]);
            for (int p = 0; parts && p < parts->cnt; ++p) {
                const auto& e = parts->elems[p];
                if (e.err != RD_KAFKA_RESP_ERR_NO_ERROR) {
                    throw failure(
                        fmt::format("cannot reset the offset of group '{}' on {} partition {}: {}",
                                    o.group, e.topic, e.partition, broker_error(e.err, nullptr)));
                }
            }
        }
    }

    std::string out;
    if (o.format == "json") {
        out = fmt::format("{{\"group\":{},\"dry_run\":{},\"partitions\":[", text::json_string(o.group),
                          o.dry_run);
        for (std::size_t i = 0; i < rows.size(); ++i) {
            const auto& r = rows[i];
            out += fmt::format("{}{{\"topic\":{},\"partition\":{},\"previous_offset\":{},"
                               "\"new_offset\":{}}}",
                               i ? "," : "", text::json_string(r.tp.first), r.tp.second,
                               json_optional(r.current), r.target);
        }
        out += "]}\n";
    } else {
        std::size_t topic_width = 5;
        for (const auto& r : rows) {
            topic_width = std::max(topic_width, r.tp.first.size());
        }
        out = fmt::format("{:<{}}  {:>9}  {:>15}  {:>10}\n", "TOPIC", topic_width, "PARTITION",
                          "PREVIOUS OFFSET", "NEW OFFSET");
        for (const auto& r : rows) {
            out += fmt::format("{:<{}}  {:>9}  {:>15}  {:>10}\n", r.tp.first, topic_width,
                               r.tp.second, r.current ? std::to_string(*r.current) : "-", r.target);
        }
    }
    print_stdout(out);
    fmt::print(stderr, "runnel group reset-offsets: {} {} partition(s) of group '{}'\n",
               o.dry_run ? "would reset (dry run, nothing changed)" : "reset", rows.size(),
               o.group);
}

template <typename Options>
void on_run(CLI::App* cmd, std::function<int()>& run, std::shared_ptr<Options> opts,
            void (*body)(const Options&), std::string name) {
    cmd->callback([&run, opts, body, name] {
        run = [opts, body, name] {
            return run_command(name, [&] { body(*opts); });
        };
    });
}

} // namespace

void add_group_command(CLI::App& app, std::function<int()>& run) {
    auto* group = app.add_subcommand(
        "group", "List, describe and delete consumer groups; reset their committed offsets");
    group->require_subcommand(1);
    group->footer("Exit codes: 0 success, 1 runtime failure, 2 invalid usage.");

    auto list = std::make_shared<list_options>();
    auto* l = group->add_subcommand("list", "Every group with its state and protocol type");
    l->add_option("--format", list->format, "text or json")
        ->capture_default_str()
        ->check(CLI::IsMember({"text", "json"}));
    add_client_options(*l, list->client);
    on_run(l, run, list, &group_list, "group list");

    auto describe = std::make_shared<describe_options>();
    auto* d = group->add_subcommand("describe",
                                    "Members, assignments, committed offsets and lag of one group");
    d->add_option("group", describe->group, "Group id")->required();
    d->add_option("--format", describe->format, "text or json")
        ->capture_default_str()
        ->check(CLI::IsMember({"text", "json"}));
    add_client_options(
        *d, describe->client,
        "LOG END OFFSET is the partition's high watermark (the offset the next record gets);\n"
        "LAG is LOG END OFFSET minus COMMITTED OFFSET. Partitions listed: those with a committed\n"
        "offset and those assigned to a member. A group that does not exist is an error.");
    on_run(d, run, describe, &group_describe, "group describe");

    auto del = std::make_shared<delete_options>();
    auto* x = group->add_subcommand("delete", "Delete groups and their committed offsets");
    x->add_option("group", del->groups, "Group ids")->required();
    add_client_options(*x, del->client,
                       "A group with members is not deleted (NON_EMPTY_GROUP): stop its consumers "
                       "first.");
    on_run(x, run, del, &group_delete, "group delete");

    auto reset = std::make_shared<reset_options>();
    auto* r = group->add_subcommand("reset-offsets",
                                    "Move a stopped group's committed offsets (earliest, latest, "
                                    "an offset or a time)");
    r->add_option("group", reset->group, "Group id")->required();
    r->add_option("--topic", reset->topics, "TOPIC (every partition) or TOPIC:P,P,... ; repeatable")
        ->required()
        ->allow_extra_args(false)
        ->take_all();
    r->add_flag("--to-earliest", reset->to_earliest, "To the first offset kept");
    r->add_flag("--to-latest", reset->to_latest, "To the log end (skip everything)");
    r->add_option("--to-offset", reset->to_offset,
                  "To this offset (kept within the partition's offsets)")
        ->check(CLI::Range(int64_t{0}, std::numeric_limits<int64_t>::max()));
    r->add_option("--to-timestamp", reset->to_timestamp,
                  "To the first record at or after this time: ms since the epoch or ISO 8601 "
                  "(2026-01-31T12:00:00Z)");
    r->add_flag("--dry-run", reset->dry_run, "Print the new offsets without changing anything");
    r->add_option("--format", reset->format, "text or json")
        ->capture_default_str()
        ->check(CLI::IsMember({"text", "json"}));
    add_client_options(*r, reset->client,
                       "Refused (exit code 1) while the group has members: its state must be "
                       "Empty or Dead.");
    on_run(r, run, reset, &group_reset_offsets, "group reset-offsets");
}

} // namespace runnel::app
