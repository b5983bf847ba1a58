#include <CLI/CLI.hpp>

#include <csignal>
#include <future>
#include <thread>

#include "app/commands.h"
#include "broker/broker.h"
#include "app/demo.h"
#include "gateway/gateway.h"
#include "jobs/jobs.h"
#include "kafka/server/server.h"
#include "net/net.h"
#include "storage/storage.h"

namespace runnel::app {
namespace {

spdlog::logger& lg() { return logging::get("serve"); }

/// How often group sessions, rebalance timeouts and initial delays are checked.
constexpr std::chrono::milliseconds group_check_interval{100};
/// How often transactions past their timeout are looked for.
constexpr std::chrono::milliseconds txn_check_interval{1000};

} // namespace

void add_serve_command(CLI::App& app, int (*&run)(const serve_options&), serve_options& opts) {
    auto* cmd = app.add_subcommand("serve", "Run the server: log, engine and gateway in one process");
    cmd->add_option("--data-dir", opts.data_dir, "Directory holding all data")->capture_default_str();
    cmd->add_option("--kafka-addr", opts.kafka_addr, "Kafka protocol listener, HOST:PORT")
      ->capture_default_str();
    cmd->add_option("--http-addr", opts.http_addr, "HTTP, WebSocket and dashboard listener, HOST:PORT")
      ->capture_default_str();
    cmd->add_option("--http-token", opts.http_token,
                    "Bearer token the HTTP API requires (required when --http-addr is not loopback)");
    cmd->add_option("--http-max-body-bytes", opts.http_max_body_bytes, "Largest HTTP request body accepted")
      ->capture_default_str()
      ->check(CLI::Range(std::size_t{1}, std::size_t{1} << 30));
    cmd->add_option("--http-client-queue-bytes", opts.http_client_queue_bytes,
                    "Send queue bound of each WebSocket/event-stream client; overflow closes it as slow")
      ->capture_default_str()
      ->check(CLI::Range(std::size_t{4096}, std::size_t{1} << 30));
    cmd->add_option("--kafka-max-inflated-batch-bytes", opts.kafka_max_inflated_batch_bytes,
                    "Most bytes the records of one compressed produced batch may inflate to; larger: INVALID_RECORD")
      ->capture_default_str()
      ->check(CLI::Range(std::size_t{1} << 16, std::size_t{1} << 31));
    cmd->add_option("--kafka-transaction-max-timeout-ms", opts.kafka_transaction_max_timeout_ms,
                    "Longest transaction.timeout.ms a transactional producer may ask for; longer: "
                    "INVALID_TRANSACTION_TIMEOUT")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{INT32_MAX}));
    cmd->add_option("--kafka-max-connections", opts.kafka_max_connections,
                    "Kafka connections open at once (max.connections); more are closed on accept")
      ->capture_default_str()
      ->check(CLI::Range(std::size_t{1}, std::size_t{1} << 20));
    cmd->add_option("--kafka-connections-max-idle-ms", opts.kafka_connections_max_idle_ms,
                    "Close a Kafka connection with no request in flight for this long (connections.max.idle.ms)")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{10}, int64_t{7} * 24 * 3600 * 1000));
    cmd->add_option("--max-open-segment-files", opts.max_open_segment_files,
                    "Sealed segment files kept open at once (least recently read closed first); 0: all")
      ->capture_default_str()
      ->check(CLI::Range(std::size_t{0}, std::size_t{1} << 24));
    cmd->add_option("--http-header-timeout-ms", opts.http_header_timeout_ms,
                    "Time an HTTP request's line and headers may take to arrive; slower clients are disconnected")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{10}, int64_t{3600000}));
    cmd->add_option("--http-body-timeout-ms", opts.http_body_timeout_ms,
                    "Time an HTTP request's body may take to arrive after its headers")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{10}, int64_t{3600000}));
    cmd->add_option("--http-max-connections", opts.http_max_connections,
                    "Open HTTP connections (streams included); more are answered 503 and closed")
      ->capture_default_str()
      ->check(CLI::Range(std::size_t{1}, std::size_t{1} << 20));
    cmd->add_option("--http-allowed-hosts", opts.http_allowed_hosts,
                    "Host names (NAME or NAME:PORT) the HTTP API answers to besides its address, localhost, "
                    "127.0.0.1 and [::1]")
      ->delimiter(',');
    cmd->add_option("--pipeline-max-memory-bytes", opts.pipeline_max_memory_bytes,
                    "Operator state plus buffers each pipeline instance may hold, checked at every checkpoint; "
                    "over it the pipeline fails (0: no limit)")
      ->capture_default_str();
    cmd->add_option("--http-allowed-origins", opts.http_allowed_origins,
                    "Origins (SCHEME://HOST[:PORT]) of other web pages allowed to send changes and open streams")
      ->delimiter(',');
    cmd->add_option("--retention-check-ms", opts.retention_check_ms,
                    "How often each shard applies retention (log.retention.check.interval.ms)")
      ->capture_default_str()
      ->check(CLI::Range(10u, 24u * 3600 * 1000));
    cmd->add_option("--advertise-addr", opts.advertise_addr,
                    "Address Kafka clients are told to connect to, HOST:PORT (default: the listener's)");
    cmd->add_option("--auto-create-topics", opts.auto_create_topics,
                    "Create unknown topics on Metadata and Produce requests")
      ->capture_default_str();
    cmd->add_option("--default-partitions", opts.default_partitions, "Partitions of auto-created topics")
      ->capture_default_str()
      ->check(CLI::Range(1, 100000));
    cmd->add_option("--kafka-fetch-max-bytes", opts.kafka_fetch_max_bytes,
                    "Most record bytes one Fetch response carries, whatever the request asks (fetch.max.bytes)")
      ->capture_default_str()
      ->check(CLI::Range(1024, 1 << 30));
    cmd->add_option("--group-initial-rebalance-delay-ms", opts.group_initial_rebalance_delay_ms,
                    "How long a new consumer group waits for more members before its first rebalance")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{0}, int64_t{300000}));
    cmd->add_option("--group-min-session-timeout-ms", opts.group_min_session_timeout_ms,
                    "Smallest session timeout a group member may ask for")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{3600000}));
    cmd->add_option("--group-max-session-timeout-ms", opts.group_max_session_timeout_ms,
                    "Largest session timeout a group member may ask for")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{86400000}));
    cmd->add_flag("--demo", opts.demo,
                  "Run a live demo: generated Nexmark bids into demo-bids, counted per channel in 5 s windows into "
                  "demo-bids-per-channel");
    cmd->add_option("--demo-rate", opts.demo_rate, "Events per second the demo generates")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{1000000}));
    cmd->add_option("--shards", opts.shards, "Event loop threads (default: one per core)");
    cmd->add_option("--log-level", opts.log_level, "trace, debug, info, warn, error or off")
      ->capture_default_str()
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "critical", "off"}));
    // The config file belongs to the top-level command (CLI11 reads it there) and names its
    // section: `[serve]` then `shards = 4` and so on. `serve --config FILE` falls through to it.
    app.set_config("--config", "", "Read options from a TOML or INI file ([serve] section; flags win)");
    cmd->fallthrough();
    run = &serve;
}

int serve(const serve_options& opts) {
    logging::set_level(spdlog::level::from_str(opts.log_level));
    std::optional<net::endpoint> kafka_ep;
    std::optional<net::endpoint> advertise_ep;
    std::optional<net::endpoint> http_ep;
    for (auto [flag, value, out] : {std::tuple{"--kafka-addr", &opts.kafka_addr, &kafka_ep},
                                    {"--http-addr", &opts.http_addr, &http_ep},
                                    {"--advertise-addr", &opts.advertise_addr, &advertise_ep}}) {
        if (value->empty() && out == &advertise_ep) {
            continue;
        }
        std::string why;
        auto ep = net::parse_endpoint(*value, why, out != &advertise_ep);
        if (!ep) {
            fmt::print(stderr, "runnel serve: invalid {} '{}': {}\n", flag, *value, why);
            return 2;
        }
        if (out) {
            *out = ep.value();
        }
    }
    const unsigned shard_count = opts.shards ? opts.shards : std::max(1u, std::thread::hardware_concurrency());

    // Signals are taken by sigwait on this thread; every thread started below inherits the mask.
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGINT);
    sigaddset(&signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &signals, nullptr);

    std::error_code ec;
    std::filesystem::create_directories(opts.data_dir / "topics", ec);
    if (ec) {
        fmt::print(stderr, "runnel serve: cannot create data directory {}: {}\n", opts.data_dir.string(), ec.message());
        return 1;
    }
    auto lock = file_handle::open(opts.data_dir / ".lock", O_RDWR | O_CREAT);
    if (!lock || !lock.value().try_lock()) {
        fmt::print(stderr, "runnel serve: data directory {} is in use by another runnel serve\n",
                   opts.data_dir.string());
        return 1;
    }

    const auto started = std::chrono::steady_clock::now();
    net::shard_group shards(shard_count);
    std::vector<std::unique_ptr<storage::flusher>> flushers;
    std::vector<executor*> executors;
    std::vector<storage::flusher*> flusher_ptrs;
    for (unsigned s = 0; s < shard_count; ++s) {
        flushers.push_back(std::make_unique<storage::flusher>(fmt::format("flush-{}", s)));
        executors.push_back(&shards.executor_of(s));
        flusher_ptrs.push_back(flushers.back().get());
    }
    // Every partition opens (and recovers) on the shard that owns it.
    broker::broker brk(broker::broker_config{opts.data_dir, opts.auto_create_topics, opts.default_partitions,
                                             opts.kafka_max_inflated_batch_bytes, opts.max_open_segment_files,
                                             opts.kafka_transaction_max_timeout_ms},
                       executors, flusher_ptrs);
    std::optional<std::string> failure;
    if (auto r = brk.start(); !r) {
        failure = fmt::format("cannot load topics: {}", r.error().message());
    }
    kafka::server_config kcfg;
    kcfg.listen = *kafka_ep;
    kcfg.advertise = advertise_ep;
    kcfg.auto_create_topics = opts.auto_create_topics;
    kcfg.default_partitions = opts.default_partitions;
    kcfg.fetch_max_bytes = opts.kafka_fetch_max_bytes;
    kcfg.max_connections = opts.kafka_max_connections;
    kcfg.connections_max_idle = std::chrono::milliseconds(opts.kafka_connections_max_idle_ms);
    broker::group_config gcfg;
    gcfg.initial_rebalance_delay = std::chrono::milliseconds(opts.group_initial_rebalance_delay_ms);
    gcfg.min_session_timeout = std::chrono::milliseconds(opts.group_min_session_timeout_ms);
    gcfg.max_session_timeout = std::chrono::milliseconds(opts.group_max_session_timeout_ms);
    broker::group_coordinator groups(brk, gcfg, executors);
    brk.on_topic_deleted([&groups](const std::string& topic) { groups.on_topic_deleted(topic); });
    if (!failure) {
        if (auto r = groups.start(); !r) {
            failure = fmt::format("cannot open the consumer offsets topic: {}", r.error().message());
        }
    }
    // Transactions recover after the groups they commit offsets to, before clients connect.
    if (!failure) {
        if (auto r = brk.transactions().start(&groups); !r) {
            failure = fmt::format("cannot open the transaction log: {}", r.error().message());
        }
    }
    kafka::kafka_server kafka_listener(shards, brk, groups, kcfg);
    if (!failure) {
        if (auto bound = kafka_listener.start(); !bound) {
            failure = fmt::format("cannot listen on {} for Kafka clients: {}", opts.kafka_addr, bound.error().message());
        } else {
            kafka_ep = bound.value();
        }
    }
    // Durable jobs (DATA_DIR/jobs) resume from their last checkpoints; every template they may
    // name is registered first.
    register_demo_template();
    jobs::manager job_manager(brk, shards, opts.data_dir / "jobs", &groups);
    job_manager.set_max_memory_bytes(opts.pipeline_max_memory_bytes);
    if (!failure) {
        if (auto r = job_manager.start(); !r) {
            failure = fmt::format("cannot start the stored jobs: {}", r.error().message());
        }
    }
    gateway::options gopts;
    gopts.listen = *http_ep;
    if (!opts.http_token.empty()) {
        gopts.token = opts.http_token;
    }
    gopts.max_body_bytes = opts.http_max_body_bytes;
    gopts.client_queue_bytes = opts.http_client_queue_bytes;
    gopts.header_timeout = std::chrono::milliseconds(opts.http_header_timeout_ms);
    gopts.body_timeout = std::chrono::milliseconds(opts.http_body_timeout_ms);
    gopts.max_connections = opts.http_max_connections;
    gopts.allowed_hosts = opts.http_allowed_hosts;
    gopts.allowed_origins = opts.http_allowed_origins;
    gopts.data_dir = opts.data_dir.string();
    gopts.groups = &groups;
    gopts.jobs = &job_manager;
    gateway::server http_listener(shards, brk, gopts);
    if (!failure) {
        if (auto bound = http_listener.start(); !bound) {
            failure = fmt::format("cannot start the HTTP gateway on {}: {}", opts.http_addr, bound.error().message());
        } else {
            http_ep = bound.value();
        }
    }
    demo live_demo(brk, job_manager, opts.demo_rate);
    if (!failure && opts.demo) {
        if (auto r = live_demo.start(); !r) {
            failure = fmt::format("cannot start the demo: {}", r.error().message());
        }
    }
    if (!failure) {
        for (unsigned s = 0; s < shard_count; ++s) {
            shards.every(s, std::chrono::milliseconds(opts.retention_check_ms),
                         [&brk, s] { brk.apply_retention(s, model::processing_now()); });
            shards.every(s, group_check_interval,
                         [&groups, s] { groups.tick(s, broker::coordinator_clock::now()); });
            if (s == 0) {
                shards.every(s, txn_check_interval, [&brk] { brk.transactions().tick(); });
            }
        }
        auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started);
        std::size_t topic_count = 0;
        int64_t partition_count = 0;
        for (const auto& [name, t] : *brk.topics()) {
            if (!broker::is_internal_topic(name)) {
                ++topic_count;
                partition_count += t->config.partitions;
            }
        }
        lg().info("ready in {} ms: data dir {}, {}, {} ({}), {}, Kafka listener on {}, "
                  "HTTP listener on {}",
                  ms.count(), opts.data_dir.string(), counted(shard_count, "shard"), counted(int64_t(topic_count), "topic"),
                  counted(partition_count, "partition"), counted(int64_t(job_manager.status().size()), "pipeline"),
                  kafka_ep->to_string(), http_ep->to_string());
        lg().info("dashboard: http://{}/", http_ep->to_string());

        int sig = 0;
        sigwait(&signals, &sig);
        lg().info("{} received: flushing {}", sig == SIGINT ? "SIGINT" : "SIGTERM",
                  counted(int64_t(brk.partition_count()), "partition"));
        if (opts.demo) {
            lg().info("dashboard was at http://{}/", http_ep->to_string());
        }
    }
    live_demo.stop();
    job_manager.stop();

    // Clean shutdown: the listeners stop accepting and reading; Kafka connections write the
    // answers of the requests already read (at most 5 s; long polls answer at once) and close,
    // while the broker and every shard still run to finish them. Then every log flushes and
    // records its durable point.
    http_listener.stop();
    kafka_listener.stop();
    int code = failure ? 1 : 0;
    if (auto r = brk.stop(); !r) {
        lg().error("flush at shutdown failed: {}", r.error().message());
        code = 1;
    }
    shards.stop();
    if (failure) {
        lg().error("{}", *failure);
    } else {
        lg().info("stopped cleanly");
    }
    return code;
}

} // namespace runnel::app
