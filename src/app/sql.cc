// `runnel sql FILE`: submits a SQL script to a running server's HTTP API (`POST /v1/sql`) and
// prints what each statement did.
//
// The request is one HTTP/1.1 exchange with `Connection: close` over a blocking socket: a
// command-line tool talking to its own server, where a full HTTP client library would cost
// more build time than the exchange is worth.

#include <netdb.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fstream>
#include <iostream>
#include <sstream>

#include <CLI/CLI.hpp>
#include <boost/json.hpp>
#include <fmt/format.h>

#include "app/commands.h"

namespace runnel::app {
namespace {

namespace json = boost::json;

struct http_answer {
    int status = 0;
    std::string body;
};

/// POSTs `body` to http://`addr``path`; `why` explains a failure to talk to the server.
std::optional<http_answer> post(const std::string& addr, const std::string& path, const std::string& body,
                                const std::string& token, std::string& why) {
    auto colon = addr.rfind(':');
    if (colon == std::string::npos) {
        why = fmt::format("'{}' is not HOST:PORT", addr);
        return std::nullopt;
    }
    std::string host = addr.substr(0, colon), port = addr.substr(colon + 1);
    if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
    addrinfo hints{};
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* res = nullptr;
    if (int rc = getaddrinfo(host.c_str(), port.c_str(), &hints, &res); rc != 0) {
        why = fmt::format("cannot resolve {}: {}", addr, gai_strerror(rc));
        return std::nullopt;
    }
    int fd = -1;
    for (auto* a = res; a && fd < 0; a = a->ai_next) {
        fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
        if (fd >= 0 && connect(fd, a->ai_addr, a->ai_addrlen) != 0) {
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(res);
    if (fd < 0) {
        why = fmt::format("cannot connect to {}: {} (is `runnel serve` running there? see --http)", addr,
                          std::strerror(errno));
        return std::nullopt;
    }
    std::string req = fmt::format("POST {} HTTP/1.1\r\nHost: {}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n"
                                  "Connection: close\r\n{}\r\n",
                                  path, addr, body.size(),
                                  token.empty() ? std::string() : fmt::format("Authorization: Bearer {}\r\n", token));
    req += body;
    for (std::size_t sent = 0; sent < req.size();) {
        auto n = ::send(fd, req.data() + sent, req.size() - sent, MSG_NOSIGNAL);
        if (n <= 0) {
            why = fmt::format("sending to {}: {}", addr, std::strerror(errno));
            close(fd);
            return std::nullopt;
        }
        sent += std::size_t(n);
    }
    std::string in;
    char buf[65536];
    for (;;) {
        auto n = ::recv(fd, buf, sizeof buf, 0);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        in.append(buf, std::size_t(n));
    }
    close(fd);
    auto head_end = in.find("\r\n\r\n");
    if (in.compare(0, 9, "HTTP/1.1 ") != 0 || head_end == std::string::npos) {
        why = fmt::format("{} did not answer with HTTP", addr);
        return std::nullopt;
    }
    http_answer a;
    a.status = std::atoi(in.c_str() + 9);
    a.body = in.substr(head_end + 4);
    // The server sends whole bodies with Content-Length; a chunked body is not expected here.
    return a;
}

void print_result(const json::object& r) {
    const auto kind = std::string(r.at("kind").as_string());
    if (kind == "create_table") {
        fmt::print("table {} declared\n", std::string(r.at("table").as_string()));
    } else if (kind == "create_view") {
        fmt::print("view {} declared\n", std::string(r.at("view").as_string()));
    } else if (kind == "insert") {
        fmt::print("pipeline {} started\n", std::string(r.at("pipeline").as_string()));
    } else if (kind == "explain") {
        fmt::print("{}\n", std::string(r.at("plan").as_string()));
    } else if (kind == "stop_job") {
        fmt::print("pipeline {} stopped and deleted\n", std::string(r.at("pipeline").as_string()));
    } else if (kind == "show_jobs") {
        fmt::print("{:<32} {:<10} {}\n", "ID", "STATE", "TEMPLATE");
        for (const auto& j : r.at("jobs").as_array()) {
            const auto& o = j.as_object();
            fmt::print("{:<32} {:<10} {}\n", std::string(o.at("id").as_string()), std::string(o.at("state").as_string()),
                       std::string(o.at("template").as_string()));
        }
    } else if (kind == "show_tables") {
        for (const auto& t : r.at("tables").as_array()) fmt::print("{}\n", std::string(t.as_string()));
    }
}

struct sql_options {
    std::string file;
    std::string http = "127.0.0.1:8080";
    std::string token;
    bool explain = false;
    std::string format = "text";
};

int run_sql(const sql_options& o) {
    std::string text;
    if (o.file.empty()) {
        std::cerr << "runnel sql: give a FILE of statements ('-' reads stdin); the interactive shell is not built yet\n";
        return 2;
    }
    if (o.file == "-") {
        std::stringstream ss;
        ss << std::cin.rdbuf();
        text = ss.str();
    } else {
        std::ifstream in(o.file);
        if (!in) {
            std::cerr << fmt::format("runnel sql: cannot read {}\n", o.file);
            return 2;
        }
        std::stringstream ss;
        ss << in.rdbuf();
        text = ss.str();
    }
    json::object body;
    body["sql"] = text;
    body["explain"] = o.explain;
    std::string why;
    auto a = post(o.http, "/v1/sql", json::serialize(body), o.token, why);
    if (!a) {
        std::cerr << "runnel sql: " << why << "\n";
        return 1;
    }
    if (o.format == "json") {
        fmt::print("{}\n", a->body);
        return a->status == 200 ? 0 : 1;
    }
    boost::system::error_code ec;
    auto doc = json::parse(a->body, ec);
    if (ec || !doc.is_object()) {
        std::cerr << fmt::format("runnel sql: HTTP {} from {}: {}\n", a->status, o.http, a->body.substr(0, 400));
        return 1;
    }
    const auto& d = doc.as_object();
    if (a->status != 200) {
        auto* detail = d.if_contains("detail");
        std::cerr << fmt::format("runnel sql: {}\n",
                                 detail && detail->is_string() ? std::string(detail->as_string()) : a->body);
        return 1;
    }
    for (const auto& r : d.at("results").as_array()) print_result(r.as_object());
    return 0;
}

} // namespace

void add_sql_command(CLI::App& app, std::function<int()>& run) {
    static sql_options o;
    auto* cmd = app.add_subcommand("sql", "Run a SQL script on a server: each INSERT INTO becomes a durable pipeline");
    cmd->add_option("file", o.file, "File of statements separated by ';' ('-': stdin)");
    cmd->add_option("--http", o.http, "The server's HTTP address, HOST:PORT")->capture_default_str();
    cmd->add_option("--http-token", o.token, "Bearer token, when the server requires one");
    cmd->add_flag("--explain", o.explain, "Print the plan of every INSERT INTO without starting it");
    cmd->add_option("--format", o.format, "text or json")->check(CLI::IsMember({"text", "json"}));
    cmd->callback([&run] { run = [] { return run_sql(o); }; });
}

} // namespace runnel::app
