// `runnel sql FILE`: submits a SQL script to a running server's HTTP API (`POST /v1/sql`) and
// prints what each statement did. `runnel sql` without a file is an interactive shell: a
// SELECT runs as a temporary materialized view whose rows are redrawn as they change. On a
// terminal the shell reads lines through libedit (editing keys, a history file, Tab
// completion); Ctrl-C drops the statement being typed or stops a push query.
//
// The request is one HTTP/1.1 exchange with `Connection: close` over a blocking socket: a
// command-line tool talking to its own server, where a full HTTP client library would cost
// more build time than the exchange is worth.

#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <editline/readline.h>

#include <cerrno>
#include <filesystem>

#include <algorithm>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <optional>
#include <set>
#include <sstream>

#include <CLI/CLI.hpp>
#include <boost/json.hpp>
#include <fmt/format.h>

#include "app/commands.h"
#include "base/plural.h"
#include "sql/functions.h"
#include "sql/sql.h"

namespace runnel::app {
namespace {

namespace json = boost::json;

struct http_answer {
    int status = 0;
    std::string body;
};

/// connect() that survives Ctrl-C in the shell: an interrupted connect goes on in the
/// background, so wait for its outcome.
bool connect_socket(int fd, const sockaddr* addr, socklen_t len) {
    if (::connect(fd, addr, len) == 0) return true;
    if (errno != EINTR) return false;
    pollfd p{fd, POLLOUT, 0};
    while (::poll(&p, 1, -1) < 0) {
        if (errno != EINTR) return false;
    }
    int err = 0;
    socklen_t n = sizeof err;
    if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &n) != 0) return false;
    errno = err;
    return err == 0;
}

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
        if (fd >= 0 && !connect_socket(fd, a->ai_addr, a->ai_addrlen)) {
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
        if (n < 0 && errno == EINTR) continue;
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
        auto flag = [&](const char* name) {
            const auto* f = r.if_contains(name);
            return f && f->is_bool() && f->as_bool();
        };
        fmt::print("materialized view {} {} (GET /v1/views/{})\n", std::string(r.at("view").as_string()),
                   flag("existed") ? "exists already, kept" : flag("replaced") ? "replaced" : "created",
                   std::string(r.at("view").as_string()));
    } else if (kind == "drop_table" || kind == "drop_view") {
        const bool table = kind == "drop_table";
        const auto* existed = r.if_contains("existed");
        fmt::print("{} {} {}\n", table ? "table" : "view", std::string(r.at(table ? "table" : "view").as_string()),
                   existed && existed->is_bool() && !existed->as_bool() ? "did not exist" : "dropped");
    } else if (kind == "show_create") {
        fmt::print("{};\n", std::string(r.at("create").as_string()));
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
    } else if (kind == "show_functions") {
        fmt::print("{:<48} {}\n", "FUNCTION", "RUNS IN PIPELINES");
        for (const auto& f : r.at("functions").as_array()) {
            fmt::print("{:<48} {}\n", std::string(f.at("signature").as_string()), f.at("runs").as_bool() ? "yes" : "not yet");
        }
    } else if (kind == "show_views") {
        fmt::print("{:<32} {}\n", "VIEW", "ROWS");
        for (const auto& v : r.at("views").as_array()) {
            // A catalog view has no rows of its own; a materialized view shows how many it holds.
            const auto* rows = v.as_object().if_contains("rows");
            fmt::print("{:<32} {}\n", std::string(v.at("name").as_string()),
                       rows ? std::to_string(rows->to_number<int64_t>()) : std::string("(view)"));
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

void on_interrupt(int) { interrupted = 1; }

/// While it lives, Ctrl-C (SIGINT) sets `interrupted` instead of ending the process, and a
/// blocking read or poll it interrupts returns EINTR (no SA_RESTART): that is how the line
/// editor gives up a half-typed statement and how a push query stops. Scopes nest.
class interrupt_scope {
public:
    interrupt_scope() {
        struct sigaction sa {};
        sa.sa_handler = on_interrupt;
        sigemptyset(&sa.sa_mask);
        sa.sa_flags = 0;
        ::sigaction(SIGINT, &sa, &_old);
        interrupted = 0;
    }
    interrupt_scope(const interrupt_scope&) = delete;
    interrupt_scope& operator=(const interrupt_scope&) = delete;
    ~interrupt_scope() { ::sigaction(SIGINT, &_old, nullptr); }

private:
    struct sigaction _old {};
};

/// Splits off complete statements (ending in ';' outside quotes and comments) from `buf`.
/// Each statement starts at its first non-blank character, so that its line 1 is the line the
/// user typed it on; what is left of `buf` is cleared when it is only blanks.
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
            auto first = buf.find_first_not_of(" \t\r\n", begin);
            if (first < i) out.push_back(buf.substr(first, i - first));
            begin = i + 1;
        }
    }
    buf.erase(0, begin);
    if (buf.find_first_not_of(" \t\r\n") == std::string::npos) buf.clear();
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

std::size_t count_lines(const std::string& text) { return std::size_t(std::count(text.begin(), text.end(), '\n')); }

/// The server's error `detail` for a text whose line `first` is the statement's first line,
/// with its leading "line N:C:" counted from that statement (the shell sends the session's
/// declarations before it).
std::string relative_to_statement(const std::string& detail, std::size_t first) {
    if (detail.compare(0, 5, "line ") != 0) return detail;
    std::size_t i = 5, n = 0;
    while (i < detail.size() && i < 15 && std::isdigit(static_cast<unsigned char>(detail[i])))
        n = n * 10 + std::size_t(detail[i++] - '0');
    if (i == 5 || i >= detail.size() || detail[i] != ':' || n < first) return detail;
    return fmt::format("line {}{}", n - first + 1, detail.substr(i));
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
    out += fmt::format("-- {}, version {}{}; press Enter or Ctrl-C to stop\n", counted(int64_t(rows.size()), "row"),
                       view.at("version").to_number<int64_t>(),
                       rows.size() > cells.size() ? fmt::format(" ({} shown)", cells.size()) : "");
    std::fwrite(out.data(), 1, out.size(), stdout);
    std::fflush(stdout);
}

/// Runs `select` as a continuous query: a temporary materialized view whose rows are redrawn
/// as they change, until Enter, end of input or Ctrl-C; then the view is dropped.
void push_query(const sql_options& o, const std::string& declarations, const std::string& select, int n, bool tty) {
    const auto name = fmt::format("shell_{}_{}", getpid(), n);
    // The SELECT starts a line of its own, so that error positions can be made its own.
    auto made = submit(o, declarations + fmt::format("CREATE TEMPORARY MATERIALIZED VIEW {} AS\n{};\n", name, select), false);
    if (!made.ok()) {
        std::cerr << relative_to_statement(made.error, count_lines(declarations) + 2) << "\n";
        return;
    }
    interrupt_scope ctrl_c;
    int64_t shown = -1;
    while (!interrupted) {
        std::string why;
        auto a = request("GET", o.http, "/v1/views/" + name, "", o.token, why);
        if (interrupted) break;
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
    auto dropped = submit(o, fmt::format("DROP MATERIALIZED VIEW IF EXISTS {};", name), false);
    if (!dropped.ok()) std::cerr << dropped.error << "\n";
    fmt::print("query stopped\n");
}

constexpr std::string_view shell_help =
    "Statements end with ';' and may span lines.\n"
    "  CREATE TABLE t (...) WITH (...);         declare a table in the server's catalog (kept)\n"
    "  CREATE VIEW v AS SELECT ...;             declare a view in the server's catalog (kept)\n"
    "  CREATE TEMPORARY TABLE|VIEW ...;         declare one for the rest of this session only\n"
    "  DROP TABLE|VIEW [IF EXISTS] t;           remove it from the catalog\n"
    "  SHOW CREATE TABLE|VIEW t;                its definition (secrets masked)\n"
    "  SET 'key' = 'value';                     a setting for the session's later statements\n"
    "  SET 'parallelism.default' = 'N';         run later pipelines as N instances (default: the shards)\n"
    "  SELECT /*+ PARALLELISM(N) */ ...;        run this statement's pipeline as N instances\n"
    "  SELECT ...;                              show the result updating in place (Enter or Ctrl-C stops it)\n"
    "  INSERT INTO t SELECT ...;                start a durable pipeline\n"
    "  CREATE MATERIALIZED VIEW v AS SELECT ...;  a durable view, served at GET /v1/views/v\n"
    "  DROP MATERIALIZED VIEW [IF EXISTS] v;    drop it\n"
    "  EXPLAIN INSERT INTO ...;                 print the plan without starting it\n"
    "  SHOW TABLES; SHOW VIEWS; SHOW JOBS;      what the server knows\n"
    "  SHOW FUNCTIONS;                          the scalar functions and their arguments\n"
    "  STOP JOB 'id';                           stop a pipeline and delete it\n"
    "  HELP;                                    this list\n"
    "  QUIT; or EXIT;                           leave (so does Ctrl-D on an empty line)\n"
    "Keys: arrows and Emacs keys edit the line, Up/Down walk the history, Tab completes keywords,\n"
    "tables and columns, Ctrl-C drops the statement being typed.\n";

/// Words Tab completes besides the session's tables and columns.
constexpr std::string_view sql_keywords[] = {
    "ALL",         "AND",        "AS",         "ASC",       "AVG",         "BETWEEN",  "BIGINT",     "BOOLEAN",
    "BY",          "CASE",       "CAST",       "COUNT",     "CREATE",      "CUMULATE", "DESC",       "DESCRIPTOR",
    "DISTINCT",    "DOUBLE",     "DROP",       "ELSE",      "END",         "EXISTS",   "EXIT",       "EXPLAIN",
    "FALSE",       "FROM",       "FULL",       "GROUP",     "HAVING",      "HELP",     "HOP",        "IF",
    "IN",          "INNER",      "INSERT",     "INT",       "INTERVAL",    "INTO",     "IS",         "JOB",
    "JOBS",        "JOIN",       "LEFT",       "LIKE",      "LIMIT",       "MATERIALIZED", "MAX",    "MIN",
    "NOT",         "NULL",       "ON",         "OR",        "ORDER",       "OVER",     "PARALLELISM", "PARTITION",  "PROCTIME",
    "QUIT",        "ROW_NUMBER", "SELECT",     "SESSION",   "SET",         "SHOW",     "STOP",       "STRING",
    "SUM",         "TABLE",      "TABLES",     "THEN",      "TIMESTAMP",   "TUMBLE",   "UNION",      "VIEW",
    "VIEWS",       "WATERMARK"};

/// The words Tab completes: SQL keywords, then the tables and columns the session knows. Read
/// by the line editor's completion callback on the shell's only thread.
struct completions {
    static constexpr std::size_t max_words = 4096;
    std::vector<std::string> words;
    std::size_t next = 0; ///< where the running completion goes on in `words`
    std::size_t keywords = 0; ///< `words` before this are keywords and function names

    /// Keywords, plus `names` (deduplicated, at most `max_words` in all).
    void reset(const std::vector<std::string>& names) {
        words.assign(std::begin(sql_keywords), std::end(sql_keywords));
        for (const auto& f : sql::functions()) {
            if (f.lower) words.emplace_back(f.name);
        }
        keywords = words.size();
        std::set<std::string> seen;
        for (const auto& n : names) {
            if (words.size() >= max_words) break;
            if (n.empty() || n.size() > 128 || !seen.insert(n).second) continue;
            words.push_back(n);
        }
    }
};

completions& shell_words() {
    static completions c;
    return c;
}

bool starts_with_nocase(std::string_view word, std::string_view prefix) {
    if (prefix.size() > word.size()) return false;
    for (std::size_t i = 0; i < prefix.size(); ++i) {
        if (std::tolower(static_cast<unsigned char>(word[i])) != std::tolower(static_cast<unsigned char>(prefix[i])))
            return false;
    }
    return true;
}

/// libedit's generator: the `state`-th word starting with `text`, malloc'd; keywords take
/// the case of what was typed.
char* complete_word(const char* text, int state) {
    auto& c = shell_words();
    if (state == 0) c.next = 0;
    const std::string_view prefix(text);
    const bool lower = !prefix.empty() && std::islower(static_cast<unsigned char>(prefix[0]));
    while (c.next < c.words.size()) {
        const auto i = c.next++;
        std::string w = c.words[i];
        if (!starts_with_nocase(w, prefix)) continue;
        if (lower && i < c.keywords) {
            for (char& ch : w) ch = char(std::tolower(static_cast<unsigned char>(ch)));
        }
        return ::strdup(w.c_str());
    }
    return nullptr;
}

char** complete(const char* text, int, int) {
    rl_attempted_completion_over = 1; // never fall back to file names
    return rl_completion_matches(text, complete_word);
}

/// The table, view and column names `script` declares.
void declared_names(const std::string& script, std::vector<std::string>& names) {
    auto parsed = sql::parse_script(script);
    if (!parsed) return;
    for (const auto& st : parsed.value()) {
        if (const auto* t = std::get_if<sql::create_table_stmt>(&st.node)) {
            if (!t->name.empty()) names.push_back(t->name.back());
            for (const auto& c : t->columns) names.push_back(c.name);
        } else if (const auto* v = std::get_if<sql::create_view_stmt>(&st.node)) {
            if (!v->name.empty()) names.push_back(v->name.back());
            for (const auto& c : v->columns) names.push_back(c);
        }
    }
}

/// Table and column names for completion: the session's own declarations, and the server
/// catalog's tables and views (SHOW TABLES, SHOW VIEWS) with the columns of their definitions
/// (SHOW CREATE TABLE, for at most `max_described` of them).
std::vector<std::string> known_names(const sql_options& o, const std::string& declarations) {
    constexpr std::size_t max_described = 64;
    std::vector<std::string> names;
    declared_names(declarations, names);
    auto r = submit(o, declarations + "SHOW TABLES;\nSHOW VIEWS;\n", false);
    if (!r.ok() || r.results->size() < 2) return names;
    std::string describe;
    std::size_t described = 0;
    for (std::size_t i = r.results->size() - 2; i < r.results->size(); ++i) {
        const auto& res = (*r.results)[i].as_object();
        const auto* list = res.if_contains(i + 2 == r.results->size() ? "tables" : "views");
        if (!list || !list->is_array()) continue;
        for (const auto& t : list->as_array()) {
            // SHOW VIEWS answers objects (materialized views with their rows), SHOW TABLES names.
            const auto* name = t.is_string() ? &t : t.is_object() ? t.as_object().if_contains("name") : nullptr;
            if (!name || !name->is_string()) continue;
            names.emplace_back(name->as_string());
            if (t.is_string() && described++ < max_described) {
                describe += fmt::format("SHOW CREATE TABLE {};\n", sql::quote_identifier(name->as_string()));
            }
        }
    }
    if (describe.empty()) return names;
    auto created = submit(o, describe, false);
    if (!created.ok()) return names;
    std::string texts;
    for (const auto& x : *created.results) {
        if (const auto* c = x.as_object().if_contains("create"); c && c->is_string()) {
            texts += std::string(c->as_string()) + ";\n";
        }
    }
    declared_names(texts, names);
    return names;
}

/// Where the shell keeps its history: $RUNNEL_SQL_HISTORY, else ~/.runnel_sql_history; empty
/// when neither is known (no history is kept then).
std::string history_path() {
    if (const char* p = std::getenv("RUNNEL_SQL_HISTORY"); p && *p) return p;
    if (const char* home = std::getenv("HOME"); home && *home) return std::string(home) + "/.runnel_sql_history";
    return {};
}

/// How a statement is kept in the history: one entry, on one line when no `--` comment needs
/// its line end, so that Up brings back the whole statement.
std::string history_entry(const std::string& stmt) {
    std::string flat;
    char quote = 0;
    for (std::size_t i = 0; i < stmt.size(); ++i) {
        const char c = stmt[i];
        if (quote) {
            if (c == quote) quote = 0;
        } else if (c == '\'' || c == '`' || c == '"') {
            quote = c;
        } else if (c == '-' && i + 1 < stmt.size() && stmt[i + 1] == '-') {
            return stmt + ";";
        } else if (c == '\n' || c == '\r') {
            if (!flat.empty() && flat.back() != ' ') flat += ' ';
            continue;
        }
        flat += c;
    }
    return flat + ";";
}

/// The line editor's source of characters: one UTF-8 character from `in` as a code point, or
/// EOF once Ctrl-C set `interrupted`. The editor's own read would block on past a Ctrl-C that
/// arrived while it was busy (completing a word), so it waits here in short polls instead.
int interruptible_getc(FILE* in) {
    const int fd = ::fileno(in);
    auto next_byte = [fd]() -> int {
        for (;;) {
            if (interrupted) return EOF;
            pollfd p{fd, POLLIN, 0};
            const int r = ::poll(&p, 1, 100);
            if (r < 0 && errno != EINTR) return EOF;
            if (r <= 0) continue;
            unsigned char c = 0;
            const auto n = ::read(fd, &c, 1);
            if (n == 1) return c;
            if (n == 0 || errno != EINTR) return EOF;
        }
    };
    const int first = next_byte();
    if (first == EOF || first < 0xC0) return first;
    const int more = first >= 0xF0 ? 3 : first >= 0xE0 ? 2 : 1;
    int cp = first & (0x3F >> more);
    for (int i = 0; i < more; ++i) {
        const int b = next_byte();
        if (b == EOF) return EOF;
        if ((b & 0xC0) != 0x80) return 0xFFFD; // not UTF-8: the replacement character
        cp = (cp << 6) | (b & 0x3F);
    }
    return cp;
}

/// Where the shell's lines come from: the line editor (libedit: editing keys, history, Tab)
/// on a terminal, plain reads of stdin otherwise (a pipe, a script).
class line_reader {
public:
    explicit line_reader(bool tty)
      : _tty(tty) {
        if (!_tty) return;
        rl_catch_signals = 0; // Ctrl-C is the shell's (interrupt_scope), not the editor's
        rl_getc_function = interruptible_getc;
        rl_readline_name = "runnel";
        rl_attempted_completion_function = complete;
        rl_basic_word_break_characters = " \t\n\"'`(),;.=<>+-*/|";
        _history = history_path();
        stifle_history(int(max_history));
        if (!_history.empty()) ::read_history(_history.c_str());
    }

    enum class status { line, interrupted, end };

    /// The next line (without its end) after showing `prompt`.
    status read(const char* prompt, std::string& line) {
        if (!_tty) return std::getline(std::cin, line) ? status::line : status::end;
        interrupted = 0;
        char* l = ::readline(prompt);
        if (!l) return interrupted ? status::interrupted : status::end;
        line = l;
        std::free(l);
        return status::line;
    }

    /// Keeps `stmt` in the history and its file (at most `max_history` entries, owner-only).
    void remember(const std::string& stmt) {
        if (!_tty) return;
        const auto entry = history_entry(stmt);
        if (history_length > 0) {
            if (HIST_ENTRY* last = history_get(history_base + history_length - 1); last && entry == last->line)
                return;
        }
        ::add_history(entry.c_str());
        if (_history.empty()) return;
        if (::write_history(_history.c_str()) == 0) ::chmod(_history.c_str(), 0600);
    }

    static constexpr std::size_t max_history = 1000;

private:
    bool _tty;
    std::string _history;
};

int run_shell(const sql_options& o) {
    const bool tty = ::isatty(0) && ::isatty(1);
    if (tty) {
        fmt::print("runnel sql shell on {}: end statements with ';'. A SELECT shows its result updating in place "
                   "(Enter or Ctrl-C stops it). CREATE TABLE and CREATE VIEW are kept in the server's catalog. "
                   "HELP; lists the statements, QUIT; or Ctrl-D leaves.\n",
                   o.http);
    }
    // On a terminal Ctrl-C drops the statement being typed rather than the session.
    std::optional<interrupt_scope> ctrl_c;
    if (tty) ctrl_c.emplace();
    line_reader lines(tty);
    std::string declarations;
    if (tty) shell_words().reset(known_names(o, declarations));
    std::string buf;
    std::string line;
    int queries = 0;
    for (;;) {
        const auto got = lines.read(buf.empty() ? "runnel> " : "     -> ", line);
        if (got == line_reader::status::interrupted) {
            buf.clear();
            std::fputs("\n", stdout);
            continue;
        }
        if (got == line_reader::status::end) {
            if (tty) std::fputs("\n", stdout);
            break;
        }
        buf += line + "\n";
        for (auto& stmt : take_statements(buf)) {
            lines.remember(stmt);
            const auto head = leading_words(stmt, 2);
            if (head.empty()) continue;
            const auto first = head.substr(0, head.find(' '));
            if (first == "QUIT" || first == "EXIT") return 0;
            if (head == "HELP") {
                fmt::print("{}", shell_help);
                continue;
            }
            if (first == "SELECT" || first == "WITH") {
                push_query(o, declarations, stmt, ++queries, tty);
                continue;
            }
            // SET and CREATE [OR REPLACE] TEMPORARY TABLE|VIEW hold for the session, so they go
            // again before each statement; other tables and views are in the server's catalog,
            // and a materialized view runs once, in the server.
            const auto words = leading_words(stmt, 5);
            const bool declares =
              (first == "CREATE" && words.find("MATERIALIZED") == std::string::npos &&
               words.find("TEMPORARY") != std::string::npos) ||
              first == "SET";
            const bool changes_names = first == "CREATE" || first == "DROP";
            auto r = submit(o, declarations + stmt + ";\n", o.explain);
            if (!r.ok()) {
                std::cerr << relative_to_statement(r.error, count_lines(declarations) + 1) << "\n";
                continue;
            }
            if (!r.results->empty()) print_result(r.results->back().as_object());
            if (declares) declarations += stmt + ";\n";
            if (tty && (declares || changes_names)) shell_words().reset(known_names(o, declarations));
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
