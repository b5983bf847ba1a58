#include "engine/topn.h"

#include <algorithm>

#include <fmt/format.h>

#include "engine/value_io.h"

namespace runnel::engine {

result<std::unique_ptr<top_n_stage>> top_n_stage::make(schema_ptr input, top_n_spec spec) {
    std::unique_ptr<top_n_stage> s(new top_n_stage());
    if (spec.n == 0 || spec.n > 100000) return fail(errc::invalid_argument, "top-n: n must be from 1 to 100000");
    for (const auto& k : spec.partition_keys) {
        auto i = input->index_of(k);
        if (!i) return fail(errc::unknown_column, fmt::format("top-n: no column '{}' in {}", k, input->to_string()));
        s->_keys.push_back(*i);
    }
    auto o = input->index_of(spec.order_by);
    if (!o) return fail(errc::unknown_column, fmt::format("top-n: no column '{}' in {}", spec.order_by, input->to_string()));
    if (!input->at(*o).type.is_numeric() && input->at(*o).type.id != type_id::timestamp) {
        return fail(errc::type_mismatch, fmt::format("top-n: '{}' is {}; ordering needs a number or a timestamp",
                                                     spec.order_by, input->at(*o).type.name()));
    }
    s->_order = *o;
    for (const auto& [name, desc] : spec.then_by) {
        auto t = input->index_of(name);
        if (!t) return fail(errc::unknown_column, fmt::format("top-n: no column '{}' in {}", name, input->to_string()));
        if (!input->at(*t).type.is_numeric() && input->at(*t).type.id != type_id::timestamp) {
            return fail(errc::type_mismatch, fmt::format("top-n: '{}' is {}; ordering needs a number or a timestamp",
                                                         name, input->at(*t).type.name()));
        }
        s->_then.emplace_back(*t, desc);
    }
    std::vector<field> fields = input->fields();
    if (!spec.window_end.empty()) {
        auto e = input->index_of(spec.window_end);
        if (!e || !input->at(*e).type.is_integral()) {
            return fail(errc::unknown_column, fmt::format("top-n: the window end '{}' is not a timestamp column of {}",
                                                          spec.window_end, input->to_string()));
        }
        s->_end = *e;
        fields.push_back({"rank", data_type::int64(), false});
    } else if (spec.rank_column) {
        fields.push_back({"rank", data_type::int64(), false});
    }
    s->_in = std::move(input);
    s->_out = make_schema(std::move(fields));
    s->_spec = std::move(spec);
    return s;
}

bool top_n_stage::better(const entry& a, const entry& b) const {
    if (a.null_order != b.null_order) return !a.null_order; // NULLs last
    if (!a.null_order && a.order != b.order) return _spec.descending ? a.order > b.order : a.order < b.order;
    for (size_t i = 0; i < _then.size(); ++i) {
        const auto& [x, xnull] = a.then[i];
        const auto& [y, ynull] = b.then[i];
        if (xnull != ynull) return !xnull;
        if (!xnull && x != y) return _then[i].second ? x > y : x < y;
    }
    return _spec.later_wins_ties ? a.arrival > b.arrival : a.arrival < b.arrival;
}

void top_n_stage::on_batch(size_t, batch b, stage_output& out) {
    metrics().rows_in += b.num_rows();
    batch changes(_out);
    std::vector<row_kind> kinds;
    const column& oc = b.col(_order);
    std::string key;
    for (size_t i = 0; i < b.num_rows(); ++i) {
        key.clear();
        for (auto k : _keys) encode_key_part(b.col(k), i, key);
        entry e{oc.is_null(i) ? 0.0 : oc.number_at(i), oc.is_null(i), _arrivals++, {}, {}};
        for (const auto& [c, desc] : _then) {
            const column& tc = b.col(c);
            e.then.emplace_back(tc.is_null(i) ? 0.0 : tc.number_at(i), tc.is_null(i));
        }
        auto& g = _groups[key];
        if (_end && !b.col(*_end).is_null(i)) g.window_end = b.col(*_end).int64_at(i);
        auto pos = std::find_if(g.top.begin(), g.top.end(), [&](const entry& x) { return better(e, x); });
        if (pos == g.top.end() && g.top.size() >= _spec.n) continue; // not in the top
        e.row = b.row(i);
        size_t p = size_t(pos - g.top.begin());
        size_t old_size = g.top.size();
        g.top.insert(pos, std::move(e));
        // Written straight into the output's columns (sealed below), the rank after the row.
        auto emit = [&](const std::vector<value>& row, row_kind k, size_t rank) {
            for (size_t c = 0; c < row.size(); ++c) changes.mutable_col(c).push_value(row[c]);
            if (_spec.rank_column) changes.mutable_col(row.size()).push_int64(int64_t(rank));
            kinds.push_back(k);
        };
        if (!_end && _spec.rank_column) {
            // Rank r + 1 held top[r + 1] before (when r < old_size) and holds top[r] now.
            size_t last = std::min(old_size + 1, _spec.n);
            for (size_t r = p; r < last; ++r) {
                if (r < old_size) {
                    emit(g.top[r + 1].row, row_kind::update_before, r + 1);
                    emit(g.top[r].row, row_kind::update_after, r + 1);
                } else {
                    emit(g.top[r].row, row_kind::insert, r + 1);
                }
            }
        } else if (!_end) {
            if (g.top.size() > _spec.n) {
                bool replaces = _spec.n == 1;
                emit(g.top.back().row, replaces ? row_kind::update_before : row_kind::delete_row, 0);
                emit(g.top[p].row, replaces ? row_kind::update_after : row_kind::insert, 0);
            } else {
                emit(g.top[p].row, row_kind::insert, 0);
            }
        }
        if (g.top.size() > _spec.n) g.top.pop_back();
    }
    changes.seal();
    if (changes.num_rows() > 0) {
        changes.set_row_kinds(std::move(kinds));
        metrics().rows_out += changes.num_rows();
        out.emit(std::move(changes));
    }
}

void top_n_stage::on_watermark(model::event_time wm, stage_output& out) {
    if (_end) {
        batch rows(_out);
        std::vector<std::string> done;
        for (auto& [key, g] : _groups) {
            if (g.window_end == INT64_MAX || g.window_end - 1 > wm.value()) continue;
            int64_t rank = 1;
            for (auto& e : g.top) {
                e.row.push_back(value::of(rank++));
                rows.append_row(e.row);
            }
            done.push_back(key);
        }
        for (const auto& k : done) _groups.erase(k);
        if (rows.num_rows() > 0) {
            metrics().rows_out += rows.num_rows();
            out.emit(std::move(rows));
        }
    }
    out.watermark(wm);
}

std::string top_n_stage::snapshot() const {
    state_writer w;
    w.u64(_arrivals);
    w.u32(uint32_t(_groups.size()));
    for (const auto& [key, g] : _groups) {
        w.str(key);
        w.i64(g.window_end);
        w.u32(uint32_t(g.top.size()));
        for (const auto& e : g.top) {
            w.f64(e.order);
            w.u8(e.null_order ? 1 : 0);
            w.u64(e.arrival);
            for (size_t c = 0; c < _in->size(); ++c) write_value(w, e.row[c]);
            for (const auto& [v, null] : e.then) {
                w.f64(v);
                w.u8(null ? 1 : 0);
            }
        }
    }
    return std::move(w.bytes());
}

result<void> top_n_stage::restore(std::string_view bytes) {
    if (bytes.empty()) return outcome::success();
    state_reader r(bytes);
    uint64_t arrivals = r.u64();
    uint32_t n = r.count(16);
    decltype(_groups) groups;
    for (uint32_t i = 0; i < n && r.ok(); ++i) {
        std::string key(r.str());
        auto& g = groups[key];
        g.window_end = r.i64();
        uint32_t m = r.count(17);
        for (uint32_t j = 0; j < m && r.ok(); ++j) {
            entry e;
            e.order = r.f64();
            e.null_order = r.u8() != 0;
            e.arrival = r.u64();
            for (size_t c = 0; c < _in->size(); ++c) e.row.push_back(read_value(r, _in->at(c).type));
            for (size_t t = 0; t < _then.size(); ++t) {
                double v = r.f64();
                e.then.emplace_back(v, r.u8() != 0);
            }
            g.top.push_back(std::move(e));
        }
    }
    if (!r.ok() || !r.at_end()) return fail(errc::corrupt_state, "top-n: damaged snapshot");
    _arrivals = arrivals;
    _groups = std::move(groups);
    return outcome::success();
}

} // namespace runnel::engine
