// `runnel txn list|describe`: the transactional ids the cluster's transaction coordinators
// know, through ListTransactions and DescribeTransactions (KIP-664), sent with Runnel's own
// codec (librdkafka 2.0 has no admin call for them) to every broker of the cluster.

#include "app/client.h"
#include "app/wire_client.h"
#include "base/text.h"

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <librdkafka/rdkafka.h>
#include <map>
#include <memory>

namespace runnel::app {
namespace {

namespace proto = kafka::protocol;

struct list_options {
    client_options client;
    std::vector<std::string> states;
    std::string format = "text";
};

struct describe_options {
    client_options client;
    std::string id;
    std::string format = "text";
};

void print(const std::string& text) {
    if (std::fwrite(text.data(), 1, text.size(), stdout) != text.size()) {
        throw failure("cannot write to stdout");
    }
}

std::string error_name(int16_t code) {
    return rd_kafka_err2name(static_cast<rd_kafka_resp_err_t>(code));
}

/// Asks every broker with `ask(connection, version)`; brokers without the api are skipped.
template <typename Ask>
void on_every_broker(const client_options& opts, proto::api_key key, const char* api, Ask ask) {
    kafka_client client(kafka_client::role::producer, opts);
    auto brokers = client.connect();
    bool asked = false;
    for (const auto& b : brokers) {
        wire_connection conn(b.host, b.port, client.timeout());
        if (auto v = conn.version_for(key)) {
            ask(conn, *v);
            asked = true;
        }
    }
    if (!asked) {
        throw failure(fmt::format("no broker supports {} (Kafka 3.0 or later has it)", api));
    }
}

void txn_list(const list_options& o) {
    struct row {
        std::string id;
        int64_t producer_id;
        std::string state;
    };
    std::vector<row> rows;
    on_every_broker(o.client, proto::api_key::list_transactions, "ListTransactions",
                    [&](wire_connection& conn, int16_t version) {
                        proto::list_transactions_request req;
                        req.state_filters = o.states;
                        auto resp = conn.call<proto::list_transactions_response>(req, version);
                        if (resp.error_code != 0) {
                            throw failure(fmt::format("broker {} cannot list transactions: {}", conn.address(),
                                                      error_name(resp.error_code)));
                        }
                        if (!resp.unknown_state_filters.empty()) {
                            throw usage(fmt::format("unknown transaction state '{}' (Empty, Ongoing, PrepareCommit, "
                                                    "PrepareAbort, CompleteCommit, CompleteAbort)",
                                                    resp.unknown_state_filters.front()));
                        }
                        for (auto& t : resp.transaction_states) {
                            rows.push_back({std::move(t.transactional_id), t.producer_id,
                                            std::move(t.transaction_state)});
                        }
                    });
    std::sort(rows.begin(), rows.end(), [](const row& a, const row& b) { return a.id < b.id; });
    std::string out;
    if (o.format == "json") {
        out = "[";
        for (std::size_t i = 0; i < rows.size(); ++i) {
            out += fmt::format("{}{{\"transactional_id\":{},\"producer_id\":{},\"state\":{}}}", i ? "," : "",
                               text::json_string(rows[i].id), rows[i].producer_id, text::json_string(rows[i].state));
        }
        out += "]\n";
    } else if (!rows.empty()) {
        std::size_t width = 16;
        for (const auto& r : rows) {
            width = std::max(width, r.id.size());
        }
        out = fmt::format("{:<{}}  {:>12}  {}\n", "TRANSACTIONAL ID", width, "PRODUCER ID", "STATE");
        for (const auto& r : rows) {
            out += fmt::format("{:<{}}  {:>12}  {}\n", r.id, width, r.producer_id, r.state);
        }
    }
    print(out);
}

void txn_describe(const describe_options& o) {
    std::optional<proto::describe_transactions_response::transaction_description> found;
    int16_t last_error = 0;
    on_every_broker(o.client, proto::api_key::describe_transactions, "DescribeTransactions",
                    [&](wire_connection& conn, int16_t version) {
                        if (found) {
                            return;
                        }
                        proto::describe_transactions_request req;
                        req.transactional_ids.push_back(o.id);
                        auto resp = conn.call<proto::describe_transactions_response>(req, version);
                        for (auto& t : resp.transaction_states) {
                            if (t.error_code == 0) {
                                found = std::move(t);
                            } else {
                                last_error = t.error_code;
                            }
                        }
                    });
    if (!found) {
        throw failure(fmt::format("transactional id '{}': {}", o.id,
                                  last_error == 105 ? "not found" : error_name(last_error)));
    }
    const auto& t = *found;
    std::string out;
    if (o.format == "json") {
        out = fmt::format("{{\"transactional_id\":{},\"state\":{},\"producer_id\":{},\"producer_epoch\":{},"
                          "\"timeout_ms\":{},\"start_time_ms\":{},\"partitions\":[",
                          text::json_string(t.transactional_id), text::json_string(t.transaction_state),
                          t.producer_id, t.producer_epoch, t.transaction_timeout_ms, t.transaction_start_time_ms);
        bool first = true;
        for (const auto& topic : t.topics) {
            for (auto p : topic.partitions) {
                out += fmt::format("{}{{\"topic\":{},\"partition\":{}}}", first ? "" : ",",
                                   text::json_string(topic.topic), p);
                first = false;
            }
        }
        out += "]}\n";
    } else {
        out = fmt::format("transactional id  {}\nstate             {}\nproducer          {} (epoch {})\n"
                          "timeout           {} ms\n",
                          t.transactional_id, t.transaction_state, t.producer_id, t.producer_epoch,
                          t.transaction_timeout_ms);
        if (t.transaction_start_time_ms >= 0) {
            const auto now = std::chrono::duration_cast<std::chrono::milliseconds>(
                               std::chrono::system_clock::now().time_since_epoch())
                               .count();
            out += fmt::format("open for          {} ms\n", std::max<int64_t>(0, now - t.transaction_start_time_ms));
        }
        for (const auto& topic : t.topics) {
            for (auto p : topic.partitions) {
                out += fmt::format("partition         {}/{}\n", topic.topic, p);
            }
        }
    }
    print(out);
}

template <typename Options>
void on_run(CLI::App* cmd, std::function<int()>& run, std::shared_ptr<Options> opts, void (*body)(const Options&),
            std::string name) {
    cmd->callback([&run, opts, body, name] {
        run = [opts, body, name] { return run_command(name, [&] { body(*opts); }); };
    });
}

} // namespace

void add_txn_command(CLI::App& app, std::function<int()>& run) {
    auto* txn = app.add_subcommand("txn", "List and describe Kafka transactions (transactional ids)");
    txn->require_subcommand(1);
    txn->footer("Exit codes: 0 success, 1 runtime failure, 2 invalid usage.");

    auto list = std::make_shared<list_options>();
    auto* l = txn->add_subcommand("list", "Every transactional id with its producer id and state");
    l->add_option("--state", list->states, "Only these states (Ongoing, CompleteCommit, ...); repeatable");
    l->add_option("--format", list->format, "text or json")->capture_default_str()->check(CLI::IsMember({"text", "json"}));
    add_client_options(*l, list->client);
    on_run(l, run, list, &txn_list, "txn list");

    auto describe = std::make_shared<describe_options>();
    auto* d = txn->add_subcommand("describe", "State, producer, timeout and partitions of one transactional id");
    d->add_option("id", describe->id, "Transactional id")->required();
    d->add_option("--format", describe->format, "text or json")
      ->capture_default_str()
      ->check(CLI::IsMember({"text", "json"}));
    add_client_options(*d, describe->client);
    on_run(d, run, describe, &txn_describe, "txn describe");
}

} // namespace runnel::app
