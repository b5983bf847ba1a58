#include "sql/planner_internal.h"

#include "base/text.h"
#include "sql/parser.h"

#include <algorithm>
#include <charconv>

namespace runnel::sql {

connector_factory::~connector_factory() = default;

engine::result<engine::stream> connector_factory::constant(engine::pipeline& p, engine::batch rows) {
    auto schema = rows.schema_of();
    std::vector<engine::batch> batches;
    batches.push_back(std::move(rows));
    return p.source(std::move(schema), engine::from_batches(std::move(batches)));
}

namespace plan_detail {

namespace {

/// The columns after `row` in `cols` that hold its fields (named `row.name` + "." …).
std::vector<const rel_column*> row_fields(const std::vector<rel_column>& cols, const rel_column& row) {
    std::vector<const rel_column*> out;
    std::string prefix = row.name + ".";
    for (const auto& c : cols) {
        if (c.qualifier == row.qualifier && c.name.starts_with(prefix)) {
            out.push_back(&c);
        }
    }
    return out;
}

/// The ROW column a SELECT item names on its own (`SELECT person`), or null.
const rel_column* row_item(const select_item& item, const relation& rel) {
    if (item.value.kind != expr_kind::column) {
        return nullptr;
    }
    auto c = translator(rel, nullptr).resolve(item.value);
    return c && c.value()->row ? c.value() : nullptr;
}

/// The ROW_NUMBER() OVER item of `q`'s SELECT list, if it has one at the top of an item.
const select_item* row_number_item(const query& q) {
    if (q.kind != query_kind::select) {
        return nullptr;
    }
    for (const auto& item : q.select.items) {
        const expr& e = item.value;
        if (e.kind == expr_kind::call && e.over && text::to_upper(e.names.back()) == "ROW_NUMBER") {
            return &item;
        }
    }
    return nullptr;
}

} // namespace

std::optional<window_bounds> kept_bounds(const std::optional<window_bounds>& b,
                                         const std::vector<en::named_expr>& cols) {
    if (!b) {
        return std::nullopt;
    }
    window_bounds out = *b;
    bool start = false, end = false;
    for (const auto& c : cols) {
        const auto& n = c.e.node();
        if (n.op != en::expr_op::column) {
            continue;
        }
        if (!start && n.name == b->start) {
            out.start = c.name;
            start = true;
        } else if (!end && n.name == b->end) {
            out.end = c.name;
            end = true;
        }
    }
    if (!start || !end) {
        return std::nullopt;
    }
    return out;
}

parse_result<std::vector<std::string>> builder::output_names(const query& q, const relation& rel) {
    std::vector<std::string> names;
    std::size_t index = 0;
    for (const auto& item : q.select.items) {
        if (item.value.kind == expr_kind::star) {
            for (const auto* c : star_columns(item.value, rel)) {
                names.push_back(c->name);
            }
        } else if (const rel_column* row = row_item(item, rel)) {
            // A ROW column is its null flag and its fields: the output names them by path.
            std::string base = item.alias.empty() ? item.value.names.back() : item.alias;
            names.push_back(base);
            for (const auto* f : row_fields(rel.cols, *row)) {
                names.push_back(base + f->name.substr(row->name.size()));
            }
        } else if (!item.alias.empty()) {
            names.push_back(item.alias);
        } else if (item.value.kind == expr_kind::column) {
            names.push_back(item.value.names.back());
        } else {
            names.push_back(fmt::format("EXPR${}", index));
        }
        ++index;
    }
    // A name taken by an earlier column gets a digit, as in Flink: id, id0, id1.
    for (std::size_t i = 0; i < names.size(); ++i) {
        auto taken = [&](const std::string& n) {
            return std::find(names.begin(), names.begin() + long(i), n) != names.begin() + long(i);
        };
        if (!taken(names[i])) {
            continue;
        }
        for (int k = 0;; ++k) {
            std::string n = fmt::format("{}{}", names[i], k);
            if (!taken(n) &&
                std::find(names.begin() + long(i) + 1, names.end(), n) == names.end()) {
                names[i] = n;
                break;
            }
        }
    }
    return names;
}

parse_result<query_out> builder::query_(const query& q) {
    std::size_t ctes_before = _ctes.size();
    for (const auto& ct : q.with) {
        _ctes.push_back(&ct);
    }
    auto out = query_body(q);
    _ctes.resize(ctes_before);
    return out;
}

parse_result<query_out> builder::query_body(const query& q) {
    if (!q.order_by.empty()) {
        return unsupported(q.order_by[0].value, "ORDER BY on a stream");
    }
    if (q.limit) {
        return unsupported(*q.limit, "LIMIT on a stream");
    }
    switch (q.kind) {
    case query_kind::values:
        return unsupported(q.pos, "VALUES as a source");
    case query_kind::select:
        return select_(q);
    case query_kind::union_: {
        auto l = query_(*q.left);
        if (!l) {
            return l;
        }
        auto r = query_(*q.right);
        if (!r) {
            return r;
        }
        auto ls = l.value().s.schema_of();
        auto rs = r.value().s.schema_of();
        if (!ls || !rs) {
            return check(q.pos).error();
        }
        if (ls->size() != rs->size()) {
            return at(q.pos, 1,
                      fmt::format("UNION branches have {} and {} columns", ls->size(), rs->size()));
        }
        // Both sides get the left side's names and a common type.
        std::vector<en::named_expr> lcols, rcols;
        bool lsame = true, rsame = true;
        for (std::size_t i = 0; i < ls->size(); ++i) {
            auto lt = ls->at(i).type, rt = rs->at(i).type;
            en::data_type t = lt;
            if (!(lt == rt) && lt.is_numeric() && rt.is_numeric()) {
                t = en::data_type::float64();
            }
            en::expr le = en::col(ls->at(i).name), re = en::col(rs->at(i).name);
            if (!(lt == t)) {
                le = en::cast(le, t);
                lsame = false;
            }
            if (!(rt == t)) {
                re = en::cast(re, t);
                rsame = false;
            }
            if (rs->at(i).name != ls->at(i).name) {
                rsame = false;
            }
            lcols.push_back(en::as(le, ls->at(i).name));
            rcols.push_back(en::as(re, ls->at(i).name));
        }
        en::stream left = l.value().s, right = r.value().s;
        if (!lsame) {
            left = left.project(lcols);
            step(fmt::format("project {}", describe(lcols)));
        }
        if (!rsame) {
            right = right.project(rcols);
            step(fmt::format("project {}", describe(rcols)));
        }
        auto u = left.union_with({right});
        step("union all");
        if (auto c = check(q.pos); !c) {
            return c.error();
        }
        std::string updating =
            !l.value().updating.empty() ? l.value().updating : r.value().updating;
        if (!q.union_all && !updating.empty()) {
            return unsupported(q.pos, fmt::format("UNION (without ALL) of an updating input (the "
                                                  "changelog of {}); write UNION ALL",
                                                  updating));
        }
        if (!q.union_all) {
            if (auto x = exchange(u, l.value().names, q.pos); !x) {
                return x.error();
            }
            u = u.deduplicate(l.value().names);
            step(fmt::format("deduplicate {}", join_names(l.value().names)));
            if (auto c = check(q.pos); !c) {
                return c.error();
            }
        }
        return query_out{u, l.value().names, updating, l.value().proctime && r.value().proctime,
                         std::nullopt};
    }
    }
    return unsupported(q.pos, "this query");
}

parse_result<query_out> builder::select_(const query& q) {
    const select_core& sc = q.select;
    if (sc.from.empty()) {
        auto one = constant_row(q);
        if (!one) {
            return one.error();
        }
        return select_from(q, std::move(one).value(), true);
    }
    if (sc.from.size() == 1 && sc.from[0].kind == table_ref_kind::subquery) {
        if (const select_item* rn = row_number_item(*sc.from[0].subquery)) {
            return top_n(q, *rn);
        }
    }
    bool where_used = false;
    auto rel_r = from_clause(sc, where_used);
    if (!rel_r) {
        return rel_r.error();
    }
    return select_from(q, std::move(rel_r).value(), !where_used);
}

parse_result<query_out> builder::select_from(const query& q, relation rel, bool with_where) {
    const select_core& sc = q.select;
    if (sc.where && with_where) {
        translator tr(rel, rel.s.schema_of());
        auto pred = tr.tr(*sc.where, en::data_type::boolean());
        if (!pred) {
            return pred.error();
        }
        rel.s = rel.s.filter(pred.value());
        if (auto c = check(sc.where->pos); !c) {
            return c.error();
        }
        step(fmt::format("filter {}", pred.value().to_string()));
    }
    auto names = output_names(q, rel);
    if (!names) {
        return names.error();
    }

    bool is_grouped = !sc.group_by.empty() || bool(sc.having);
    for (const auto& item : sc.items) {
        is_grouped = is_grouped || has_aggregate(item.value);
    }
    if (is_grouped) {
        auto out = this->grouped(q, std::move(rel), names.value());
        if (!out) {
            return out;
        }
        if (sc.distinct && !out.value().updating.empty()) {
            return unsupported(q.pos, fmt::format("SELECT DISTINCT over the changelog of {}",
                                                  out.value().updating));
        }
        if (sc.distinct) {
            if (auto x = exchange(out.value().s, out.value().names, q.pos); !x) {
                return x.error();
            }
            auto s = out.value().s.deduplicate(out.value().names);
            step(fmt::format("deduplicate {}", join_names(out.value().names)));
            if (auto c = check(q.pos); !c) {
                return c.error();
            }
            out.value().s = s;
        }
        return out;
    }
    if (rel.window) {
        return unsupported(*rel.window->call,
                           fmt::format("{} without GROUP BY window_start, window_end",
                                       text::to_upper(rel.window->call->names.back())));
    }
    translator tr(rel, rel.s.schema_of());
    std::vector<en::named_expr> cols;
    std::size_t n = 0;
    const select_item* proctime = nullptr; // the first PROCTIME() item, and its column
    std::size_t proctime_col = 0;
    for (const auto& item : sc.items) {
        if (item.value.kind == expr_kind::star) {
            for (const auto* c : star_columns(item.value, rel)) {
                cols.push_back(en::as(en::col(c->engine), names.value()[n++]));
            }
            continue;
        }
        if (const rel_column* row = row_item(item, rel)) {
            cols.push_back(en::as(en::col(row->engine), names.value()[n++]));
            for (const auto* f : row_fields(rel.cols, *row)) {
                cols.push_back(en::as(en::col(f->engine), names.value()[n++]));
            }
            continue;
        }
        auto v = tr.tr(item.value);
        if (!v) {
            return v.error();
        }
        if (!proctime && is_proctime(item.value)) {
            proctime = &item;
            proctime_col = cols.size();
        }
        cols.push_back(en::as(v.value(), names.value()[n++]));
    }
    {
        const en::stream input = rel.s;
        rel.s = rel.s.project(cols);
        carry(input, rel.s, cols);
    }
    if (auto c = check(sc.items.empty() ? q.pos : sc.items[0].value.pos); !c) {
        return c.error();
    }
    step(fmt::format("project {}", describe(cols)));
    if (proctime && rel.updating.empty()) {
        if (auto r = processing_time(rel, cols[proctime_col].name, proctime->value.pos); !r) {
            return r.error();
        }
    }
    if (sc.distinct && !rel.updating.empty()) {
        return unsupported(q.pos,
                           fmt::format("SELECT DISTINCT over the changelog of {}", rel.updating));
    }
    if (sc.distinct) {
        if (auto x = exchange(rel.s, names.value(), q.pos); !x) {
            return x.error();
        }
        rel.s = rel.s.deduplicate(names.value());
        step(fmt::format("deduplicate {}", join_names(names.value())));
        if (auto c = check(q.pos); !c) {
            return c.error();
        }
    }
    return query_out{rel.s, names.value(), rel.updating, rel.proctime,
                     sc.distinct ? std::nullopt : kept_bounds(rel.bounds, cols)};
}

parse_result<bool> builder::insert(const insert_stmt& s, source_pos pos) {
    if (s.overwrite) {
        return unsupported(pos, "INSERT OVERWRITE");
    }
    const table_schema* t = _catalog.find_table(s.table);
    if (!t) {
        return at(pos, 1, fmt::format("table {} does not exist", dotted(s.table)));
    }
    if (t->kind != relation_kind::table) {
        return at(pos, 1, fmt::format("{} is a view; INSERT needs a table", dotted(s.table)));
    }
    auto phys = physical_schema(*t);
    if (!phys) {
        return phys.error();
    }
    auto q = query_(s.body);
    if (!q) {
        return q.error();
    }
    auto qs = q.value().s.schema_of();
    if (!qs) {
        return check(pos).error();
    }
    // The query's columns in the order INSERT lists them (or the sink's physical order).
    std::vector<std::string> targets = s.columns;
    if (targets.empty()) {
        for (const auto& f : phys.value()->fields()) {
            targets.push_back(f.name);
        }
    }
    if (targets.size() != qs->size()) {
        return at(s.body.pos, 1,
                  fmt::format("the query has {} columns, the sink {} takes {}", qs->size(),
                              dotted(s.table), targets.size()));
    }
    std::vector<en::named_expr> cols;
    for (const auto& f : phys.value()->fields()) {
        auto it = std::find(targets.begin(), targets.end(), f.name);
        if (it == targets.end()) {
            cols.push_back(en::as(en::null_of(f.type), f.name));
            continue;
        }
        const auto& from = qs->at(std::size_t(it - targets.begin()));
        en::expr v = en::col(from.name);
        if (!(from.type == f.type)) {
            v = en::cast(v, f.type);
        }
        cols.push_back(en::as(v, f.name));
    }
    auto out = q.value().s.project(cols);
    if (auto c = check(pos); !c) {
        return c.error();
    }
    step(fmt::format("project {}", describe(cols)));
    // A changelog goes to a sink that upserts by its PRIMARY KEY (update_before rows are
    // dropped, deletes delete the key); a sink without one would take every change as a new
    // row, so only a blackhole may take it.
    const std::string& updating = q.value().updating;
    if (!updating.empty() && !t->primary_key.empty()) {
        out = out.upsert(t->primary_key);
        if (auto c = check(pos); !c) {
            return c.error();
        }
        step(fmt::format("upsert by {}", join_names(t->primary_key)));
    } else if (!updating.empty() && !text::iequals(t->option("connector").value_or(""), "blackhole")) {
        return at(pos, 1,
                  fmt::format("table sink {} doesn't support consuming update changes, which {} "
                              "produces; declare its PRIMARY KEY (…) NOT ENFORCED (the query's "
                              "unique key, e.g. the GROUP BY columns) to write them as upserts",
                              dotted(s.table), updating));
    }
    _out.updating = updating;
    auto r = _conn.sink(out, *t);
    if (!r) {
        const auto& why = r.error().message;
        if (why.starts_with(fmt::format("table {}:", dotted(s.table)))) return at(pos, 1, why);
        return at(pos, 1, fmt::format("sink {}: {}", dotted(s.table), why));
    }
    if (auto c = check(pos); !c) {
        return c.error();
    }
    step(fmt::format("sink {}", dotted(s.table)));
    _out.columns.clear();
    for (const auto& f : phys.value()->fields()) {
        _out.columns.push_back(f.name);
    }
    return true;
}

} // namespace plan_detail

namespace {

namespace en = runnel::engine;

/// A connector that yields no rows and drops what it is given: for EXPLAIN.
class null_connector final : public connector_factory {
public:
    en::result<en::stream> source(en::pipeline& p, const table_schema&,
                                  const en::schema_ptr& columns) override {
        return p.source(columns, en::from_batches({}));
    }
    en::result<void> sink(en::stream rows, const table_schema&) override {
        rows.sink([](const en::batch&) {});
        return outcome::success();
    }
};

} // namespace

using plan_detail::at;
using plan_detail::builder;
using plan_detail::dotted;
using plan_detail::unsupported;

std::optional<engine::data_type> engine_type(const data_type& t) {
    switch (t.kind) {
    case type_kind::boolean:
        return en::data_type::boolean();
    case type_kind::tinyint:
    case type_kind::smallint:
    case type_kind::int_:
    case type_kind::bigint:
        return en::data_type::int64();
    case type_kind::float_:
    case type_kind::double_:
    case type_kind::decimal:
        return en::data_type::float64();
    case type_kind::char_:
    case type_kind::varchar:
    case type_kind::string:
        return en::data_type::string();
    case type_kind::timestamp:
    case type_kind::timestamp_ltz:
        return en::data_type::timestamp(en::time_unit::millis);
    case type_kind::row:
        return en::data_type::boolean(); // its null flag; the fields are columns of their own
    default:
        return std::nullopt;
    }
}

/// Appends the engine fields holding column `name` of type `t` of table `table`: one, or for
/// a ROW its flag and then its fields' (`engine::row_layout`).
parse_result<bool> flatten(const std::string& name, const data_type& t, bool nullable,
                           const std::string& table, std::vector<engine::field>& out) {
    auto et = engine_type(t);
    if (!et) {
        return unsupported(source_pos{},
                           fmt::format("column {} of table {}: type {}", name, table, to_string(t)));
    }
    out.push_back({name, *et, nullable && t.nullable});
    if (t.kind == type_kind::row) {
        for (std::size_t i = 0; i < t.children.size() && i < t.field_names.size(); ++i) {
            // A field of a ROW that may be NULL may be NULL.
            auto r = flatten(name + "." + t.field_names[i], t.children[i],
                             nullable && t.nullable, table, out);
            if (!r) {
                return r;
            }
        }
    }
    return true;
}

parse_result<engine::schema_ptr> physical_schema(const table_schema& t) {
    std::vector<en::field> fields;
    for (const auto& c : t.columns) {
        if (c.computed || c.metadata) {
            continue;
        }
        if (auto r = flatten(c.name, c.type, true, dotted(t.name), fields); !r) {
            return r.error();
        }
    }
    return en::make_schema(std::move(fields));
}

parse_result<planned_statement> planner::plan(const statement& s, engine::pipeline& p) {
    const statement* target = &s;
    while (auto* ex = std::get_if<explain_stmt>(&target->node)) {
        if (!ex->target) {
            return at(s.pos, 1, "EXPLAIN without a statement");
        }
        target = ex->target.get();
    }
    binder b(_catalog);
    auto bound = b.bind(*target);
    if (!bound) {
        return bound.error();
    }
    planned_statement out;
    // A PARALLELISM hint sets this statement's instances (the binder checked it).
    plan_options opts = _opts;
    if (auto n = parallelism_hint(*target)) opts.parallelism = *n;
    if (opts.parallelism > 1) {
        out.stages.push_back(fmt::format("parallelism {}: every instance runs the stages below on its share of "
                                         "the sources",
                                         opts.parallelism));
    }
    builder bld(_catalog, _connectors, opts, p, out);
    if (auto* ins = std::get_if<insert_stmt>(&target->node)) {
        bld.reads(ins->body);
        auto r = bld.insert(*ins, target->pos);
        if (!r) {
            return r.error();
        }
        return out;
    }
    if (auto* q = std::get_if<query_stmt>(&target->node)) {
        bld.reads(q->body);
        auto r = bld.query_(q->body);
        if (!r) {
            return r.error();
        }
        out.output = r.value().s;
        out.columns = r.value().names;
        out.updating = r.value().updating;
        out.stages.push_back("output");
        return out;
    }
    return at(target->pos, 1,
              "only INSERT INTO … SELECT and queries become pipelines; this statement changes the "
              "catalog");
}

parse_result<bool> apply_setting(const set_stmt& s, source_pos pos, plan_options& opts, const plan_options& base) {
    if (s.reset) {
        if (s.key.empty()) {
            opts = base;
        } else if (text::iequals(s.key, parallelism_key)) {
            opts.parallelism = base.parallelism;
        } else if (text::iequals(s.key, agg_phase_strategy_key)) {
            opts.agg_phases = base.agg_phases;
        } else if (text::iequals(s.key, max_windows_per_row_key)) {
            opts.max_windows_per_row = base.max_windows_per_row;
        } else {
            return false;
        }
        return true;
    }
    if (text::iequals(s.key, parallelism_key)) {
        uint32_t n = 0;
        auto [end, ec] = std::from_chars(s.value.data(), s.value.data() + s.value.size(), n);
        if (ec != std::errc() || end != s.value.data() + s.value.size() || n < 1 || n > max_parallelism) {
            return error_at(pos, 3, fmt::format("'{}' is a number of instances from 1 to {}, not '{}'",
                                                parallelism_key, max_parallelism, s.value));
        }
        opts.parallelism = n;
        return true;
    }
    if (text::iequals(s.key, agg_phase_strategy_key)) {
        if (text::iequals(s.value, "AUTO")) {
            opts.agg_phases = agg_phase_strategy::automatic;
        } else if (text::iequals(s.value, "ONE_PHASE")) {
            opts.agg_phases = agg_phase_strategy::one_phase;
        } else if (text::iequals(s.value, "TWO_PHASE")) {
            opts.agg_phases = agg_phase_strategy::two_phase;
        } else {
            return error_at(pos, 3, fmt::format("'{}' is AUTO, ONE_PHASE or TWO_PHASE, not '{}'",
                                                agg_phase_strategy_key, s.value));
        }
        return true;
    }
    if (!text::iequals(s.key, max_windows_per_row_key)) {
        return false;
    }
    int64_t n = 0;
    auto [end, ec] = std::from_chars(s.value.data(), s.value.data() + s.value.size(), n);
    if (ec != std::errc() || end != s.value.data() + s.value.size() || n < 1 || n > 100000000) {
        return error_at(pos, 3, fmt::format("'{}' is a number of windows from 1 to 100000000, not '{}'",
                                            max_windows_per_row_key, s.value));
    }
    opts.max_windows_per_row = n;
    return true;
}

parse_result<std::string> explain(const statement& s, const catalog& cat, plan_options opts) {
    null_connector conn;
    en::pipeline p;
    planner pl(cat, conn, opts);
    auto r = pl.plan(s, p);
    if (!r) {
        return r.error();
    }
    std::string text;
    for (const auto& line : r.value().stages) {
        text += line + "\n";
    }
    return text;
}

} // namespace runnel::sql
