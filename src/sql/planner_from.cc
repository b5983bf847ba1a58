#include "sql/planner_internal.h"

#include "base/text.h"
#include "sql/parser.h"

namespace runnel::sql::plan_detail {

namespace {

/// A relation over a query's output stream, with its changelog, processing time and window
/// bounds; the caller names its columns (a CTE's, a view's or a subquery's aliases).
relation relation_of(const query_out& q) {
    relation rel;
    rel.s = q.s;
    rel.updating = q.updating;
    rel.proctime = q.proctime;
    rel.bounds = q.bounds;
    return rel;
}

/// Marks the columns of a query's output that are ROWs: those whose fields follow under
/// `name.field` (a ROW selected whole leaves its flag and fields so).
void mark_rows(std::vector<rel_column>& cols) {
    for (auto& c : cols) {
        std::string prefix = c.name + ".";
        c.row = std::any_of(cols.begin(), cols.end(), [&](const rel_column& o) {
            return o.qualifier == c.qualifier && o.name.starts_with(prefix);
        });
    }
}

/// An error found in a table's definition (its CREATE TABLE text), moved to where the
/// statement being planned names the table, with `what` saying where it came from.
error moved(error e, source_pos pos, const std::string& what) {
    std::string m = e.message;
    if (m.starts_with("planner: ")) {
        m = m.substr(9);
    }
    return at(pos, 1, fmt::format("{}: {}", what, m));
}

} // namespace

std::optional<error> check_windows_per_row(const expr& call, std::string_view fn, std::string_view step_name,
                                           int64_t size_ms, int64_t step_ms, const plan_options& opts) {
    if (size_ms <= 0 || step_ms <= 0) {
        return at(call, fmt::format("{} needs a positive size and {}", fn, step_name));
    }
    const int64_t per_row = size_ms / step_ms + (size_ms % step_ms ? 1 : 0);
    if (per_row <= opts.max_windows_per_row) {
        return std::nullopt;
    }
    return at(call, fmt::format("{} puts each row into {} windows (size {} ms / {} {} ms), more than the limit of {}; "
                                "use a larger {} or raise SET '{}'",
                                fn, per_row, size_ms, step_name, step_ms, opts.max_windows_per_row, step_name,
                                max_windows_per_row_key));
}

std::string window_label(const en::window_spec& w) {
    switch (w.kind) {
    case en::window_kind::tumbling:
        return fmt::format("tumble(size {} ms)", w.size);
    case en::window_kind::hopping:
        return fmt::format("hop(size {} ms, slide {} ms)", w.size, w.slide);
    case en::window_kind::cumulative:
        return fmt::format("cumulate(max {} ms, step {} ms)", w.size, w.slide);
    case en::window_kind::session:
        return fmt::format("session(gap {} ms)", w.gap);
    }
    return "?";
}

std::string not_event_time(const relation& rel, const std::string& column,
                           const std::string& table) {
    std::string t = rel.s.time_column();
    if (t == column) {
        return {};
    }
    if (t.empty() && !table.empty()) {
        return fmt::format("a window needs event time: declare WATERMARK FOR {} AS {} - INTERVAL "
                           "'n' SECOND on table {}",
                           column, column, table);
    }
    if (t.empty()) {
        return fmt::format("a window needs event time, and {} carries none here: a table's "
                           "WATERMARK column carries it through views, WITH queries, derived "
                           "tables and interval joins that keep it under its name",
                           column);
    }
    return fmt::format("a window over {} is not supported yet: windows run on {}, the event-time "
                       "column of {} (the column a WATERMARK names)",
                       column, t, table.empty() ? "its input" : "table " + table);
}

parse_result<relation> builder::table(const table_schema& t, source_pos pos,
                                      const std::string& qualifier) {
    std::string tname = dotted(t.name);
    for (const auto& c : t.columns) {
        if (c.metadata) {
            return unsupported(pos, fmt::format("metadata column {} of table {}", c.name, tname));
        }
    }
    auto phys = physical_schema(t);
    if (!phys) {
        error e = phys.error();
        e.line = pos.line;
        e.column = pos.column;
        e.offset = pos.offset;
        return e;
    }
    // The Nexmark source generates only the columns it is given: leave out those the statement
    // never names (a table with computed columns keeps all; they may read any).
    // A ROW column's flag and fields stay together: a table with one keeps all.
    bool computed = std::any_of(t.columns.begin(), t.columns.end(), [](const auto& c) {
        return bool(c.computed) || c.type.kind == type_kind::row;
    });
    auto connector = t.option("connector");
    if (!_reads.all && !computed && connector && text::iequals(*connector, "nexmark") &&
        !_reads.star_qualifiers.contains(text::to_lower(qualifier))) {
        std::vector<en::field> kept;
        for (const auto& f : phys.value()->fields()) {
            if (_reads.names.contains(text::to_lower(f.name)) || text::iequals(f.name, t.event_time_column)) {
                kept.push_back(f);
            }
        }
        if (kept.empty()) {
            kept.push_back(phys.value()->at(0));
        }
        if (kept.size() < phys.value()->size()) {
            phys = en::make_schema(std::move(kept));
        }
    }
    auto src = _conn.source(_p, t, phys.value());
    if (!src) {
        // A connector's message usually names the table already.
        const auto& why = src.error().message;
        if (why.starts_with(fmt::format("table {}:", tname))) return at(pos, 1, why);
        return at(pos, 1, fmt::format("table {}: {}", tname, why));
    }
    relation rel;
    rel.s = src.value();
    step(fmt::format("source {} ({})", tname, describe(*phys.value())));
    if (auto c = check(pos); !c) {
        return c.error();
    }
    // A ROW's flag column is followed by its fields' (a nested ROW's flag among them).
    auto is_row = [&](const std::string& name) {
        const auto& fs = phys.value()->fields();
        return std::any_of(fs.begin(), fs.end(),
                           [&](const auto& g) { return g.name.starts_with(name + "."); });
    };
    for (const auto& f : phys.value()->fields()) {
        rel.cols.push_back({f.name, qualifier, f.name, false});
        rel.cols.back().row = is_row(f.name);
    }
    // Computed columns: one projection that keeps the physical ones and adds them.
    bool any_computed = std::any_of(t.columns.begin(), t.columns.end(),
                                    [](const auto& c) { return bool(c.computed); });
    if (any_computed) {
        translator tr(rel, phys.value());
        std::vector<en::named_expr> cols;
        for (const auto& f : phys.value()->fields()) {
            cols.push_back(en::as(en::col(f.name), f.name));
        }
        for (const auto& c : t.columns) {
            if (!c.computed) {
                continue;
            }
            auto v = tr.tr(*c.computed);
            if (!v) {
                return moved(v.error(), pos,
                             fmt::format("computed column {} of table {}", c.name, tname));
            }
            cols.push_back(en::as(v.value(), c.name));
        }
        rel.s = rel.s.project(cols);
        if (auto c = check(pos); !c) {
            return c.error();
        }
        step(fmt::format("project {}", describe(cols)));
        std::vector<rel_column> physical = std::move(rel.cols);
        rel.cols.clear();
        for (const auto& c : t.columns) {
            if (c.computed) {
                rel.cols.push_back({c.name, qualifier, c.name, false});
                continue;
            }
            for (const auto& pc : physical) {
                if (pc.name == c.name || pc.name.starts_with(c.name + ".")) {
                    rel.cols.push_back(pc);
                }
            }
        }
    }
    if (!t.event_time_column.empty() && t.watermark) {
        const expr& w = *t.watermark;
        int64_t delay = 0;
        auto is_time = [&](const expr& x) {
            return x.kind == expr_kind::column && x.names.size() == 1 &&
                   x.names[0] == t.event_time_column;
        };
        if (is_time(w)) {
            delay = 0;
        } else if (w.kind == expr_kind::binary && w.text == "-" && is_time(w.args[0]) &&
                   w.args[1].kind == expr_kind::interval) {
            auto ms = interval_ms(w.args[1]);
            if (!ms) {
                return moved(ms.error(), pos, fmt::format("the WATERMARK of table {}", tname));
            }
            delay = ms.value();
        } else {
            return unsupported(
                pos, fmt::format("the WATERMARK of table {} ({}); write WATERMARK FOR {} AS {} - "
                                 "INTERVAL 'n' SECOND",
                                 tname, to_string(w), t.event_time_column, t.event_time_column));
        }
        rel.s = rel.s.watermark(t.event_time_column, std::chrono::milliseconds(delay),
                                _conn.watermarks(t));
        if (auto c = check(pos); !c) {
            return c.error();
        }
        step(fmt::format("watermark {} - {} ms", t.event_time_column, delay));
    } else {
        for (const auto& c : t.columns) {
            if (c.computed && is_proctime(*c.computed)) {
                if (auto r = processing_time(rel, c.name, pos); !r) {
                    return r.error();
                }
                break;
            }
        }
    }
    return rel;
}

parse_result<relation> builder::named(const qualified_name& name, source_pos pos,
                                      const std::string& alias) {
    for (std::size_t i = _ctes.size(); name.size() == 1 && i-- > 0;) {
        const common_table& ct = *_ctes[i];
        if (ct.name != name[0]) {
            continue;
        }
        if (++_depth > 32) {
            return at(pos, 1, "WITH queries nest too deeply");
        }
        std::vector<const common_table*> saved = _ctes;
        _ctes.resize(i);
        auto q = query_(*ct.body);
        _ctes = std::move(saved);
        --_depth;
        if (!q) {
            return q.error();
        }
        const auto& names = q.value().names;
        if (!ct.columns.empty() && ct.columns.size() != names.size()) {
            return at(pos, 1,
                      fmt::format("WITH {} names {} columns for {}", ct.name, ct.columns.size(),
                                  names.size()));
        }
        relation rel = relation_of(q.value());
        std::string qualifier = alias.empty() ? ct.name : alias;
        for (std::size_t c = 0; c < names.size(); ++c) {
            rel.cols.push_back(
                {ct.columns.empty() ? names[c] : ct.columns[c], qualifier, names[c], false});
        }
        return rel;
    }
    const table_schema* t = _catalog.find_table(name);
    if (!t) {
        return at(pos, 1, fmt::format("table or view {} does not exist", dotted(name)));
    }
    std::string qualifier = alias.empty() ? name.back() : alias;
    if (t->kind == relation_kind::table) {
        return table(*t, pos, qualifier);
    }
    if (!t->definition) {
        return unsupported(pos, fmt::format("view {} without a definition", dotted(name)));
    }
    if (++_depth > 32) {
        return at(pos, 1, "views nest too deeply");
    }
    // A view's query sees the catalog, not the WITH queries of the statement that reads it.
    std::vector<const common_table*> saved = std::move(_ctes);
    _ctes.clear();
    auto q = query_(*t->definition);
    _ctes = std::move(saved);
    --_depth;
    if (!q) {
        return q.error();
    }
    relation rel = relation_of(q.value());
    for (const auto& n : q.value().names) {
        rel.cols.push_back({n, qualifier, n, false});
    }
    mark_rows(rel.cols);
    return rel;
}

parse_result<relation> builder::window_tvf(const expr& call, const std::string& alias) {
    std::string u = text::to_upper(call.names.back());
    // Arguments by role: named ones by name, positional ones in the function's order.
    std::map<std::string, const expr*> args;
    bool named_args = !call.args.empty() && call.args[0].kind == expr_kind::named_arg;
    if (named_args) {
        for (const expr& a : call.args) {
            if (a.kind != expr_kind::named_arg || a.names.empty() || a.args.empty()) {
                return at(a, fmt::format("{} takes either all arguments by name or none", u));
            }
            args[text::to_upper(a.names[0])] = &a.args[0];
        }
    } else {
        std::vector<std::string> roles;
        if (u == "TUMBLE") {
            roles = {"DATA", "TIMECOL", "SIZE", "OFFSET"};
        } else if (u == "HOP") {
            roles = {"DATA", "TIMECOL", "SLIDE", "SIZE", "OFFSET"};
        } else if (u == "CUMULATE") {
            roles = {"DATA", "TIMECOL", "STEP", "SIZE", "OFFSET"};
        } else if (u == "SESSION") {
            roles = {"DATA", "TIMECOL", "GAP"};
        } else {
            return unsupported(call, fmt::format("the table function {}", call.names.back()));
        }
        for (std::size_t i = 0; i < call.args.size() && i < roles.size(); ++i) {
            args[roles[i]] = &call.args[i];
        }
    }
    if (args.count("OFFSET")) {
        return unsupported(*args["OFFSET"], fmt::format("the offset of {}", u));
    }
    const expr* data = args["DATA"];
    const expr* timecol = args["TIMECOL"];
    if (!data || !timecol || data->kind != expr_kind::table_arg ||
        timecol->kind != expr_kind::descriptor) {
        return at(call, fmt::format("{} takes TABLE t and DESCRIPTOR(time column)", u));
    }
    auto rel = named(data->names, data->pos, alias.empty() ? data->names.back() : alias);
    if (!rel) {
        return rel.error();
    }
    relation r = std::move(rel).value();
    if (!r.updating.empty()) {
        return unsupported(call, fmt::format("a window over an updating input (the changelog of {})",
                                             r.updating));
    }
    window_info w;
    w.call = &call;
    translator tr(r, r.s.schema_of());
    auto tc = tr.resolve(*timecol);
    if (!tc) {
        return tc.error();
    }
    w.time = tc.value()->engine;
    const table_schema* ts = _catalog.find_table(data->names);
    bool is_table = ts && ts->kind == relation_kind::table &&
                    std::none_of(_ctes.begin(), _ctes.end(), [&](const common_table* c) {
                        return data->names.size() == 1 && c->name == data->names[0];
                    });
    if (auto why = not_event_time(r, w.time, is_table ? dotted(data->names) : ""); !why.empty()) {
        return at(*timecol, why);
    }
    auto size_of = [&](const char* role) -> parse_result<int64_t> {
        auto it = args.find(role);
        if (it == args.end()) {
            return at(call, fmt::format("{} needs its {} argument", u, role));
        }
        return interval_ms(*it->second);
    };
    if (u == "TUMBLE") {
        auto s = size_of("SIZE");
        if (!s) {
            return s.error();
        }
        w.spec = en::tumble(std::chrono::milliseconds(s.value()));
    } else if (u == "HOP" || u == "CUMULATE") {
        // A size and the interval its windows advance by (HOP's SLIDE, CUMULATE's STEP), with a
        // bounded number of windows per row.
        const bool hop = u == "HOP";
        auto s = size_of("SIZE");
        if (!s) {
            return s.error();
        }
        auto step = size_of(hop ? "SLIDE" : "STEP");
        if (!step) {
            return step.error();
        }
        if (auto e = check_windows_per_row(call, u, hop ? "slide" : "step", s.value(), step.value(), _opts)) {
            return *e;
        }
        const std::chrono::milliseconds size(s.value()), by(step.value());
        w.spec = hop ? en::hop(size, by) : en::cumulate(by, size);
    } else {
        auto g = size_of("GAP");
        if (!g) {
            return g.error();
        }
        w.spec = en::session(std::chrono::milliseconds(g.value()));
        for (const expr& k : data->args) {
            auto c = tr.resolve(k);
            if (!c) {
                return c.error();
            }
            w.partition.push_back(c.value()->engine);
        }
    }
    w.label = window_label(w.spec);
    std::string q = alias.empty() ? data->names.back() : alias;
    for (const char* n : {"window_start", "window_end", "window_time"}) {
        r.cols.push_back({n, q, n, true});
    }
    r.window = std::move(w);
    return r;
}

parse_result<relation> builder::from_item(const table_ref& t) {
    switch (t.kind) {
    case table_ref_kind::named:
        if (t.system_time) {
            return unsupported(*t.system_time,
                               "FOR SYSTEM_TIME AS OF other than on the right side of a JOIN");
        }
        {
            auto r = named(t.names, t.pos, t.alias);
            if (!r) {
                return r;
            }
            if (!t.column_aliases.empty()) {
                return unsupported(t.pos, "column aliases on a table");
            }
            return r;
        }
    case table_ref_kind::subquery: {
        auto q = query_(*t.subquery);
        if (!q) {
            return q.error();
        }
        relation rel = relation_of(q.value());
        const auto& names = q.value().names;
        if (!t.column_aliases.empty() && t.column_aliases.size() != names.size()) {
            return at(t.pos, 1,
                      fmt::format("{} column aliases for {} columns", t.column_aliases.size(),
                                  names.size()));
        }
        for (std::size_t i = 0; i < names.size(); ++i) {
            rel.cols.push_back({t.column_aliases.empty() ? names[i] : t.column_aliases[i], t.alias,
                                names[i], false});
        }
        mark_rows(rel.cols);
        return rel;
    }
    case table_ref_kind::function:
        return window_tvf(*t.function, t.alias);
    case table_ref_kind::join:
        return join(t);
    }
    return unsupported(t.pos, "this FROM item");
}

/// What a SELECT without FROM reads: one row with no column the query can name, so that its
/// items are evaluated once (`SELECT 1 + 2 AS x`), as in Flink. (The binder refuses `*` there.)
parse_result<relation> builder::constant_row(const query& q) {
    auto schema = en::make_schema({en::field{"$one", en::data_type::int64(), false}});
    en::batch row(schema);
    row.append_row({en::value::of(int64_t(1))});
    auto src = _conn.constant(_p, std::move(row));
    if (!src) {
        return at(q.pos, 1, src.error().message);
    }
    relation rel;
    rel.s = src.value();
    step("one constant row");
    if (auto c = check(q.pos); !c) {
        return c.error();
    }
    rel.cols.push_back({"$one", "", "$one", false, true});
    return rel;
}

parse_result<relation> builder::from_clause(const select_core& sc, bool& where_used) {
    where_used = false;
    if (sc.from.size() == 1) {
        return from_item(sc.from[0]);
    }
    if (sc.from.size() > 2) {
        return unsupported(sc.from[2].pos, "a comma join of more than two FROM items");
    }
    if (!sc.where) {
        return at(sc.from[1].pos, 1,
                  "a comma join without WHERE is a cross join, which is not supported yet; join "
                  "the two on equal keys in WHERE");
    }
    // FROM a, b WHERE c is the inner join of a and b ON c.
    table_ref& j = _synthetic.emplace_back();
    j.kind = table_ref_kind::join;
    j.pos = sc.from[1].pos;
    j.join = join_kind::inner;
    j.left = sc.from[0];
    j.right = sc.from[1];
    j.condition = *sc.where;
    where_used = true;
    return join(j);
}

} // namespace runnel::sql::plan_detail
