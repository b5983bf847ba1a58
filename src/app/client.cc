#include "app/client.h"

#include "app/commands.h"

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <librdkafka/rdkafka.h>
#include <mutex>
#include <optional>
#include <thread>

namespace runnel::app {
namespace {

using clock = std::chrono::steady_clock;

int remaining_ms(clock::time_point deadline) {
    auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock::now()).count();
    return static_cast<int>(std::max<int64_t>(0, left));
}

/// Metadata errors that go away on their own: a leader being elected, a topic being created.
bool retriable(rd_kafka_resp_err_t err) {
    switch (err) {
    case RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE:
    case RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION:
    case RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT:
    case RD_KAFKA_RESP_ERR__TRANSPORT:
    case RD_KAFKA_RESP_ERR__TIMED_OUT:
    case RD_KAFKA_RESP_ERR__WAIT_COORD:
        return true;
    default:
        return false;
    }
}

topic_metadata convert(const rd_kafka_metadata_topic& t) {
    topic_metadata out;
    out.name = t.topic;
    for (int i = 0; i < t.partition_cnt; ++i) {
        const auto& p = t.partitions[i];
        partition_metadata pm;
        pm.id = p.id;
        pm.leader = p.leader;
        pm.replicas.assign(p.replicas, p.replicas + p.replica_cnt);
        pm.isr.assign(p.isrs, p.isrs + p.isr_cnt);
        pm.error = p.err;
        out.partitions.push_back(std::move(pm));
    }
    std::sort(out.partitions.begin(), out.partitions.end(),
              [](const auto& a, const auto& b) { return a.id < b.id; });
    return out;
}

} // namespace

void add_client_options(CLI::App& cmd, client_options& opts, std::string_view footer_extra) {
    cmd.add_option("-b,--brokers", opts.brokers, "Bootstrap brokers, HOST:PORT[,HOST:PORT...]")
        ->envname("RUNNEL_BROKERS")
        ->capture_default_str();
    cmd.add_option("--timeout", opts.timeout_ms,
                   "Milliseconds to wait for the brokers: to connect, for each request, for each "
                   "record's delivery")
        ->capture_default_str()
        ->check(CLI::Range(100, 3600000));
    cmd.add_option("-X,--property", opts.properties,
                   "librdkafka property KEY=VALUE, repeatable (-X security.protocol=ssl)")
        ->allow_extra_args(false)
        ->take_all();
    cmd.add_flag("-v,--verbose", opts.verbose, "Show librdkafka's log lines on stderr");
    std::string footer;
    if (!footer_extra.empty()) {
        footer = fmt::format("{}\n\n", footer_extra);
    }
    footer +=
        "Brokers: --brokers, else $RUNNEL_BROKERS, else 127.0.0.1:9092. Any Kafka cluster works.\n"
        "Exit codes: 0 success; 1 runtime failure (brokers unreachable within --timeout, unknown "
        "topic,\n"
        "a record not delivered, an error from the broker); 2 invalid usage.";
    cmd.footer(footer);
}

int run_command(std::string_view command, const std::function<void()>& body) {
    try {
        body();
        return exit_code::success;
    } catch (const command_error& e) {
        std::fflush(stdout);
        fmt::print(stderr, "runnel {}: {}\n", command, e.what());
        return e.code();
    } catch (const std::exception& e) {
        std::fflush(stdout);
        fmt::print(stderr, "runnel {}: {}\n", command, e.what());
        return exit_code::failure;
    }
}

std::pair<std::string, std::string> split_assignment(const std::string& text,
                                                     std::string_view flag) {
    auto eq = text.find('=');
    if (eq == std::string::npos || eq == 0) {
        throw usage(fmt::format("{} '{}': expected KEY=VALUE", flag, text));
    }
    return {text.substr(0, eq), text.substr(eq + 1)};
}

/// What librdkafka's callbacks report, read by the command's thread.
struct kafka_client::callbacks {
    mutable std::mutex mutex;
    std::string last_error;
    bool all_down = false;
    bool verbose = false;
    void* context = nullptr; ///< the command's, for its own callbacks

    static void on_error(rd_kafka_t*, int err, const char* reason, void* opaque) {
        auto* self = static_cast<callbacks*>(opaque);
        std::lock_guard lock(self->mutex);
        if (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN) {
            self->all_down = true; // keep the cause (connection refused, …) as the message
        } else {
            self->last_error = reason;
        }
        if (self->verbose) {
            fmt::print(stderr, "librdkafka error: {}: {}\n",
                       rd_kafka_err2name(static_cast<rd_kafka_resp_err_t>(err)), reason);
        }
    }

    static void on_log(const rd_kafka_t* rk, int level, const char* facility, const char* line) {
        auto* self = static_cast<callbacks*>(rd_kafka_opaque(rk));
        if (self && self->verbose) {
            fmt::print(stderr, "librdkafka {} {}: {}\n", level, facility, line);
        }
    }
};

kafka_client::kafka_client(role r, const client_options& opts,
                           const std::vector<std::pair<std::string, std::string>>& settings,
                           const std::function<void(rd_kafka_conf_t*)>& configure)
    : _opts(opts)
    , _callbacks(std::make_unique<callbacks>()) {
    _callbacks->verbose = opts.verbose;
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    char errstr[512];
    auto set = [&](const std::string& key, const std::string& value, bool from_user) {
        if (rd_kafka_conf_set(conf, key.c_str(), value.c_str(), errstr, sizeof errstr) !=
            RD_KAFKA_CONF_OK) {
            rd_kafka_conf_destroy(conf);
            if (from_user) {
                throw usage(fmt::format("-X {}={}: {}", key, value, errstr));
            }
            throw failure(fmt::format("librdkafka refused {}={}: {}", key, value, errstr));
        }
    };
    const int socket_timeout = std::clamp(opts.timeout_ms, 10, 300000);
    set("bootstrap.servers", opts.brokers, false);
    set("client.id", "runnel-cli", false);
    // A client command never creates topics by looking them up; `topic create` does that.
    set("allow.auto.create.topics", "false", false);
    set("socket.timeout.ms", std::to_string(socket_timeout), false);
    set("log.connection.close", "false", false);
    for (const auto& [k, v] : settings) {
        set(k, v, false);
    }
    for (const auto& p : opts.properties) {
        auto [k, v] = split_assignment(p, "-X");
        set(k, v, true);
    }
    rd_kafka_conf_set_opaque(conf, _callbacks.get());
    rd_kafka_conf_set_error_cb(conf, &callbacks::on_error);
    rd_kafka_conf_set_log_cb(conf, &callbacks::on_log);
    if (configure) {
        configure(conf);
    }
    _rk = rd_kafka_new(r == role::producer ? RD_KAFKA_PRODUCER : RD_KAFKA_CONSUMER, conf, errstr,
                       sizeof errstr);
    if (!_rk) {
        rd_kafka_conf_destroy(conf);
        throw failure(fmt::format("cannot create a Kafka client: {}", errstr));
    }
}

kafka_client::~kafka_client() {
    if (_rk) {
        rd_kafka_destroy(_rk);
    }
}

std::string kafka_client::last_error() const {
    std::lock_guard lock(_callbacks->mutex);
    return _callbacks->last_error;
}

bool kafka_client::all_brokers_down() const {
    std::lock_guard lock(_callbacks->mutex);
    return _callbacks->all_down;
}

std::string kafka_client::unreachable_message() const {
    auto why = last_error();
    if (all_brokers_down()) {
        return fmt::format("cannot reach the Kafka brokers {}{}{}", _opts.brokers,
                           why.empty() ? "" : ": ", why);
    }
    return fmt::format("no answer from the Kafka brokers {} within {} ms{}{}", _opts.brokers,
                       _opts.timeout_ms, why.empty() ? "" : "; last error: ", why);
}

void kafka_client::set_context(void* context) noexcept {
    _callbacks->context = context;
}

void* kafka_client::context_of(const rd_kafka_t* rk) noexcept {
    auto* cbs = static_cast<callbacks*>(rd_kafka_opaque(rk));
    return cbs ? cbs->context : nullptr;
}

void kafka_client::poll(std::chrono::milliseconds wait) {
    rd_kafka_poll(_rk, static_cast<int>(wait.count()));
}

std::vector<broker_metadata> kafka_client::connect() {
    const auto deadline = clock::now() + timeout();
    for (;;) {
        const int left = remaining_ms(deadline);
        if (left == 0) {
            throw failure(unreachable_message());
        }
        const rd_kafka_metadata_t* md = nullptr;
        // Short steps, so a refused connection (all brokers down) ends the wait early.
        auto err = rd_kafka_metadata(_rk, 0, nullptr, &md, std::min(left, 250));
        if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
            std::vector<broker_metadata> brokers;
            for (int i = 0; i < md->broker_cnt; ++i) {
                brokers.push_back({md->brokers[i].id, md->brokers[i].host, md->brokers[i].port});
            }
            rd_kafka_metadata_destroy(md);
            std::lock_guard lock(_callbacks->mutex);
            _callbacks->all_down = false; // a broker answered: what came before is history
            return brokers;
        }
        rd_kafka_poll(_rk, 0);
        if (all_brokers_down()) {
            throw failure(unreachable_message());
        }
        if (!retriable(err)) {
            throw failure(fmt::format("metadata request to {} failed: {}", _opts.brokers,
                                      rd_kafka_err2str(err)));
        }
    }
}

std::vector<topic_metadata> kafka_client::topics() {
    connect();
    const rd_kafka_metadata_t* md = nullptr;
    auto err = rd_kafka_metadata(_rk, 1, nullptr, &md, _opts.timeout_ms);
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        throw failure(
            fmt::format("metadata request to {} failed: {}", _opts.brokers, rd_kafka_err2str(err)));
    }
    std::vector<topic_metadata> out;
    for (int i = 0; i < md->topic_cnt; ++i) {
        if (md->topics[i].err == RD_KAFKA_RESP_ERR_NO_ERROR) {
            out.push_back(convert(md->topics[i]));
        }
    }
    rd_kafka_metadata_destroy(md);
    std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
    return out;
}

topic_metadata kafka_client::topic(const std::string& name) {
    connect();
    const auto deadline = clock::now() + timeout();
    std::unique_ptr<rd_kafka_topic_t, decltype(&rd_kafka_topic_destroy)> rkt(
        rd_kafka_topic_new(_rk, name.c_str(), nullptr), &rd_kafka_topic_destroy);
    if (!rkt) {
        throw failure(fmt::format("invalid topic name '{}': {}", name,
                                  rd_kafka_err2str(rd_kafka_last_error())));
    }
    for (;;) {
        const rd_kafka_metadata_t* md = nullptr;
        auto err = rd_kafka_metadata(_rk, 0, rkt.get(), &md, std::max(1, remaining_ms(deadline)));
        if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
            std::optional<topic_metadata> found;
            err = RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART;
            for (int i = 0; i < md->topic_cnt; ++i) {
                if (md->topics[i].topic != name) {
                    continue;
                }
                err = md->topics[i].err;
                if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
                    found = convert(md->topics[i]);
                }
            }
            rd_kafka_metadata_destroy(md);
            if (found) {
                return *found;
            }
            if (err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART) {
                throw failure(fmt::format("topic '{}' does not exist", name));
            }
            if (err == RD_KAFKA_RESP_ERR_TOPIC_EXCEPTION) {
                throw failure(fmt::format("invalid topic name '{}'", name));
            }
        }
        if (!retriable(err) || remaining_ms(deadline) == 0) {
            throw failure(fmt::format("metadata of topic '{}': {}", name, rd_kafka_err2str(err)));
        }
        std::this_thread::sleep_for(
            std::chrono::milliseconds(100)); // a retry interval, not synchronisation
    }
}

partition_watermarks kafka_client::watermarks(const std::string& topic, int32_t partition) {
    partition_watermarks w;
    auto err = rd_kafka_query_watermark_offsets(_rk, topic.c_str(), partition, &w.low, &w.high,
                                                _opts.timeout_ms);
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        throw failure(fmt::format("watermarks of {} partition {}: {}", topic, partition,
                                  rd_kafka_err2str(err)));
    }
    return w;
}

int32_t kafka_client::controller_id() {
    return rd_kafka_controllerid(_rk, _opts.timeout_ms);
}

std::shared_ptr<rd_kafka_event_t>
kafka_client::admin(const std::function<void(rd_kafka_AdminOptions_t*, rd_kafka_queue_t*)>& send,
                    int admin_op) {
    std::unique_ptr<rd_kafka_queue_t, decltype(&rd_kafka_queue_destroy)> queue(
        rd_kafka_queue_new(_rk), &rd_kafka_queue_destroy);
    std::unique_ptr<rd_kafka_AdminOptions_t, decltype(&rd_kafka_AdminOptions_destroy)> options(
        rd_kafka_AdminOptions_new(_rk, static_cast<rd_kafka_admin_op_t>(admin_op)),
        &rd_kafka_AdminOptions_destroy);
    char errstr[256];
    rd_kafka_AdminOptions_set_request_timeout(options.get(), _opts.timeout_ms, errstr,
                                              sizeof errstr);
    if (admin_op == RD_KAFKA_ADMIN_OP_CREATETOPICS || admin_op == RD_KAFKA_ADMIN_OP_DELETETOPICS ||
        admin_op == RD_KAFKA_ADMIN_OP_CREATEPARTITIONS) {
        // The broker answers once the change is done (or the timeout passed), not before.
        rd_kafka_AdminOptions_set_operation_timeout(options.get(), _opts.timeout_ms, errstr,
                                                    sizeof errstr);
    }
    send(options.get(), queue.get());
    rd_kafka_event_t* ev = rd_kafka_queue_poll(queue.get(), _opts.timeout_ms + 1000);
    if (!ev) {
        throw failure(fmt::format("no answer from the brokers {} within {} ms", _opts.brokers,
                                  _opts.timeout_ms));
    }
    std::shared_ptr<rd_kafka_event_t> owned(ev, &rd_kafka_event_destroy);
    if (rd_kafka_event_error(ev) != RD_KAFKA_RESP_ERR_NO_ERROR) {
        throw failure(rd_kafka_event_error_string(ev));
    }
    return owned;
}

void add_client_commands(CLI::App& app, std::function<int()>& run) {
    add_topic_command(app, run);
    add_produce_command(app, run);
    add_consume_command(app, run);
    add_group_command(app, run);
    add_txn_command(app, run);
    add_sql_command(app, run);
}

} // namespace runnel::app
