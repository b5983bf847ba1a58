#include "engine/window.h"

#include <algorithm>
#include <numeric>

#include <fmt/format.h>

namespace runnel::engine {

namespace {

int64_t floor_div(int64_t a, int64_t b) {
    int64_t q = a / b;
    return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

constexpr uint32_t snapshot_magic = 0x4e495752; // "RWIN"
constexpr uint32_t snapshot_version = 1;

} // namespace

window_spec tumble(std::chrono::milliseconds size) {
    return {window_kind::tumbling, size.count(), size.count(), 0};
}
window_spec hop(std::chrono::milliseconds size, std::chrono::milliseconds slide) {
    return {window_kind::hopping, size.count(), slide.count(), 0};
}
window_spec session(std::chrono::milliseconds gap) { return {window_kind::session, 0, 0, gap.count()}; }
window_spec cumulate(std::chrono::milliseconds step, std::chrono::milliseconds max_size) {
    return {window_kind::cumulative, max_size.count(), step.count(), 0};
}

bool decode_key_part(std::string_view& in, column& out) {
    if (in.empty()) return false;
    char tag = in[0];
    in.remove_prefix(1);
    if (tag == '\0') {
        out.push_null();
        return true;
    }
    auto take = [&](void* p, size_t n) {
        if (in.size() < n) return false;
        std::memcpy(p, in.data(), n);
        in.remove_prefix(n);
        return true;
    };
    switch (out.type().id) {
    case type_id::boolean: {
        char b;
        if (!take(&b, 1)) return false;
        out.push_bool(b != 0);
        return true;
    }
    case type_id::int64:
    case type_id::timestamp: {
        int64_t v;
        if (!take(&v, 8)) return false;
        out.push_int64(v);
        return true;
    }
    case type_id::float64: {
        double v;
        if (!take(&v, 8)) return false;
        out.push_float64(v);
        return true;
    }
    case type_id::string: {
        uint32_t n;
        if (!take(&n, 4) || in.size() < n) return false;
        out.push_string(in.substr(0, n));
        in.remove_prefix(n);
        return true;
    }
    }
    return false;
}

group_table::group_table(const std::vector<bound_aggregate>& specs, bool ints)
  : int_keys(ints) {
    aggs.reserve(specs.size());
    for (const auto& a : specs) aggs.emplace_back(a);
}

void group_table::add_slot(std::string key) {
    if (int_keys) {
        keys.resize(ikeys.size());
        ikeys.push_back(0);
    }
    keys.push_back(std::move(key));
    grow();
}

void group_table::grow_aggs() {
    size_t cap = std::max<size_t>(64, size_t(size()) * 2);
    for (auto& a : aggs) a.resize(cap);
}

void group_table::reserve(size_t n) {
    if (int_keys) {
        int_index.reserve(n);
        ikeys.reserve(n);
    } else {
        index.reserve(n);
        keys.reserve(n);
    }
    if (!aggs.empty() && aggs[0].size() < n) {
        for (auto& a : aggs) a.resize(n);
    }
}

uint32_t group_table::find_or_add(const std::string& key) {
    if (int_keys && key.size() == 9 && key[0] == '\1') {
        int64_t v;
        std::memcpy(&v, key.data() + 1, 8);
        return find_or_add_int(v);
    }
    auto [it, added] = index.try_emplace(key, size());
    if (added) add_slot(key);
    return it->second;
}

void group_table::append_keys(uint32_t from, uint32_t to, column* out, size_t key_columns) const {
    // Integral keys held in `ikeys` (the common case) are copied in runs.
    for (uint32_t i = from; i < to; ++i) {
        if (is_int_slot(i)) {
            uint32_t j = i + 1;
            while (j < to && is_int_slot(j)) ++j;
            out[0].append_int64(ikeys.data() + i, j - i);
            i = j - 1;
            continue;
        }
        std::string_view key = keys[i];
        for (size_t k = 0; k < key_columns; ++k) {
            bool ok = decode_key_part(key, out[k]);
            RUNNEL_ASSERT(ok, "keys a stage encoded decode");
        }
    }
}

void group_table::clear() {
    ikeys.clear();
    index.clear();
    int_index.clear();
    keys.clear();
    ids.clear();
    for (auto& a : aggs) a.resize(0);
}

uint32_t key_ids::take(bool is_int, int64_t ikey) {
    uint32_t id;
    if (!free.empty()) {
        id = free.back();
        free.pop_back();
    } else {
        id = uint32_t(entries.size());
        entries.emplace_back();
    }
    entries[id] = {ikey, 0, is_int ? 1u : 0u};
    return id;
}

void key_ids::acquire_ints(const int64_t* v, size_t n, uint32_t* out) {
    ints.find_or_add_all(v, n, out, [this](int64_t k) { return take(true, k); });
    for (size_t i = 0; i < n; ++i) ++entries[out[i]].refs;
}

uint32_t key_ids::acquire(const std::string& key) {
    auto [it, added] = others.try_emplace(key, 0);
    if (added) {
        it->second = take(false, 0);
        if (keys.size() <= it->second) keys.resize(entries.size());
        keys[it->second] = key;
    }
    ++entries[it->second].refs;
    return it->second;
}

void key_ids::release(const uint32_t* ids, size_t n) {
    // Entries are fetched 32 ids ahead, and the bucket of a key about to go 16 ahead.
    constexpr size_t ahead = 16;
    for (size_t i = 0; i < n; ++i) {
        if (i + 2 * ahead < n) __builtin_prefetch(&entries[ids[i + 2 * ahead]]);
        if (i + ahead < n) {
            const entry& e = entries[ids[i + ahead]];
            if (e.refs == 1 && e.integral) ints.prefetch(e.ikey);
        }
        entry& e = entries[ids[i]];
        if (--e.refs != 0) continue;
        if (e.integral) {
            ints.erase(e.ikey);
        } else {
            others.erase(keys[ids[i]]);
            keys[ids[i]].clear();
        }
        free.push_back(ids[i]);
    }
}

result<std::unique_ptr<window_stage>> window_stage::make(schema_ptr input, std::string time_column,
                                                         std::vector<std::string> keys, window_spec w,
                                                         std::vector<aggregate_spec> aggs,
                                                         window_options opts) {
    std::unique_ptr<window_stage> s(new window_stage());
    s->_in = input;
    s->_w = w;
    s->_opts = opts;
    s->_lateness = opts.allowed_lateness.count();
    auto t = input->index_of(time_column);
    if (!t) {
        return fail(errc::unknown_column, fmt::format("window: unknown event-time column '{}' in {}",
                                                      time_column, input->to_string()));
    }
    auto tt = input->at(*t).type;
    if (!tt.is_integral()) {
        return fail(errc::type_mismatch, fmt::format("window: event-time column '{}' is {}; it must be a "
                                                     "timestamp or bigint milliseconds",
                                                     time_column, tt.name()));
    }
    s->_time = *t;
    if (s->_lateness < 0) {
        return fail(errc::invalid_argument, "window: allowed lateness must not be negative");
    }
    constexpr int64_t max_span = int64_t(1) << 40; // about 34 years
    if (w.size > max_span || w.slide > max_span || w.gap > max_span || s->_lateness > max_span) {
        return fail(errc::invalid_argument, "window: sizes, gaps and lateness are limited to 2^40 ms");
    }
    switch (w.kind) {
    case window_kind::tumbling:
        if (w.size <= 0) return fail(errc::invalid_argument, "tumbling window: size must be positive");
        s->_pane = s->_end_step = w.size;
        break;
    case window_kind::hopping:
        if (w.size <= 0 || w.slide <= 0) {
            return fail(errc::invalid_argument, "hopping window: size and slide must be positive");
        }
        if (w.slide > w.size) {
            return fail(errc::invalid_argument, fmt::format("hopping window: slide {} ms is longer than size {} ms",
                                                            w.slide, w.size));
        }
        s->_pane = std::gcd(w.size, w.slide);
        s->_end_step = w.slide;
        s->_end_phase = w.size % w.slide;
        break;
    case window_kind::cumulative:
        if (w.size <= 0 || w.slide <= 0 || w.size % w.slide != 0) {
            return fail(errc::invalid_argument, fmt::format("cumulative window: max size {} ms must be a positive "
                                                            "multiple of step {} ms", w.size, w.slide));
        }
        s->_pane = s->_end_step = w.slide;
        break;
    case window_kind::session:
        if (w.gap <= 0) return fail(errc::invalid_argument, "session window: gap must be positive");
        if (opts.early_fire.count() > 0) {
            return fail(errc::invalid_argument, "session window: early results are not supported (a session's "
                                                "bounds change as it grows and merges)");
        }
        break;
    }
    const bool local = opts.phase == agg_phase::local;
    if (opts.phase != agg_phase::single) {
        if (w.kind == window_kind::session) {
            return fail(errc::invalid_argument, "session window: cannot be split into a local and a global phase "
                                                "(a session's bounds are known only where all its rows meet)");
        }
        if (opts.early_fire.count() > 0) {
            return fail(errc::invalid_argument, "window: early results cannot be split into a local and a global "
                                                "phase");
        }
    }
    std::vector<field> out;
    if (local) {
        out.push_back({pane_start_column, data_type::timestamp(), false});
    } else {
        out.push_back({"window_start", data_type::timestamp(), false});
        out.push_back({"window_end", data_type::timestamp(), false});
    }
    s->_key_at = out.size();
    for (const auto& k : keys) {
        auto i = input->index_of(k);
        if (!i) {
            return fail(errc::unknown_column, fmt::format("key_by: unknown column '{}' in {}", k, input->to_string()));
        }
        s->_keys.push_back(*i);
        s->_key_types.push_back(input->at(*i).type);
        out.push_back(input->at(*i));
    }
    if (aggs.empty()) {
        return fail(errc::invalid_argument, "window: no aggregates");
    }
    for (const auto& a : aggs) {
        RUNNEL_TRY(auto b, opts.phase == agg_phase::global ? bind_partial(a, *input) : bind_aggregate(a, *input));
        if (local && !splittable(b.kind)) {
            return fail(errc::invalid_argument, fmt::format("window: aggregate '{}' cannot be split into a local "
                                                            "and a global phase (only COUNT, SUM, MIN, MAX and "
                                                            "AVG can)",
                                                            b.name));
        }
        std::vector<field> adds = local ? partial_fields(b) : std::vector<field>{{b.name, b.output_type, true}};
        for (const auto& f : out) {
            for (const auto& g : adds) {
                if (f.name == g.name) {
                    return fail(errc::invalid_argument,
                                fmt::format("window: two output columns named '{}'; rename one with as()", g.name));
                }
            }
        }
        s->_agg_at.push_back(out.size());
        out.insert(out.end(), adds.begin(), adds.end());
        s->_aggs.push_back(std::move(b));
    }
    s->_int_key = s->_keys.size() == 1 && s->_key_types[0].is_integral();
    s->_out = make_schema(std::move(out));
    auto late = input->fields();
    late.push_back({"reason", data_type::string(), false});
    s->_late = make_schema(std::move(late));
    // A local stage emits panes as they are; only windows of several panes are assembled.
    s->_multi_pane = w.kind != window_kind::session && s->_pane != w.size && !local;
    for (const auto& a : s->_aggs) s->_acc.emplace_back(a);
    s->_sessions = std::make_unique<group_table>(s->_aggs, false);
    return s;
}

int64_t window_stage::pane_of(int64_t ts) const { return floor_div(ts, _pane) * _pane; }

int64_t window_stage::window_start(int64_t end) const {
    if (_w.kind == window_kind::cumulative) return floor_div(end - 1, _w.size) * _w.size;
    return end - _w.size;
}

int64_t window_stage::last_end(int64_t pane) const {
    if (_w.kind == window_kind::cumulative) return floor_div(pane, _w.size) * _w.size + _w.size;
    return floor_div(pane, _end_step) * _end_step + _w.size;
}

void window_stage::encode_key(const batch& b, size_t row) {
    _key_buf.clear();
    const column& c0 = _keys.empty() ? b.col(0) : b.col(_keys[0]);
    if (_int_key && c0.valid(row)) {
        int64_t v = c0.int64_at(row);
        _key_buf.resize(9);
        _key_buf[0] = '\1';
        std::memcpy(_key_buf.data() + 1, &v, 8);
        return;
    }
    for (size_t k : _keys) encode_key_part(b.col(k), row, _key_buf);
}

void window_stage::update_late_bound() {
    // A row is late when the last window holding it has fired, i.e. last_end(pane) is at or
    // before _fired_through. last_end grows with the event time, so that is "ts below a bound".
    if (_fired_through == INT64_MIN) {
        _late_before = INT64_MIN;
    } else if (_fired_through == INT64_MAX) {
        _late_before = INT64_MAX;
    } else {
        int64_t period = _w.kind == window_kind::cumulative ? _w.size : _end_step;
        int64_t length = _w.size;
        _late_before = (floor_div(_fired_through - length, period) + 1) * period;
    }
}

int64_t window_stage::next_end(int64_t t) const {
    return floor_div(t - _end_phase, _end_step) * _end_step + _end_step + _end_phase;
}

size_t window_stage::state_units() const {
    return _w.kind == window_kind::session ? _live_sessions : _panes.size();
}

void window_stage::on_batch(size_t, batch b, stage_output& out) {
    size_t n = b.num_rows();
    metrics().rows_in += n;
    ++metrics().batches_in;
    const column& tc = b.col(_time);
    bool micros = tc.type().id == type_id::timestamp && tc.type().unit == time_unit::micros;
    const int64_t* ts = tc.int64_data();
    if (micros) {
        _ts_buf.resize(n);
        for (size_t i = 0; i < n; ++i) _ts_buf[i] = floor_div(ts[i], 1000);
        ts = _ts_buf.data();
    }

    // Late rows (and rows without an event time) leave first, so the rest is contiguous. The
    // common case, a batch of panes without NULL times and nothing late, is found in one loop.
    bool maybe_late = true;
    if (_w.kind != window_kind::session && tc.null_count() == 0) {
        int64_t lo = std::max(_late_before, -max_event_time);
        size_t outside = 0;
        for (size_t i = 0; i < n; ++i) outside += (ts[i] < lo) | (ts[i] > max_event_time);
        maybe_late = outside != 0;
    }
    std::vector<uint8_t> late;
    size_t late_count = 0;
    auto mark = [&](size_t i) {
        if (late.empty()) late.assign(n, 0);
        late[i] = 1;
        ++late_count;
    };
    for (size_t i = 0; maybe_late && i < n; ++i) {
        if (tc.is_null(i) || ts[i] < -max_event_time || ts[i] > max_event_time) {
            mark(i);
        } else if (_w.kind != window_kind::session) {
            if (ts[i] < _late_before) mark(i);
        } else if (_watermark != INT64_MIN && ts[i] + _w.gap + _lateness <= _watermark) {
            // Late unless it falls into a session that is still open.
            encode_key(b, i);
            bool joins = false;
            if (auto it = _open.find(_key_buf); it != _open.end()) {
                for (uint32_t s : it->second) {
                    const auto& si = _session_info[s];
                    joins |= si.start <= ts[i] + _w.gap && ts[i] <= si.end;
                }
            }
            if (!joins) mark(i);
        }
    }
    if (late_count > 0) {
        route_late(b, late, ts, out);
        std::vector<uint32_t> keep;
        std::vector<int64_t> kept_ts;
        for (size_t i = 0; i < n; ++i) {
            if (late[i]) continue;
            keep.push_back(uint32_t(i));
            kept_ts.push_back(ts[i]);
        }
        b = b.select(keep.data(), keep.size());
        _ts_buf = std::move(kept_ts);
        ts = _ts_buf.data();
    }
    if (b.num_rows() == 0) return;
    if (_w.kind == window_kind::session) on_batch_sessions(b, ts);
    else on_batch_panes(b, ts, out);
}

void window_stage::route_late(const batch& b, const std::vector<uint8_t>& late, const int64_t* ts,
                              stage_output& out) {
    batch side(_late);
    for (size_t c = 0; c < b.num_columns(); ++c) {
        for (size_t i = 0; i < b.num_rows(); ++i) {
            if (late[i]) side.mutable_col(c).push_from(b.col(c), i);
        }
    }
    column& reason = side.mutable_col(b.num_columns());
    for (size_t i = 0; i < b.num_rows(); ++i) {
        if (!late[i]) continue;
        ++metrics().late_rows;
        if (b.col(_time).is_null(i)) {
            reason.push_string("event time is NULL");
        } else if (ts[i] < -max_event_time || ts[i] > max_event_time) {
            reason.push_string(fmt::format("event time {} ms is out of range", ts[i]));
        } else if (_w.kind == window_kind::session) {
            reason.push_string(fmt::format("late: session [{}, {}) closed at watermark {} (allowed lateness {} ms)",
                                           ts[i], ts[i] + _w.gap, _watermark, _lateness));
        } else {
            reason.push_string(fmt::format("late: last window ending {} closed at watermark {} (allowed lateness {} ms)",
                                           last_end(pane_of(ts[i])), _watermark, _lateness));
        }
    }
    side.seal();
    out.emit(std::move(side), 1);
}

void window_stage::on_batch_panes(const batch& b, const int64_t* ts, stage_output& out) {
    size_t n = b.num_rows();
    _slot_buf.resize(n);
    const column* k0 = _int_key ? &b.col(_keys[0]) : nullptr;
    size_t i = 0;
    while (i < n) {
        int64_t p = pane_of(ts[i]);
        size_t j = i + 1;
        while (j < n && ts[j] >= p && ts[j] < p + _pane) ++j;
        auto it = _panes.find(p);
        if (it == _panes.end()) {
            // A stream's panes hold similar numbers of keys: size a new one like the newest, with
            // a quarter to spare, so that a pane a little fuller than the last does not double
            // (and copy) its aggregates near its end.
            if (!_panes.empty()) _pane_hint = std::max<size_t>(std::prev(_panes.end())->second.size(), 16);
            it = _panes.emplace(p, group_table(_aggs, _int_key)).first;
            it->second.reserve(_pane_hint + _pane_hint / 4);
        }
        group_table& t = it->second;
        uint32_t before = t.size();
        if (k0 && k0->null_count() == 0) {
            t.find_or_add_ints(k0->int64_data() + i, j - i, _slot_buf.data());
        } else {
            for (size_t r = i; r < j; ++r) {
                encode_key(b, r);
                _slot_buf[r - i] = t.find_or_add(_key_buf);
            }
        }
        if (_multi_pane && t.size() != before) number_keys(t, before);
        for (size_t a = 0; a < _aggs.size(); ++a) {
            if (_opts.phase == agg_phase::global) {
                t.aggs[a].merge_partial(&b.col(_aggs[a].input), _slot_buf.data(), i, j);
                continue;
            }
            const column* in = _aggs[a].kind == agg_kind::count_star ? nullptr : &b.col(_aggs[a].input);
            t.aggs[a].update(in, ts, _slot_buf.data(), i, j);
        }
        i = j;
    }
    if (_opts.early_fire.count() > 0 && n > 0) {
        auto [lo, hi] = std::minmax_element(ts, ts + n);
        _dirty_lo = std::min(_dirty_lo, pane_of(*lo));
        _dirty_hi = std::max(_dirty_hi, pane_of(*hi));
    }
    if (_opts.phase == agg_phase::local) {
        // Partials sent early merge into the same panes downstream: memory stays bounded.
        size_t held = 0;
        for (const auto& [start, t] : _panes) held += t.size();
        if (held > _opts.max_partial_groups) {
            flush_partials(INT64_MAX, out);
            flush(out);
        }
    }
}

void window_stage::number_keys(group_table& t, uint32_t from) {
    t.ids.resize(t.size());
    for (uint32_t s = from; s < t.size();) {
        if (!t.is_int_slot(s)) {
            t.ids[s] = _ids.acquire(t.keys[s]);
            ++s;
            continue;
        }
        uint32_t e = s + 1;
        while (e < t.size() && t.is_int_slot(e)) ++e;
        _ids.acquire_ints(t.ikeys.data() + s, e - s, t.ids.data() + s);
        s = e;
    }
}

void window_stage::drop_first_pane() {
    auto first = _panes.begin();
    _ids.release(first->second.ids.data(), first->second.ids.size());
    _panes.erase(first);
}

uint32_t window_stage::session_slot() {
    ++_live_sessions;
    if (!_free_slots.empty()) {
        uint32_t s = _free_slots.back();
        _free_slots.pop_back();
        for (auto& a : _sessions->aggs) a.clear(s);
        return s;
    }
    uint32_t s = uint32_t(_sessions->keys.size());
    _sessions->keys.emplace_back();
    _session_info.push_back({});
    _redirect.push_back(s);
    if (_sessions->aggs[0].size() <= s) {
        for (auto& a : _sessions->aggs) a.resize(std::max<size_t>(64, size_t(s) * 2));
    }
    return s;
}

uint32_t window_stage::find(uint32_t s) {
    while (_redirect[s] != s) s = _redirect[s];
    return s;
}

void window_stage::on_batch_sessions(const batch& b, const int64_t* ts) {
    size_t n = b.num_rows();
    _slot_buf.resize(n);
    for (size_t r = 0; r < n; ++r) {
        encode_key(b, r);
        auto& list = _open[_key_buf];
        int64_t lo = ts[r], hi = ts[r] + _w.gap;
        uint32_t target = UINT32_MAX;
        int64_t target_end = 0; // the target's end before this row
        for (size_t x = 0; x < list.size();) {
            uint32_t s = list[x];
            auto& si = _session_info[s];
            // Sessions that touch merge (a row exactly `gap` after the last one joins it), as
            // in Flink: the windows [t, t + gap) of the rows intersect or meet.
            if (si.start <= hi && lo <= si.end) {
                if (target == UINT32_MAX) {
                    target = s;
                    target_end = si.end;
                    ++x;
                } else {
                    // s and target both overlap the row: s merges into target.
                    auto& ti = _session_info[target];
                    ti.start = std::min(ti.start, si.start);
                    ti.end = std::max(ti.end, si.end);
                    for (auto& a : _sessions->aggs) a.merge(target, a, s);
                    si.alive = false;
                    --_live_sessions;
                    _redirect[s] = target;
                    _retired.push_back(s);
                    list[x] = list.back();
                    list.pop_back();
                }
                lo = std::min(lo, _session_info[target].start);
                hi = std::max(hi, _session_info[target].end);
            } else {
                ++x;
            }
        }
        if (target == UINT32_MAX) {
            target = session_slot();
            _sessions->keys[target] = _key_buf;
            _session_info[target] = {lo, hi, true};
            list.push_back(target);
            _timers.push({hi, target});
        } else {
            if (hi != target_end) _timers.push({hi, target});
            _session_info[target].start = lo;
            _session_info[target].end = hi;
        }
        _slot_buf[r] = target;
    }
    if (!_retired.empty()) {
        for (size_t r = 0; r < n; ++r) _slot_buf[r] = find(_slot_buf[r]);
    }
    for (size_t a = 0; a < _aggs.size(); ++a) {
        const column* in = _aggs[a].kind == agg_kind::count_star ? nullptr : &b.col(_aggs[a].input);
        _sessions->aggs[a].update(in, ts, _slot_buf.data(), 0, n);
    }
    for (uint32_t s : _retired) {
        _redirect[s] = s;
        _free_slots.push_back(s);
    }
    _retired.clear();
}

void window_stage::on_watermark(model::event_time wm, stage_output& out) {
    if (wm.value() <= _watermark) {
        out.watermark(wm);
        return;
    }
    _watermark = wm == end_of_time ? wm.value() : std::min(wm.value(), max_event_time);
    // Windows ending at or before `limit` fire: end − 1 + lateness ≤ watermark.
    int64_t limit = wm == end_of_time ? INT64_MAX
                    : _watermark < INT64_MIN / 2 ? INT64_MIN
                                                 : _watermark + 1 - _lateness;
    if (limit != INT64_MIN) {
        if (_w.kind == window_kind::session) {
            fire_sessions(limit, out);
        } else if (_opts.phase == agg_phase::local) {
            flush_partials(limit, out);
            advance_fired(limit);
        } else {
            fire_panes(limit, out);
        }
    }
    flush(out);
    metrics().watermark = _watermark;
    out.watermark(wm);
}

void window_stage::emit_row(int64_t start, int64_t end, const group_table& t, uint32_t slot, stage_output& out) {
    if (!_building) _building = std::make_unique<batch>(_out);
    batch& o = *_building;
    o.mutable_col(0).push_int64(start);
    o.mutable_col(1).push_int64(end);
    std::string kb = t.key_of(slot);
    std::string_view key = kb;
    for (size_t k = 0; k < _keys.size(); ++k) {
        bool ok = decode_key_part(key, o.mutable_col(_key_at + k));
        RUNNEL_ASSERT(ok, "keys this stage encoded decode");
    }
    for (size_t a = 0; a < _aggs.size(); ++a) t.aggs[a].emit(slot, o.mutable_col(_agg_at[a]));
    if (o.mutable_col(0).size() >= _opts.max_batch_rows) flush(out);
}

void window_stage::emit_window(int64_t start, int64_t end, const group_table& t, stage_output& out) {
    uint32_t s = 0;
    while (s < t.size()) {
        if (!_building) _building = std::make_unique<batch>(_out);
        batch& o = *_building;
        size_t have = o.col(0).size();
        uint32_t n = uint32_t(std::min<size_t>(t.size() - s, _opts.max_batch_rows > have ? _opts.max_batch_rows - have : 1));
        o.mutable_col(0).append_int64(start, n);
        if (_opts.phase != agg_phase::local) o.mutable_col(1).append_int64(end, n);
        t.append_keys(s, s + n, &o.mutable_col(_key_at), _keys.size());
        for (size_t a = 0; a < _aggs.size(); ++a) {
            if (_opts.phase == agg_phase::local) t.aggs[a].emit_partial(s, s + n, &o.mutable_col(_agg_at[a]));
            else t.aggs[a].emit_range(s, s + n, o.mutable_col(_agg_at[a]));
        }
        s += n;
        if (o.col(0).size() >= _opts.max_batch_rows) flush(out);
    }
}

void window_stage::flush(stage_output& out) {
    if (!_building) return;
    _building->seal();
    if (_building_kind != row_kind::insert) {
        _building->set_row_kinds(std::vector<row_kind>(_building->num_rows(), _building_kind));
    }
    metrics().rows_out += _building->num_rows();
    out.emit(std::move(*_building));
    _building.reset();
}

void window_stage::emit_acc(int64_t start, int64_t end, stage_output& out) {
    size_t s = 0;
    while (s < _acc_list.size()) {
        if (!_building) _building = std::make_unique<batch>(_out);
        batch& o = *_building;
        size_t have = o.col(0).size();
        size_t n = std::min<size_t>(_acc_list.size() - s, _opts.max_batch_rows > have ? _opts.max_batch_rows - have : 1);
        const uint32_t* ids = _acc_list.data() + s;
        o.mutable_col(0).append_int64(start, n);
        o.mutable_col(1).append_int64(end, n);
        const uint8_t* is_int = _acc_is_int.data() + s;
        for (size_t i = 0; i < n; ++i) {
            if (is_int[i]) { // a run of integral keys goes in at once
                size_t j = i + 1;
                while (j < n && is_int[j]) ++j;
                o.mutable_col(2).append_int64(_acc_ikeys.data() + s + i, j - i);
                i = j - 1;
                continue;
            }
            std::string_view key = _ids.keys[ids[i]];
            for (size_t k = 0; k < _keys.size(); ++k) {
                bool ok = decode_key_part(key, o.mutable_col(2 + k));
                RUNNEL_ASSERT(ok, "keys this stage encoded decode");
            }
        }
        for (size_t a = 0; a < _aggs.size(); ++a) _acc[a].take_rows(ids, n, o.mutable_col(2 + _keys.size() + a));
        s += n;
        if (o.col(0).size() >= _opts.max_batch_rows) flush(out);
    }
}

void window_stage::emit_assembled(int64_t e, stage_output& out) {
    int64_t start = window_start(e);
    auto lo = _panes.lower_bound(start);
    auto hi = _panes.lower_bound(e);
    if (lo == hi) return;
    if (std::next(lo) == hi && lo->first == start && _pane == e - start) {
        emit_window(start, e, lo->second, out);
        return;
    }
    RUNNEL_ASSERT(_multi_pane, "only windows of several panes are assembled");
    // Each pane's slots are merged into `_acc` by key number. `_acc` holds empty state for
    // every number between windows: what a window touched is reset as it goes out. The keys
    // are noted in order as they are first seen, so emitting reads them in sequence.
    size_t ids = _ids.capacity();
    if (_acc[0].size() < ids) {
        for (auto& a : _acc) a.resize(std::max(ids, 2 * a.size()));
    }
    _acc_seen.resize((ids + 63) / 64, 0);
    _acc_list.clear();
    _acc_ikeys.clear();
    _acc_is_int.clear();
    for (auto it = lo; it != hi; ++it) {
        const group_table& p = it->second;
        const uint32_t* id = p.ids.data();
        for (uint32_t s = 0; s < p.size(); ++s) {
            uint64_t bit = uint64_t(1) << (id[s] & 63);
            uint64_t& word = _acc_seen[id[s] >> 6];
            if (word & bit) continue;
            word |= bit;
            _acc_list.push_back(id[s]);
            bool is_int = p.is_int_slot(s);
            _acc_ikeys.push_back(is_int ? p.ikeys[s] : 0);
            _acc_is_int.push_back(is_int ? 1 : 0);
        }
        for (size_t a = 0; a < _aggs.size(); ++a) _acc[a].merge_range(id, p.aggs[a], p.size());
    }
    for (uint32_t i : _acc_list) _acc_seen[i >> 6] = 0;
    emit_acc(start, e, out); // and resets what it emits
}

void window_stage::fire_panes(int64_t limit, stage_output& out) {
    while (!_panes.empty()) {
        int64_t ps = _panes.begin()->first;
        int64_t from = std::max(ps, _fired_through);
        int64_t e = next_end(from);
        if (e > limit) break;
        // A window that sent early results closes with an update of them, others with an insert.
        set_kind(!_early_ends.empty() && _early_ends.erase(e) ? row_kind::update_after : row_kind::insert, out);
        emit_assembled(e, out);
        _fired_through = e;
        int64_t keep_from = window_start(next_end(e));
        while (!_panes.empty() && _panes.begin()->first < keep_from) drop_first_pane();
    }
    advance_fired(limit);
    while (!_early_ends.empty() && *_early_ends.begin() <= _fired_through) _early_ends.erase(_early_ends.begin());
    set_kind(row_kind::insert, out);
}

void window_stage::advance_fired(int64_t limit) {
    int64_t through = limit == INT64_MAX ? INT64_MAX : floor_div(limit - _end_phase, _end_step) * _end_step + _end_phase;
    _fired_through = std::max(_fired_through, through);
    update_late_bound();
}

void window_stage::flush_partials(int64_t limit, stage_output& out) {
    // Panes are in order of start, and so of the first window end holding them.
    while (!_panes.empty()) {
        auto first = _panes.begin();
        if (limit != INT64_MAX && next_end(first->first) > limit) break;
        emit_window(first->first, first->first + _pane, first->second, out);
        _panes.erase(first);
    }
}

void window_stage::on_tick(model::processing_time now, stage_output& out) {
    if (_opts.early_fire.count() <= 0 || _dirty_lo > _dirty_hi || now.value() < _next_early) return;
    _next_early = now.value() + _opts.early_fire.count();
    // Every open window holding a pane that changed since the last update sends its result.
    set_kind(row_kind::update_after, out);
    for (int64_t e = next_end(std::max(_dirty_lo, _fired_through)); e <= last_end(_dirty_hi); e += _end_step) {
        if (e <= _fired_through || e - 1 + _lateness <= _watermark) continue;
        emit_assembled(e, out);
        _early_ends.insert(e);
    }
    flush(out);
    set_kind(row_kind::insert, out);
    _dirty_lo = INT64_MAX;
    _dirty_hi = INT64_MIN;
}

void window_stage::set_kind(row_kind k, stage_output& out) {
    if (k == _building_kind) return;
    flush(out);
    _building_kind = k;
}

void window_stage::fire_sessions(int64_t limit, stage_output& out) {
    // A session fires one millisecond after other windows would (end + lateness ≤ watermark):
    // until then a row at exactly `end` is not late and would still join it.
    while (!_timers.empty() && _timers.top().first < limit) {
        auto [end, s] = _timers.top();
        _timers.pop();
        auto& si = _session_info[s];
        if (!si.alive || si.end != end) continue; // stale: merged away, extended or fired
        emit_row(si.start, end, *_sessions, s, out);
        si.alive = false;
        --_live_sessions;
        auto it = _open.find(_sessions->keys[s]);
        RUNNEL_ASSERT(it != _open.end(), "an open session is listed under its key");
        auto& list = it->second;
        list.erase(std::find(list.begin(), list.end(), s));
        if (list.empty()) _open.erase(it);
        _free_slots.push_back(s);
    }
}

bool window_stage::valid_key(std::string_view key) const {
    for (auto t : _key_types) {
        column c(t);
        if (!decode_key_part(key, c)) return false;
    }
    return key.empty();
}

void window_stage::write_header(state_writer& w) const {
    w.u32(snapshot_magic);
    w.u32(snapshot_version);
    w.u8(uint8_t(_w.kind));
    w.i64(_w.size);
    w.i64(_w.slide);
    w.i64(_w.gap);
    w.i64(_lateness);
    w.u32(uint32_t(_keys.size()));
    w.u32(uint32_t(_aggs.size()));
    for (const auto& a : _aggs) w.u8(uint8_t(a.kind));
    if (_opts.phase != agg_phase::single) w.u8(uint8_t(_opts.phase)); // single-phase snapshots read as before
}

std::string window_stage::snapshot() const {
    state_writer w;
    write_header(w);
    w.i64(_watermark);
    w.i64(_fired_through);
    w.u64(metrics().late_rows);
    if (_w.kind != window_kind::session) {
        w.u32(uint32_t(_panes.size()));
        for (const auto& [start, t] : _panes) {
            w.i64(start);
            w.u32(t.size());
            for (uint32_t s = 0; s < t.size(); ++s) {
                w.str(t.key_of(s));
                for (const auto& a : t.aggs) a.write(s, w);
            }
        }
    } else {
        w.u32(uint32_t(_live_sessions));
        for (uint32_t s = 0; s < _session_info.size(); ++s) {
            if (!_session_info[s].alive) continue;
            w.str(_sessions->keys[s]);
            w.i64(_session_info[s].start);
            w.i64(_session_info[s].end);
            for (const auto& a : _sessions->aggs) a.write(s, w);
        }
    }
    if (_opts.early_fire.count() > 0) {
        w.u32(uint32_t(_early_ends.size()));
        for (int64_t e : _early_ends) w.i64(e);
    }
    return std::move(w.bytes());
}

result<void> window_stage::restore(std::string_view bytes) {
    state_writer mine;
    write_header(mine);
    if (bytes.substr(0, mine.bytes().size()) != mine.bytes()) {
        return fail(errc::corrupt_state, "window snapshot: not a snapshot of this window (kind, sizes, "
                                         "keys or aggregates differ)");
    }
    state_reader r(bytes.substr(mine.bytes().size()));
    _watermark = r.i64();
    _fired_through = r.i64();
    auto sane = [](int64_t t) { return t == INT64_MIN || t == INT64_MAX || (t >= -max_event_time - (int64_t(1) << 41) && t <= max_event_time + (int64_t(1) << 41)); };
    if (!sane(_watermark) || !sane(_fired_through)) {
        _watermark = _fired_through = INT64_MIN;
        return fail(errc::corrupt_state, "window snapshot: watermark out of range");
    }
    metrics().late_rows = r.u64();
    _panes.clear();
    _ids = key_ids();
    _timers = {};
    _live_sessions = 0;
    _open.clear();
    _sessions = std::make_unique<group_table>(_aggs, false);
    _session_info.clear();
    _free_slots.clear();
    _redirect.clear();
    uint32_t units = r.count(8);
    for (uint32_t u = 0; u < units && r.ok(); ++u) {
        if (_w.kind != window_kind::session) {
            int64_t start = r.i64();
            if (start < -max_event_time || start > max_event_time || start != pane_of(start)) {
                return fail(errc::corrupt_state, "window snapshot: a pane out of range");
            }
            group_table& t = _panes.emplace(start, group_table(_aggs, _int_key)).first->second;
            uint32_t slots = r.count(4);
            for (uint32_t s = 0; s < slots && r.ok(); ++s) {
                std::string key(r.str());
                if (!valid_key(key)) return fail(errc::corrupt_state, "window snapshot: a damaged key");
                uint32_t d = t.find_or_add(key);
                if (d != s) return fail(errc::corrupt_state, "window snapshot: a key appears twice in a pane");
                for (auto& a : t.aggs) {
                    if (!a.read(s, r)) break;
                }
            }
            if (_multi_pane) number_keys(t, 0);
        } else {
            std::string key(r.str());
            if (!valid_key(key)) return fail(errc::corrupt_state, "window snapshot: a damaged key");
            int64_t start = r.i64();
            int64_t end = r.i64();
            uint32_t s = session_slot();
            _sessions->keys[s] = key;
            if (end <= start || start < -max_event_time || end > max_event_time + _w.gap) return fail(errc::corrupt_state, "window snapshot: a session ends before it starts");
            _session_info[s] = {start, end, true};
            for (auto& a : _sessions->aggs) {
                if (!a.read(s, r)) break;
            }
            _open[key].push_back(s);
            _timers.push({end, s});
        }
    }
    _early_ends.clear();
    if (_opts.early_fire.count() > 0) {
        uint32_t ends = r.count(8);
        for (uint32_t i = 0; i < ends && r.ok(); ++i) _early_ends.insert(r.i64());
    }
    if (!r.ok() || !r.at_end()) {
        return fail(errc::corrupt_state, "window snapshot: truncated or damaged");
    }
    update_late_bound();
    return outcome::success();
}

} // namespace runnel::engine
