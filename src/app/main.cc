#include <CLI/CLI.hpp>

#include "app/commands.h"

// The `runnel` command. Subcommands arrive as the parts behind them do; see docs/architecture.md.
int main(int argc, char** argv) {
    CLI::App app{"Runnel: a real-time streaming platform in one binary (Kafka-compatible log, "
                 "stream engine, SQL, live gateway)",
                 "runnel"};
    app.set_version_flag("--version", "runnel 0.1.0");
    app.require_subcommand(1);
    app.footer("Exit codes: 0 success, 1 runtime failure, 2 invalid usage.");

    runnel::app::serve_options serve_opts;
    int (*run_serve)(const runnel::app::serve_options&) = nullptr;
    runnel::app::add_serve_command(app, run_serve, serve_opts);
    std::function<int()> run_client;
    runnel::app::add_client_commands(app, run_client);
    runnel::app::add_user_command(app, run_client);
    runnel::app::add_acl_command(app, run_client);

    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        int code = app.exit(e);
        return code == 0 ? 0 : 2;
    }
    if (app.got_subcommand("serve")) {
        return run_serve(serve_opts);
    }
    if (run_client) {
        return run_client();
    }
    return 2;
}
