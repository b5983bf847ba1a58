// `runnel topic create|list|describe|delete|alter`: topic administration through the Kafka
// Admin API (librdkafka), plus IncrementalAlterConfigs sent directly (see wire_client.h).

#include "app/client.h"
#include "base/plural.h"
#include "base/text.h"
#include "app/wire_client.h"

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <librdkafka/rdkafka.h>
#include <limits>
#include <map>
#include <optional>

namespace runnel::app {
namespace {

namespace proto = kafka::protocol;

struct create_options {
    client_options client;
    std::string name;
    int32_t partitions = -1;
    int32_t replication_factor = -1;
    std::vector<std::string> configs;
    bool if_not_exists = false;
};

struct list_options {
    client_options client;
    std::string format = "text";
    bool internal = false;
};

/// Topics Kafka brokers keep for themselves; `topic list` shows them only when asked.
bool internal_topic(std::string_view name) { return name == "__consumer_offsets" || name == "__transaction_state"; }

struct describe_options {
    client_options client;
    std::string name;
    std::string format = "text";
};

struct delete_options {
    client_options client;
    std::string name;
    bool if_exists = false;
};

struct alter_options {
    client_options client;
    std::string name;
    std::vector<std::string> configs;
    std::vector<std::string> delete_configs;
    int32_t partitions = -1;
};

/// A broker's error as a sentence: its message when it sent one, and the error's name.
std::string broker_error(rd_kafka_resp_err_t err, const char* message) {
    if (message && *message) {
        return fmt::format("{} ({})", message, rd_kafka_err2name(err));
    }
    return fmt::format("{} ({})", rd_kafka_err2str(err), rd_kafka_err2name(err));
}

void print_stdout(const std::string& text) {
    if (std::fwrite(text.data(), 1, text.size(), stdout) != text.size()) {
        throw failure("cannot write to stdout");
    }
}

void topic_create(const create_options& o) {
    std::vector<std::pair<std::string, std::string>> configs;
    for (const auto& c : o.configs) {
        configs.push_back(split_assignment(c, "--config"));
    }
    kafka_client client(kafka_client::role::producer, o.client);
    client.connect();
    char errstr[512];
    std::unique_ptr<rd_kafka_NewTopic_t, decltype(&rd_kafka_NewTopic_destroy)> topic(
        rd_kafka_NewTopic_new(o.name.c_str(), o.partitions, o.replication_factor, errstr,
                              sizeof errstr),
        &rd_kafka_NewTopic_destroy);
    if (!topic) {
        throw usage(errstr);
    }
    for (const auto& [k, v] : configs) {
        if (auto err = rd_kafka_NewTopic_set_config(topic.get(), k.c_str(), v.c_str()); err) {
            throw usage(fmt::format("--config {}={}: {}", k, v, rd_kafka_err2str(err)));
        }
    }
    auto* nt = topic.get();
    auto ev = client.admin(
        [&](auto* opts, auto* q) { rd_kafka_CreateTopics(client.handle(), &nt, 1, opts, q); },
        RD_KAFKA_ADMIN_OP_CREATETOPICS);
    std::size_t n = 0;
    const auto* const* results =
        rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(ev.get()), &n);
    for (std::size_t i = 0; i < n; ++i) {
        auto err = rd_kafka_topic_result_error(results[i]);
        if (err == RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS && o.if_not_exists) {
            fmt::print(stderr, "runnel topic create: topic '{}' already exists\n", o.name);
            return;
        }
        if (err) {
            throw failure(
                fmt::format("cannot create topic '{}': {}", o.name,
                            broker_error(err, rd_kafka_topic_result_error_string(results[i]))));
        }
    }
    fmt::print(stderr, "runnel topic create: created topic '{}'\n", o.name);
}

void topic_list(const list_options& o) {
    kafka_client client(kafka_client::role::producer, o.client);
    auto topics = client.topics();
    if (!o.internal) {
        std::erase_if(topics, [](const auto& t) { return internal_topic(t.name); });
    }
    std::string out;
    if (o.format == "json") {
        out = "[";
        for (const auto& t : topics) {
            out += fmt::format("{}{{\"name\":{},\"partitions\":{}}}", out.size() > 1 ? "," : "",
                               text::json_string(t.name), t.partitions.size());
        }
        out += "]\n";
    } else {
        for (const auto& t : topics) {
            out += t.name + "\n";
        }
    }
    print_stdout(out);
}

/// One config entry as DescribeConfigs reports it.
struct config_entry {
    std::string name;
    std::optional<std::string> value; ///< nullopt: sensitive or unset
    std::string source;
    bool read_only = false;
    bool sensitive = false;
};

/// The topic's configs (DescribeConfigs); throws with the broker's reason on failure.
std::vector<config_entry> describe_configs(kafka_client& client, const std::string& name) {
    std::unique_ptr<rd_kafka_ConfigResource_t, decltype(&rd_kafka_ConfigResource_destroy)> resource(
        rd_kafka_ConfigResource_new(RD_KAFKA_RESOURCE_TOPIC, name.c_str()),
        &rd_kafka_ConfigResource_destroy);
    auto* res = resource.get();
    auto ev = client.admin(
        [&](auto* opts, auto* q) { rd_kafka_DescribeConfigs(client.handle(), &res, 1, opts, q); },
        RD_KAFKA_ADMIN_OP_DESCRIBECONFIGS);
    std::size_t n = 0;
    const auto* const* resources = rd_kafka_DescribeConfigs_result_resources(
        rd_kafka_event_DescribeConfigs_result(ev.get()), &n);
    std::vector<config_entry> out;
    for (std::size_t i = 0; i < n; ++i) {
        if (auto err = rd_kafka_ConfigResource_error(resources[i]); err) {
            throw failure(
                fmt::format("configs of topic '{}': {}", name,
                            broker_error(err, rd_kafka_ConfigResource_error_string(resources[i]))));
        }
        std::size_t count = 0;
        const auto* const* entries = rd_kafka_ConfigResource_configs(resources[i], &count);
        for (std::size_t e = 0; e < count; ++e) {
            config_entry c;
            c.name = rd_kafka_ConfigEntry_name(entries[e]);
            if (const char* v = rd_kafka_ConfigEntry_value(entries[e])) {
                c.value = v;
            }
            c.source = rd_kafka_ConfigSource_name(rd_kafka_ConfigEntry_source(entries[e]));
            c.read_only = rd_kafka_ConfigEntry_is_read_only(entries[e]) == 1;
            c.sensitive = rd_kafka_ConfigEntry_is_sensitive(entries[e]) == 1;
            out.push_back(std::move(c));
        }
    }
    std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
    return out;
}

std::string join_ids(const std::vector<int32_t>& ids, std::string_view sep) {
    return fmt::format("{}", fmt::join(ids, sep));
}

void topic_describe(const describe_options& o) {
    kafka_client client(kafka_client::role::producer, o.client);
    auto md = client.topic(o.name);
    /// One line of the partition table: metadata, watermarks or why they are missing.
    struct row {
        const partition_metadata* p;
        std::optional<partition_watermarks> marks;
        std::string error;
    };
    std::vector<row> rows;
    std::optional<std::string> failed;
    for (const auto& p : md.partitions) {
        row r{&p, std::nullopt, {}};
        if (p.error) {
            r.error = rd_kafka_err2str(static_cast<rd_kafka_resp_err_t>(p.error));
        } else {
            try {
                r.marks = client.watermarks(o.name, p.id);
            } catch (const command_error& e) {
                r.error = e.what();
            }
        }
        if (!r.error.empty() && !failed) {
            failed = fmt::format("partition {}: {}", p.id, r.error);
        }
        rows.push_back(std::move(r));
    }
    std::vector<config_entry> configs;
    try {
        configs = describe_configs(client, o.name);
    } catch (const command_error& e) {
        failed = failed ? *failed + "; " + e.what() : std::string(e.what());
    }
    const std::size_t replication = md.partitions.empty() ? 0 : md.partitions[0].replicas.size();

    std::string out;
    if (o.format == "json") {
        out = fmt::format("{{\"name\":{},\"replication_factor\":{},\"partitions\":[",
                          text::json_string(md.name), replication);
        for (std::size_t i = 0; i < rows.size(); ++i) {
            const auto& r = rows[i];
            out += fmt::format("{}{{\"partition\":{},\"leader\":{},\"replicas\":[{}],\"isr\":[{}]",
                               i ? "," : "", r.p->id, r.p->leader, join_ids(r.p->replicas, ","),
                               join_ids(r.p->isr, ","));
            if (r.marks) {
                out += fmt::format(",\"low_watermark\":{},\"high_watermark\":{}", r.marks->low,
                                   r.marks->high);
            }
            if (!r.error.empty()) {
                out += ",\"error\":" + text::json_string(r.error);
            }
            out += "}";
        }
        out += "],\"configs\":{";
        for (std::size_t i = 0; i < configs.size(); ++i) {
            const auto& c = configs[i];
            out += fmt::format(
                "{}{}:{{\"value\":{},\"source\":{},\"read_only\":{},\"sensitive\":{}}}",
                i ? "," : "", text::json_string(c.name), c.value ? text::json_string(*c.value) : "null",
                text::json_string(c.source), c.read_only, c.sensitive);
        }
        out += "}}\n";
    } else {
        out = fmt::format("Topic: {}\nPartitions: {}\nReplication factor: {}\n\n", md.name,
                          md.partitions.size(), replication);
        out += fmt::format("{:<10} {:<7} {:<9} {:<9} {:>14} {:>14}\n", "PARTITION", "LEADER",
                           "REPLICAS", "ISR", "LOW WATERMARK", "HIGH WATERMARK");
        for (const auto& r : rows) {
            out += fmt::format("{:<10} {:<7} {:<9} {:<9} {:>14} {:>14}{}\n", r.p->id, r.p->leader,
                               join_ids(r.p->replicas, ","), join_ids(r.p->isr, ","),
                               r.marks ? std::to_string(r.marks->low) : "-",
                               r.marks ? std::to_string(r.marks->high) : "-",
                               r.error.empty() ? "" : "  " + r.error);
        }
        if (!configs.empty()) {
            std::size_t name_width = 6;
            std::size_t value_width = 5;
            auto shown = [](const config_entry& c) {
                return c.value ? *c.value : std::string(c.sensitive ? "(sensitive)" : "(null)");
            };
            for (const auto& c : configs) {
                name_width = std::max(name_width, c.name.size());
                value_width = std::max(value_width, shown(c).size());
            }
            out += fmt::format("\n{:<{}}  {:<{}}  {}\n", "CONFIG", name_width, "VALUE", value_width,
                               "SOURCE");
            for (const auto& c : configs) {
                out += fmt::format("{:<{}}  {:<{}}  {}\n", c.name, name_width, shown(c),
                                   value_width, c.source);
            }
        }
    }
    print_stdout(out);
    if (failed) {
        throw failure(*failed);
    }
}

void topic_delete(const delete_options& o) {
    kafka_client client(kafka_client::role::producer, o.client);
    client.connect();
    std::unique_ptr<rd_kafka_DeleteTopic_t, decltype(&rd_kafka_DeleteTopic_destroy)> topic(
        rd_kafka_DeleteTopic_new(o.name.c_str()), &rd_kafka_DeleteTopic_destroy);
    auto* dt = topic.get();
    auto ev = client.admin(
        [&](auto* opts, auto* q) { rd_kafka_DeleteTopics(client.handle(), &dt, 1, opts, q); },
        RD_KAFKA_ADMIN_OP_DELETETOPICS);
    std::size_t n = 0;
    const auto* const* results =
        rd_kafka_DeleteTopics_result_topics(rd_kafka_event_DeleteTopics_result(ev.get()), &n);
    for (std::size_t i = 0; i < n; ++i) {
        auto err = rd_kafka_topic_result_error(results[i]);
        if (err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART) {
            if (o.if_exists) {
                fmt::print(stderr, "runnel topic delete: topic '{}' does not exist\n", o.name);
                return;
            }
            throw failure(fmt::format("topic '{}' does not exist", o.name));
        }
        if (err) {
            throw failure(
                fmt::format("cannot delete topic '{}': {}", o.name,
                            broker_error(err, rd_kafka_topic_result_error_string(results[i]))));
        }
    }
    fmt::print(stderr, "runnel topic delete: deleted topic '{}'\n", o.name);
}

/// Sends the config changes as one IncrementalAlterConfigs request (all applied or none).
void alter_configs(kafka_client& client, const std::vector<broker_metadata>& brokers,
                   const alter_options& o,
                   const std::vector<std::pair<std::string, std::string>>& sets) {
    for (const auto& p : o.client.properties) {
        auto [k, v] = split_assignment(p, "-X");
        std::string lower = v;
        std::transform(lower.begin(), lower.end(), lower.begin(),
                       [](unsigned char c) { return std::tolower(c); });
        if (k == "security.protocol" && lower != "plaintext") {
            throw failure("topic alter --config sends IncrementalAlterConfigs itself (librdkafka "
                          "2.0 lacks it) and "
                          "speaks only PLAINTEXT, not " +
                          v);
        }
    }
    // Topic configs may be altered through any broker; prefer the controller.
    const auto controller = client.controller_id();
    auto target = std::find_if(brokers.begin(), brokers.end(),
                               [&](const auto& b) { return b.id == controller; });
    if (target == brokers.end()) {
        target = brokers.begin();
    }
    if (target == brokers.end()) {
        throw failure("the cluster's metadata lists no brokers");
    }
    wire_connection conn(target->host, target->port, client.timeout());
    auto version = conn.version_for(proto::api_key::incremental_alter_configs);
    if (!version) {
        throw failure(fmt::format(
            "broker {} does not support IncrementalAlterConfigs (Kafka 2.3 or later has it)",
            conn.address()));
    }
    constexpr int8_t resource_topic = 2;
    constexpr int8_t op_set = 0;
    constexpr int8_t op_delete = 1;
    proto::incremental_alter_configs_request req;
    auto& res = req.resources.emplace_back();
    res.resource_type = resource_topic;
    res.resource_name = o.name;
    for (const auto& [k, v] : sets) {
        res.configs.push_back({k, op_set, v});
    }
    for (const auto& k : o.delete_configs) {
        res.configs.push_back({k, op_delete, std::nullopt});
    }
    auto resp = conn.call<proto::incremental_alter_configs_response>(req, *version);
    if (resp.responses.size() != 1) {
        throw failure(
            fmt::format("broker {} answered IncrementalAlterConfigs with {} results for 1 resource",
                        conn.address(), resp.responses.size()));
    }
    const auto& r = resp.responses[0];
    if (r.error_code != 0) {
        auto err = static_cast<rd_kafka_resp_err_t>(r.error_code);
        throw failure(
            fmt::format("cannot alter the configs of topic '{}': {}", o.name,
                        broker_error(err, r.error_message ? r.error_message->c_str() : nullptr)));
    }
}

void topic_alter(const alter_options& o) {
    std::vector<std::pair<std::string, std::string>> sets;
    for (const auto& c : o.configs) {
        sets.push_back(split_assignment(c, "--config"));
    }
    if (sets.empty() && o.delete_configs.empty() && o.partitions < 0) {
        throw usage(
            "nothing to change: give --config KEY=VALUE, --delete-config KEY or --partitions N");
    }
    kafka_client client(kafka_client::role::producer, o.client);
    auto brokers = client.connect();
    auto md = client.topic(o.name);
    if (!sets.empty() || !o.delete_configs.empty()) {
        alter_configs(client, brokers, o, sets);
        fmt::print(stderr, "runnel topic alter: {} config change(s) applied to '{}'\n",
                   sets.size() + o.delete_configs.size(), o.name);
    }
    if (o.partitions >= 0) {
        if (static_cast<std::size_t>(o.partitions) == md.partitions.size()) {
            fmt::print(stderr, "runnel topic alter: '{}' already has {}\n", o.name,
                       counted(o.partitions, "partition"));
            return;
        }
        char errstr[512];
        std::unique_ptr<rd_kafka_NewPartitions_t, decltype(&rd_kafka_NewPartitions_destroy)> np(
            rd_kafka_NewPartitions_new(o.name.c_str(), static_cast<std::size_t>(o.partitions),
                                       errstr, sizeof errstr),
            &rd_kafka_NewPartitions_destroy);
        if (!np) {
            throw usage(errstr);
        }
        auto* p = np.get();
        auto ev = client.admin(
            [&](auto* opts, auto* q) {
                rd_kafka_CreatePartitions(client.handle(), &p, 1, opts, q);
            },
            RD_KAFKA_ADMIN_OP_CREATEPARTITIONS);
        std::size_t n = 0;
        const auto* const* results = rd_kafka_CreatePartitions_result_topics(
            rd_kafka_event_CreatePartitions_result(ev.get()), &n);
        for (std::size_t i = 0; i < n; ++i) {
            if (auto err = rd_kafka_topic_result_error(results[i]); err) {
                throw failure(
                    fmt::format("cannot grow topic '{}' to {} partitions: {}", o.name, o.partitions,
                                broker_error(err, rd_kafka_topic_result_error_string(results[i]))));
            }
        }
        fmt::print(stderr, "runnel topic alter: '{}' now has {}\n", o.name,
                   counted(o.partitions, "partition"));
    }
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

void add_topic_command(CLI::App& app, std::function<int()>& run) {
    auto* topic = app.add_subcommand("topic", "Create, list, describe, alter and delete topics");
    topic->require_subcommand(1);
    topic->footer("Exit codes: 0 success, 1 runtime failure, 2 invalid usage.");

    auto create = std::make_shared<create_options>();
    auto* c = topic->add_subcommand("create", "Create a topic");
    c->add_option("name", create->name, "Topic name")->required();
    c->add_option("--partitions", create->partitions,
                  "Number of partitions (default: the broker's)")
        ->check(CLI::Range(1, 1000000));
    c->add_option("--replication-factor", create->replication_factor,
                  "Replicas of each partition (default: the broker's)")
        ->check(CLI::Range(1, 1000));
    c->add_option("--config", create->configs,
                  "Topic config KEY=VALUE, repeatable (retention.ms=86400000)")
        ->allow_extra_args(false)
        ->take_all();
    c->add_flag("--if-not-exists", create->if_not_exists, "Succeed when the topic already exists");
    add_client_options(*c, create->client);
    on_run(c, run, create, &topic_create, "topic create");

    auto list = std::make_shared<list_options>();
    auto* l = topic->add_subcommand("list", "Print the names of all topics, one per line");
    l->add_option("--format", list->format, "text or json")
        ->capture_default_str()
        ->check(CLI::IsMember({"text", "json"}));
    l->add_flag("--internal", list->internal, "Also list internal topics (__consumer_offsets)");
    add_client_options(*l, list->client);
    on_run(l, run, list, &topic_list, "topic list");

    auto describe = std::make_shared<describe_options>();
    auto* d = topic->add_subcommand(
        "describe", "Partitions (leader, replicas, watermarks) and configs of a topic");
    d->add_option("name", describe->name, "Topic name")->required();
    d->add_option("--format", describe->format, "text or json")
        ->capture_default_str()
        ->check(CLI::IsMember({"text", "json"}));
    add_client_options(
        *d, describe->client,
        "LOW WATERMARK is the first offset kept, HIGH WATERMARK the offset the next record gets.");
    on_run(d, run, describe, &topic_describe, "topic describe");

    auto del = std::make_shared<delete_options>();
    auto* x = topic->add_subcommand("delete", "Delete a topic and all its records");
    x->add_option("name", del->name, "Topic name")->required();
    x->add_flag("--if-exists", del->if_exists, "Succeed when the topic does not exist");
    add_client_options(*x, del->client);
    on_run(x, run, del, &topic_delete, "topic delete");

    auto alter = std::make_shared<alter_options>();
    auto* a = topic->add_subcommand("alter", "Change a topic's configs or grow its partitions");
    a->add_option("name", alter->name, "Topic name")->required();
    a->add_option("--config", alter->configs, "Set config KEY=VALUE, repeatable")
        ->allow_extra_args(false)
        ->take_all();
    a->add_option("--delete-config", alter->delete_configs,
                  "Reset config KEY to its default, repeatable")
        ->allow_extra_args(false)
        ->take_all();
    a->add_option("--partitions", alter->partitions,
                  "New total number of partitions (it can only grow)")
        ->check(CLI::Range(1, 1000000));
    add_client_options(*a, alter->client,
                       "Configs change through one IncrementalAlterConfigs request (all or none), "
                       "sent directly to\n"
                       "a broker over PLAINTEXT; partitions through CreatePartitions.");
    on_run(a, run, alter, &topic_alter, "topic alter");
}

} // namespace runnel::app
