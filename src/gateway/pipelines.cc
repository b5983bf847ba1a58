// REST routes of durable pipelines (jobs), materialized views and consumer groups.

#include <boost/json.hpp>

#include <algorithm>

#include "broker/broker.h"
#include "gateway/internal.h"
#include "jobs/catalog.h"
#include "jobs/jobs.h"
#include "sql/binder.h"
#include "sql/catalog.h"
#include "sql/functions.h"
#include "sql/lexer.h"
#include "sql/parser.h"
#include "sql/planner.h"
#include "sql/session.h"

namespace runnel::gateway {
namespace json = boost::json;

namespace {

using answer = asio::awaitable<std::optional<reply>>;

json::object status_json(const jobs::job_status& st) {
    json::object o;
    o["id"] = st.id;
    o["template"] = st.template_name;
    o["parallelism"] = st.parallelism;
    o["state"] = st.state;
    if (!st.error.empty()) o["error"] = st.error;
    if (!st.waiting_for.empty()) o["waiting_for"] = st.waiting_for;
    if (!st.last_error.empty() && st.error != st.last_error) {
        o["last_error"] = st.last_error; // before the server's latest start
        o["last_error_at"] = st.last_error_ms;
    }
    json::array stages;
    for (const auto& s : st.stages) {
        json::object x;
        x["operator"] = s.name;
        x["records_in"] = s.rows_in;
        x["records_out"] = s.rows_out;
        if (s.late_rows) x["late_records"] = s.late_rows;
        if (s.dead_letters) x["dead_letters"] = s.dead_letters;
        stages.push_back(std::move(x));
    }
    o["operators"] = std::move(stages);
    json::array edges;
    for (const auto& e : st.edges) {
        if (e.from >= st.stages.size() || e.to >= st.stages.size()) continue;
        json::object x;
        x["from"] = st.stages[e.from].name;
        x["to"] = st.stages[e.to].name;
        x["kind"] = e.kind;
        if (!e.keys.empty()) x["keys"] = json::value_from(e.keys);
        edges.push_back(std::move(x));
    }
    o["edges"] = std::move(edges);
    if (st.watermark_ms != INT64_MIN) {
        o["watermark"] = st.watermark_ms;
        o["watermark_lag_ms"] = st.watermark_lag_ms;
    }
    json::object ck;
    ck["completed"] = st.checkpoints;
    ck["last_id"] = st.last_checkpoint_id;
    ck["last_duration_ms"] = st.last_checkpoint_ms;
    ck["last_size_bytes"] = st.last_checkpoint_bytes;
    json::array recent;
    for (const auto& c : st.recent_checkpoints) {
        recent.push_back(json::object{
          {"id", c.id}, {"completed_at", c.completed_ms}, {"duration_ms", c.duration_ms}, {"size_bytes", c.bytes}});
    }
    ck["recent"] = std::move(recent);
    o["checkpoints"] = std::move(ck);
    o["queue_fill"] = st.queue_capacity ? double(st.queued_messages) / double(st.queue_capacity) : 0.0;
    o["source_buffered_bytes"] = st.source_buffered_bytes;
    o["sink_pending_bytes"] = st.sink_pending_bytes;
    o["memory_bytes"] = st.memory_bytes;
    if (st.records_skipped) o["records_skipped"] = st.records_skipped;
    return o;
}

std::optional<reply> need_jobs(request_ctx& ctx) {
    if (ctx.st.opts.jobs) return std::nullopt;
    return to_reply(ctx.fail("unavailable", "this server runs no pipelines"));
}

answer list_pipelines(request_ctx& ctx) {
    if (auto r = need_jobs(ctx)) co_return r;
    json::array out;
    for (const auto& st : ctx.st.opts.jobs->status()) out.push_back(status_json(st));
    json::object o;
    o["pipelines"] = std::move(out);
    co_return json_reply(200, json::serialize(o));
}

answer get_pipeline(request_ctx& ctx) {
    if (auto r = need_jobs(ctx)) co_return r;
    const auto& id = ctx.params.at("id");
    for (const auto& st : ctx.st.opts.jobs->status()) {
        if (st.id == id) co_return json_reply(200, json::serialize(status_json(st)));
    }
    co_return to_reply(ctx.fail("unknown-pipeline", fmt::format("pipeline '{}' does not exist", id)));
}

/// The body is a job definition: {"id", "template", "params": {…}, "checkpoint_interval_ms",
/// "parallelism"}.
answer create_pipeline(request_ctx& ctx) {
    if (auto r = need_jobs(ctx)) co_return r;
    boost::system::error_code ec;
    auto doc = json::parse(ctx.req.body(), ec);
    if (ec) co_return to_reply(ctx.fail("malformed-json", not_json_detail(ctx.req.body())));
    std::string why;
    auto def = jobs::job_definition::from_json(ctx.req.body(), why);
    if (!def) co_return to_reply(ctx.fail("invalid-request", why));
    const auto id = def.value().id;
    using outcome_t = std::pair<result<void>, std::string>;
    auto made = co_await await_callback<outcome_t>([&](std::function<void(outcome_t)> done) {
        ctx.st.opts.jobs->submit_async(std::move(def).value(), ctx.exec,
                                       [done](result<void> r, std::string w) { done({r, std::move(w)}); });
    });
    if (!made.first) {
        const bool exists = made.first.error() == std::errc::file_exists;
        co_return to_reply(ctx.fail(exists ? "pipeline-exists" : "invalid-pipeline", made.second));
    }
    for (const auto& st : ctx.st.opts.jobs->status()) {
        if (st.id == id) {
            auto r = json_reply(201, json::serialize(status_json(st)));
            r.headers.emplace_back("Location", "/v1/pipelines/" + id);
            co_return r;
        }
    }
    co_return to_reply(ctx.fail("internal-error", "the pipeline vanished right after its creation"));
}

/// `?keep_side_topics=true` keeps the pipeline's dead-letter and late-row topics that hold
/// records (by default they go with it).
answer delete_pipeline(request_ctx& ctx) {
    if (auto r = need_jobs(ctx)) co_return r;
    const auto id = ctx.params.at("id");
    bool keep = false;
    for (const auto& [k, v] : ctx.query) {
        if (k == "keep_side_topics" && (v == "true" || v == "false")) {
            keep = v == "true";
        } else if (k != "access_token") {
            co_return to_reply(ctx.fail("invalid-parameter", fmt::format("unknown query parameter '{}={}' (expected "
                                                                         "keep_side_topics=true|false)", k, v)));
        }
    }
    auto r = co_await await_callback<result<void>>([&](std::function<void(result<void>)> done) {
        ctx.st.opts.jobs->remove_async(id, ctx.exec, done, keep);
    });
    if (!r) {
        if (r.error() == std::errc::no_such_file_or_directory) {
            co_return to_reply(ctx.fail("unknown-pipeline", fmt::format("pipeline '{}' does not exist", id)));
        }
        co_return to_reply(ctx.fail("internal-error", fmt::format("cannot remove pipeline '{}': {}", id, r.error().message())));
    }
    reply out;
    out.status = 204;
    co_return out;
}

/// The pipeline's state after a stop or restart, or its problem.
reply after_control(request_ctx& ctx, const std::string& id, const result<void>& r, const std::string& why) {
    if (!r && r.error() == std::errc::no_such_file_or_directory) {
        return to_reply(ctx.fail("unknown-pipeline", fmt::format("pipeline '{}' does not exist", id)));
    }
    for (const auto& st : ctx.st.opts.jobs->status()) {
        if (st.id != id) continue;
        if (!r) return to_reply(ctx.fail("invalid-pipeline", why.empty() ? r.error().message() : why));
        return json_reply(200, json::serialize(status_json(st)));
    }
    return to_reply(ctx.fail("internal-error", fmt::format("pipeline '{}': {}", id, why.empty() ? r.error().message() : why)));
}

/// POST /v1/pipelines/{id}/stop: stops it, keeping its definition and checkpoints.
answer stop_pipeline(request_ctx& ctx) {
    if (auto r = need_jobs(ctx)) co_return r;
    const auto id = ctx.params.at("id");
    auto r = co_await await_callback<result<void>>(
      [&](std::function<void(result<void>)> done) { ctx.st.opts.jobs->pause_async(id, ctx.exec, done); });
    co_return after_control(ctx, id, r, "");
}

/// POST /v1/pipelines/{id}/restart: runs it again from its last checkpoint.
answer restart_pipeline(request_ctx& ctx) {
    if (auto r = need_jobs(ctx)) co_return r;
    const auto id = ctx.params.at("id");
    using outcome_t = std::pair<result<void>, std::string>;
    auto r = co_await await_callback<outcome_t>([&](std::function<void(outcome_t)> done) {
        ctx.st.opts.jobs->restart_async(id, ctx.exec, [done](result<void> x, std::string w) { done({x, std::move(w)}); });
    });
    co_return after_control(ctx, id, r.first, r.second);
}

answer list_views(request_ctx&) {
    json::array out;
    for (const auto& v : jobs::default_views().all()) {
        json::object o;
        o["name"] = v->name();
        o["key"] = json::value_from(v->key_columns());
        o["rows"] = v->size();
        o["version"] = v->version();
        o["subscribers"] = v->subscribers();
        if (v->temporary()) o["temporary"] = true;
        out.push_back(std::move(o));
    }
    json::object o;
    o["views"] = std::move(out);
    co_return json_reply(200, json::serialize(o));
}

/// {"view", "key", "version", "rows": [{"key", "row"}…]} — every row, ordered by key.
answer get_view(request_ctx& ctx) {
    const auto& name = ctx.params.at("name");
    auto v = jobs::default_views().find(name);
    if (!v) co_return to_reply(ctx.fail("unknown-view", fmt::format("view '{}' does not exist", name)));
    v->touch();
    auto snap = v->rows();
    std::string body = fmt::format(R"({{"view":{},"key":{},"version":{},"rows":[)", text::json_string(name),
                                   json::serialize(json::value_from(v->key_columns())), snap.version);
    bool first = true;
    for (const auto& [key, row] : snap.rows) {
        body += fmt::format(R"({}{{"key":{},"row":{}}})", first ? "" : ",", text::json_string(key), row);
        first = false;
    }
    body += "]}";
    co_return json_reply(200, std::move(body));
}

answer get_view_row(request_ctx& ctx) {
    const auto& name = ctx.params.at("name");
    const auto& key = ctx.params.at("key");
    auto v = jobs::default_views().find(name);
    if (!v) co_return to_reply(ctx.fail("unknown-view", fmt::format("view '{}' does not exist", name)));
    v->touch();
    auto row = v->row(key);
    if (!row) co_return to_reply(ctx.fail("unknown-key", fmt::format("view '{}' has no row with key '{}'", name, key)));
    co_return json_reply(200, *row);
}

/// GET /v1/views/{name}/rows?column=value&…: the rows whose key columns hold the values
/// given, written as the rows show them (`window_start=2026-12-06 23:58:30.000&user=u1`).
/// Every key column given: at most one row; some of them: every row that matches those.
answer find_view_rows(request_ctx& ctx) {
    const auto& name = ctx.params.at("name");
    auto v = jobs::default_views().find(name);
    if (!v) co_return to_reply(ctx.fail("unknown-view", fmt::format("view '{}' does not exist", name)));
    v->touch();
    const auto& columns = v->key_columns();
    std::vector<std::optional<std::string>> wanted(columns.size());
    for (const auto& [k, value] : ctx.query) {
        if (k == "access_token") continue;
        auto it = std::find(columns.begin(), columns.end(), k);
        if (it == columns.end()) {
            co_return to_reply(ctx.fail("invalid-parameter",
                                        fmt::format("'{}' is not a key column of view '{}'; its key columns are {}", k,
                                                    name, json::serialize(json::value_from(columns)))));
        }
        wanted[std::size_t(it - columns.begin())] = value;
    }
    auto snap = v->rows();
    std::string body = fmt::format(R"({{"view":{},"key":{},"version":{},"rows":[)", text::json_string(name),
                                   json::serialize(json::value_from(columns)), snap.version);
    bool first = true;
    for (const auto& [key, row] : snap.rows) {
        // The key's parts, split at '|' (a value holding '|' makes more parts: no match).
        std::vector<std::string_view> parts;
        std::string_view rest = key;
        for (;;) {
            auto bar = rest.find('|');
            parts.push_back(rest.substr(0, bar));
            if (bar == std::string_view::npos) break;
            rest.remove_prefix(bar + 1);
        }
        bool match = parts.size() == columns.size();
        for (std::size_t i = 0; match && i < columns.size(); ++i) {
            match = !wanted[i] || parts[i] == *wanted[i];
        }
        if (!match) continue;
        body += fmt::format(R"({}{{"key":{},"row":{}}})", first ? "" : ",", text::json_string(key), row);
        first = false;
    }
    body += "]}";
    co_return json_reply(200, std::move(body));
}

std::optional<reply> need_groups(request_ctx& ctx) {
    if (ctx.st.opts.groups) return std::nullopt;
    return to_reply(ctx.fail("unavailable", "this server has no group coordinator"));
}

answer list_groups(request_ctx& ctx) {
    if (auto r = need_groups(ctx)) co_return r;
    auto groups = co_await await_callback<std::vector<broker::group_listing>>(
      [&](std::function<void(std::vector<broker::group_listing>)> done) { ctx.st.opts.groups->list(ctx.exec, done); });
    std::sort(groups.begin(), groups.end(), [](const auto& a, const auto& b) { return a.group_id < b.group_id; });
    json::array out;
    // As ListGroups: DESCRIBE on the CLUSTER shows every group, else those the principal may DESCRIBE.
    const bool all = authorized(ctx, acl_op::describe, acl_type::cluster, security::cluster_resource_name, false);
    for (const auto& g : groups) {
        if (!all && !authorized(ctx, acl_op::describe, acl_type::group, g.group_id, false)) {
            continue; // hidden, as ListGroups hides it
        }
        json::object o;
        o["group"] = g.group_id;
        o["state"] = g.state;
        o["protocol_type"] = g.protocol_type;
        o["type"] = g.type;
        out.push_back(std::move(o));
    }
    json::object o;
    o["groups"] = std::move(out);
    co_return json_reply(200, json::serialize(o));
}

/// A group: state, members and, per committed partition, the committed offset, the log end
/// and the lag (log end − committed), as `runnel group describe` and kafka_exporter give it.
answer describe_group(request_ctx& ctx) {
    if (auto r = need_groups(ctx)) co_return r;
    const auto id = ctx.params.at("id");
    auto d = co_await await_callback<broker::group_description>(
      [&](std::function<void(broker::group_description)> done) { ctx.st.opts.groups->describe(id, ctx.exec, done); });
    auto offs = co_await await_callback<broker::offsets_fetch_result>(
      [&](std::function<void(broker::offsets_fetch_result)> done) {
          ctx.st.opts.groups->fetch_offsets(id, std::nullopt, ctx.exec, done);
      });
    if ((d.state.empty() || d.state == "Dead") && offs.partitions.empty()) {
        co_return to_reply(ctx.fail("unknown-group", fmt::format("group '{}' does not exist", id)));
    }
    json::object o;
    o["group"] = id;
    o["state"] = d.state;
    o["protocol_type"] = d.protocol_type;
    o["protocol"] = d.protocol;
    o["generation"] = d.generation;
    json::array members;
    for (const auto& m : d.members) {
        json::object x;
        x["member_id"] = m.member_id;
        if (m.instance_id) x["instance_id"] = *m.instance_id;
        x["client_id"] = m.client_id;
        x["client_host"] = m.client_host;
        members.push_back(std::move(x));
    }
    o["members"] = std::move(members);
    std::sort(offs.partitions.begin(), offs.partitions.end(), [](const auto& a, const auto& b) { return a.tp < b.tp; });
    json::array parts;
    int64_t total = 0;
    for (const auto& p : offs.partitions) {
        if (p.value.offset < 0) continue;
        json::object x;
        x["topic"] = p.tp.topic;
        x["partition"] = p.tp.partition();
        x["committed"] = p.value.offset;
        using R = result<broker::offsets_result>;
        auto end = co_await await_callback<R>([&](std::function<void(R)> done) { ctx.st.broker.offsets(p.tp, ctx.exec, done); });
        if (end) {
            const int64_t lag = std::max<int64_t>(0, end.value().high_watermark() - p.value.offset);
            x["log_end"] = end.value().high_watermark();
            x["lag"] = lag;
            total += lag;
        }
        parts.push_back(std::move(x));
    }
    o["offsets"] = std::move(parts);
    o["lag"] = total;
    co_return json_reply(200, json::serialize(o));
}

/// A SQL error as a problem: `detail` is the message with the statement's line and a caret
/// under the token, and `line`/`column` say where.
reply sql_problem(request_ctx& ctx, std::string_view script, const sql::error& e) {
    auto p = ctx.fail("invalid-sql", sql::format_error(script, e));
    auto o = json::parse(problem_json(p)).as_object();
    o["line"] = e.line;
    o["column"] = e.column;
    reply r = json_reply(p.status, json::serialize(o));
    r.content_type = "application/problem+json";
    return r;
}

/// The answer to SHOW MATERIALIZED VIEWS (and the materialized part of SHOW VIEWS).
json::array materialized_views_json() {
    json::array views;
    for (const auto& v : jobs::default_views().all()) {
        json::object x;
        x["name"] = v->name();
        x["rows"] = v->size();
        views.push_back(std::move(x));
    }
    return views;
}

/// Runs a SQL script through a `sql::session` over the server's catalog, statement by
/// statement. CREATE TABLE and CREATE VIEW declare names for the script's later statements
/// and, once the whole script succeeded, for later requests and restarts (the catalog);
/// DROP TABLE / VIEW remove them, SHOW CREATE TABLE / VIEW shows them. Each INSERT INTO is
/// checked and planned by the session (errors point into the script), then becomes a durable
/// pipeline (template `sql`) holding the catalog's declarations it uses and the script's
/// declarations and that INSERT, named by a preceding `SET 'pipeline.name' = '…'` or
/// `sql-<hash of the INSERT>`; EXPLAIN answers the plan; SHOW JOBS lists the pipelines; STOP
/// JOB 'id' stops and deletes one. The body is the script as text, or {"sql": "…", "explain":
/// true} to plan every INSERT without starting it or changing the catalog. Pipelines started
/// before a failing statement keep running, as in Flink's SQL client; the script's catalog
/// changes are kept only when it all succeeded (decision 0030).
answer run_sql(request_ctx& ctx) {
    if (auto r = need_jobs(ctx)) co_return r;
    std::string text = ctx.req.body();
    bool explain_only = false;
    if (!text.empty() && text.front() == '{') {
        boost::system::error_code ec;
        auto doc = json::parse(text, ec);
        if (ec) co_return to_reply(ctx.fail("malformed-json", not_json_detail(text) + " (a body starting with '{' is JSON; "
                                                                                   "else it is SQL text)"));
        if (!doc.is_object()) co_return to_reply(ctx.fail("malformed-json", "the body is neither SQL nor a JSON object"));
        const auto& o = doc.as_object();
        auto* q = o.if_contains("sql");
        if (!q || !q->is_string()) co_return to_reply(ctx.fail("invalid-request", "'sql' must be a string"));
        text = std::string(q->as_string());
        if (auto* x = o.if_contains("explain")) explain_only = x->is_bool() && x->as_bool();
    }
    // Without a server catalog (a gateway of tests), the request's declarations die with it.
    std::optional<sql::catalog_store> own_catalog;
    if (!ctx.st.opts.catalog) own_catalog.emplace();
    sql::session session(ctx.st.opts.catalog ? *ctx.st.opts.catalog : *own_catalog,
                         sql::session_options{jobs::connector_check(), true, ctx.st.opts.sql_parallelism});
    auto parsed = session.begin(text);
    if (!parsed) co_return sql_problem(ctx, text, parsed.error());
    json::array results;
    for (std::size_t index = 0; index < session.statements().size(); ++index) {
        const auto& st = session.statements()[index];
        json::object res;
        const auto stmt_text = sql::to_string(st);
        res["statement"] = sql::mask_secrets(stmt_text); // the job keeps the text, answers show no secret
        auto done = session.execute(index);
        if (!done) co_return sql_problem(ctx, text, done.error());
        const sql::step& step = done.value();
        const auto* cv = std::get_if<sql::create_view_stmt>(&st.node);
        switch (step.kind) {
        case sql::step_kind::declare_table:
        case sql::step_kind::declare_view: {
            const bool table = step.kind == sql::step_kind::declare_table;
            res["kind"] = table ? "create_table" : "create_view";
            res[table ? "table" : "view"] = step.name;
            if (step.existed) res["existed"] = true;
            break;
        }
        case sql::step_kind::setting: res["kind"] = "set"; break;
        case sql::step_kind::explain:
            res["kind"] = "explain";
            res["plan"] = step.plan;
            break;
        case sql::step_kind::show_tables:
            res["kind"] = "show_tables";
            res["tables"] = json::value_from(step.names);
            break;
        case sql::step_kind::show_views: {
            auto views = materialized_views_json();
            for (const auto& n : step.names) views.push_back(json::object{{"name", n}, {"kind", "view"}});
            res["kind"] = "show_views";
            res["views"] = std::move(views);
            break;
        }
        case sql::step_kind::show_create:
            res["kind"] = "show_create";
            res[std::holds_alternative<sql::show_stmt>(st.node) &&
                    std::get<sql::show_stmt>(st.node).what == sql::show_kind::create_view
                  ? "view"
                  : "table"] = step.name;
            res["create"] = step.create_text;
            break;
        case sql::step_kind::drop: {
            const bool view = std::get<sql::drop_stmt>(st.node).object == sql::object_kind::view;
            res["kind"] = view ? "drop_view" : "drop_table";
            res[view ? "view" : "table"] = step.name;
            res["existed"] = step.existed;
            break;
        }
        case sql::step_kind::start_pipeline: {
            const bool materialized = cv != nullptr;
            if (explain_only) {
                res["kind"] = "explain";
                res["plan"] = step.plan;
                break;
            }
            jobs::job_definition def;
            // A materialized view's pipeline is named after the view, so DROP finds it.
            def.id = materialized                  ? cv->name.back()
                     : step.pipeline.name.empty() ? fmt::format("sql-{:08x}", uint32_t(std::hash<std::string>{}(stmt_text)))
                                                  : step.pipeline.name;
            // CREATE MATERIALIZED VIEW IF NOT EXISTS: a running view of that name is kept.
            const bool exists = std::ranges::any_of(ctx.st.opts.jobs->status(),
                                                    [&](const jobs::job_status& j) { return j.id == def.id; });
            if (materialized && cv->if_not_exists && exists) {
                res["kind"] = "create_materialized_view";
                res["pipeline"] = def.id;
                res["view"] = def.id;
                res["existed"] = true;
                break;
            }
            def.template_name = "sql";
            // The catalog's declarations it uses go before the script, so the pipeline is the
            // same after a DROP or a restart; the script keeps the user's lines and columns.
            if (!step.pipeline.catalog.empty()) def.params["catalog"] = step.pipeline.catalog;
            def.params["sql"] = step.pipeline.script;
            // `SET 'parallelism.default' = 'N'` runs the pipeline as N instances.
            def.parallelism = step.pipeline.parallelism;
            using outcome_t = std::pair<result<void>, std::string>;
            // CREATE OR REPLACE MATERIALIZED VIEW: the running view stops and goes, this one
            // starts afresh; if it cannot start, the old one runs on and the error is answered.
            const bool replace = materialized && cv->or_replace;
            auto made = co_await await_callback<outcome_t>([&](std::function<void(outcome_t)> done_cb) {
                auto answer = [done_cb](result<void> r, std::string w) { done_cb({r, std::move(w)}); };
                if (replace)
                    ctx.st.opts.jobs->replace_async(def, {def.id}, ctx.exec, answer);
                else
                    ctx.st.opts.jobs->submit_async(def, ctx.exec, answer);
            });
            if (!made.first) {
                if (made.first.error() != std::errc::file_exists) {
                    co_return to_reply(ctx.fail("invalid-pipeline", made.second));
                }
                // Re-running a script: say how to replace or keep what runs.
                const auto hint =
                  materialized
                    ? fmt::format("line {}:{}: materialized view '{}' exists already; replace it (CREATE OR "
                                  "REPLACE MATERIALIZED VIEW {} AS …) or keep it (CREATE MATERIALIZED VIEW IF "
                                  "NOT EXISTS {} AS …)",
                                  st.pos.line, st.pos.column, def.id, def.id, def.id)
                    : fmt::format("line {}:{}: pipeline '{}' exists already; stop it first (STOP JOB '{}';) "
                                  "or name this one with SET 'pipeline.name' = '…';",
                                  st.pos.line, st.pos.column, def.id, def.id);
                co_return to_reply(ctx.fail("pipeline-exists", hint));
            }
            res["kind"] = materialized ? "create_materialized_view" : "insert";
            res["pipeline"] = def.id;
            if (materialized) res["view"] = def.id;
            if (replace) res["replaced"] = exists;
            break;
        }
        case sql::step_kind::caller:
            if (const auto* show = std::get_if<sql::show_stmt>(&st.node)) {
                if (show->what == sql::show_kind::jobs) {
                    json::array jobs;
                    for (const auto& j : ctx.st.opts.jobs->status()) jobs.push_back(status_json(j));
                    res["kind"] = "show_jobs";
                    res["jobs"] = std::move(jobs);
                } else if (show->what == sql::show_kind::materialized_views) {
                    res["kind"] = "show_views";
                    res["views"] = materialized_views_json();
                } else {
                    json::array fs;
                    for (const auto& f : sql::functions()) {
                        json::object x;
                        x["name"] = f.name;
                        x["signature"] = f.signature();
                        x["runs"] = f.lower != nullptr;
                        x["deterministic"] = f.deterministic;
                        x["nulls"] = f.nulls == sql::function_def::strict ? "strict" : "handled";
                        fs.push_back(std::move(x));
                    }
                    res["kind"] = "show_functions";
                    res["functions"] = std::move(fs);
                }
            } else if (const auto* drop = std::get_if<sql::drop_stmt>(&st.node)) {
                const auto name = drop->name.back();
                auto r = co_await await_callback<result<void>>([&](std::function<void(result<void>)> done_cb) {
                    ctx.st.opts.jobs->remove_async(name, ctx.exec, done_cb);
                });
                const bool known = jobs::default_views().find(name) != nullptr;
                jobs::default_views().drop(name);
                if (!r && !known && !drop->if_exists) {
                    co_return to_reply(ctx.fail("unknown-view", fmt::format("line {}:{}: materialized view '{}' does "
                                                                            "not exist", st.pos.line, st.pos.column, name)));
                }
                res["kind"] = "drop_materialized_view";
                res["view"] = name;
            } else if (const auto* stop = std::get_if<sql::stop_job_stmt>(&st.node)) {
                auto r = co_await await_callback<result<void>>([&](std::function<void(result<void>)> done_cb) {
                    ctx.st.opts.jobs->remove_async(stop->job_id, ctx.exec, done_cb);
                });
                if (!r) co_return to_reply(ctx.fail("unknown-pipeline", fmt::format("pipeline '{}' does not exist", stop->job_id)));
                res["kind"] = "stop_job";
                res["pipeline"] = stop->job_id;
            } else if (std::holds_alternative<sql::query_stmt>(st.node)) {
                co_return to_reply(ctx.fail("invalid-sql", fmt::format("line {}:{}: a SELECT on its own is a continuous "
                                                                       "query; keep its result with CREATE MATERIALIZED "
                                                                       "VIEW name AS SELECT …, INSERT INTO a topic, or "
                                                                       "watch it in the `runnel sql` shell",
                                                                       st.pos.line, st.pos.column)));
            } else {
                co_return to_reply(ctx.fail("invalid-sql", fmt::format("line {}:{}: this statement is not supported over "
                                                                       "HTTP yet", st.pos.line, st.pos.column)));
            }
            break;
        }
        results.push_back(std::move(res));
    }
    // The catalog changes of a script that succeeded, all at once; a plan-only request keeps none.
    if (!explain_only) {
        auto committed = session.commit();
        if (!committed) co_return sql_problem(ctx, text, committed.error());
    }
    json::object o;
    o["results"] = std::move(results);
    co_return json_reply(200, json::serialize(o));
}

} // namespace

void add_pipeline_routes(router<route>& r) {
    // Pipelines and SQL change what the cluster runs: ALTER on the CLUSTER; reading their state
    // DESCRIBE. A view's rows are read as a topic named as the view would be (decision 0023).
    const auto alter = access::on_cluster(acl_op::alter);
    const auto describe = access::on_cluster(acl_op::describe);
    r.add("POST", "/v1/sql", {&run_sql, alter});
    // Lists only the groups the principal may DESCRIBE, as ListGroups does.
    r.add("GET", "/v1/groups", {&list_groups, access::in_handler(acl_op::describe, acl_type::group)});
    r.add("GET", "/v1/groups/{id}", {&describe_group, access::on_path(acl_op::describe, acl_type::group, "id")});
    r.add("GET", "/v1/pipelines", {&list_pipelines, describe});
    r.add("POST", "/v1/pipelines", {&create_pipeline, alter});
    r.add("GET", "/v1/pipelines/{id}", {&get_pipeline, describe});
    r.add("DELETE", "/v1/pipelines/{id}", {&delete_pipeline, alter});
    r.add("POST", "/v1/pipelines/{id}/stop", {&stop_pipeline, alter});
    r.add("POST", "/v1/pipelines/{id}/restart", {&restart_pipeline, alter});
    r.add("GET", "/v1/views", {&list_views, describe});
    r.add("GET", "/v1/views/{name}", {&get_view, access::on_path(acl_op::describe, acl_type::topic, "name")});
    r.add("GET", "/v1/views/{name}/rows", {&find_view_rows, access::on_path(acl_op::read, acl_type::topic, "name")});
    r.add("GET", "/v1/views/{name}/rows/{key}",
          {&get_view_row, access::on_path(acl_op::read, acl_type::topic, "name")});
}

} // namespace runnel::gateway
