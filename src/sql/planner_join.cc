#include "sql/planner_internal.h"

#include "base/text.h"
#include "sql/parser.h"

#include <algorithm>

namespace runnel::sql::plan_detail {

namespace {

/// The conjuncts of `e` (a AND b AND c → a, b, c), BETWEEN split into its two comparisons.
void conjuncts(const expr& e, std::vector<expr>& out) {
    if (e.kind == expr_kind::binary && e.text == "AND") {
        conjuncts(e.args[0], out);
        conjuncts(e.args[1], out);
        return;
    }
    if (e.kind == expr_kind::between && !e.negated) {
        expr lo;
        lo.kind = expr_kind::binary;
        lo.pos = e.pos;
        lo.text = ">=";
        lo.args = {e.args[0], e.args[1]};
        expr hi = lo;
        hi.text = "<=";
        hi.args = {e.args[0], e.args[2]};
        out.push_back(std::move(lo));
        out.push_back(std::move(hi));
        return;
    }
    out.push_back(e);
}

} // namespace

parse_result<relation> builder::join(const table_ref& t) {
    if (t.join == join_kind::cross) {
        return unsupported(t.pos, "CROSS JOIN");
    }
    if (!t.using_columns.empty()) {
        return unsupported(t.pos, "JOIN … USING; write ON a.k = b.k");
    }
    if (!t.condition) {
        return unsupported(t.pos, "a JOIN without ON");
    }
    if (t.right->kind == table_ref_kind::named && t.right->system_time) {
        return temporal_join(t);
    }
    auto lr = from_item(*t.left);
    if (!lr) {
        return lr;
    }
    auto rr = from_item(*t.right);
    if (!rr) {
        return rr;
    }
    relation l = std::move(lr).value(), r = std::move(rr).value();
    auto wj = window_join(t, l, r);
    if (!wj) {
        return wj.error();
    }
    if (wj.value()) {
        return std::move(*wj.value());
    }
    if (t.join == join_kind::right || t.join == join_kind::full) {
        return unsupported(t.pos, fmt::format("{} JOIN other than a window join (ON L.window_start = "
                                              "R.window_start AND L.window_end = R.window_end "
                                              "over two windowed inputs)",
                                              t.join == join_kind::right ? "RIGHT" : "FULL"));
    }
    const std::string& updating = !l.updating.empty() ? l.updating : r.updating;
    translator lt(l, l.s.schema_of()), rt(r, r.s.schema_of());
    // Which side a plain column reference belongs to (0 left, 1 right), and its engine name.
    auto side_of = [&](const expr& e) -> std::optional<std::pair<int, std::string>> {
        if (e.kind != expr_kind::column) {
            return std::nullopt;
        }
        auto a = lt.resolve(e), b = rt.resolve(e);
        if (a && !b) {
            return std::pair<int, std::string>{0, a.value()->engine};
        }
        if (b && !a) {
            return std::pair<int, std::string>{1, b.value()->engine};
        }
        return std::nullopt;
    };
    // An event-time column of one side plus an optional interval: (side, offset in ms).
    auto time_term = [&](const expr& e) -> std::optional<std::pair<int, int64_t>> {
        const expr* c = &e;
        int64_t off = 0;
        if (e.kind == expr_kind::binary && (e.text == "+" || e.text == "-") &&
            e.args[1].kind == expr_kind::interval) {
            auto ms = interval_ms(e.args[1]);
            if (!ms) {
                return std::nullopt;
            }
            off = e.text == "+" ? ms.value() : -ms.value();
            c = &e.args[0];
        }
        auto s = side_of(*c);
        if (!s) {
            return std::nullopt;
        }
        const std::string& time = s->first == 0 ? l.s.time_column() : r.s.time_column();
        if (time.empty() || s->second != time) {
            return std::nullopt;
        }
        return std::pair<int, int64_t>{s->first, off};
    };
    en::join_spec spec;
    spec.type = t.join == join_kind::left ? en::join_type::left : en::join_type::inner;
    std::optional<int64_t> lower, upper;
    std::vector<expr> parts, residual, time_bounds;
    conjuncts(*t.condition, parts);
    for (auto& c : parts) {
        if (c.kind == expr_kind::binary && c.args.size() == 2) {
            const std::string& op = c.text;
            auto a = side_of(c.args[0]), b = side_of(c.args[1]);
            if (op == "=" && a && b && a->first != b->first) {
                spec.left_keys.push_back(a->first == 0 ? a->second : b->second);
                spec.right_keys.push_back(a->first == 0 ? b->second : a->second);
                continue;
            }
            auto x = time_term(c.args[0]), y = time_term(c.args[1]);
            bool cmp = op == "<" || op == "<=" || op == ">" || op == ">=" || op == "=";
            if (cmp && x && y && x->first != y->first) {
                // Normalise to right_time - left_time `op` k.
                std::string o = op;
                int64_t k = 0;
                if (x->first == 1) {
                    k = y->second - x->second; // R + ox op L + oy
                } else {
                    k = x->second - y->second; // L + ox op R + oy  ⇔  R - L op' ox - oy
                    o = op == "<"    ? ">"
                        : op == "<=" ? ">="
                        : op == ">"  ? "<"
                        : op == ">=" ? "<="
                                     : op;
                }
                auto raise = [&](std::optional<int64_t>& b, int64_t v, bool up) {
                    b = !b ? v : up ? std::min(*b, v) : std::max(*b, v);
                };
                if (o == ">=" || o == "=") {
                    raise(lower, k, false);
                }
                if (o == ">") {
                    raise(lower, k + 1, false);
                }
                if (o == "<=" || o == "=") {
                    raise(upper, k, true);
                }
                if (o == "<") {
                    raise(upper, k - 1, true);
                }
                time_bounds.push_back(std::move(c));
                continue;
            }
        }
        residual.push_back(std::move(c));
    }
    if (spec.left_keys.empty()) {
        return unsupported(*t.condition,
                           "a JOIN without an equality between columns of its two sides");
    }
    if (lower && upper) {
        en::join_spec::bounds b;
        b.left_time = l.s.time_column();
        b.right_time = r.s.time_column();
        b.lower = std::chrono::milliseconds(*lower);
        b.upper = std::chrono::milliseconds(*upper);
        spec.interval = b;
    } else {
        // One bound alone does not bound the join's state: a regular join, then the bound as
        // a filter.
        for (auto& c : time_bounds) {
            residual.push_back(std::move(c));
        }
    }
    if (spec.interval && !updating.empty()) {
        return unsupported(t.pos, fmt::format("an interval JOIN of an updating input (the changelog "
                                              "of {})",
                                              updating));
    }
    if (spec.type == en::join_type::left && (!spec.interval || !residual.empty())) {
        return unsupported(
            t.pos, "LEFT JOIN other than an interval join on keys (ON a.k = b.k AND b.ts BETWEEN "
                   "a.ts - INTERVAL … AND a.ts + INTERVAL …)");
    }
    std::string label =
        fmt::format("{}join on {} = {}", spec.type == en::join_type::left ? "left " : "",
                    join_names(spec.left_keys), join_names(spec.right_keys));
    if (spec.interval) {
        label += fmt::format(" and right {} - left {} in [{} ms, {} ms]", spec.interval->right_time,
                             spec.interval->left_time, spec.interval->lower.count(),
                             spec.interval->upper.count());
    }
    relation out;
    out.updating = updating;
    en::stream left = l.s, right = r.s;
    if (auto x = exchange_side(left, spec.left_keys, t.condition->pos); !x) {
        return x.error();
    }
    if (auto x = exchange_side(right, spec.right_keys, t.condition->pos); !x) {
        return x.error();
    }
    out.s = left.join(right, spec);
    carry(left, out.s); // the left side's key columns keep their names
    if (auto c = check(t.condition->pos); !c) {
        return c.error();
    }
    step(label);
    return joined(std::move(out), l, r, residual, t.condition->pos);
}

/// The columns of a join's output (the left side's, then the right side's under the names the
/// engine gave them) and the filter of the ON conditions the join itself did not apply.
parse_result<relation> builder::joined(relation out, const relation& l, const relation& r,
                                       const std::vector<expr>& residual, source_pos pos) {
    auto ls = l.s.schema_of(), rs = r.s.schema_of();
    auto js = out.s.schema_of();
    out.cols = l.cols;
    for (const auto& c : r.cols) {
        rel_column rc = c;
        rc.engine = js->at(ls->size() + *rs->index_of(c.engine)).name;
        out.cols.push_back(std::move(rc));
    }
    if (!residual.empty()) {
        translator tr(out, js);
        en::expr pred;
        for (const auto& c : residual) {
            auto v = tr.tr(c, en::data_type::boolean());
            if (!v) {
                return v.error();
            }
            pred = pred.empty() ? v.value() : (pred && v.value());
        }
        const en::stream unfiltered = out.s;
        out.s = out.s.filter(pred);
        carry(unfiltered, out.s);
        if (auto c = check(pos); !c) {
            return c.error();
        }
        step(fmt::format("filter {}", pred.to_string()));
    }
    return out;
}

/// The window join: both sides windowed by the same TUMBLE, HOP or CUMULATE (a window table
/// function read directly, or a window aggregation's output that keeps window_start and
/// window_end) and ON setting both bounds equal. Like Flink, ON with only one of the two bound
/// equalities, or equal bounds of differently windowed sides, is an error rather than a
/// regular join; two window aggregations joined on other columns only stay a regular join.
parse_result<std::optional<relation>> builder::window_join(const table_ref& t, const relation& l,
                                                           const relation& r) {
    // A side's window: the bounds' engine columns, the spec, and the TVF call if it is one.
    struct side_window {
        window_bounds b;
        const expr* call = nullptr;
    };
    auto window_of = [](const relation& x) -> std::optional<side_window> {
        if (x.window) {
            return side_window{
                {x.window->spec, x.window->label, "window_start", "window_end"}, x.window->call};
        }
        if (x.bounds) {
            return side_window{*x.bounds, nullptr};
        }
        return std::nullopt;
    };
    const auto lw = window_of(l), rw = window_of(r);
    if (!lw && !rw) {
        return std::optional<relation>();
    }
    translator lt(l, l.s.schema_of()), rt(r, r.s.schema_of());
    auto side_of = [&](const expr& e) -> std::optional<std::pair<int, const rel_column*>> {
        if (e.kind != expr_kind::column) {
            return std::nullopt;
        }
        auto a = lt.resolve(e), b = rt.resolve(e);
        if (a && !b) {
            return std::pair<int, const rel_column*>{0, a.value()};
        }
        if (b && !a) {
            return std::pair<int, const rel_column*>{1, b.value()};
        }
        return std::nullopt;
    };
    std::vector<expr> parts, residual;
    conjuncts(*t.condition, parts);
    const expr* start_eq = nullptr;
    const expr* end_eq = nullptr;
    en::window_join_spec spec;
    for (auto& c : parts) {
        if (c.kind == expr_kind::binary && c.text == "=" && c.args.size() == 2) {
            auto a = side_of(c.args[0]), b = side_of(c.args[1]);
            if (a && b && a->first != b->first) {
                const rel_column* lc = a->first == 0 ? a->second : b->second;
                const rel_column* rc = a->first == 0 ? b->second : a->second;
                if (lw && rw && lc->engine == lw->b.start && rc->engine == rw->b.start) {
                    start_eq = &c;
                    continue;
                }
                if (lw && rw && lc->engine == lw->b.end && rc->engine == rw->b.end) {
                    end_eq = &c;
                    continue;
                }
                if (!lc->window_only && !rc->window_only) {
                    spec.left.keys.push_back(lc->engine);
                    spec.right.keys.push_back(rc->engine);
                    continue;
                }
            }
        }
        residual.push_back(std::move(c));
    }
    const expr* tvf = lw && lw->call ? lw->call : rw && rw->call ? rw->call : nullptr;
    const std::string shape =
        "ON L.window_start = R.window_start AND L.window_end = R.window_end over two window "
        "table functions or window aggregations";
    if (!start_eq && !end_eq) {
        if (tvf) {
            return at(*tvf, fmt::format("a window table function in a JOIN makes a window join, "
                                        "which needs {}",
                                        shape));
        }
        return std::optional<relation>(); // a regular join of window aggregations' results
    }
    if (!start_eq || !end_eq) {
        const expr& one = start_eq ? *start_eq : *end_eq;
        return at(one, fmt::format("a window join needs both window bounds equal, and ON sets "
                                   "only {} equal: add the equality of {} too",
                                   start_eq ? "window_start" : "window_end",
                                   start_eq ? "window_end" : "window_start"));
    }
    if (lw->b.spec.kind != rw->b.spec.kind || lw->b.spec.size != rw->b.spec.size ||
        lw->b.spec.slide != rw->b.spec.slide) {
        return at(*start_eq, fmt::format("a window join needs both sides windowed alike, and the "
                                         "left side is windowed by {}, the right side by {}",
                                         lw->b.label, rw->b.label));
    }
    for (const auto* w : {&*lw, &*rw}) {
        if (w->b.spec.kind == en::window_kind::session) {
            return unsupported(w->call ? *w->call : *start_eq, "a window join of SESSION windows");
        }
    }
    const std::string& updating = !l.updating.empty() ? l.updating : r.updating;
    if (!updating.empty()) {
        return unsupported(t.pos, fmt::format("a window join of an updating input (the changelog "
                                              "of {})",
                                              updating));
    }
    spec.type = t.join == join_kind::left    ? en::window_join_type::left
                : t.join == join_kind::right ? en::window_join_type::right
                : t.join == join_kind::full  ? en::window_join_type::full
                                             : en::window_join_type::inner;
    spec.allowed_lateness = _opts.allowed_lateness;
    for (int k = 0; k < 2; ++k) {
        const side_window& w = k == 0 ? *lw : *rw;
        const relation& x = k == 0 ? l : r;
        auto& in = k == 0 ? spec.left : spec.right;
        if (w.call) {
            in.time = x.window->time;
            in.assign = w.b.spec;
        } else {
            in.window_start = w.b.start;
            in.window_end = w.b.end;
        }
    }
    // The joined relation: each side's columns (a window table function's window columns are
    // real ones now), the right side's under the names the engine gives them.
    auto ls = en::window_join_side_schema(*l.s.schema_of(), spec.left);
    auto rs = en::window_join_side_schema(*r.s.schema_of(), spec.right);
    auto js = en::window_join_schema(*l.s.schema_of(), *r.s.schema_of(), spec);
    relation out;
    for (const auto& c : l.cols) {
        rel_column lc = c;
        lc.window_only = false;
        out.cols.push_back(std::move(lc));
    }
    for (const auto& c : r.cols) {
        rel_column rc = c;
        rc.window_only = false;
        rc.engine = js->at(ls->size() + *rs->index_of(c.engine)).name;
        out.cols.push_back(std::move(rc));
    }
    std::string cond_text;
    if (!residual.empty()) {
        translator tr(out, js);
        for (const auto& c : residual) {
            auto v = tr.tr(c, en::data_type::boolean());
            if (!v) {
                return v.error();
            }
            spec.condition = spec.condition.empty() ? v.value() : (spec.condition && v.value());
        }
        cond_text = spec.condition.to_string();
    }
    // The output keeps event time: the left window's window_time, or the left side's own time
    // column (a window aggregation that selected window_time), else the right side's.
    std::string time;
    if (lw->call) {
        time = "window_time";
    } else if (!l.s.time_column().empty()) {
        time = l.s.time_column();
    } else if (rw->call) {
        time = js->at(ls->size() + *rs->index_of("window_time")).name;
    } else if (!r.s.time_column().empty()) {
        time = js->at(ls->size() + *rs->index_of(r.s.time_column())).name;
    }
    en::stream left = l.s, right = r.s;
    if (auto x = exchange_side(left, spec.left.keys, t.condition->pos); !x) {
        return x.error();
    }
    if (auto x = exchange_side(right, spec.right.keys, t.condition->pos); !x) {
        return x.error();
    }
    out.s = left.window_join(right, spec, time);
    // A RIGHT or FULL join's rows of the right side alone have NULL left keys, wherever their
    // right key put them: only an inner or LEFT join keeps the left side's partitioning.
    if (spec.type == en::window_join_type::inner || spec.type == en::window_join_type::left) {
        carry(left, out.s);
    }
    if (auto c = check(t.condition->pos); !c) {
        return c.error();
    }
    out.bounds = window_bounds{lw->b.spec, lw->b.label, lw->call ? "window_start" : lw->b.start,
                               lw->call ? "window_end" : lw->b.end};
    static constexpr const char* type_names[] = {"", "left ", "right ", "full "};
    auto side_text = [](const side_window& w, const en::window_join_input& in) {
        return w.call ? fmt::format("by {}", in.time)
                      : fmt::format("in {}, {}", in.window_start, in.window_end);
    };
    std::string label = fmt::format(
        "{}window join per {}{}{} (left windows {}, right windows {})", type_names[int(spec.type)],
        lw->b.label,
        spec.left.keys.empty() ? ""
                               : fmt::format(" on {} = {}", join_names(spec.left.keys),
                                             join_names(spec.right.keys)),
        cond_text.empty() ? "" : " if " + cond_text, side_text(*lw, spec.left),
        side_text(*rw, spec.right));
    step(label);
    _out.late.push_back(out.s.late_rows());
    if (auto c = check(t.condition->pos); !c) {
        return c.error();
    }
    return std::optional<relation>(std::move(out));
}

parse_result<relation> builder::temporal_join(const table_ref& t) {
    const table_ref& right = *t.right;
    const expr& as_of = *right.system_time;
    auto lr = from_item(*t.left);
    if (!lr) {
        return lr;
    }
    relation l = std::move(lr).value();
    if (l.window) {
        return unsupported(*l.window->call, "a window table function in a JOIN");
    }
    if (!l.updating.empty()) {
        return unsupported(t.pos, fmt::format("FOR SYSTEM_TIME AS OF joined to an updating input "
                                              "(the changelog of {})",
                                              l.updating));
    }
    // AS OF names the left side's time attribute: its event time or its PROCTIME() column.
    translator lt(l, l.s.schema_of());
    const std::string& ltime = l.s.time_column();
    std::string ltime_name;
    for (const auto& c : l.cols) {
        if (!ltime.empty() && c.engine == ltime) {
            ltime_name = c.name;
            break;
        }
    }
    auto as_of_col = as_of.kind == expr_kind::column ? lt.resolve(as_of)
                                                     : parse_result<const rel_column*>(nullptr);
    if (!as_of_col || !as_of_col.value() || as_of_col.value()->engine != ltime) {
        std::string what =
            ltime.empty()
                ? "the left side has none here (no WATERMARK column and no PROCTIME() column)"
                : fmt::format("the left side's is {} ({})", ltime_name,
                              l.proctime ? "PROCTIME()" : "its event time");
        return at(as_of,
                  fmt::format("FOR SYSTEM_TIME AS OF takes the time attribute of the left side "
                              "of the JOIN, and {} is not it: {}",
                              to_string(as_of), what));
    }
    const bool proctime = l.proctime;
    // The right side: a table (or view) by name, read in full.
    const bool is_cte = right.names.size() == 1 &&
                        std::any_of(_ctes.begin(), _ctes.end(), [&](const common_table* c) {
                            return c->name == right.names[0];
                        });
    const table_schema* ts = is_cte ? nullptr : _catalog.find_table(right.names);
    if (ts && ts->kind != relation_kind::table) {
        ts = nullptr;
    }
    const std::string tname = dotted(right.names);
    if (!proctime) {
        if (!ts || ts->primary_key.empty() || ts->event_time_column.empty()) {
            return at(right.pos, 1,
                      fmt::format("an event-time temporal join (FOR SYSTEM_TIME AS OF {}) needs a "
                                  "versioned table: declare {} with a PRIMARY KEY and a WATERMARK",
                                  to_string(as_of), ts ? "table " + tname : tname + " as a table"));
        }
    }
    if (!right.column_aliases.empty()) {
        return unsupported(right.pos, "column aliases on a table");
    }
    auto rr = named(right.names, right.pos, right.alias);
    if (!rr) {
        return rr;
    }
    relation r = std::move(rr).value();
    if (r.window) {
        return unsupported(*r.window->call, "a window table function in a JOIN");
    }
    if (!proctime && (r.s.time_column().empty() || r.proctime)) {
        return at(right.pos, 1,
                  fmt::format("an event-time temporal join needs the event time of "
                              "table {}: its WATERMARK column",
                              tname));
    }
    // ON: equalities of a right column with an expression of the left side are the lookup key;
    // the rest filters the joined rows.
    translator rt(r, r.s.schema_of());
    struct key_part {
        en::expr left;
        const rel_column* right = nullptr;
        std::size_t part = 0; ///< the conjunct of ON it comes from
    };
    std::vector<key_part> keys;
    std::vector<expr> parts, residual;
    conjuncts(*t.condition, parts);
    for (std::size_t i = 0; i < parts.size(); ++i) {
        const expr& c = parts[i];
        if (c.kind != expr_kind::binary || c.text != "=" || c.args.size() != 2) {
            continue;
        }
        for (int side = 0; side < 2; ++side) {
            const expr& rc = c.args[side];
            if (rc.kind != expr_kind::column || lt.resolve(rc)) {
                continue;
            }
            auto rcol = rt.resolve(rc);
            auto lv = rcol ? lt.tr(c.args[1 - side]) : parse_result<en::expr>(en::expr());
            if (rcol && lv) {
                keys.push_back({lv.value(), rcol.value(), i});
                break;
            }
        }
    }
    // With a PRIMARY KEY, the key is exactly it (a row replaces, or versions, the row of its
    // key); other equalities filter.
    const std::vector<std::string> pk = ts ? ts->primary_key : std::vector<std::string>{};
    if (!pk.empty()) {
        std::vector<key_part> by_pk;
        std::vector<std::string> missing;
        for (const auto& k : pk) {
            auto it = std::find_if(keys.begin(), keys.end(),
                                   [&](const key_part& p) { return text::iequals(p.right->name, k); });
            if (it == keys.end()) {
                missing.push_back(k);
            } else {
                by_pk.push_back(*it);
            }
        }
        if (!missing.empty()) {
            return at(
                *t.condition,
                fmt::format("{} of table {} needs ON to set its PRIMARY KEY ({}) equal to the "
                            "left side; nothing sets {}",
                            proctime ? "a lookup join" : "an event-time temporal join", tname,
                            join_names(pk), join_names(missing, " and ")));
        }
        keys = std::move(by_pk);
    }
    for (std::size_t i = 0; i < parts.size(); ++i) {
        if (std::none_of(keys.begin(), keys.end(),
                         [&](const key_part& k) { return k.part == i; })) {
            residual.push_back(std::move(parts[i]));
        }
    }
    if (keys.empty()) {
        return at(*t.condition,
                  fmt::format("a lookup join of table {} needs ON to set a column of {} equal to "
                              "an expression of the left side (its lookup key)",
                              tname, tname));
    }
    const auto type = t.join == join_kind::left ? en::join_type::left : en::join_type::inner;
    if (type == en::join_type::left && !residual.empty()) {
        return unsupported(*t.condition, "LEFT JOIN … FOR SYSTEM_TIME AS OF with conditions "
                                         "besides the key equalities");
    }
    // Left keys that are not plain columns of the right type are computed into hidden columns.
    auto ls = l.s.schema_of(), rs = r.s.schema_of();
    std::vector<std::string> lkeys, rkeys;
    std::vector<en::named_expr> proj;
    for (const auto& f : ls->fields()) {
        proj.push_back(en::as(en::col(f.name), f.name));
    }
    bool computed = false;
    for (std::size_t i = 0; i < keys.size(); ++i) {
        en::expr e = keys[i].left;
        auto want = rs->at(*rs->index_of(keys[i].right->engine)).type;
        auto have = lt.type_of(e);
        if (have && !(*have == want)) {
            e = en::cast(e, want);
        }
        rkeys.push_back(keys[i].right->engine);
        if (e.node().op == en::expr_op::column) {
            lkeys.push_back(e.node().name);
            continue;
        }
        std::string name = fmt::format("$key{}", i);
        while (ls->index_of(name)) {
            name += "_";
        }
        proj.push_back(en::as(e, name));
        lkeys.push_back(name);
        computed = true;
    }
    if (computed) {
        l.s = l.s.project(proj);
        if (auto c = check(t.condition->pos); !c) {
            return c.error();
        }
        step(fmt::format("project {}", describe(proj)));
        ls = l.s.schema_of();
    }
    // Both sides by the key: each instance holds the table's rows of its keys (a table read
    // by one instance, a file, reaches every key's instance this way).
    if (auto x = exchange_side(l.s, lkeys, t.condition->pos); !x) {
        return x.error();
    }
    if (auto x = exchange_side(r.s, rkeys, t.condition->pos); !x) {
        return x.error();
    }
    const en::stream keyed_left = l.s;
    relation out;
    out.proctime = proctime;
    std::string label;
    if (proctime) {
        const bool whole = ts && _conn.bounded(*ts);
        out.s = l.s.lookup_join(r.s, lkeys, rkeys, type, whole);
        label = fmt::format("{}lookup join on {} = {} (processing time{})",
                            type == en::join_type::left ? "left " : "", join_names(lkeys),
                            join_names(rkeys), whole ? ", the whole table first" : "");
    } else {
        out.s = l.s.temporal_join(r.s, lkeys, rkeys, type);
        label = fmt::format("{}temporal join on {} = {} as of {} (versions by {})",
                            type == en::join_type::left ? "left " : "", join_names(lkeys),
                            join_names(rkeys), ltime, r.s.time_column());
    }
    carry(keyed_left, out.s);
    if (auto c = check(t.condition->pos); !c) {
        return c.error();
    }
    step(label);
    return joined(std::move(out), l, r, residual, t.condition->pos);
}

} // namespace runnel::sql::plan_detail
