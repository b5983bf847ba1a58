// The `sql` job template: a script of CREATE TABLE and CREATE VIEW statements and one
// INSERT INTO, planned by `sql::planner` over the job's connectors (`table_connectors.h`).

#include <algorithm>

#include <fmt/format.h>

#include "connect/options/options.h"
#include "jobs/catalog.h"
#include "jobs/jobs.h"
#include "jobs/table_connectors.h"
#include "sql/catalog.h"
#include "sql/parser.h"
#include "sql/planner.h"
#include "sql/session.h"

namespace runnel::jobs {

namespace en = runnel::engine;

result<void> sql_job(job_context& ctx, const job_definition& def, std::string& why) {
    auto invalid = [] { return std::error_code(EINVAL, std::generic_category()); };
    auto it = def.params.find("sql");
    if (it == def.params.end() || it->second.empty()) {
        why = "parameter 'sql' is required: CREATE TABLE statements and one INSERT INTO";
        return invalid();
    }
    const std::string& text = it->second;
    // The catalog's declarations the pipeline uses, kept in its definition when it was
    // submitted (a separate parameter, so `sql` keeps the user's lines and columns).
    sql::catalog_store declared;
    if (auto cat = def.params.find("catalog"); cat != def.params.end()) {
        auto loaded = declared.declare_all(cat->second);
        if (!loaded) {
            why = "parameter 'catalog': " + sql::format_error(cat->second, loaded.error());
            return invalid();
        }
    }
    // The script's declarations and settings go through the same session as POST /v1/sql;
    // the statement to run is planned here, over this job's connectors.
    sql::session session(declared, sql::session_options{connector_check(), false});
    auto parsed = session.begin(text);
    if (!parsed) {
        why = sql::format_error(text, parsed.error());
        return invalid();
    }
    const sql::statement* insert = nullptr;
    for (std::size_t index = 0; index < session.statements().size(); ++index) {
        const auto& st = session.statements()[index];
        auto done = session.execute(index);
        if (!done) {
            why = sql::format_error(text, done.error());
            return invalid();
        }
        const auto kind = done.value().kind;
        if (kind == sql::step_kind::declare_table || kind == sql::step_kind::declare_view ||
            kind == sql::step_kind::setting) {
            continue;
        }
        if (kind == sql::step_kind::start_pipeline && !insert) {
            insert = &st;
        } else {
            why = sql::format_error(text, sql::error_at(st.pos, 1, "a pipeline's script holds CREATE TABLE and "
                                                                   "CREATE VIEW statements and one INSERT INTO or "
                                                                   "CREATE MATERIALIZED VIEW"));
            return invalid();
        }
    }
    if (!insert) {
        why = "the script has no INSERT INTO: a pipeline writes its query's rows into a table";
        return invalid();
    }
    auto popts = session.options();
    // The job's instances decide the plan's parallelism (`SET 'parallelism.default'` sets the
    // definition's, where the pipeline is submitted).
    popts.parallelism = ctx.parallelism();
    auto conn = job_connectors(ctx, def);
    sql::planner pl(session.names(), *conn, popts);
    // A materialized view plans its query and keeps the rows in a view the gateway serves.
    const auto* view = std::get_if<sql::create_view_stmt>(&insert->node);
    std::optional<sql::statement> query;
    if (view) query = sql::statement{sql::query_stmt{view->body}, insert->pos};
    auto plan = pl.plan(query ? *query : *insert, ctx.pipeline());
    if (!plan) {
        why = sql::format_error(text, plan.error());
        return invalid();
    }
    if (view) {
        auto columns = plan.value().columns;
        if (!view->columns.empty()) {
            if (view->columns.size() != columns.size()) {
                why = sql::format_error(text, sql::error_at(insert->pos, 1,
                                                            fmt::format("the view names {} columns and its query has {}",
                                                                        view->columns.size(), columns.size())));
                return invalid();
            }
            columns = view->columns;
        }
        const auto& planned = plan.value().columns;
        std::vector<std::string> key;
        for (const auto& k : sql::materialized_view_key(view->body, planned)) {
            key.push_back(columns[std::size_t(std::find(planned.begin(), planned.end(), k) - planned.begin())]);
        }
        auto rows = plan.value().output;
        if (columns != planned) {
            std::vector<en::named_expr> renamed;
            for (std::size_t i = 0; i < columns.size(); ++i) renamed.push_back(en::as(en::col(planned[i]), columns[i]));
            rows = rows.project(renamed);
        }
        // Each key's rows come from one instance, so instances never race on a key.
        if (ctx.parallelism() > 1) rows = ctx.exchange(rows, key, en::key_routing::columnar);
        auto v = default_views().open(view->name.back(), key);
        v->set_temporary(view->temporary);
        ctx.sink(rows, std::make_unique<view_sink>(std::move(v)), 1);
    }
    // Rows too late for every window they belong to go to `<job>.late`, never nowhere (the
    // topic appears with the first such row).
    for (auto& late : plan.value().late) {
        ctx.side_output(late, def.id + ".late");
    }
    return ok();
}

sql::options_check connector_check() {
    return [](std::string_view table,
              std::span<const std::pair<std::string, std::string>> options) -> std::optional<sql::options_problem> {
        auto bad = connect::connector_registry::global().check(table, options);
        if (!bad) {
            return std::nullopt;
        }
        return sql::options_problem{bad->index, std::move(bad->message)};
    };
}

} // namespace runnel::jobs
