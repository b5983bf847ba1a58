#include "sql/hints.h"

#include <charconv>

#include "base/text.h"

namespace runnel::sql {

const select_core* top_select(const statement& st) {
    const query* q = nullptr;
    if (const auto* ins = std::get_if<insert_stmt>(&st.node)) q = &ins->body;
    else if (const auto* cv = std::get_if<create_view_stmt>(&st.node)) q = &cv->body;
    else if (const auto* qs = std::get_if<query_stmt>(&st.node)) q = &qs->body;
    else if (const auto* ex = std::get_if<explain_stmt>(&st.node); ex && ex->target) return top_select(*ex->target);
    return q && q->kind == query_kind::select ? &q->select : nullptr;
}

std::optional<uint32_t> hint_parallelism(const query_hint& h) {
    if (!text::iequals(h.name, parallelism_hint_name) || h.args.size() != 1) return std::nullopt;
    const auto& a = h.args[0];
    uint32_t n = 0;
    auto [end, ec] = std::from_chars(a.data(), a.data() + a.size(), n);
    if (ec != std::errc() || end != a.data() + a.size() || n < 1 || n > max_parallelism) return std::nullopt;
    return n;
}

std::optional<uint32_t> parallelism_hint(const statement& st) {
    const auto* s = top_select(st);
    if (!s) return std::nullopt;
    for (const auto& h : s->hints) {
        if (auto n = hint_parallelism(h)) return n;
    }
    return std::nullopt;
}

} // namespace runnel::sql
