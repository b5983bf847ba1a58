#pragma once

// Shared by the Kafka client commands (`topic`, `produce`, `consume`, `group`): their options,
// their failure type, and `kafka_client`, a small owner of one librdkafka handle. Only the client
// command files include this; librdkafka itself (rdkafka.h) stays in their `.cc` files.

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace CLI {
class App;
} // namespace CLI

// librdkafka's opaque handle types, declared as rdkafka.h declares them.
typedef struct rd_kafka_s rd_kafka_t;
typedef struct rd_kafka_conf_s rd_kafka_conf_t;
typedef struct rd_kafka_topic_s rd_kafka_topic_t;
typedef struct rd_kafka_queue_s rd_kafka_queue_t;
typedef struct rd_kafka_op_s rd_kafka_event_t;
typedef struct rd_kafka_AdminOptions_s rd_kafka_AdminOptions_t;

namespace runnel::app {

/// How a client command reaches the cluster, from its command line.
struct client_options {
    std::string brokers = "127.0.0.1:9092"; ///< bootstrap list, HOST:PORT[,HOST:PORT…]
    int timeout_ms = 30000;                 ///< connecting, each request, each record's delivery
    std::vector<std::string> properties;    ///< librdkafka properties, `key=value` (-X)
    bool verbose = false;                   ///< show librdkafka's own log lines on stderr
};

/// Adds `--brokers` (also env RUNNEL_BROKERS), `--timeout`, `-X` and `--verbose` to `cmd`,
/// plus the exit-code footer every client command shares.
void add_client_options(CLI::App& cmd, client_options& opts, std::string_view footer_extra = {});

/// The exit codes a script can rely on.
namespace exit_code {
inline constexpr int success = 0;
inline constexpr int failure =
    1; ///< runtime: broker unreachable, delivery failed, unknown topic, …
inline constexpr int usage = 2; ///< invalid command line
} // namespace exit_code

/// Ends a client command: `what()` is printed on stderr after the command's name and
/// `code()` becomes the process's exit code. Thrown only where the whole command must stop.
class command_error : public std::runtime_error {
public:
    command_error(int code, const std::string& message)
        : std::runtime_error(message)
        , _code(code) {}
    int code() const noexcept { return _code; }

private:
    int _code;
};

/// A runtime failure (exit code 1).
inline command_error failure(const std::string& message) {
    return {exit_code::failure, message};
}
/// A usage error found after parsing, such as a malformed `--from` (exit code 2).
inline command_error usage(const std::string& message) {
    return {exit_code::usage, message};
}

/// Runs `body` and returns the exit code: 0, or the code of the `command_error` it threw after
/// printing `runnel <command>: <message>` on stderr. Other exceptions count as failures.
int run_command(std::string_view command, const std::function<void()>& body);

/// Splits `key=value` (at the first '='); a usage error naming `flag` when there is no '='.
std::pair<std::string, std::string> split_assignment(const std::string& text,
                                                     std::string_view flag);

/// One partition as the cluster's metadata describes it.
struct partition_metadata {
    int32_t id = 0;
    int32_t leader = -1;
    std::vector<int32_t> replicas;
    std::vector<int32_t> isr;
    int error = 0; ///< rd_kafka_resp_err_t
};

/// One topic as the cluster's metadata describes it; partitions sorted by id.
struct topic_metadata {
    std::string name;
    std::vector<partition_metadata> partitions;
};

/// One broker of the cluster.
struct broker_metadata {
    int32_t id = 0;
    std::string host;
    int port = 0;
};

/// The low watermark (first offset kept) and high watermark (next offset) of a partition.
struct partition_watermarks {
    int64_t low = 0;
    int64_t high = 0;
};

/// Owns one librdkafka handle (`rd_kafka_t`) for the life of a client command.
///
/// Configured from `client_options` with settings that suit a command-line tool: topics are
/// never created as a side effect of metadata requests, librdkafka's log lines are kept off
/// stderr unless `--verbose`, and errors it reports asynchronously are remembered so that a
/// failure can name its cause. `connect` fails fast (well before the timeout) when every
/// bootstrap broker refuses the connection.
///
/// Used from the one thread that runs the command; librdkafka's own threads only touch the
/// callback state, under its mutex. Destroying it destroys the handle, which waits for
/// librdkafka's threads (a producer must have flushed first).
class kafka_client {
public:
    enum class role { producer, consumer };

    /// Creates the handle. `settings` come first, then every `-X` property, so the user wins;
    /// `configure` may then add callbacks (a producer's delivery reports). Throws a usage
    /// error for an unknown or invalid property.
    kafka_client(role r, const client_options& opts,
                 const std::vector<std::pair<std::string, std::string>>& settings = {},
                 const std::function<void(rd_kafka_conf_t*)>& configure = {});
    ~kafka_client();
    kafka_client(const kafka_client&) = delete;
    kafka_client& operator=(const kafka_client&) = delete;

    rd_kafka_t* handle() const noexcept { return _rk; }
    const client_options& options() const noexcept { return _opts; }
    std::chrono::milliseconds timeout() const noexcept {
        return std::chrono::milliseconds(_opts.timeout_ms);
    }

    /// Waits until a broker answers, then returns the cluster's brokers. Fails (exit code 1)
    /// naming the bootstrap brokers when none answers within the timeout, or as soon as all
    /// of them are down.
    std::vector<broker_metadata> connect();

    /// Every topic of the cluster, sorted by name.
    std::vector<topic_metadata> topics();

    /// The metadata of `name`. Fails with "topic 'NAME' does not exist" when the cluster does
    /// not know it; retries errors that go away (leader elections) until the timeout.
    topic_metadata topic(const std::string& name);

    /// Asks the partition's leader for its watermarks.
    partition_watermarks watermarks(const std::string& topic, int32_t partition);

    /// The id of the cluster's controller, or -1 when it is not known.
    int32_t controller_id();

    /// A pointer the command's own librdkafka callbacks (set by `configure`) reach through
    /// `context_of`; they run only inside `poll` and librdkafka's flush.
    void set_context(void* context) noexcept;
    /// The context of the client owning `rk`, from inside a librdkafka callback.
    static void* context_of(const rd_kafka_t* rk) noexcept;

    /// Serves queued callbacks (errors, delivery reports) for up to `wait`.
    void poll(std::chrono::milliseconds wait);

    /// The last error librdkafka reported asynchronously (connection refused, …), or "".
    std::string last_error() const;
    /// True once librdkafka reported that every broker is down.
    bool all_brokers_down() const;

    /// Sends one admin request and waits for its result event. `send` issues the request on
    /// `queue` with `options` (request and operation timeouts already set to the timeout).
    /// Fails when no result arrives in time or the request as a whole failed.
    std::shared_ptr<rd_kafka_event_t>
    admin(const std::function<void(rd_kafka_AdminOptions_t*, rd_kafka_queue_t*)>& send,
          int admin_op);

    /// A failure message for the brokers not answering: names them and the last error.
    std::string unreachable_message() const;

private:
    struct callbacks;

    client_options _opts;
    std::unique_ptr<callbacks> _callbacks;
    rd_kafka_t* _rk = nullptr;
};

/// Adds `topic`, `produce`, `consume` and `group` (each file's part of the client).
void add_topic_command(CLI::App& app, std::function<int()>& run);
void add_produce_command(CLI::App& app, std::function<int()>& run);
void add_consume_command(CLI::App& app, std::function<int()>& run);
void add_group_command(CLI::App& app, std::function<int()>& run);
void add_txn_command(CLI::App& app, std::function<int()>& run);

} // namespace runnel::app
