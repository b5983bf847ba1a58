#include <CLI/CLI.hpp>

#include <csignal>
#include <future>
#include <thread>

#include "app/commands.h"
#include "net/net.h"
#include "storage/storage.h"

namespace runnel::app {
namespace {

spdlog::logger& lg() { return logging::get("serve"); }

/// How often each shard applies retention (Kafka's log.retention.check.interval.ms).
constexpr std::chrono::minutes retention_check_interval{5};

struct shard_state {
    std::unique_ptr<storage::flusher> flusher;
    std::unique_ptr<storage::log_manager> logs;
};

} // namespace

void add_serve_command(CLI::App& app, int (*&run)(const serve_options&), serve_options& opts) {
    auto* cmd = app.add_subcommand("serve", "Run the server: log, engine and gateway in one process");
    cmd->add_option("--data-dir", opts.data_dir, "Directory holding all data")->capture_default_str();
    cmd->add_option("--kafka-addr", opts.kafka_addr, "Kafka protocol listener, HOST:PORT")
      ->capture_default_str();
    cmd->add_option("--http-addr", opts.http_addr, "HTTP, WebSocket and dashboard listener, HOST:PORT")
      ->capture_default_str();
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
    for (auto [flag, value] : {std::pair{"--kafka-addr", &opts.kafka_addr}, {"--http-addr", &opts.http_addr}}) {
        std::string why;
        if (!net::parse_endpoint(*value, why)) {
            fmt::print(stderr, "runnel serve: invalid {} '{}': {}\n", flag, *value, why);
            return 2;
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
    std::vector<shard_state> state(shard_count);
    for (unsigned s = 0; s < shard_count; ++s) {
        state[s].flusher = std::make_unique<storage::flusher>(fmt::format("flush-{}", s));
        state[s].logs = std::make_unique<storage::log_manager>(opts.data_dir / "topics", shards.executor_of(s),
                                                               *state[s].flusher);
    }

    // Each partition opens on the shard that owns it.
    const auto found = storage::log_manager::discover(opts.data_dir / "topics");
    std::size_t torn = 0;
    std::size_t corrupt = 0;
    std::optional<std::string> failure;
    for (const auto& tp : found) {
        auto s = shards.shard_for(std::hash<std::string>{}(tp.topic) ^ static_cast<std::size_t>(tp.partition()));
        shards.run_on(s, [&] {
            auto log = state[s].logs->open(tp, storage::log_config{});
            if (!log) {
                failure = fmt::format("cannot open partition {}/{}: {}", tp.topic, tp.partition, log.error().message());
                return;
            }
            torn += log.value()->recovery().torn ? 1 : 0;
            corrupt += log.value()->recovery().corrupt ? 1 : 0;
        });
        if (failure) {
            break;
        }
    }
    if (!failure) {
        for (unsigned s = 0; s < shard_count; ++s) {
            shards.every(s, retention_check_interval, [logs = state[s].logs.get()] {
                logs->apply_retention(model::processing_now());
            });
        }
        auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started);
        lg().info("ready in {} ms: data dir {}, {} shards, {} partitions ({} with a torn tail cut, {} corrupt)",
                  ms.count(), opts.data_dir.string(), shard_count, found.size(), torn, corrupt);
        lg().info("the Kafka listener ({}) and the HTTP gateway ({}) are not part of this build yet",
                  opts.kafka_addr, opts.http_addr);

        int sig = 0;
        sigwait(&signals, &sig);
        lg().info("{} received: flushing {} partitions", sig == SIGINT ? "SIGINT" : "SIGTERM", found.size());
    }

    // Clean shutdown: every log flushes and records its durable point on its own shard.
    int code = failure ? 1 : 0;
    for (unsigned s = 0; s < shard_count; ++s) {
        std::promise<result<void>> closed;
        shards.run_on(s, [&] { state[s].logs->close_all([&](result<void> r) { closed.set_value(r); }); });
        if (auto r = closed.get_future().get(); !r) {
            lg().error("shard {}: flush at shutdown failed: {}", s, r.error().message());
            code = 1;
        }
    }
    shards.stop();
    state.clear();
    if (failure) {
        lg().error("{}", *failure);
    } else {
        lg().info("stopped cleanly");
    }
    return code;
}

} // namespace runnel::app
