// `runnel consume TOPIC`: prints records of one topic, from a chosen position, without a
// consumer group (librdkafka's simple consumer: one fetch queue fed by every partition).

#include "app/client.h"
#include "base/plural.h"
#include "base/text.h"
#include "gateway/records.h"

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <atomic>
#include <charconv>
#include <csignal>
#include <librdkafka/rdkafka.h>
#include <limits>
#include <optional>
#include <poll.h>
#include <unistd.h>

namespace runnel::app {
namespace {

using clock = std::chrono::steady_clock;

/// Where reading starts in each partition.
struct start_position {
    enum class kind { beginning, end, offset, timestamp } what = kind::beginning;
    int64_t value = 0; ///< the offset or the timestamp in ms
};

/// Parses `beginning`, `end`, `OFFSET` or `@TIMESTAMP_MS`.
std::optional<start_position> parse_from(std::string_view text) {
    if (text == "beginning") {
        return start_position{start_position::kind::beginning, 0};
    }
    if (text == "end") {
        return start_position{start_position::kind::end, 0};
    }
    auto kind = start_position::kind::offset;
    if (!text.empty() && text[0] == '@') {
        kind = start_position::kind::timestamp;
        text.remove_prefix(1);
    }
    int64_t v = 0;
    auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
    if (text.empty() || ec != std::errc() || ptr != text.data() + text.size() || v < 0) {
        return std::nullopt;
    }
    return start_position{kind, v};
}

struct consume_options {
    client_options client;
    std::string topic;
    std::string from = "beginning";
    int32_t partition = -1; ///< -1: every partition
    bool follow = false;
    int64_t max_messages = 0; ///< 0: no limit
    std::string format = "text";
};

std::atomic<bool> stop_requested{false};

extern "C" void on_stop_signal(int) {
    stop_requested.store(true);
}

/// Makes SIGINT and SIGTERM end the read loop cleanly (everything printed is flushed), and
/// puts the previous handlers back when it goes.
class stop_signals {
public:
    stop_signals() {
        struct sigaction sa {};
        sa.sa_handler = &on_stop_signal;
        sigemptyset(&sa.sa_mask);
        sigaction(SIGINT, &sa, &_old_int);
        sigaction(SIGTERM, &sa, &_old_term);
    }
    ~stop_signals() {
        sigaction(SIGINT, &_old_int, nullptr);
        sigaction(SIGTERM, &_old_term, nullptr);
    }
    stop_signals(const stop_signals&) = delete;
    stop_signals& operator=(const stop_signals&) = delete;

private:
    struct sigaction _old_int {};
    struct sigaction _old_term {};
};

/// The partitions one command reads, all feeding one librdkafka queue (the simple consumer:
/// no group, each partition started at an explicit offset).
///
/// Used by the command's thread only. Destruction stops every started partition (dropping
/// what librdkafka fetched ahead) before the queue and the topic handle go, and must come
/// before the client's handle is destroyed.
class partition_reader {
public:
    partition_reader(kafka_client& client, const std::string& topic)
        : _topic(topic)
        , _rkt(rd_kafka_topic_new(client.handle(), topic.c_str(), nullptr))
        , _queue(rd_kafka_queue_new(client.handle())) {
        if (!_rkt) {
            throw failure(fmt::format("cannot read topic '{}': {}", topic,
                                      rd_kafka_err2str(rd_kafka_last_error())));
        }
    }
    ~partition_reader() {
        for (auto p : _started) {
            rd_kafka_consume_stop(_rkt, p);
        }
        rd_kafka_queue_destroy(_queue);
        if (_rkt) {
            rd_kafka_topic_destroy(_rkt);
        }
    }
    partition_reader(const partition_reader&) = delete;
    partition_reader& operator=(const partition_reader&) = delete;

    /// Starts fetching `partition` at `offset` (or RD_KAFKA_OFFSET_BEGINNING / _END).
    void start(int32_t partition, int64_t offset) {
        if (rd_kafka_consume_start_queue(_rkt, partition, offset, _queue) == -1) {
            throw failure(fmt::format("cannot start reading partition {} of '{}': {}", partition,
                                      _topic, rd_kafka_err2str(rd_kafka_last_error())));
        }
        _started.push_back(partition);
    }

    /// The next record or event (end of partition, error), or nullptr after `wait`. The
    /// caller owns the message (rd_kafka_message_destroy).
    rd_kafka_message_t* next(std::chrono::milliseconds wait) {
        return rd_kafka_consume_queue(_queue, static_cast<int>(wait.count()));
    }

private:
    std::string _topic;
    rd_kafka_topic_t* _rkt;
    rd_kafka_queue_t* _queue;
    std::vector<int32_t> _started;
};

/// True when stdout is a pipe whose reader has gone (`consume -f | head -1`): a follower
/// that is idle would otherwise only notice at its next write.
bool stdout_reader_gone() {
    pollfd p{STDOUT_FILENO, 0, 0};
    return ::poll(&p, 1, 0) == 1 && (p.revents & POLLERR) != 0;
}

std::string_view bytes_of(const void* p, std::size_t n) {
    return p ? std::string_view(static_cast<const char*>(p), n) : std::string_view();
}

std::optional<std::string_view> optional_bytes(const void* p, std::size_t n) {
    if (!p) {
        return std::nullopt;
    }
    return bytes_of(p, n);
}

/// Formats one record as a line: tab-separated text, or a JSON object.
void format_record(std::string& out, const rd_kafka_message_t& m, bool json) {
    rd_kafka_timestamp_type_t ts_type;
    const int64_t ts = rd_kafka_message_timestamp(&m, &ts_type);
    if (!json) {
        out += fmt::format("{}\t{}\t{}\t", m.partition, m.offset, ts);
        out += bytes_of(m.key, m.key_len);
        out.push_back('\t');
        out += bytes_of(m.payload, m.len);
        out.push_back('\n');
        return;
    }
    out +=
        fmt::format("{{\"partition\":{},\"offset\":{},\"timestamp\":{}", m.partition, m.offset, ts);
    gateway::append_bytes_field(out, "key", optional_bytes(m.key, m.key_len), false);
    gateway::append_bytes_field(out, "value", optional_bytes(m.payload, m.len), true);
    out += ",\"headers\":{";
    rd_kafka_headers_t* headers = nullptr;
    std::string binary_headers;
    if (rd_kafka_message_headers(&m, &headers) == RD_KAFKA_RESP_ERR_NO_ERROR) {
        const char* name = nullptr;
        const void* value = nullptr;
        std::size_t size = 0;
        bool first = true;
        for (std::size_t i = 0; rd_kafka_header_get_all(headers, i, &name, &value, &size) ==
                                RD_KAFKA_RESP_ERR_NO_ERROR;
             ++i) {
            auto bytes = bytes_of(value, size);
            if (value && !text::valid_utf8(bytes)) {
                binary_headers += binary_headers.empty() ? "" : ",";
                text::append_json_string(binary_headers, name);
                binary_headers += fmt::format(":\"{}\"", text::base64_encode(bytes));
                continue;
            }
            out += first ? "" : ",";
            first = false;
            text::append_json_string(out, name);
            out.push_back(':');
            if (value) {
                text::append_json_string(out, bytes);
            } else {
                out += "null";
            }
        }
    }
    out.push_back('}');
    if (!binary_headers.empty()) {
        out += ",\"headers_base64\":{" + binary_headers + "}";
    }
    out += "}\n";
}

void write_out(std::string& buf) {
    if (!buf.empty() && std::fwrite(buf.data(), 1, buf.size(), stdout) != buf.size()) {
        throw failure("cannot write to stdout");
    }
    buf.clear();
}

/// The first offset of each partition, resolved from `--from`.
std::vector<int64_t> start_offsets(kafka_client& client, const consume_options& o,
                                   const start_position& from,
                                   const std::vector<int32_t>& partitions) {
    std::vector<int64_t> out(partitions.size(), RD_KAFKA_OFFSET_BEGINNING);
    switch (from.what) {
    case start_position::kind::beginning:
        break;
    case start_position::kind::end:
        std::fill(out.begin(), out.end(), RD_KAFKA_OFFSET_END);
        break;
    case start_position::kind::offset:
        for (std::size_t i = 0; i < partitions.size(); ++i) {
            auto w = client.watermarks(o.topic, partitions[i]);
            const std::string hint =
                o.partition < 0 && partitions.size() > 1 ? "; choose one with --partition" : "";
            if (from.value > w.high) {
                throw failure(fmt::format(
                    "offset {} is past the end of partition {} of '{}' (its next offset is {}{})",
                    from.value, partitions[i], o.topic, w.high, hint));
            }
            if (from.value < w.low) {
                throw failure(fmt::format("offset {} is before the start of partition {} of '{}' "
                                          "(its first offset is {}{})",
                                          from.value, partitions[i], o.topic, w.low, hint));
            }
            out[i] = from.value;
        }
        break;
    case start_position::kind::timestamp: {
        std::unique_ptr<rd_kafka_topic_partition_list_t,
                        decltype(&rd_kafka_topic_partition_list_destroy)>
            list(rd_kafka_topic_partition_list_new(static_cast<int>(partitions.size())),
                 &rd_kafka_topic_partition_list_destroy);
        for (auto p : partitions) {
            rd_kafka_topic_partition_list_add(list.get(), o.topic.c_str(), p)->offset = from.value;
        }
        auto err = rd_kafka_offsets_for_times(client.handle(), list.get(), o.client.timeout_ms);
        if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
            throw failure(fmt::format("looking up offsets for timestamp {} failed: {}", from.value,
                                      rd_kafka_err2str(err)));
        }
        for (std::size_t i = 0; i < partitions.size(); ++i) {
            const auto& e = list->elems[i];
            if (e.err != RD_KAFKA_RESP_ERR_NO_ERROR) {
                throw failure(fmt::format("looking up timestamp {} in partition {} failed: {}",
                                          from.value, e.partition, rd_kafka_err2str(e.err)));
            }
            // -1: no record at or after the timestamp yet; start at the end.
            out[i] = e.offset >= 0 ? e.offset : RD_KAFKA_OFFSET_END;
        }
        break;
    }
    }
    return out;
}

void consume(const consume_options& o) {
    auto from = parse_from(o.from);
    if (!from) {
        throw usage(fmt::format("--from '{}': expected beginning, end, an offset or @TIMESTAMP_MS",
                                o.from));
    }
    const bool json = o.format == "json";
    kafka_client client(kafka_client::role::consumer, o.client,
                        {{"enable.partition.eof", "true"},
                         {"enable.auto.commit", "false"},
                         {"enable.auto.offset.store", "false"},
                         // An explicit position outside the log is an error, never a silent jump.
                         {"auto.offset.reset", "error"},
                         // Reaching the end is noticed one fetch wait after the last record.
                         {"fetch.wait.max.ms", o.follow ? "500" : "100"}});
    auto md = client.topic(o.topic);
    std::vector<int32_t> partitions;
    if (o.partition >= 0) {
        if (o.partition >= static_cast<int32_t>(md.partitions.size())) {
            throw failure(
                fmt::format("topic '{}' has {} (0 to {}); there is no partition {}",
                            o.topic, counted(int64_t(md.partitions.size()), "partition"), md.partitions.size() - 1,
                            o.partition));
        }
        partitions.push_back(o.partition);
    } else {
        for (const auto& p : md.partitions) {
            partitions.push_back(p.id);
        }
    }
    auto offsets = start_offsets(client, o, *from, partitions);

    partition_reader reader(client, o.topic);
    for (std::size_t i = 0; i < partitions.size(); ++i) {
        reader.start(partitions[i], offsets[i]);
    }

    stop_signals signals;
    std::vector<bool> at_end(partitions.size(), false);
    std::size_t ends = 0;
    int64_t printed = 0;
    std::string buf;
    auto last_progress = clock::now();
    bool warned_down = false;
    while (!stop_requested.load()) {
        if (o.max_messages > 0 && printed >= o.max_messages) {
            break;
        }
        if (!o.follow && ends == partitions.size()) {
            break;
        }
        rd_kafka_message_t* m = reader.next(std::chrono::milliseconds(100));
        if (!m) {
            write_out(buf);
            std::fflush(stdout);
            client.poll(std::chrono::milliseconds(0));
            if (o.follow && stdout_reader_gone()) {
                break;
            }
            if (client.all_brokers_down() && !warned_down && o.follow) {
                fmt::print(stderr, "runnel consume: {}; still trying\n",
                           client.unreachable_message());
                warned_down = true;
            }
            if (!o.follow && clock::now() - last_progress > client.timeout()) {
                throw failure(client.unreachable_message());
            }
            continue;
        }
        std::unique_ptr<rd_kafka_message_t, decltype(&rd_kafka_message_destroy)> owned(
            m, &rd_kafka_message_destroy);
        last_progress = clock::now();
        if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            for (std::size_t i = 0; i < partitions.size(); ++i) {
                if (partitions[i] == m->partition && !at_end[i]) {
                    at_end[i] = true;
                    ++ends;
                }
            }
            continue;
        }
        if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
            write_out(buf);
            throw failure(fmt::format("reading partition {} of '{}' failed: {}", m->partition,
                                      o.topic, rd_kafka_message_errstr(m)));
        }
        format_record(buf, *m, json);
        ++printed;
        if (o.follow || buf.size() > (1 << 16)) {
            write_out(buf);
            if (o.follow) {
                std::fflush(stdout);
            }
        }
    }
    write_out(buf);
    std::fflush(stdout);
}

} // namespace

void add_consume_command(CLI::App& app, std::function<int()>& run) {
    auto opts = std::make_shared<consume_options>();
    auto* cmd = app.add_subcommand("consume", "Print the records of a topic (no consumer group)");
    cmd->add_option("topic", opts->topic, "Topic to read")->required();
    cmd->add_option("--from", opts->from, "Where to start: beginning, end, OFFSET or @TIMESTAMP_MS")
        ->capture_default_str()
        ->check([](const std::string& s) {
            return parse_from(s) ? std::string()
                                 : "expected beginning, end, an offset or @TIMESTAMP_MS";
        });
    cmd->add_option("-p,--partition", opts->partition, "Read only this partition (default: all)")
        ->check(CLI::Range(0, std::numeric_limits<int32_t>::max()));
    cmd->add_flag("-f,--follow", opts->follow,
                  "Keep waiting for new records (default: stop at the end of every partition)");
    cmd->add_option("-n,--max-messages", opts->max_messages, "Stop after N records")
        ->check(CLI::Range(int64_t{1}, std::numeric_limits<int64_t>::max()));
    cmd->add_option("--format", opts->format, "text or json")
        ->capture_default_str()
        ->check(CLI::IsMember({"text", "json"}));
    add_client_options(
        *cmd, opts->client,
        "Output, one line per record, to stdout:\n"
        "  text: PARTITION<TAB>OFFSET<TAB>TIMESTAMP_MS<TAB>KEY<TAB>VALUE (a null key or value "
        "prints\n"
        "        as empty; bytes are printed as they are)\n"
        "  json: "
        "{\"partition\":0,\"offset\":5,\"timestamp\":1700000000000,\"key\":\"k\",\"value\":\"v\",\n"
        "         \"headers\":{\"h\":\"x\"}}; null stays null; a value holding a JSON object or\n"
        "        array is embedded as JSON (as the REST API serves it); a key or value that is not UTF-8\n"
        "        comes as \"key_base64\"/\"value_base64\", such header values in "
        "\"headers_base64\"\n"
        "--from OFFSET outside a partition's offsets is an error (exit code 1).\n"
        "Without --follow the command ends at the end of every partition it reads.");
    cmd->callback([&run, opts] {
        run = [opts] {
            return run_command("consume", [&] { consume(*opts); });
        };
    });
}

} // namespace runnel::app
