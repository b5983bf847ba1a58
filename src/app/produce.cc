// `runnel produce TOPIC`: one record per line of stdin, plain or JSON, delivered with the
// chosen acks; the command ends once every record has its delivery report.

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <librdkafka/rdkafka.h>

// Boost.JSON, header-only: its sources are compiled here and nowhere else.
#include "app/client.h"
#include "base/plural.h"
#include "base/text.h"

#include <boost/json/src.hpp>

#include <iostream>
#include <limits>
#include <optional>

namespace runnel::app {
namespace {

namespace json = boost::json;

struct produce_options {
    client_options client;
    std::string topic;
    std::optional<std::string> key_separator;
    int32_t partition = -1; ///< -1: the partitioner chooses
    std::string format = "text";
    std::string acks = "all";
};

/// One record read from stdin, before it goes to librdkafka.
struct input_record {
    std::optional<std::string> key;
    std::optional<std::string> value;
    std::vector<std::pair<std::string, std::optional<std::string>>> headers;
    int32_t partition = RD_KAFKA_PARTITION_UA;
    int64_t timestamp = 0; ///< 0: now
};

/// A line of input that cannot become a record.
struct bad_input : std::runtime_error {
    using std::runtime_error::runtime_error;
};

/// Bytes of a JSON key or value: a string is its text, null is null, anything else is its
/// compact JSON text (`{"value":{"amount":5}}` produces `{"amount":5}`).
std::optional<std::string> json_bytes(const json::value& v) {
    if (v.is_null()) {
        return std::nullopt;
    }
    if (v.is_string()) {
        return std::string(v.get_string());
    }
    return json::serialize(v);
}

std::string decode_base64_field(const json::value& v, std::string_view field) {
    if (!v.is_string()) {
        throw bad_input(fmt::format("\"{}\" must be a base64 string", field));
    }
    auto bytes = text::base64_decode(v.get_string());
    if (!bytes) {
        throw bad_input(fmt::format("\"{}\" is not valid base64", field));
    }
    return *bytes;
}

/// Parses one JSON line: {"key":…, "value":…, "headers":{…}, "partition":N, "timestamp":MS}
/// (binary data as "key_base64", "value_base64", "headers_base64").
input_record parse_json_line(std::string_view line) {
    boost::system::error_code ec;
    json::value doc = json::parse(line, ec);
    if (ec) {
        throw bad_input(fmt::format("invalid JSON: {}", ec.message()));
    }
    if (!doc.is_object()) {
        throw bad_input("expected a JSON object");
    }
    input_record r;
    for (const auto& [name, v] : doc.get_object()) {
        if (name == "key") {
            r.key = json_bytes(v);
        } else if (name == "value") {
            r.value = json_bytes(v);
        } else if (name == "key_base64") {
            r.key = decode_base64_field(v, name);
        } else if (name == "value_base64") {
            r.value = decode_base64_field(v, name);
        } else if (name == "headers" || name == "headers_base64") {
            const bool base64 = name == "headers_base64";
            if (!v.is_object()) {
                throw bad_input(fmt::format("\"{}\" must be an object of names to strings",
                                            std::string_view(name)));
            }
            for (const auto& [hname, hv] : v.get_object()) {
                if (hv.is_null()) {
                    r.headers.emplace_back(std::string(hname), std::nullopt);
                } else if (base64) {
                    r.headers.emplace_back(
                        std::string(hname),
                        decode_base64_field(
                            hv, fmt::format("headers_base64.{}", std::string_view(hname))));
                } else if (hv.is_string()) {
                    r.headers.emplace_back(std::string(hname), std::string(hv.get_string()));
                } else {
                    throw bad_input(fmt::format("header \"{}\" must be a string or null",
                                                std::string_view(hname)));
                }
            }
        } else if (name == "partition") {
            if (!v.is_int64() && !v.is_uint64()) {
                throw bad_input("\"partition\" must be an integer");
            }
            auto p = v.to_number<int64_t>();
            if (p < 0 || p > std::numeric_limits<int32_t>::max()) {
                throw bad_input(fmt::format("\"partition\" {} is out of range", p));
            }
            r.partition = static_cast<int32_t>(p);
        } else if (name == "timestamp") {
            if (!v.is_int64() && !v.is_uint64()) {
                throw bad_input("\"timestamp\" must be an integer (milliseconds since the epoch)");
            }
            auto ts = v.to_number<int64_t>();
            if (ts < 0) {
                throw bad_input(fmt::format("\"timestamp\" {} is negative", ts));
            }
            r.timestamp = ts;
        } else {
            throw bad_input(fmt::format(
                "unknown field \"{}\" (expected key, value, headers, partition, timestamp, "
                "key_base64, value_base64, headers_base64)",
                std::string_view(name)));
        }
    }
    return r;
}

/// Delivery reports, gathered by the callback librdkafka runs inside `rd_kafka_poll`/`flush`.
struct delivery_state {
    int64_t delivered = 0;
    int64_t failed = 0;
    std::string first_failure;

    static constexpr int max_printed_failures = 10;

    static void on_delivery(rd_kafka_t* rk, const rd_kafka_message_t* m, void*) {
        auto* self = static_cast<delivery_state*>(kafka_client::context_of(rk));
        const auto line = reinterpret_cast<std::uintptr_t>(m->_private);
        if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
            ++self->delivered;
            return;
        }
        auto why =
            fmt::format("line {}: not delivered{}: {}", line,
                        m->partition >= 0 ? fmt::format(" to partition {}", m->partition) : "",
                        rd_kafka_err2str(m->err));
        if (self->failed < max_printed_failures) {
            fmt::print(stderr, "runnel produce: {}\n", why);
        }
        if (self->failed == 0) {
            self->first_failure = why;
        }
        ++self->failed;
    }
};

void produce(const produce_options& o) {
    if (o.key_separator && o.key_separator->empty()) {
        throw usage("--key-sep must not be empty");
    }
    if (o.key_separator && o.format == "json") {
        throw usage("--key-sep applies to --format text only");
    }
    const std::string acks = o.acks == "all" ? "-1" : o.acks;
    delivery_state state;
    kafka_client client(
        kafka_client::role::producer, o.client,
        {{"acks", acks},
         // Java's default partitioner: the same key lands where Java clients put it.
         {"partitioner", "murmur2_random"},
         {"message.timeout.ms", std::to_string(o.client.timeout_ms)}},
        [](rd_kafka_conf_t* conf) {
            rd_kafka_conf_set_dr_msg_cb(conf, &delivery_state::on_delivery);
        });
    client.set_context(&state);
    auto md = client.topic(o.topic);
    const auto partitions = static_cast<int32_t>(md.partitions.size());
    if (o.partition >= partitions) {
        throw failure(
            fmt::format("topic '{}' has {} (0 to {}); there is no partition {}", o.topic,
                        counted(partitions, "partition"), partitions - 1, o.partition));
    }
    std::unique_ptr<rd_kafka_topic_t, decltype(&rd_kafka_topic_destroy)> rkt(
        rd_kafka_topic_new(client.handle(), o.topic.c_str(), nullptr), &rd_kafka_topic_destroy);

    std::ios::sync_with_stdio(false); // stdin is read only through std::cin here
    std::optional<std::string> input_error;
    int64_t sent = 0;
    std::uintptr_t line_no = 0;
    std::string line;
    const bool json_input = o.format == "json";
    while (std::getline(std::cin, line)) {
        ++line_no;
        if (!json_input && (line.empty() || line == "\r")) {
            continue; // an empty line is no record, as kcat -P has it (JSON lines can send "")
        }
        input_record r;
        try {
            if (json_input) {
                if (line.find_first_not_of(" \t\r") == std::string::npos) {
                    continue; // blank lines separate nothing in JSON lines
                }
                r = parse_json_line(line);
            } else if (o.key_separator) {
                auto at = line.find(*o.key_separator);
                if (at == std::string::npos) {
                    throw bad_input(fmt::format("no key separator '{}'", *o.key_separator));
                }
                r.key = line.substr(0, at);
                r.value = line.substr(at + o.key_separator->size());
            } else {
                r.value = line;
            }
            if (r.partition == RD_KAFKA_PARTITION_UA && o.partition >= 0) {
                r.partition = o.partition;
            }
            if (r.partition >= partitions) {
                throw bad_input(
                    fmt::format("topic '{}' has {}; there is no partition {}", o.topic,
                                counted(partitions, "partition"), r.partition));
            }
        } catch (const bad_input& e) {
            input_error = fmt::format("line {}: {}", line_no, e.what());
            break;
        }
        rd_kafka_headers_t* headers = nullptr;
        if (!r.headers.empty()) {
            headers = rd_kafka_headers_new(r.headers.size());
            for (const auto& [name, value] : r.headers) {
                rd_kafka_header_add(headers, name.data(), static_cast<ssize_t>(name.size()),
                                    value ? value->data() : nullptr,
                                    value ? static_cast<ssize_t>(value->size()) : 0);
            }
        }
        const void* key = r.key ? r.key->data() : nullptr;
        const std::size_t key_len = r.key ? r.key->size() : 0;
        const void* value = r.value ? r.value->data() : nullptr;
        const std::size_t value_len = r.value ? r.value->size() : 0;
        for (;;) {
            auto err = rd_kafka_producev(
                client.handle(), RD_KAFKA_V_RKT(rkt.get()), RD_KAFKA_V_PARTITION(r.partition),
                RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_KEY(key, key_len),
                RD_KAFKA_V_VALUE(const_cast<void*>(value), value_len), RD_KAFKA_V_HEADERS(headers),
                RD_KAFKA_V_TIMESTAMP(r.timestamp),
                RD_KAFKA_V_OPAQUE(reinterpret_cast<void*>(line_no)), RD_KAFKA_V_END);
            if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
                client.poll(std::chrono::milliseconds(100)); // room frees as reports arrive
                continue;
            }
            if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
                if (headers) {
                    rd_kafka_headers_destroy(headers); // not taken over on failure
                }
                input_error =
                    fmt::format("line {}: cannot produce: {}", line_no, rd_kafka_err2str(err));
            }
            break;
        }
        if (input_error) {
            break;
        }
        ++sent;
        client.poll(std::chrono::milliseconds(0));
    }
    if (!input_error && std::cin.bad()) {
        input_error = "cannot read stdin";
    }
    // Every record gets its report: delivered, or failed after message.timeout.ms at the latest.
    while (rd_kafka_outq_len(client.handle()) > 0) {
        rd_kafka_flush(client.handle(), 1000);
    }
    fmt::print(stderr, "runnel produce: {} of {} {} to '{}'{}\n", state.delivered, counted(sent, "record"),
               acks == "0" ? "sent (acks=0: not confirmed)" : "delivered", o.topic,
               state.failed ? fmt::format(", {} failed", state.failed) : "");
    if (input_error) {
        throw failure(*input_error +
                      (sent ? fmt::format(" ({} before it {} sent)", sent == 1 ? "the record" : fmt::format("the {} records", sent),
                                         sent == 1 ? "was" : "were")
                            : ""));
    }
    if (state.failed) {
        throw failure(fmt::format("{} of {} {} not delivered; first: {}", state.failed,
                                  counted(sent, "record"), state.failed == 1 ? "was" : "were", state.first_failure));
    }
}

} // namespace

void add_produce_command(CLI::App& app, std::function<int()>& run) {
    auto opts = std::make_shared<produce_options>();
    auto* cmd = app.add_subcommand("produce", "Write records read from stdin, one per line");
    cmd->add_option("topic", opts->topic, "Topic to write to (must exist)")->required();
    cmd->add_option("-K,--key-sep", opts->key_separator,
                    "Split each line into key and value at the first SEP");
    cmd->add_option("-p,--partition", opts->partition,
                    "Write every record to this partition (default: by key)")
        ->check(CLI::Range(0, std::numeric_limits<int32_t>::max()));
    cmd->add_option("--format", opts->format,
                    "text (a line is a value) or json (a line is a record)")
        ->capture_default_str()
        ->check(CLI::IsMember({"text", "json"}));
    cmd->add_option("--acks", opts->acks, "all: on disk, 1: written by the leader, 0: no answer")
        ->capture_default_str()
        ->check(CLI::IsMember({"all", "-1", "1", "0"}));
    add_client_options(
        *cmd, opts->client,
        "Input, one record per line of stdin:\n"
        "  text: the line is the value; with --key-sep SEP, KEY SEP VALUE\n"
        "  json: "
        "{\"key\":\"k\",\"value\":\"v\",\"headers\":{\"h\":\"x\"},\"partition\":0,\"timestamp\":"
        "1700000000000}\n"
        "        every field optional; null is null; a non-string key or value is sent as its "
        "JSON\n"
        "        text; binary data as \"key_base64\", \"value_base64\", "
        "\"headers_base64\":{\"h\":\"…\"}\n"
        "Records without a key are spread over partitions; keyed ones go where Java clients put "
        "them.\n"
        "The command waits for every delivery report, prints a summary on stderr, and exits 1 if "
        "any\n"
        "record was not delivered or a line could not be read (nothing after that line is sent).");
    cmd->callback([&run, opts] {
        run = [opts] {
            return run_command("produce", [&] { produce(*opts); });
        };
    });
}

} // namespace runnel::app
