#include <CLI/CLI.hpp>

#include <fmt/ranges.h>

#include <fstream>
#include <iostream>
#include <memory>
#include <unistd.h>

#include "app/commands.h"
#include "security/security.h"

namespace runnel::app {
namespace {

struct user_options {
    std::filesystem::path data_dir = "runnel-data";
    std::string name;
    std::vector<std::string> mechanisms = {"SCRAM-SHA-256", "SCRAM-SHA-512"};
    int32_t iterations = 8192;
    std::string password_file;
};

/// The password: the first line of `--password-file`, or of standard input.
std::optional<std::string> read_password(const user_options& o) {
    std::string line;
    if (!o.password_file.empty()) {
        std::ifstream in(o.password_file);
        if (!in || !std::getline(in, line)) {
            fmt::print(stderr, "runnel user: cannot read a password from {}\n", o.password_file);
            return std::nullopt;
        }
    } else {
        if (isatty(STDIN_FILENO)) {
            fmt::print(stderr, "password: ");
        }
        if (!std::getline(std::cin, line)) {
            fmt::print(stderr, "runnel user: no password on standard input\n");
            return std::nullopt;
        }
    }
    if (!line.empty() && line.back() == '\r') {
        line.pop_back();
    }
    if (line.empty()) {
        fmt::print(stderr, "runnel user: the password is empty\n");
        return std::nullopt;
    }
    return line;
}

/// The credential file of the data directory, read; nothing (and a message) when it is unreadable.
std::unique_ptr<security::credential_store> open_store(const user_options& o, std::string_view command) {
    auto store = std::make_unique<security::credential_store>(security::credential_store::file_in(o.data_dir));
    std::string why;
    if (!store->load(why)) {
        fmt::print(stderr, "runnel user {}: {}\n", command, why);
        return nullptr;
    }
    return store;
}

int create_user(const user_options& o) {
    std::string why;
    if (!security::credential_store::valid_user_name(o.name, why)) {
        fmt::print(stderr, "runnel user create: invalid user name: {}\n", why);
        return 2;
    }
    auto password = read_password(o);
    if (!password) {
        return 2;
    }
    auto store = open_store(o, "create");
    if (!store) {
        return 1;
    }
    for (const auto& m : o.mechanisms) {
        auto cred = security::make_scram_credential(*security::parse_mechanism(m), *password, o.iterations);
        if (!store->set(o.name, cred, why)) {
            fmt::print(stderr, "runnel user create: {}\n", why);
            return 1;
        }
    }
    fmt::print("user {} has SCRAM credentials ({}); running servers use them from the next login\n", o.name,
               fmt::join(o.mechanisms, ", "));
    return 0;
}

int delete_user(const user_options& o) {
    auto store = open_store(o, "delete");
    if (!store) {
        return 1;
    }
    std::string why;
    auto removed = store->remove(o.name, std::nullopt, why);
    if (!removed) {
        fmt::print(stderr, "runnel user delete: {}\n", why);
        return 1;
    }
    if (!removed.value()) {
        fmt::print(stderr, "runnel user delete: no user {}\n", o.name);
        return 1;
    }
    fmt::print("user {} deleted; open connections stay until they end\n", o.name);
    return 0;
}

int list_users(const user_options& o) {
    auto store = open_store(o, "list");
    if (!store) {
        return 1;
    }
    for (const auto& [name, creds] : store->list()) {
        std::vector<std::string> parts;
        for (const auto& [m, iterations] : creds) {
            parts.push_back(fmt::format("{} ({} iterations)", security::mechanism_name(m), iterations));
        }
        fmt::print("{}\t{}\n", name, fmt::join(parts, ", "));
    }
    return 0;
}

} // namespace

void add_user_command(CLI::App& app, std::function<int()>& run) {
    auto opts = std::make_shared<user_options>();
    auto* cmd = app.add_subcommand("user", "Manage the SCRAM users of the SASL listeners (in the data directory)");
    cmd->require_subcommand(1);
    auto data_dir = [&opts](CLI::App* c) {
        c->add_option("--data-dir", opts->data_dir, "The server's data directory")->capture_default_str();
    };
    auto* create = cmd->add_subcommand("create", "Add a user, or set a user's password (read from standard input)");
    data_dir(create);
    create->add_option("name", opts->name, "User name")->required();
    create->add_option("--mechanisms", opts->mechanisms, "SCRAM mechanisms to store credentials for")
      ->delimiter(',')
      ->capture_default_str()
      ->check(CLI::IsMember({"SCRAM-SHA-256", "SCRAM-SHA-512"}));
    create->add_option("--iterations", opts->iterations, "PBKDF2 iterations")
      ->capture_default_str()
      ->check(CLI::Range(security::min_scram_iterations, security::max_scram_iterations));
    create->add_option("--password-file", opts->password_file, "Read the password from the first line of this file");
    create->callback([&run, opts] { run = [opts] { return create_user(*opts); }; });
    auto* del = cmd->add_subcommand("delete", "Remove a user and all of its credentials");
    data_dir(del);
    del->add_option("name", opts->name, "User name")->required();
    del->callback([&run, opts] { run = [opts] { return delete_user(*opts); }; });
    auto* list = cmd->add_subcommand("list", "List users and their mechanisms");
    data_dir(list);
    list->callback([&run, opts] { run = [opts] { return list_users(*opts); }; });
}

} // namespace runnel::app
