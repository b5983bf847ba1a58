// `runnel sql FILE`: submits a SQL script to a running server's HTTP API (`POST /v1/sql`) and
// prints what each statement did. `runnel sql` without a file is an interactive shell: a
// SELECT runs as a temporary materialized view whose rows are redrawn as they change.
//
// The request is one HTTP/1.1 exchange with `Connection: close` over a blocking socket: a
// command-line tool talking to its own server, where a full HTTP client library would cost
// more build time than the exchange is worth.

#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <filesystem>

#include <fstream>
#include <iostream>
#include <sstream>

#include <CLI/CLI.hpp>
#include <boost/json.hpp>
#include <fmt/format.h>

#include "app/commands.h"
#include "base/plural.h"

namespace runnel::app {
namespace {

namespace json = boost::json;

struct http_answer {
    int status = 0;
    std::string body;
};

/// Sends `method` `path` with `body` to http://`addr`; `why` explains a failure to talk to the
/// server.
std::optional<http_answer> request(const char* method, const std::string& addr, const std::string& path,
                                   const std::string& body, const std::string& token, std::string& why) {
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
    std::string req = fmt::format("{} {} HTTP/1.1\r\nHost: {}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n"
                                  "Connection: close\r\n{}\r\n",
                                  method, path, addr, body.size(),
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
    } else if (kind == "create_materialized_view") {
        const auto* existed = r.if_contains("existed");
        fmt::print("materialized view {} {} (GET /v1/views/{})\n", std::string(r.at("view").as_string()),
                   existed && existed->is_bool() && existed->as_bool() ? "exists already, kept" : "created",
                   std::string(r.at("view").as_string()));
    } else if (kind == "drop_materialized_view") {
        fmt::print("materialized view {} dropped\n", std::string(r.at("view").as_string()));
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
    } else if (kind == "show_views") {
        fmt::print("{:<32} {}\n", "VIEW", "ROWS");
        for (const auto& v : r.at("views").as_array()) {
            fmt::print("{:<32} {}\n", std::string(v.at("name").as_string()), v.at("rows").to_number<int64_t>());
        }
    }
}

struct sql_options {
    std::string file;
    std::string http = "127.0.0.1:8080";
    std::string token;
    bool explain = false;
    std::string format = "text";
};

/// What the server said about a script: its results, or the error to print.
struct submitted {
    std::optional<json::array> results;
    std::string error;
    std::string raw; ///< the response body, for --format json
    bool ok() const { return results.has_value(); }
};

submitted submit(const sql_options& o, const std::string& text, bool explain) {
    json::object body;
    body["sql"] = text;
    body["explain"] = explain;
    std::string why;
    submitted out;
    auto a = request("POST", o.http, "/v1/sql", json::serialize(body), o.token, why);
    if (!a) {
        out.error = why;
        return out;
    }
    out.raw = a->body;
    boost::system::error_code ec;
    auto doc = json::parse(a->body, ec);
    if (ec || !doc.is_object()) {
        out.error = fmt::format("HTTP {} from {}: {}", a->status, o.http, a->body.substr(0, 400));
        return out;
    }
    const auto& d = doc.as_object();
    if (a->status != 200) {
        auto* detail = d.if_contains("detail");
        out.error = detail && detail->is_string() ? std::string(detail->as_string()) : a->body;
        return out;
    }
    out.results = d.at("results").as_array();
    return out;
}

int run_script(const sql_options& o) {
    std::string text;
    if (o.file == "-") {
        std::stringstream ss;
        ss << std::cin.rdbuf();
        text = ss.str();
    } else {
        // The path and the system's reason ("No such file or directory", "Is a directory").
        auto cannot_read = [&](int err) {
            std::cerr << fmt::format("runnel sql: cannot read '{}': {}\n", o.file, std::generic_category().message(err));
            return 2;
        };
        std::error_code ec;
        if (std::filesystem::is_directory(o.file, ec)) return cannot_read(EISDIR);
        errno = 0;
        std::ifstream in(o.file);
        if (!in) return cannot_read(errno ? errno : ENOENT);
        std::stringstream ss;
        ss << in.rdbuf();
        if (in.bad()) return cannot_read(errno ? errno : EIO);
        text = ss.str();
    }
    auto r = submit(o, text, o.explain);
    if (o.format == "json" && !r.raw.empty()) {
        fmt::print("{}\n", r.raw);
        return r.ok() ? 0 : 1;
    }
    if (!r.ok()) {
        std::cerr << "runnel sql: " << r.error << "\n";
        return 1;
    }
    for (const auto& x : *r.results) print_result(x.as_object());
    return 0;
}

// ---- the interactive shell -------------------------------------------------------------

volatile std::sig_atomic_t interrupted = 0;

/// Splits off complete statements (ending in ';' outside quotes and comments) from `buf`.
std::vector<std::string> take_statements(std::string& buf) {
    std::vector<std::string> out;
    char quote = 0;
    std::size_t begin = 0;
    for (std::size_t i = 0; i < buf.size(); ++i) {
        char c = buf[i];
        if (quote) {
            if (c == quote) quote = 0;
        } else if (c == '\'' || c == '`' || c == '"') {
            quote = c;
        } else if (c == '-' && i + 1 < buf.size() && buf[i + 1] == '-') {
            auto nl = buf.find('\n', i);
            if (nl == std::string::npos) break;
            i = nl;
        } else if (c == ';') {
            out.push_back(buf.substr(begin, i - begin));
            begin = i + 1;
        }
    }
    buf.erase(0, begin);
    return out;
}

/// The statement's first words, upper-cased, after comments and blanks.
std::string leading_words(const std::string& stmt, int words) {
    std::string out;
    std::size_t i = 0;
    while (i < stmt.size() && words > 0) {
        if (std::isspace(static_cast<unsigned char>(stmt[i]))) {
            ++i;
        } else if (stmt.compare(i, 2, "--") == 0) {
            i = std::min(stmt.size(), stmt.find('\n', i) == std::string::npos ? stmt.size() : stmt.find('\n', i));
        } else {
            std::size_t j = i;
            while (j < stmt.size() && std::isalpha(static_cast<unsigned char>(stmt[j]))) ++j;
            if (j == i) break;
            if (!out.empty()) out += ' ';
            for (std::size_t k = i; k < j; ++k) out += char(std::toupper(static_cast<unsigned char>(stmt[k])));
            i = j;
            --words;
        }
    }
    return out;
}

std::string cell(const json::value& v) {
    if (v.is_string()) return std::string(v.as_string());
    if (v.is_null()) return "NULL";
    return json::serialize(v);
}

/// Prints a view's rows as a table (at most `limit` rows); `tty` redraws in place.
void draw(const json::object& view, bool tty, std::size_t limit) {
    const auto& rows = view.at("rows").as_array();
    std::vector<std::string> header;
    std::vector<std::vector<std::string>> cells;
    for (const auto& r : rows) {
        const auto& row = r.at("row").as_object();
        if (header.empty()) {
            for (const auto& kv : row) header.emplace_back(kv.key());
        }
        if (cells.size() < limit) {
            std::vector<std::string> line;
            for (const auto& h : header) line.push_back(row.contains(h) ? cell(row.at(h)) : "NULL");
            cells.push_back(std::move(line));
        }
    }
    std::vector<std::size_t> width(header.size());
    for (std::size_t c = 0; c < header.size(); ++c) {
        width[c] = header[c].size();
        for (const auto& line : cells) width[c] = std::max(width[c], line[c].size());
    }
    std::string out = tty ? "\x1b[H\x1b[2J" : "";
    auto line_of = [&](const std::vector<std::string>& v) {
        std::string l;
        for (std::size_t c = 0; c < v.size(); ++c) l += fmt::format("{}{:<{}}", c ? " | " : "", v[c], width[c]);
        return l + "\n";
    };
    if (!header.empty()) out += line_of(header);
    for (const auto& line : cells) out += line_of(line);
    out += fmt::format("-- {}, version {}{}; press Enter to stop\n", counted(int64_t(rows.size()), "row"),
                       view.at("version").to_number<int64_t>(),
                       rows.size() > cells.size() ? fmt::format(" ({} shown)", cells.size()) : "");
    std::fwrite(out.data(), 1, out.size(), stdout);
    std::fflush(stdout);
}

/// Runs `select` as a continuous query: a temporary materialized view whose rows are redrawn
/// as they change, until Enter, end of input or Ctrl-C; then the view is dropped.
void push_query(const sql_options& o, const std::string& declarations, const std::string& select, int n, bool tty) {
    const auto name = fmt::format("shell_{}_{}", getpid(), n);
    auto made = submit(o, declarations + fmt::format("CREATE MATERIALIZED VIEW {} AS {};\n", name, select), false);
    if (!made.ok()) {
        std::cerr << made.error << "\n";
        return;
    }
    interrupted = 0;
    auto old = std::signal(SIGINT, [](int) { interrupted = 1; });
    int64_t shown = -1;
    while (!interrupted) {
        std::string why;
        auto a = request("GET", o.http, "/v1/views/" + name, "", o.token, why);
        if (!a || a->status != 200) {
            std::cerr << (a ? a->body : why) << "\n";
            break;
        }
        boost::system::error_code ec;
        auto doc = json::parse(a->body, ec);
        if (!ec && doc.is_object()) {
            const auto version = doc.at("version").to_number<int64_t>();
            if (version != shown) {
                draw(doc.as_object(), tty, 40);
                shown = version;
            }
        }
        pollfd in{0, POLLIN, 0};
        if (::poll(&in, 1, 250) > 0) {
            std::string line;
            std::getline(std::cin, line); // Enter (or the end of input) stops the query
            break;
        }
    }
    std::signal(SIGINT, old);
    auto dropped = submit(o, fmt::format("DROP MATERIALIZED VIEW IF EXISTS {};", name), false);
    if (!dropped.ok()) std::cerr << dropped.error << "\n";
    fmt::print("query stopped\n");
}

int run_shell(const sql_options& o) {
    const bool tty = ::isatty(0) && ::isatty(1);
    if (tty) {
        fmt::print("runnel sql shell on {}: end statements with ';'. A SELECT shows its result updating in place "
                   "(Enter stops it). CREATE TABLE and CREATE VIEW stay declared for the session. quit; leaves.\n",
                   o.http);
    }
    std::string declarations;
    std::string buf;
    std::string line;
    int queries = 0;
    for (;;) {
        if (tty) std::fputs(buf.empty() ? "runnel> " : "     -> ", stdout);
        std::fflush(stdout);
        if (!std::getline(std::cin, line)) break;
        buf += line + "\n";
        for (auto& stmt : take_statements(buf)) {
            const auto head = leading_words(stmt, 2);
            if (head.empty()) continue;
            const auto first = head.substr(0, head.find(' '));
            if (first == "QUIT" || first == "EXIT") return 0;
            if (first == "SELECT" || first == "WITH") {
                push_query(o, declarations, stmt, ++queries, tty);
                continue;
            }
            const bool declares = head == "CREATE TABLE" || head == "CREATE VIEW" || head == "CREATE TEMPORARY" ||
                                  first == "SET";
            auto r = submit(o, declarations + stmt + ";\n", o.explain);
            if (!r.ok()) {
                std::cerr << r.error << "\n";
                continue;
            }
            if (!r.results->empty()) print_result(r.results->back().as_object());
            if (declares) declarations += stmt + ";\n";
        }
    }
    return 0;
}

int run_sql(const sql_options& o) {
    return o.file.empty() ? run_shell(o) : run_script(o);
}

} // namespace

void add_sql_command(CLI::App& app, std::function<int()>& run) {
    static sql_options o;
    auto* cmd = app.add_subcommand("sql", "Run a SQL script on a server: each INSERT INTO becomes a durable pipeline");
    cmd->add_option("file", o.file, "File of statements separated by ';' ('-': stdin); none: the interactive shell");
    cmd->add_option("--http", o.http, "The server's HTTP address, HOST:PORT")->capture_default_str();
    cmd->add_option("--http-token", o.token, "Bearer token, when the server requires one");
    cmd->add_flag("--explain", o.explain, "Print the plan of every INSERT INTO without starting it");
    cmd->add_option("--format", o.format, "text or json")->check(CLI::IsMember({"text", "json"}));
    cmd->callback([&run] { run = [] { return run_sql(o); }; });
}

} // namespace runnel::app
