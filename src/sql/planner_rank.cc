#include "sql/planner_internal.h"

#include "base/text.h"

#include <algorithm>
#include <charconv>

namespace runnel::sql::plan_detail {

namespace {

/// True when `e` reads column `name`, or is or holds `*` (which reads every column).
bool reads_column(const expr& e, const std::string& name) {
    if (e.kind == expr_kind::star) {
        return true;
    }
    if (e.kind == expr_kind::column && text::iequals(e.names.back(), name)) {
        return true;
    }
    if (e.filter && reads_column(*e.filter, name)) {
        return true;
    }
    return std::any_of(e.args.begin(), e.args.end(),
                       [&](const expr& a) { return reads_column(a, name); });
}

} // namespace

parse_result<query_out> builder::top_n(const query& outer, const select_item& rn) {
    const table_ref& from = outer.select.from[0];
    const query& inner = *from.subquery;
    const select_core& ic = inner.select;
    const expr& call = rn.value;
    const window_spec& over = *call.over;
    if (!inner.with.empty() || !inner.order_by.empty() || inner.limit || ic.distinct ||
        !ic.group_by.empty() || ic.having) {
        return unsupported(
            call, "ROW_NUMBER() OVER in a query with WITH, ORDER BY, LIMIT, DISTINCT or GROUP BY "
                  "(aggregate in a subquery below it)");
    }
    if (over.has_frame) {
        return unsupported(call, "ROW_NUMBER() OVER with a frame");
    }
    if (rn.alias.empty()) {
        return at(call, "name the ROW_NUMBER() column (AS rn) and filter on it: WHERE rn <= N");
    }
    // N from the outer WHERE, which must be exactly `rn <= N`, `rn < N` or `rn = 1`.
    const expr* w = outer.select.where.get();
    std::optional<int64_t> n;
    auto is_rn = [&](const expr& e) {
        return e.kind == expr_kind::column && e.names.back() == rn.alias;
    };
    auto int_of = [](const expr& e) -> std::optional<int64_t> {
        if (e.kind != expr_kind::literal || e.literal != literal_kind::integer) {
            return std::nullopt;
        }
        int64_t v = 0;
        auto [p, ec] = std::from_chars(e.text.data(), e.text.data() + e.text.size(), v);
        if (ec != std::errc() || p != e.text.data() + e.text.size()) {
            return std::nullopt;
        }
        return v;
    };
    if (w && w->kind == expr_kind::binary && w->args.size() == 2) {
        std::string op = w->text;
        const expr* l = &w->args[0];
        const expr* r = &w->args[1];
        if (is_rn(*r) && !is_rn(*l)) {
            std::swap(l, r);
            op = op == "<=" ? ">=" : op == ">=" ? "<=" : op == "<" ? ">" : op == ">" ? "<" : op;
        }
        auto v = int_of(*r);
        if (is_rn(*l) && v) {
            if (op == "<=") {
                n = *v;
            } else if (op == "<") {
                n = *v - 1;
            } else if (op == "=" && *v == 1) {
                n = 1;
            }
        }
    }
    if (!n || *n < 1) {
        return unsupported(
            w ? *w : call,
            fmt::format("a ROW_NUMBER() query other than a Top-N filtered by WHERE {} "
                        "<= N",
                        rn.alias));
    }
    bool where_used = false;
    auto rel_r = from_clause(ic, where_used);
    if (!rel_r) {
        return rel_r.error();
    }
    relation rel = std::move(rel_r).value();
    if (rel.window) {
        return unsupported(*rel.window->call,
                           "a Top-N straight over a window table function (aggregate per "
                           "window first, then rank the aggregated rows)");
    }
    if (ic.where && !where_used) {
        translator tr(rel, rel.s.schema_of());
        auto pred = tr.tr(*ic.where, en::data_type::boolean());
        if (!pred) {
            return pred.error();
        }
        rel.s = rel.s.filter(pred.value());
        if (auto c = check(ic.where->pos); !c) {
            return c.error();
        }
        step(fmt::format("filter {}", pred.value().to_string()));
    }
    translator tr(rel, rel.s.schema_of());
    en::top_n_spec spec;
    spec.n = static_cast<size_t>(*n);
    bool has_start = false;
    for (const expr& k : over.partition_by) {
        if (k.kind != expr_kind::column) {
            return unsupported(k, "PARTITION BY an expression in a Top-N");
        }
        auto c = tr.resolve(k);
        if (!c) {
            return c.error();
        }
        spec.partition_keys.push_back(c.value()->engine);
        if (c.value()->name == "window_start") {
            has_start = true;
        }
        if (c.value()->name == "window_end") {
            spec.window_end = c.value()->engine;
        }
    }
    if (has_start != !spec.window_end.empty()) {
        return at(call, "a window Top-N partitions by both window_start and window_end");
    }
    const bool windowed = has_start;
    if (!windowed && !rel.updating.empty()) {
        return unsupported(
            call, fmt::format("a Top-N over an updating input (the changelog of {})", rel.updating));
    }
    if (over.order_by.empty()) {
        return unsupported(call, "ROW_NUMBER() OVER without ORDER BY");
    }
    std::vector<std::pair<std::string, bool>> order;
    std::vector<std::string> order_text;
    for (const order_item& o : over.order_by) {
        if (o.value.kind != expr_kind::column) {
            return unsupported(o.value, "a Top-N ordered by an expression (order by a column)");
        }
        if (o.nulls_first && *o.nulls_first) {
            return unsupported(o.value, "NULLS FIRST in a Top-N (NULLs rank last)");
        }
        auto oc = tr.resolve(o.value);
        if (!oc) {
            return oc.error();
        }
        order.emplace_back(oc.value()->engine, o.descending);
        order_text.push_back(
            fmt::format("{} {}", oc.value()->engine, o.descending ? "desc" : "asc"));
    }
    spec.order_by = order[0].first;
    spec.descending = order[0].second;
    spec.then_by.assign(order.begin() + 1, order.end());

    // Unbounded forms: ORDER BY the event time with rn = 1 is a deduplication (ASC keeps each
    // key's first row, an append-only stream; DESC its last, a changelog); anything else is a
    // Top-N changelog, with a rank column only when the outer query reads rn.
    bool rank_read = false;
    for (const auto& item : outer.select.items) {
        rank_read = rank_read || reads_column(item.value, rn.alias);
    }
    for (const expr& g : outer.select.group_by) {
        rank_read = rank_read || reads_column(g, rn.alias);
    }
    if (outer.select.having) {
        rank_read = rank_read || reads_column(*outer.select.having, rn.alias);
    }
    const std::string& time = rel.s.time_column();
    const bool dedup = !windowed && spec.n == 1 && order.size() == 1 && !time.empty() &&
                       spec.order_by == time;
    std::string updating;
    std::optional<en::expr> rank; // what rn is, when the outer query reads it
    if (auto x = exchange(rel.s, spec.partition_keys, call.pos, "a Top-N without PARTITION BY"); !x) {
        return x.error();
    }
    if (dedup && !spec.descending) {
        rel.s = rel.s.deduplicate(spec.partition_keys);
        if (auto c = check(call.pos, head_length(call)); !c) {
            return c.error();
        }
        step(fmt::format("deduplicate {} (keep the first row)", join_names(spec.partition_keys)));
        rank = en::lit(int64_t(1));
    } else {
        std::string label = fmt::format("top-n {} by {} per {}", spec.n, join_names(order_text),
                                        join_names(spec.partition_keys));
        if (windowed) {
            rank = en::col("rank");
        } else if (spec.n == 1) {
            rank = en::lit(int64_t(1));
        } else if (rank_read) {
            spec.rank_column = true;
            rank = en::col("rank");
        }
        if (dedup) {
            spec.later_wins_ties = true;
            updating = "deduplication keeping the last row";
            label = fmt::format("deduplicate {} (keep the last row by {}, a changelog)",
                                join_names(spec.partition_keys), time);
        } else if (!windowed) {
            updating = "a Top-N without a window";
            label += spec.rank_column ? " (a changelog with ranks)" : " (a changelog)";
        }
        rel.s = rel.s.top_n(spec);
        if (auto c = check(call.pos, head_length(call)); !c) {
            return c.error();
        }
        step(label);
    }
    // The inner SELECT list over the ranked rows (the ROW_NUMBER column is `rank`).
    if (rank && rank->node().op == en::expr_op::column) {
        rel.cols.push_back({"$rank", "", "rank", false, true});
    }
    translator ranked(rel, rel.s.schema_of());
    auto names = output_names(inner, rel);
    if (!names) {
        return names.error();
    }
    std::vector<en::named_expr> cols;
    std::vector<std::string> kept;
    std::size_t i = 0;
    for (const auto& item : ic.items) {
        if (&item == &rn) {
            if (rank) { // else the outer query does not read it
                cols.push_back(en::as(*rank, names.value()[i]));
                kept.push_back(names.value()[i]);
            }
            ++i;
            continue;
        }
        if (item.value.kind == expr_kind::star) {
            for (const auto* c : star_columns(item.value, rel)) {
                cols.push_back(en::as(en::col(c->engine), names.value()[i]));
                kept.push_back(names.value()[i++]);
            }
            continue;
        }
        auto v = ranked.tr(item.value);
        if (!v) {
            return v.error();
        }
        cols.push_back(en::as(v.value(), names.value()[i]));
        kept.push_back(names.value()[i++]);
    }
    rel.s = rel.s.project(cols);
    if (auto c = check(ic.items[0].value.pos); !c) {
        return c.error();
    }
    step(fmt::format("project {}", describe(cols)));
    // The outer query over it; its WHERE became the Top-N's N.
    relation ranked_rel;
    ranked_rel.s = rel.s;
    ranked_rel.updating = updating;
    ranked_rel.proctime = rel.proctime;
    for (const auto& nm : kept) {
        ranked_rel.cols.push_back({nm, from.alias, nm, false});
    }
    return select_from(outer, std::move(ranked_rel), false);
}

} // namespace runnel::sql::plan_detail
