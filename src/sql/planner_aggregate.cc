#include "sql/planner_internal.h"

#include "base/text.h"

#include <algorithm>
#include <map>

namespace runnel::sql::plan_detail {

bool builder::two_phase(const relation& rel, const std::vector<en::aggregate_spec>& specs, const window_info* win,
                        const std::vector<std::string>& keys) const {
    if (_opts.agg_phases == agg_phase_strategy::one_phase || !_phys.needs_exchange(rel.s, keys)) {
        return false;
    }
    // A retraction cannot take back a row pre-aggregated in another instance, and a
    // session's bounds are known only where all its rows meet.
    if (!rel.updating.empty() || (win && win->spec.kind == en::window_kind::session)) {
        return false;
    }
    // Only functions whose accumulators merge (not COUNT(DISTINCT), FIRST_VALUE, LAST_VALUE,
    // percentiles).
    if (!std::all_of(specs.begin(), specs.end(), [](const en::aggregate_spec& a) { return en::splittable(a.kind); })) {
        return false;
    }
    if (_opts.agg_phases == agg_phase_strategy::two_phase || keys.empty()) {
        return true;
    }
    // AUTO, with keys (decision 0029): a window's one phase already gathers each key's rows
    // of a pane, so its local phase pays only when keys repeat within an instance's pane
    // (unknown here). A GROUP BY's local phase keeps nothing and costs a hash per row, but
    // over a window aggregate's rows (`bounds`), which come in bursts as windows fire, it
    // turns each burst into a few partial rows: the global phase then emits its changelog in
    // more, smaller steps, each of which an operator after it (q5's join) pays for again.
    return !win && !rel.bounds;
}

parse_result<query_out> builder::grouped(const query& q, relation rel,
                                         const std::vector<std::string>& names) {
    const select_core& sc = q.select;
    translator in(rel, rel.s.schema_of());
    // The window: from FROM (a window TVF) or from GROUP BY (TUMBLE/HOP/SESSION(ts, …)).
    std::optional<window_info> win = rel.window;
    std::string legacy; // "TUMBLE" when GROUP BY names a group window
    bool has_start = false, has_end = false;
    std::vector<key_item> keys;
    for (const expr& g : sc.group_by) {
        if (g.kind == expr_kind::column) {
            auto c = in.resolve(g);
            if (!c) {
                return c.error();
            }
            if (c.value()->window_only) {
                if (c.value()->engine == "window_start") {
                    has_start = true;
                } else if (c.value()->engine == "window_end") {
                    has_end = true;
                }
                continue; // window_time follows from window_end
            }
            bool again = std::any_of(keys.begin(), keys.end(), [&](const key_item& k) {
                return k.source == c.value()->engine;
            });
            if (again) {
                continue;
            }
            key_item k;
            k.ast = &g;
            k.source = c.value()->engine;
            k.name = c.value()->engine;
            k.value = en::col(k.source);
            keys.push_back(std::move(k));
            continue;
        }
        if (g.kind == expr_kind::call && is_group_window(text::to_upper(g.names.back()))) {
            std::string u = text::to_upper(g.names.back());
            if (win) {
                return at(g, rel.window
                                 ? fmt::format("GROUP BY {}(…) over a window table function", u)
                                 : "two group windows in one GROUP BY");
            }
            if (g.args.empty() || g.args[0].kind != expr_kind::column) {
                return at(g, fmt::format("{}(…) in GROUP BY takes the event-time column first", u));
            }
            if (!rel.updating.empty()) {
                return unsupported(g, fmt::format("a window over an updating input (the changelog "
                                                  "of {})",
                                                  rel.updating));
            }
            auto tc = in.resolve(g.args[0]);
            if (!tc) {
                return tc.error();
            }
            std::string table;
            if (sc.from[0].kind == table_ref_kind::named) {
                const table_schema* ts = _catalog.find_table(sc.from[0].names);
                bool cte = std::any_of(_ctes.begin(), _ctes.end(), [&](const common_table* c) {
                    return sc.from[0].names.size() == 1 && c->name == sc.from[0].names[0];
                });
                if (ts && ts->kind == relation_kind::table && !cte) {
                    table = dotted(sc.from[0].names);
                }
            }
            if (auto why = not_event_time(rel, tc.value()->engine, table); !why.empty()) {
                return at(g.args[0], why);
            }
            window_info w;
            w.call = &g;
            w.time = tc.value()->engine;
            if (u == "TUMBLE") {
                if (g.args.size() != 2) {
                    return unsupported(g, "TUMBLE with an offset");
                }
                auto s = interval_ms(g.args[1]);
                if (!s) {
                    return s.error();
                }
                w.spec = en::tumble(std::chrono::milliseconds(s.value()));
            } else if (u == "HOP") {
                auto sl = interval_ms(g.args[1]);
                if (!sl) {
                    return sl.error();
                }
                auto s = interval_ms(g.args[2]);
                if (!s) {
                    return s.error();
                }
                if (auto e = check_windows_per_row(g, "HOP", "slide", s.value(), sl.value(), _opts)) {
                    return *e;
                }
                w.spec = en::hop(std::chrono::milliseconds(s.value()),
                                 std::chrono::milliseconds(sl.value()));
            } else {
                auto gap = interval_ms(g.args[1]);
                if (!gap) {
                    return gap.error();
                }
                w.spec = en::session(std::chrono::milliseconds(gap.value()));
            }
            w.label = window_label(w.spec);
            win = std::move(w);
            legacy = u;
            continue;
        }
        if (has_aggregate(g)) {
            return at(g, "an aggregate in GROUP BY");
        }
        if (std::any_of(keys.begin(), keys.end(),
                        [&](const key_item& k) { return k.source.empty() && *k.ast == g; })) {
            continue;
        }
        key_item k;
        k.ast = &g;
        k.name = fmt::format("$k{}", keys.size());
        auto v = in.tr(g);
        if (!v) {
            return v.error();
        }
        k.value = v.value();
        keys.push_back(std::move(k));
    }
    source_pos gpos = sc.group_by.empty() ? q.pos : sc.group_by[0].pos;
    if (rel.window && !(has_start && has_end)) {
        return at(gpos, 1, "a window aggregation groups by both window_start and window_end");
    }
    if (win && win->spec.kind == en::window_kind::session && rel.window) {
        std::vector<std::string> plain;
        for (const auto& k : keys) {
            plain.push_back(k.source.empty() ? k.name : k.source);
        }
        auto sorted = [](std::vector<std::string> v) {
            std::sort(v.begin(), v.end());
            return v;
        };
        if (sorted(plain) != sorted(win->partition)) {
            if (win->partition.empty()) {
                return at(
                    *win->call,
                    fmt::format("SESSION without PARTITION BY keeps one session for all rows; "
                                "grouping it by {} is not supported yet; partition the sessions: "
                                "SESSION(TABLE t PARTITION BY {}, …)",
                                join_names(plain), join_names(plain)));
            }
            return at(
                *win->call,
                fmt::format("SESSION partitioned by ({}) but grouped by ({}): the GROUP BY keys "
                            "must be the PARTITION BY columns",
                            join_names(win->partition), join_names(plain)));
        }
    }

    // Types of the window's output, grown as aggregates are found: NULLs in the final
    // projection take their types from it.
    std::vector<en::field> out_fields;
    if (win) {
        out_fields = {{"window_start", en::data_type::timestamp(), false},
                      {"window_end", en::data_type::timestamp(), false}};
    }
    for (const auto& k : keys) {
        out_fields.push_back({k.name, in.type_of(k.value).value_or(en::data_type::int64()), true});
    }
    std::vector<agg_item> aggs;
    translator fin(rel, en::make_schema(out_fields));
    auto add_agg = [&](const expr& e) -> parse_result<en::expr> {
        std::string u = text::to_upper(e.names.back());
        for (const auto& a : aggs) {
            if (*a.ast == e) {
                en::expr c = en::col(a.spec.name);
                return c;
            }
        }
        agg_item a;
        a.ast = &e;
        bool star = e.args.empty() || (e.args.size() == 1 && e.args[0].kind == expr_kind::star);
        if (e.args.size() > 1) {
            return unsupported(e, fmt::format("{} with {} arguments", u, e.args.size()));
        }
        if (e.distinct && u != "COUNT") {
            return unsupported(e, fmt::format("{}(DISTINCT …)", u));
        }
        if (!win && (u == "FIRST_VALUE" || u == "LAST_VALUE")) {
            return unsupported(e, fmt::format("{} without a window", u));
        }
        std::optional<en::expr> arg;
        if (!star) {
            auto v = in.tr(e.args[0]);
            if (!v) {
                return v.error();
            }
            arg = v.value();
        } else if (u != "COUNT") {
            return at(e, fmt::format("{}(*)", u));
        }
        if (e.filter) {
            // FILTER (WHERE c): the aggregate sees NULL where c is not TRUE, and every
            // aggregate here skips NULLs (COUNT(*) becomes a count of a constant).
            auto c = in.tr(*e.filter, en::data_type::boolean());
            if (!c) {
                return c.error();
            }
            en::expr v = arg ? *arg : en::lit(int64_t(1));
            auto t = in.type_of(v).value_or(en::data_type::int64());
            arg = en::case_when({{c.value(), v}}, en::null_of(t));
            star = false;
        }
        std::string name = fmt::format("$a{}", aggs.size());
        std::string input = fmt::format("$in{}", aggs.size());
        bool star_arg = e.args.empty() || e.args[0].kind == expr_kind::star;
        a.arg_ast = star_arg ? nullptr : &e.args[0];
        a.filter_ast = e.filter.get();
        for (const auto& other : aggs) {
            bool same_arg = a.arg_ast && other.arg_ast ? *a.arg_ast == *other.arg_ast
                                                       : a.arg_ast == other.arg_ast;
            bool same_filter = a.filter_ast && other.filter_ast ? *a.filter_ast == *other.filter_ast
                                                                : a.filter_ast == other.filter_ast;
            if (!other.input_name.empty() && same_arg && same_filter) {
                input = other.input_name;
            }
        }
        if (!star) {
            a.input_name = input;
        }
        if (u == "COUNT") {
            a.spec = star ? en::count() : e.distinct ? en::count_distinct(input) : en::count(input);
        } else if (u == "SUM") {
            a.spec = en::sum(input);
        } else if (u == "MIN") {
            a.spec = en::min(input);
        } else if (u == "MAX") {
            a.spec = en::max(input);
        } else if (u == "AVG") {
            a.spec = en::avg(input);
        } else if (u == "FIRST_VALUE") {
            a.spec = en::first_value(input);
        } else if (u == "LAST_VALUE") {
            a.spec = en::last_value(input);
        } else {
            return unsupported(e, fmt::format("the aggregate {}", u));
        }
        a.spec = a.spec.as(name);
        std::optional<en::data_type> in_type;
        if (arg) {
            a.input = *arg;
            in_type = in.type_of(*arg);
            if (!in_type) {
                auto b = en::bind(*arg, *rel.s.schema_of());
                return at(e, b ? std::string("cannot type the argument") : b.error().message);
            }
            auto b = en::bind_aggregate(
                a.spec, en::schema(std::vector<en::field>{{input, *in_type, true}}));
            if (!b) {
                return at(e, b.error().message);
            }
            a.output = b.value().output_type;
        } else {
            a.output = en::data_type::int64();
        }
        out_fields.push_back({name, a.output, true});
        fin.schema = en::make_schema(out_fields);
        aggs.push_back(std::move(a));
        en::expr c = en::col(name);
        // AVG of integers is an integer, as in Flink SQL (truncated toward zero).
        if (u == "AVG" && in_type && in_type->id == en::type_id::int64) {
            c = en::cast(c, en::data_type::int64());
        }
        return c;
    };
    auto window_property = [&](const expr& e,
                               std::string_view prop) -> parse_result<std::optional<en::expr>> {
        if (prop == "START") {
            return std::optional<en::expr>(en::col("window_start"));
        }
        if (prop == "END") {
            return std::optional<en::expr>(en::col("window_end"));
        }
        if (prop == "ROWTIME") {
            return std::optional<en::expr>(en::col("window_end") - en::lit(int64_t(1)));
        }
        return unsupported(e, fmt::format("{} (processing time)", text::to_upper(e.names.back())));
    };
    fin.hook = [&](const expr& e) -> parse_result<std::optional<en::expr>> {
        if (e.kind == expr_kind::call && !e.over && is_aggregate_name(text::to_upper(e.names.back()))) {
            auto c = add_agg(e);
            if (!c) {
                return c.error();
            }
            return std::optional<en::expr>(c.value());
        }
        if (e.kind == expr_kind::call) {
            auto [w, prop] = group_window_property(text::to_upper(e.names.back()));
            if (!w.empty()) {
                if (legacy.empty()) {
                    return at(e, fmt::format("{} needs GROUP BY {}(…)", text::to_upper(e.names.back()), w));
                }
                if (w != legacy) {
                    return at(e,
                              fmt::format("{} with GROUP BY {}(…)", text::to_upper(e.names.back()), legacy));
                }
                return window_property(e, prop);
            }
        }
        if (e.kind == expr_kind::column) {
            auto c = fin.resolve(e);
            if (!c) {
                return c.error();
            }
            if (c.value()->window_only) {
                if (c.value()->engine == "window_time") {
                    return std::optional<en::expr>(en::col("window_end") - en::lit(int64_t(1)));
                }
                return std::optional<en::expr>(en::col(c.value()->engine));
            }
            for (const auto& k : keys) {
                if (k.source == c.value()->engine) {
                    return std::optional<en::expr>(en::col(k.name));
                }
            }
        }
        for (const auto& k : keys) {
            if (k.source.empty() && *k.ast == e) {
                return std::optional<en::expr>(en::col(k.name));
            }
        }
        if (e.kind == expr_kind::column) {
            return at(e, fmt::format("column {} is neither a group key nor inside an aggregate",
                                     dotted(e.names)));
        }
        return std::optional<en::expr>();
    };

    std::vector<en::named_expr> final_cols;
    for (std::size_t i = 0; i < sc.items.size(); ++i) {
        const auto& item = sc.items[i];
        if (item.value.kind == expr_kind::star) {
            return unsupported(item.value, "SELECT * with GROUP BY");
        }
        auto v = fin.tr(item.value);
        if (!v) {
            return v.error();
        }
        final_cols.push_back(en::as(v.value(), names[i]));
    }
    std::optional<en::expr> having;
    if (sc.having) {
        auto h = fin.tr(*sc.having, en::data_type::boolean());
        if (!h) {
            return h.error();
        }
        having = h.value();
    }
    if (aggs.empty()) {
        // A window needs an aggregate; grouping alone (SELECT DISTINCT-like) counts rows.
        agg_item a;
        a.spec = en::count().as("$a0");
        a.output = en::data_type::int64();
        static const expr none;
        a.ast = &none;
        aggs.push_back(std::move(a));
    }

    // Before the window: the event time, the keys and the aggregates' inputs.
    std::vector<en::named_expr> pre;
    if (win) {
        pre.push_back(en::as(en::col(win->time), win->time));
    }
    std::vector<std::string> key_names;
    for (const auto& k : keys) {
        if (!win || k.name != win->time) {
            pre.push_back(en::as(k.value, k.name));
        }
        key_names.push_back(k.name);
    }
    for (std::size_t i = 0; i < aggs.size(); ++i) {
        if (aggs[i].input_name == fmt::format("$in{}", i)) {
            pre.push_back(en::as(aggs[i].input, aggs[i].input_name));
        }
    }
    source_pos wpos = win ? win->call->pos : gpos;
    uint32_t wlen = win ? head_length(*win->call) : 1;
    if (!pre.empty()) { // COUNT(*) alone needs no column
        const en::stream input = rel.s;
        rel.s = rel.s.project(pre);
        carry(input, rel.s, pre);
        if (auto c = check(wpos, wlen); !c) {
            return c.error();
        }
        step(fmt::format("project {}", describe(pre)));
    }
    en::window_options wo;
    wo.allowed_lateness = _opts.allowed_lateness;
    std::vector<en::aggregate_spec> specs;
    std::vector<std::string> agg_text;
    for (std::size_t i = 0; i < aggs.size(); ++i) {
        specs.push_back(aggs[i].spec);
        const char* kind = "?";
        switch (aggs[i].spec.kind) {
        case en::agg_kind::count_star:
            kind = "count(*)";
            break;
        case en::agg_kind::count:
            kind = "count";
            break;
        case en::agg_kind::count_distinct:
            kind = "count distinct";
            break;
        case en::agg_kind::sum:
            kind = "sum";
            break;
        case en::agg_kind::min:
            kind = "min";
            break;
        case en::agg_kind::max:
            kind = "max";
            break;
        case en::agg_kind::avg:
            kind = "avg";
            break;
        case en::agg_kind::first_value:
            kind = "first_value";
            break;
        case en::agg_kind::last_value:
            kind = "last_value";
            break;
        case en::agg_kind::percentile:
            kind = "percentile";
            break;
        }
        agg_text.push_back(
            aggs[i].spec.kind == en::agg_kind::count_star
                ? fmt::format("{} := {}", aggs[i].spec.name, kind)
                : fmt::format("{} := {}({})", aggs[i].spec.name, kind, aggs[i].spec.column));
    }
    std::string updating;
    en::stream w;
    const std::string by = keys.empty() ? "" : " by " + join_names(key_names);
    // Two phases (decision 0029): a local phase pre-aggregates each instance's rows before
    // the exchange, which then carries partial accumulators instead of rows, and a global
    // phase after it merges them into the one-phase result.
    const bool two = two_phase(rel, specs, win ? &*win : nullptr, key_names);
    const auto window_aggregate = [&](const en::window_options& o) {
        return keys.empty() ? rel.s.window(win->spec, o).aggregate(specs)
                            : rel.s.key_by(key_names).window(win->spec, o).aggregate(specs);
    };
    if (two) {
        en::stream local;
        if (!win) {
            en::group_options lo;
            lo.retractions = false;
            lo.phase = en::agg_phase::local;
            local = rel.s.group_aggregate(key_names, specs, lo);
        } else {
            en::window_options lo = wo;
            lo.phase = en::agg_phase::local;
            local = window_aggregate(lo);
        }
        if (auto c = check(wpos, wlen); !c) {
            return c.error();
        }
        if (win) {
            step(fmt::format("window {} on {}{} (local phase): {}", win->label, win->time, by, join_names(agg_text)));
            // The local phase decides lateness, as the one phase would (decision 0028).
            _out.late.push_back(local.late_rows());
            if (auto c = check(wpos, wlen); !c) {
                return c.error();
            }
        } else {
            step(fmt::format("group-aggregate{} (local phase): {}", by, join_names(agg_text)));
        }
        rel.s = local;
    }
    if (auto x = exchange(rel.s, key_names, wpos, win ? "a window aggregate without GROUP BY keys" : "an aggregate without GROUP BY");
        !x) {
        return x.error();
    }
    // What the global phase's line says it does: merge the partials of each aggregate.
    std::vector<std::string> merged;
    for (const auto& spec : specs) {
        merged.push_back(spec.name);
    }
    const std::string global_aggs = "merge " + join_names(merged);
    if (!win) {
        // No window: one updating result per key (a changelog).
        en::group_options go;
        go.retractions = !rel.updating.empty();
        go.phase = two ? en::agg_phase::global : en::agg_phase::single;
        w = rel.s.group_aggregate(key_names, specs, go);
        carry(rel.s, w);
        if (auto c = check(wpos, wlen); !c) {
            return c.error();
        }
        step(fmt::format("group-aggregate{}{}{}: {}", by, go.retractions ? " (retracting)" : "",
                         two ? " (global phase)" : "", two ? global_aggs : join_names(agg_text)));
        updating = keys.empty() ? "an aggregate without a window" : "GROUP BY without a window";
    } else {
        wo.phase = two ? en::agg_phase::global : en::agg_phase::single;
        w = window_aggregate(wo);
        carry(rel.s, w);
        if (auto c = check(wpos, wlen); !c) {
            return c.error();
        }
        if (two) {
            // Partials are never late here: they leave the local phase before the watermark
            // that would close their last window, so the global phase has no side output.
            step(fmt::format("window {} on {}{} (global phase): {}", win->label, en::pane_start_column, by,
                             global_aggs));
        } else {
            step(fmt::format("window {} on {}{}: {}", win->label, win->time, by, join_names(agg_text)));
            _out.late.push_back(w.late_rows());
            if (auto c = check(wpos, wlen); !c) {
                return c.error();
            }
        }
    }
    if (having) {
        const en::stream unfiltered = w;
        w = w.filter(*having);
        carry(unfiltered, w);
        if (auto c = check(sc.having->pos); !c) {
            return c.error();
        }
        step(fmt::format("filter {}", having->to_string()));
    }
    {
        const en::stream aggregated = w;
        w = w.project(final_cols);
        carry(aggregated, w, final_cols);
    }
    if (auto c = check(sc.items[0].value.pos); !c) {
        return c.error();
    }
    step(fmt::format("project {}", describe(final_cols)));
    // A selected window_time (or *_ROWTIME) is the event time of the window's rows, as in
    // Flink: windows further down (over a view or WITH query of this one) run on it. The
    // rows leave the window in window-end order, so a watermark right behind them is exact.
    for (std::size_t i = 0; i < sc.items.size(); ++i) {
        const expr& e = sc.items[i].value;
        bool rowtime = false;
        if (e.kind == expr_kind::column) {
            auto c = fin.resolve(e);
            rowtime = c && c.value()->window_only && c.value()->engine == "window_time";
        } else if (e.kind == expr_kind::call && !e.over) {
            rowtime = group_window_property(text::to_upper(e.names.back())).second == "ROWTIME";
        }
        if (rowtime && win) {
            w = w.watermark(names[i], std::chrono::milliseconds(0));
            if (auto c = check(e.pos, head_length(e)); !c) {
                return c.error();
            }
            step(fmt::format("watermark {} - 0 ms", names[i]));
            break;
        }
    }
    std::optional<window_bounds> bounds;
    if (win && win->spec.kind != en::window_kind::session) {
        bounds = kept_bounds(window_bounds{win->spec, win->label, "window_start", "window_end"},
                             final_cols);
    }
    return query_out{w, names, updating, false, bounds};
}

} // namespace runnel::sql::plan_detail
