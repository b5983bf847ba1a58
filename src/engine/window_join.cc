#include "engine/window_join.h"

#include <algorithm>

#include <boost/unordered/unordered_flat_map.hpp>
#include <fmt/format.h>

#include "engine/join.h"
#include "engine/state_io.h"
#include "engine/value_io.h"

namespace runnel::engine {
namespace window_join_detail {

constexpr size_t max_out_rows = 4096;
constexpr uint32_t snapshot_magic = 0x4e4a5752; // "RWJN"

int64_t floor_div(int64_t a, int64_t b) {
    int64_t q = a / b;
    return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

int64_t to_millis(const column& c, size_t i, bool micros) {
    auto v = c.int64_at(i);
    return micros ? floor_div(v, 1000) : v;
}

bool is_micros(const field& f) { return f.type.id == type_id::timestamp && f.type.unit == time_unit::micros; }

/// The windows [start, end) of `w` that contain `t`, as (end, start).
void windows_of(const window_spec& w, int64_t t, std::vector<std::pair<int64_t, int64_t>>& out) {
    out.clear();
    switch (w.kind) {
    case window_kind::tumbling: {
        int64_t s = floor_div(t, w.size) * w.size;
        out.emplace_back(s + w.size, s);
        break;
    }
    case window_kind::hopping:
        for (int64_t s = floor_div(t, w.slide) * w.slide; s > t - w.size; s -= w.slide) out.emplace_back(s + w.size, s);
        break;
    case window_kind::cumulative: {
        int64_t p = floor_div(t, w.size) * w.size;
        for (int64_t e = p + (floor_div(t - p, w.slide) + 1) * w.slide; e <= p + w.size; e += w.slide) {
            out.emplace_back(e, p);
        }
        break;
    }
    case window_kind::session: break;
    }
}

result<size_t> column_of(const schema& s, const std::string& name, const char* what, bool time) {
    auto i = s.index_of(name);
    if (!i) return fail(errc::unknown_column, fmt::format("window join: no {} column '{}' in {}", what, name, s.to_string()));
    if (time && !s.at(*i).type.is_integral()) {
        return fail(errc::type_mismatch,
                    fmt::format("window join: {} column '{}' is {}, not a timestamp", what, name, s.at(*i).type.name()));
    }
    return *i;
}

} // namespace window_join_detail

namespace wjd = window_join_detail;

schema_ptr window_join_side_schema(const schema& in, const window_join_input& side) {
    if (!side.assign) return std::make_shared<const schema>(in);
    auto fields = in.fields();
    for (const char* n : {"window_start", "window_end", "window_time"}) {
        fields.push_back({n, data_type::timestamp(), false});
    }
    return make_schema(std::move(fields));
}

schema_ptr window_join_schema(const schema& left, const schema& right, const window_join_spec& spec) {
    auto l = window_join_side_schema(left, spec.left);
    auto r = window_join_side_schema(right, spec.right);
    const bool left_null = spec.type == window_join_type::right || spec.type == window_join_type::full;
    const bool right_null = spec.type == window_join_type::left || spec.type == window_join_type::full;
    if (left_null) {
        auto f = l->fields();
        for (auto& x : f) x.nullable = true;
        l = make_schema(std::move(f));
    }
    return joined_schema(*l, *r, right_null);
}

result<std::unique_ptr<window_join_stage>> window_join_stage::make(schema_ptr left, schema_ptr right,
                                                                   window_join_spec spec) {
    std::unique_ptr<window_join_stage> s(new window_join_stage());
    if (spec.left.keys.size() != spec.right.keys.size()) {
        return fail(errc::invalid_argument, fmt::format("window join: {} left keys but {} right keys",
                                                        spec.left.keys.size(), spec.right.keys.size()));
    }
    if (spec.allowed_lateness.count() < 0) return fail(errc::invalid_argument, "window join: negative allowed lateness");
    const window_join_input* inputs[2] = {&spec.left, &spec.right};
    const schema_ptr schemas[2] = {left, right};
    for (int k = 0; k < 2; ++k) {
        const auto& in = *inputs[k];
        auto& side = s->_side[k];
        const schema& sch = *schemas[k];
        side.in = schemas[k];
        side.out = window_join_side_schema(sch, in);
        for (const auto& key : in.keys) {
            RUNNEL_TRY(auto i, wjd::column_of(sch, key, "key", false));
            side.keys.push_back(i);
        }
        if (in.assign) {
            const auto& w = *in.assign;
            if (w.kind == window_kind::session || w.size <= 0 || w.slide <= 0 ||
                (w.kind == window_kind::cumulative && w.size % w.slide != 0)) {
                return fail(errc::invalid_argument, "window join: windows are tumbling, hopping or cumulative, of "
                                                    "positive size (a cumulative one a multiple of its step)");
            }
            RUNNEL_TRY(side.time, wjd::column_of(sch, in.time, "time", true));
            side.time_micros = wjd::is_micros(sch.at(side.time));
            side.assign = w;
        } else {
            RUNNEL_TRY(side.start, wjd::column_of(sch, in.window_start, "window start", true));
            RUNNEL_TRY(side.end, wjd::column_of(sch, in.window_end, "window end", true));
            side.start_micros = wjd::is_micros(sch.at(side.start));
            side.end_micros = wjd::is_micros(sch.at(side.end));
        }
    }
    RUNNEL_TRY(check_key_types(*left, s->_side[0].keys, spec.left.keys, *right, s->_side[1].keys, spec.right.keys,
                               "window join"));
    s->_out = window_join_schema(*left, *right, spec);
    if (!spec.condition.empty()) {
        RUNNEL_TRY(auto c, bind(spec.condition, *s->_out));
        if (c.type().id != type_id::boolean) {
            return fail(errc::type_mismatch, "window join: the condition is not boolean");
        }
        s->_condition = std::move(c);
    }
    auto late = s->_out->fields();
    for (auto& f : late) f.nullable = true;
    late.push_back({"reason", data_type::string(), false});
    s->_late = make_schema(std::move(late));
    s->_type = spec.type;
    s->_lateness = spec.allowed_lateness.count();
    s->_pending = row_buffer(s->_out);
    return s;
}

size_t window_join_stage::held_rows() const {
    size_t n = 0;
    for (const auto& [id, w] : _windows) n += w.side[0].n + w.side[1].n;
    return n;
}

window_join_stage::rows window_join_stage::empty_rows(int s) const {
    rows r;
    for (const auto& f : _side[s].in->fields()) r.cols.emplace_back(f.type);
    return r;
}

void window_join_stage::on_batch(size_t input, batch b, stage_output& out) {
    metrics().rows_in += b.num_rows();
    const int k = input == 0 ? 0 : 1;
    const auto& side = _side[k];
    std::vector<window_id> ids;
    std::unique_ptr<batch> late;
    auto route_late = [&](size_t i, std::string why) {
        ++metrics().late_rows;
        if (!late) late = std::make_unique<batch>(_late);
        const size_t first = k == 0 ? 0 : _side[0].out->size();
        for (size_t c = 0; c < _late->size(); ++c) {
            auto& col = late->mutable_col(c);
            if (c >= first && c - first < b.num_columns()) col.push_from(b.col(c - first), i);
            else if (c + 1 == _late->size()) col.push_string(why);
            else col.push_null();
        }
    };
    // Rows of window w close once the watermark reaches w.end − 1 + lateness.
    auto closed = [&](int64_t end) { return _wm != INT64_MIN && end - 1 + _lateness <= _wm; };
    auto cached = _windows.end(); // map iterators stay valid while rows are added
    for (size_t i = 0; i < b.num_rows(); ++i) {
        ids.clear();
        if (side.assign) {
            if (b.col(side.time).is_null(i)) {
                route_late(i, "event time is NULL");
                continue;
            }
            int64_t t = wjd::to_millis(b.col(side.time), i, side.time_micros);
            if (t < -max_event_time || t > max_event_time) {
                route_late(i, fmt::format("event time {} ms is out of range", t));
                continue;
            }
            wjd::windows_of(*side.assign, t, ids);
        } else {
            if (b.col(side.start).is_null(i) || b.col(side.end).is_null(i)) {
                route_late(i, "window_start or window_end is NULL");
                continue;
            }
            ids.emplace_back(wjd::to_millis(b.col(side.end), i, side.end_micros),
                             wjd::to_millis(b.col(side.start), i, side.start_micros));
        }
        bool placed = false;
        int64_t last = INT64_MIN;
        for (const auto& id : ids) {
            last = std::max(last, id.first);
            if (closed(id.first)) continue;
            // Consecutive rows mostly share a window: look it up again only when it changes.
            auto it = cached != _windows.end() && cached->first == id ? cached : _windows.find(id);
            if (it == _windows.end()) {
                it = _windows.emplace(id, window_rows{{empty_rows(0), empty_rows(1)}}).first;
            }
            cached = it;
            auto& r = it->second.side[k];
            for (size_t c = 0; c < r.cols.size(); ++c) r.cols[c].push_from(b.col(c), i);
            ++r.n;
            placed = true;
        }
        if (!placed) {
            route_late(i, fmt::format("late: window ending {} closed at watermark {} (allowed lateness {} ms)", last,
                                      _wm, _lateness));
        }
    }
    if (late) {
        late->seal();
        out.emit(std::move(*late), 1);
    }
}

void window_join_stage::append_side(std::vector<column>& out, size_t& c, int s, const rows* r, uint32_t i,
                                    const window_id& w) const {
    const auto& side = _side[s];
    const size_t n = side.in->size();
    for (size_t k = 0; k < n; ++k) {
        if (r) out[c++].push_from(r->cols[k], i);
        else out[c++].push_null();
    }
    if (side.assign) {
        if (r) {
            out[c++].push_int64(w.second);
            out[c++].push_int64(w.first);
            out[c++].push_int64(w.first - 1);
        } else {
            for (int k = 0; k < 3; ++k) out[c++].push_null();
        }
    }
}

void window_join_stage::emit_row(const window_rows& wr, const window_id& w, const uint32_t* li, const uint32_t* ri,
                                 stage_output& out) {
    size_t c = 0;
    append_side(_pending.cols(), c, 0, li ? &wr.side[0] : nullptr, li ? *li : 0, w);
    append_side(_pending.cols(), c, 1, ri ? &wr.side[1] : nullptr, ri ? *ri : 0, w);
    _pending.add_row();
    if (_pending.rows() >= wjd::max_out_rows) flush(out);
}

void window_join_stage::flush(stage_output& out) {
    if (_pending.empty()) return;
    metrics().rows_out += _pending.rows();
    out.emit(_pending.take());
}

void window_join_stage::close(const window_id& w, window_rows& wr, stage_output& out) {
    const auto& L = wr.side[0];
    const auto& R = wr.side[1];
    const bool keep_left = _type == window_join_type::left || _type == window_join_type::full;
    const bool keep_right = _type == window_join_type::right || _type == window_join_type::full;
    if ((L.n == 0 && !keep_right) || (R.n == 0 && !keep_left)) return;
    // The right rows by key (NULL keys never match).
    boost::unordered_flat_map<std::string, std::vector<uint32_t>, key_hash, key_equal> index;
    std::string key;
    auto key_of = [&](const rows& r, const std::vector<size_t>& keys, uint32_t i) {
        key.clear();
        for (auto c : keys) {
            if (r.cols[c].is_null(i)) return false;
            encode_key_part(r.cols[c], i, key);
        }
        return true;
    };
    for (uint32_t j = 0; j < R.n; ++j) {
        if (key_of(R, _side[1].keys, j)) index[key].push_back(j);
    }
    // Candidate pairs (left-major), then the condition over them.
    std::vector<std::pair<uint32_t, uint32_t>> pairs;
    for (uint32_t i = 0; i < L.n; ++i) {
        if (!key_of(L, _side[0].keys, i)) continue;
        auto it = index.find(key);
        if (it == index.end()) continue;
        for (auto j : it->second) pairs.emplace_back(i, j);
    }
    std::vector<uint8_t> keep(pairs.size(), 1);
    if (_condition && !pairs.empty()) {
        std::vector<column> cols;
        for (const auto& f : _out->fields()) cols.emplace_back(f.type);
        for (const auto& [i, j] : pairs) {
            size_t c = 0;
            append_side(cols, c, 0, &L, i, w);
            append_side(cols, c, 1, &R, j, w);
        }
        batch cand(_out, std::move(cols));
        std::vector<uint32_t> sel(pairs.size());
        std::fill(keep.begin(), keep.end(), 0);
        size_t n = _condition->select_true(cand, sel.data());
        for (size_t k = 0; k < n; ++k) keep[sel[k]] = 1;
    }
    std::vector<uint8_t> right_matched(R.n, 0);
    size_t p = 0;
    for (uint32_t i = 0; i < L.n; ++i) {
        bool matched = false;
        for (; p < pairs.size() && pairs[p].first == i; ++p) {
            if (!keep[p]) continue;
            matched = true;
            right_matched[pairs[p].second] = 1;
            emit_row(wr, w, &i, &pairs[p].second, out);
        }
        if (!matched && keep_left) emit_row(wr, w, &i, nullptr, out);
    }
    if (keep_right) {
        for (uint32_t j = 0; j < R.n; ++j) {
            if (!right_matched[j]) emit_row(wr, w, nullptr, &j, out);
        }
    }
}

void window_join_stage::on_watermark(model::event_time wm, stage_output& out) {
    _wm = wm.value();
    while (!_windows.empty()) {
        auto it = _windows.begin();
        if (!(it->first.first - 1 + _lateness <= _wm)) break;
        close(it->first, it->second, out);
        _windows.erase(it);
    }
    flush(out);
    metrics().watermark = _wm;
    out.watermark(wm);
}

std::string window_join_stage::snapshot() const {
    state_writer w;
    w.u32(wjd::snapshot_magic);
    w.i64(_wm);
    w.u32(uint32_t(_windows.size()));
    for (const auto& [id, wr] : _windows) {
        w.i64(id.first);
        w.i64(id.second);
        for (const auto& r : wr.side) {
            w.u32(uint32_t(r.n));
            for (uint32_t i = 0; i < r.n; ++i) {
                for (const auto& c : r.cols) write_value(w, c.value_at(i));
            }
        }
    }
    return std::move(w.bytes());
}

result<void> window_join_stage::restore(std::string_view bytes) {
    _windows.clear();
    _wm = INT64_MIN;
    if (bytes.empty()) return outcome::success();
    state_reader r(bytes);
    if (r.u32() != wjd::snapshot_magic) return fail(errc::corrupt_state, "window join: not a window join snapshot");
    int64_t wm = r.i64();
    uint32_t n = r.count(16);
    std::map<window_id, window_rows> windows;
    for (uint32_t k = 0; k < n && r.ok(); ++k) {
        window_id id;
        id.first = r.i64();
        id.second = r.i64();
        window_rows wr{{empty_rows(0), empty_rows(1)}};
        for (int s = 0; s < 2 && r.ok(); ++s) {
            auto& rows = wr.side[s];
            uint32_t m = r.count(rows.cols.size());
            for (uint32_t i = 0; i < m && r.ok(); ++i) {
                for (auto& c : rows.cols) c.push_value(read_value(r, c.type()));
            }
            rows.n = m;
        }
        windows.emplace(id, std::move(wr));
    }
    if (!r.ok() || !r.at_end()) return fail(errc::corrupt_state, "window join: truncated or damaged snapshot");
    _windows = std::move(windows);
    _wm = wm;
    return outcome::success();
}

} // namespace runnel::engine
