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
    std::vector<field> fields = input->fields();
    if (!spec.window_end.empty()) {
        auto e = input->index_of(spec.window_end);
        if (!e || !input->at(*e).type.is_integral()) {
            return fail(errc::unknown_column, fmt::format("top-n: the window end '{}' is not a timestamp column of {}",
                                                          spec.window_end, input->to_string()));
        }
        s->_end = *e;
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
    return a.arrival < b.arrival;
}

void top_n_stage::on_batch(size_t, batch b, stage_output& out) {
    metrics().rows_in += b.num_rows();
    batch changes(_out);
    std::vector<row_kind> kinds;
    const column& oc = b.col(_order);
    for (size_t i = 0; i < b.num_rows(); ++i) {
        std::string key;
        for (auto k : _keys) encode_key_part(b.col(k), i, key);
        entry e{oc.is_null(i) ? 0.0 : oc.number_at(i), oc.is_null(i), _arrivals++, b.row(i)};
        auto& g = _groups[key];
        if (_end && !b.col(*_end).is_null(i)) g.window_end = b.col(*_end).int64_at(i);
        auto pos = std::find_if(g.top.begin(), g.top.end(), [&](const entry& x) { return better(e, x); });
        if (pos == g.top.end() && g.top.size() >= _spec.n) continue; // not in the top
        auto inserted = g.top.insert(pos, std::move(e));
        std::optional<entry> out_of_top;
        if (g.top.size() > _spec.n) {
            out_of_top = std::move(g.top.back());
            g.top.pop_back();
        }
        if (!_end) {
            changes.append_row(inserted->row);
            kinds.push_back(row_kind::insert);
            if (out_of_top) {
                changes.append_row(out_of_top->row);
                kinds.push_back(row_kind::delete_row);
            }
        }
    }
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
            g.top.push_back(std::move(e));
        }
    }
    if (!r.ok() || !r.at_end()) return fail(errc::corrupt_state, "top-n: damaged snapshot");
    _arrivals = arrivals;
    _groups = std::move(groups);
    return outcome::success();
}

} // namespace runnel::engine
