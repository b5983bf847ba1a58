#include "engine/join.h"

#include <algorithm>
#include <cstdlib>

#include <fmt/format.h>

#include "engine/state_io.h"
#include "engine/value_io.h"

namespace runnel::engine {
namespace {

constexpr size_t max_out_rows = 4096;

result<std::vector<size_t>> resolve(const schema& s, const std::vector<std::string>& names, const char* what) {
    std::vector<size_t> out;
    for (const auto& n : names) {
        auto i = s.index_of(n);
        if (!i) return fail(errc::unknown_column, fmt::format("{}: no column '{}' in {}", what, n, s.to_string()));
        out.push_back(*i);
    }
    return out;
}

/// The encoded key of row `i`, or nothing when a key column is NULL (NULL never matches).
std::optional<std::string> key_of(const std::vector<column>& cols, const std::vector<size_t>& keys, size_t i) {
    std::string k;
    for (auto c : keys) {
        if (cols[c].is_null(i)) return std::nullopt;
        encode_key_part(cols[c], i, k);
    }
    return k;
}

std::optional<std::string> key_of(const batch& b, const std::vector<size_t>& keys, size_t i) {
    std::string k;
    for (auto c : keys) {
        if (b.col(c).is_null(i)) return std::nullopt;
        encode_key_part(b.col(c), i, k);
    }
    return k;
}

int64_t millis(const column& c, size_t i, bool micros) {
    auto v = c.int64_at(i);
    return micros ? (v >= 0 ? v / 1000 : -((-v + 999) / 1000)) : v;
}

} // namespace

result<void> check_key_types(const schema& a, const std::vector<size_t>& a_keys, const std::vector<std::string>& a_names,
                             const schema& b, const std::vector<size_t>& b_keys, const std::vector<std::string>& b_names,
                             const char* what) {
    for (size_t i = 0; i < a_keys.size(); ++i) {
        const auto& at = a.at(a_keys[i]).type;
        const auto& bt = b.at(b_keys[i]).type;
        if (!(at == bt)) {
            return fail(errc::type_mismatch,
                        fmt::format("{}: key '{}' is {} but '{}' is {}", what, a_names[i], at.name(), b_names[i], bt.name()));
        }
    }
    return outcome::success();
}

schema_ptr joined_schema(const schema& left, const schema& right, bool right_nullable) {
    std::vector<field> fields = left.fields();
    auto taken = [&](const std::string& n) {
        return std::any_of(fields.begin(), fields.end(), [&](const field& f) { return f.name == n; });
    };
    for (auto f : right.fields()) {
        if (taken(f.name)) {
            for (int i = 0;; ++i) {
                auto n = fmt::format("{}{}", f.name, i);
                if (!taken(n)) {
                    f.name = n;
                    break;
                }
            }
        }
        if (right_nullable) f.nullable = true;
        fields.push_back(std::move(f));
    }
    return make_schema(std::move(fields));
}

void join_side::reset() {
    cols.clear();
    for (const auto& f : schema->fields()) cols.emplace_back(f.type);
    expiry.clear();
    alive.clear();
    matched.clear();
    index.clear();
    live = 0;
}

uint32_t join_side::append(const batch& b, size_t row, int64_t exp) {
    for (size_t c = 0; c < cols.size(); ++c) cols[c].push_from(b.col(c), row);
    auto idx = uint32_t(expiry.size());
    expiry.push_back(exp);
    alive.push_back(1);
    matched.push_back(0);
    ++live;
    if (auto k = key_of(cols, keys, idx)) index[*k].push_back(idx);
    return idx;
}

void join_side::compact() {
    std::vector<uint32_t> keep;
    for (uint32_t i = 0; i < expiry.size(); ++i) {
        if (alive[i]) keep.push_back(i);
    }
    std::vector<column> next;
    for (size_t c = 0; c < cols.size(); ++c) {
        next.emplace_back(schema->at(c).type);
        next.back().push_rows(cols[c], keep.data(), keep.size());
    }
    std::vector<int64_t> exp;
    std::vector<uint8_t> m;
    for (auto i : keep) {
        exp.push_back(expiry[i]);
        m.push_back(matched[i]);
    }
    cols = std::move(next);
    expiry = std::move(exp);
    matched = std::move(m);
    alive.assign(expiry.size(), 1);
    live = expiry.size();
    index.clear();
    for (uint32_t i = 0; i < expiry.size(); ++i) {
        if (auto k = key_of(cols, keys, i)) index[*k].push_back(i);
    }
}

result<std::unique_ptr<join_stage>> join_stage::make(schema_ptr left, schema_ptr right, join_spec spec) {
    std::unique_ptr<join_stage> s(new join_stage());
    if (spec.left_keys.size() != spec.right_keys.size()) {
        return fail(errc::invalid_argument, fmt::format("join: {} left keys but {} right keys", spec.left_keys.size(),
                                                        spec.right_keys.size()));
    }
    if (spec.left_keys.empty()) return fail(errc::invalid_argument, "join: no key columns (a cross join is not supported)");
    if (spec.type == join_type::left && !spec.interval) {
        return fail(errc::invalid_argument, "join: a left join needs a time bound (an interval or window join)");
    }
    RUNNEL_TRY(s->_left.keys, resolve(*left, spec.left_keys, "join"));
    RUNNEL_TRY(s->_right.keys, resolve(*right, spec.right_keys, "join"));
    RUNNEL_TRY(check_key_types(*left, s->_left.keys, spec.left_keys, *right, s->_right.keys, spec.right_keys, "join"));
    if (spec.interval) {
        auto& iv = *spec.interval;
        if (iv.lower > iv.upper) return fail(errc::invalid_argument, "join: the interval's lower bound is above its upper bound");
        RUNNEL_TRY(auto lt, resolve(*left, {iv.left_time}, "join"));
        RUNNEL_TRY(auto rt, resolve(*right, {iv.right_time}, "join"));
        for (auto [sch, idx, name] : {std::tuple{left.get(), lt[0], iv.left_time}, std::tuple{right.get(), rt[0], iv.right_time}}) {
            if (!sch->at(idx).type.is_integral()) {
                return fail(errc::type_mismatch, fmt::format("join: time column '{}' is {}, not a timestamp", name,
                                                             sch->at(idx).type.name()));
            }
        }
        s->_left.time = lt[0];
        s->_right.time = rt[0];
        s->_left.micros = left->at(lt[0]).type.unit == time_unit::micros && left->at(lt[0]).type.id == type_id::timestamp;
        s->_right.micros = right->at(rt[0]).type.unit == time_unit::micros && right->at(rt[0]).type.id == type_id::timestamp;
        s->_delay = std::max(std::abs(iv.lower.count()), std::abs(iv.upper.count()));
    }
    s->_left.schema = std::move(left);
    s->_right.schema = std::move(right);
    s->_left.reset();
    s->_right.reset();
    s->_out = joined_schema(*s->_left.schema, *s->_right.schema, spec.type == join_type::left);
    s->_spec = std::move(spec);
    s->_pending = row_buffer(s->_out);
    return s;
}

void join_stage::emit_pair(const join_side& l, uint32_t li, const join_side* r, uint32_t ri, row_kind kind) {
    auto& cols = _pending.cols();
    size_t c = 0;
    for (const auto& col : l.cols) cols[c++].push_from(col, li);
    for (size_t k = 0; k < _right.cols.size(); ++k) {
        if (r) cols[c++].push_from(r->cols[k], ri);
        else cols[c++].push_null();
    }
    _pending.add_row(kind);
}

void join_stage::flush(stage_output& out) {
    if (_pending.empty()) return;
    metrics().rows_out += _pending.rows();
    out.emit(_pending.take());
}

void join_stage::on_batch(size_t input, batch b, stage_output& out) {
    metrics().rows_in += b.num_rows();
    const bool is_left = input == 0;
    auto& self = is_left ? _left : _right;
    auto& other = is_left ? _right : _left;
    const auto& iv = _spec.interval;
    for (size_t i = 0; i < b.num_rows(); ++i) {
        int64_t t = 0, exp = INT64_MAX;
        if (iv) {
            if (b.col(*self.time).is_null(i)) {
                ++metrics().late_rows; // no time: it can never be placed
                continue;
            }
            t = millis(b.col(*self.time), i, self.micros);
            exp = is_left ? t + iv->upper.count() : t - iv->lower.count();
            if (t <= _wm) ++metrics().late_rows; // behind the watermark: it joins what is still held
        }
        auto key = key_of(b, self.keys, i);
        const bool keep_unmatched = iv && is_left && _spec.type == join_type::left;
        if (!key && !keep_unmatched) continue; // NULL keys never match
        const row_kind kind = b.kind(i);
        if (!iv && (kind == row_kind::update_before || kind == row_kind::delete_row)) {
            retract(is_left, b, i, *key);
            if (_pending.rows() >= max_out_rows) flush(out);
            continue;
        }
        // A row no future row can match is joined with what is held and not kept.
        auto idx = self.append(b, i, exp);
        const bool keep = exp > _wm;
        bool matched = false;
        if (key) {
            auto it = other.index.find(*key);
            if (it != other.index.end()) {
                for (auto j : it->second) {
                    if (!other.alive[j]) continue;
                    if (iv) {
                        int64_t ot = millis(other.cols[*other.time], j, other.micros);
                        int64_t d = is_left ? ot - t : t - ot; // right time − left time
                        if (d < iv->lower.count() || d > iv->upper.count()) continue;
                    }
                    matched = true;
                    if (is_left) {
                        emit_pair(_left, idx, &_right, j);
                    } else {
                        emit_pair(_left, j, &_right, idx);
                        _left.matched[j] = 1;
                    }
                    if (_pending.rows() >= max_out_rows) flush(out);
                }
            }
        }
        if (is_left && matched) _left.matched[idx] = 1;
        if (!keep) {
            if (keep_unmatched && !matched) emit_pair(_left, idx, nullptr, 0);
            self.alive[idx] = 0;
            --self.live;
        }
    }
    if (!iv && self.size() > 1024 && self.live * 2 < self.size()) self.compact(); // retracted rows
    flush(out);
}

void join_stage::retract(bool is_left, const batch& b, size_t i, const std::string& key) {
    auto& self = is_left ? _left : _right;
    auto& other = is_left ? _right : _left;
    auto it = self.index.find(key);
    if (it == self.index.end()) return; // takes back a row never added
    // The held row equal to row i in every column.
    std::string want, have;
    for (size_t c = 0; c < self.cols.size(); ++c) encode_key_part(b.col(c), i, want);
    std::optional<uint32_t> found;
    for (auto j : it->second) {
        if (!self.alive[j]) continue;
        have.clear();
        for (size_t c = 0; c < self.cols.size(); ++c) encode_key_part(self.cols[c], j, have);
        if (have == want) {
            found = j;
            break;
        }
    }
    if (!found) return;
    self.alive[*found] = 0;
    --self.live;
    if (auto o = other.index.find(key); o != other.index.end()) {
        for (auto j : o->second) {
            if (!other.alive[j]) continue;
            if (is_left) emit_pair(_left, *found, &_right, j, row_kind::delete_row);
            else emit_pair(_left, j, &_right, *found, row_kind::delete_row);
        }
    }
    std::erase(it->second, *found);
}

void join_stage::on_watermark(model::event_time wm, stage_output& out) {
    _wm = wm.value();
    if (_spec.interval) {
        for (auto* side : {&_left, &_right}) {
            for (uint32_t i = 0; i < side->size(); ++i) {
                if (!side->alive[i] || side->expiry[i] > _wm) continue;
                side->alive[i] = 0;
                --side->live;
                if (side == &_left && _spec.type == join_type::left && !side->matched[i]) {
                    emit_pair(_left, i, nullptr, 0);
                    if (_pending.rows() >= max_out_rows) flush(out);
                }
            }
            if (side->size() > 1024 && side->live * 2 < side->size()) side->compact();
        }
        flush(out);
    }
    const int64_t fwd = _wm >= end_of_time.value() || _wm == INT64_MIN ? _wm : _wm - _delay;
    metrics().watermark = fwd;
    out.watermark(model::event_time(fwd));
}

std::string join_stage::snapshot() const {
    state_writer w;
    w.i64(_wm);
    for (const auto* side : {&_left, &_right}) {
        w.u32(uint32_t(side->live));
        w.u32(uint32_t(side->cols.size()));
        for (uint32_t i = 0; i < side->size(); ++i) {
            if (!side->alive[i]) continue;
            w.i64(side->expiry[i]);
            w.u8(side->matched[i]);
            for (const auto& c : side->cols) write_value(w, c.value_at(i));
        }
    }
    return std::move(w.bytes());
}

result<void> join_stage::restore(std::string_view bytes) {
    if (bytes.empty()) return outcome::success();
    state_reader r(bytes);
    int64_t wm = r.i64();
    for (auto* side : {&_left, &_right}) {
        side->reset();
        uint32_t n = r.count(9);
        uint32_t ncols = r.u32();
        if (ncols != side->cols.size()) return fail(errc::corrupt_state, "join: snapshot of another schema");
        for (uint32_t i = 0; i < n && r.ok(); ++i) {
            int64_t exp = r.i64();
            uint8_t m = r.u8();
            for (size_t c = 0; c < ncols; ++c) side->cols[c].push_value(read_value(r, side->schema->at(c).type));
            side->expiry.push_back(exp);
            side->alive.push_back(1);
            side->matched.push_back(m);
            ++side->live;
        }
        for (uint32_t i = 0; i < side->size(); ++i) {
            if (auto k = key_of(side->cols, side->keys, i)) side->index[*k].push_back(i);
        }
    }
    if (!r.ok() || !r.at_end()) return fail(errc::corrupt_state, "join: damaged snapshot");
    _wm = wm;
    return outcome::success();
}

result<std::unique_ptr<lookup_join_stage>> lookup_join_stage::make(schema_ptr stream, schema_ptr table,
                                                                   std::vector<std::string> stream_keys,
                                                                   std::vector<std::string> table_keys, join_type type,
                                                                   bool table_first) {
    std::unique_ptr<lookup_join_stage> s(new lookup_join_stage());
    s->_table_first = table_first;
    if (stream_keys.size() != table_keys.size() || stream_keys.empty()) {
        return fail(errc::invalid_argument, "lookup join: give as many table keys as stream keys (at least one)");
    }
    RUNNEL_TRY(s->_skeys, resolve(*stream, stream_keys, "lookup join"));
    RUNNEL_TRY(s->_tkeys, resolve(*table, table_keys, "lookup join"));
    RUNNEL_TRY(check_key_types(*stream, s->_skeys, stream_keys, *table, s->_tkeys, table_keys, "lookup join"));
    s->_out = joined_schema(*stream, *table, type == join_type::left);
    for (const auto& f : table->fields()) s->_rows.emplace_back(f.type);
    s->_stream = std::move(stream);
    s->_tschema = std::move(table);
    s->_type = type;
    return s;
}

void lookup_join_stage::on_batch(size_t input, batch b, stage_output& out) {
    metrics().rows_in += b.num_rows();
    if (input == 1) {
        for (size_t i = 0; i < b.num_rows(); ++i) {
            auto k = key_of(b, _tkeys, i);
            if (!k) continue;
            auto kind = b.kind(i);
            if (kind == row_kind::delete_row || kind == row_kind::update_before) {
                _index.erase(*k);
                continue;
            }
            for (size_t c = 0; c < _rows.size(); ++c) _rows[c].push_from(b.col(c), i);
            _index[std::move(*k)] = uint32_t(_rows[0].size() - 1);
        }
        if (_rows[0].size() > 1024 && _index.size() * 2 < _rows[0].size()) compact();
        return;
    }
    // The matching table row of each stream row that comes out (none: NULLs).
    constexpr uint32_t none = UINT32_MAX;
    std::vector<uint32_t> sel, match;
    sel.reserve(b.num_rows());
    match.reserve(b.num_rows());
    bool all_matched = true;
    std::string k;
    for (size_t i = 0; i < b.num_rows(); ++i) {
        k.clear();
        bool null_key = false;
        for (auto c : _skeys) {
            if (b.col(c).is_null(i)) {
                null_key = true;
                break;
            }
            encode_key_part(b.col(c), i, k);
        }
        auto it = null_key ? _index.end() : _index.find(k);
        if (it == _index.end()) {
            all_matched = false;
            if (_type == join_type::inner) continue;
        }
        sel.push_back(uint32_t(i));
        match.push_back(it == _index.end() ? none : it->second);
    }
    if (sel.empty()) return;
    const size_t ns = _stream->size();
    std::vector<column> cols;
    if (sel.size() == b.num_rows()) {
        cols = std::move(b.columns()); // every stream row comes out: take its columns as they are
    } else {
        for (size_t c = 0; c < ns; ++c) {
            cols.emplace_back(_stream->at(c).type);
            cols.back().push_rows(b.col(c), sel.data(), sel.size());
        }
    }
    for (size_t c = 0; c < _tschema->size(); ++c) {
        cols.emplace_back(_out->at(ns + c).type);
        auto& col = cols.back();
        if (all_matched) {
            col.push_rows(_rows[c], match.data(), match.size());
            continue;
        }
        for (auto m : match) {
            if (m == none) col.push_null();
            else col.push_from(_rows[c], m);
        }
    }
    batch o(_out, std::move(cols));
    o.set_source_partition(b.source_partition());
    metrics().rows_out += o.num_rows();
    out.emit(std::move(o));
}

void lookup_join_stage::compact() {
    std::vector<std::pair<uint32_t, const std::string*>> live;
    live.reserve(_index.size());
    for (const auto& [key, row] : _index) live.emplace_back(row, &key);
    std::sort(live.begin(), live.end());
    std::vector<uint32_t> rows;
    rows.reserve(live.size());
    for (const auto& l : live) rows.push_back(l.first);
    std::vector<column> next;
    for (size_t c = 0; c < _rows.size(); ++c) {
        next.emplace_back(_tschema->at(c).type);
        next.back().push_rows(_rows[c], rows.data(), rows.size());
    }
    for (uint32_t i = 0; i < live.size(); ++i) _index[*live[i].second] = i;
    _rows = std::move(next);
}

std::string lookup_join_stage::snapshot() const {
    state_writer w;
    w.u32(uint32_t(_index.size()));
    for (const auto& [k, row] : _index) {
        for (const auto& c : _rows) write_value(w, c.value_at(row));
    }
    return std::move(w.bytes());
}

result<void> lookup_join_stage::restore(std::string_view bytes) {
    if (bytes.empty()) return outcome::success();
    state_reader r(bytes);
    uint32_t n = r.count(1);
    batch table(_tschema);
    for (uint32_t i = 0; i < n && r.ok(); ++i) {
        std::vector<value> row;
        for (size_t c = 0; c < _tschema->size(); ++c) row.push_back(read_value(r, _tschema->at(c).type));
        table.append_row(row);
    }
    if (!r.ok() || !r.at_end()) return fail(errc::corrupt_state, "lookup join: damaged snapshot");
    _index.clear();
    for (auto& c : _rows) c = column(c.type());
    stage_output ignored;
    on_batch(1, std::move(table), ignored);
    metrics().rows_in -= n;
    return outcome::success();
}

result<std::unique_ptr<temporal_join_stage>>
temporal_join_stage::make(schema_ptr stream, schema_ptr table, std::vector<std::string> stream_keys,
                          std::vector<std::string> table_keys, const std::string& stream_time,
                          const std::string& table_time, join_type type) {
    std::unique_ptr<temporal_join_stage> s(new temporal_join_stage());
    if (stream_keys.size() != table_keys.size() || stream_keys.empty()) {
        return fail(errc::invalid_argument, "temporal join: give as many table keys as stream keys (at least one)");
    }
    RUNNEL_TRY(s->_skeys, resolve(*stream, stream_keys, "temporal join"));
    RUNNEL_TRY(s->_tkeys, resolve(*table, table_keys, "temporal join"));
    RUNNEL_TRY(check_key_types(*stream, s->_skeys, stream_keys, *table, s->_tkeys, table_keys, "temporal join"));
    RUNNEL_TRY(auto st, resolve(*stream, {stream_time}, "temporal join"));
    RUNNEL_TRY(auto tt, resolve(*table, {table_time}, "temporal join"));
    for (auto [sch, idx, n] : {std::tuple{stream.get(), st[0], stream_time}, std::tuple{table.get(), tt[0], table_time}}) {
        if (!sch->at(idx).type.is_integral()) {
            return fail(errc::type_mismatch,
                        fmt::format("temporal join: time column '{}' is {}, not a timestamp", n, sch->at(idx).type.name()));
        }
    }
    auto is_micros = [](const data_type& t) { return t.id == type_id::timestamp && t.unit == time_unit::micros; };
    s->_stime = st[0];
    s->_ttime = tt[0];
    s->_smicros = is_micros(stream->at(st[0]).type);
    s->_tmicros = is_micros(table->at(tt[0]).type);
    s->_out = joined_schema(*stream, *table, type == join_type::left);
    for (const auto& f : stream->fields()) s->_rows.emplace_back(f.type);
    s->_pending = row_buffer(s->_out);
    s->_stream = std::move(stream);
    s->_tschema = std::move(table);
    s->_type = type;
    return s;
}

void temporal_join_stage::add_version(std::string key, version v) {
    auto& vs = _versions[key];
    auto at = std::upper_bound(vs.begin(), vs.end(), v.time, [](int64_t t, const version& x) { return t < x.time; });
    const bool deleted = v.deleted;
    vs.insert(at, std::move(v));
    ++_nversions;
    if (vs.size() > 1 || deleted) _prunable.insert(std::move(key));
}

void temporal_join_stage::emit(uint32_t i, int64_t t) {
    const version* match = nullptr;
    if (auto k = key_of(_rows, _skeys, i)) {
        if (auto it = _versions.find(*k); it != _versions.end()) {
            const auto& vs = it->second;
            auto at = std::upper_bound(vs.begin(), vs.end(), t, [](int64_t x, const version& v) { return x < v.time; });
            if (at != vs.begin() && !std::prev(at)->deleted) match = &*std::prev(at);
        }
    }
    if (!match && _type == join_type::inner) return;
    auto& cols = _pending.cols();
    size_t c = 0;
    for (const auto& col : _rows) cols[c++].push_from(col, i);
    for (size_t k = 0; k < _tschema->size(); ++k) {
        if (match) cols[c++].push_value(match->row[k]);
        else cols[c++].push_null();
    }
    _pending.add_row();
}

void temporal_join_stage::flush(stage_output& out) {
    if (_pending.empty()) return;
    metrics().rows_out += _pending.rows();
    out.emit(_pending.take());
}

void temporal_join_stage::on_batch(size_t input, batch b, stage_output& out) {
    metrics().rows_in += b.num_rows();
    if (input == 1) {
        for (size_t i = 0; i < b.num_rows(); ++i) {
            const row_kind kind = b.kind(i);
            if (kind == row_kind::update_before) continue;
            auto k = key_of(b, _tkeys, i);
            if (!k || b.col(_ttime).is_null(i)) continue; // a version of no key, or of no time
            version v{millis(b.col(_ttime), i, _tmicros), kind == row_kind::delete_row, b.row(i)};
            if (v.time <= _wm) ++metrics().late_rows; // rows still waiting may see it
            add_version(std::move(*k), std::move(v));
        }
        return;
    }
    for (size_t i = 0; i < b.num_rows(); ++i) {
        if (b.col(_stime).is_null(i)) {
            ++metrics().late_rows; // no time: it can never be placed
            continue;
        }
        const int64_t t = millis(b.col(_stime), i, _smicros);
        for (size_t c = 0; c < _rows.size(); ++c) _rows[c].push_from(b.col(c), i);
        const auto idx = uint32_t(_rows[0].size() - 1);
        if (t <= _wm) {
            ++metrics().late_rows;
            emit(idx, t);
            if (_pending.rows() >= max_out_rows) flush(out);
            continue;
        }
        _waiting.emplace_back(t, idx);
        std::push_heap(_waiting.begin(), _waiting.end(), std::greater<>());
    }
    flush(out);
}

void temporal_join_stage::on_watermark(model::event_time wm, stage_output& out) {
    _wm = wm.value();
    while (!_waiting.empty() && _waiting.front().first <= _wm) {
        std::pop_heap(_waiting.begin(), _waiting.end(), std::greater<>());
        auto [t, i] = _waiting.back();
        _waiting.pop_back();
        emit(i, t);
        if (_pending.rows() >= max_out_rows) flush(out);
    }
    flush(out);
    prune();
    compact_rows();
    metrics().watermark = _wm;
    out.watermark(wm);
}

void temporal_join_stage::prune() {
    boost::unordered::erase_if(_prunable, [&](const std::string& key) {
        auto it = _versions.find(key);
        if (it == _versions.end()) return true;
        auto& vs = it->second;
        // The latest version at or before the watermark is the oldest any row can still join.
        auto at = std::upper_bound(vs.begin(), vs.end(), _wm, [](int64_t x, const version& v) { return x < v.time; });
        if (at != vs.begin()) {
            auto first = std::prev(at);
            _nversions -= size_t(first - vs.begin());
            vs.erase(vs.begin(), first);
            if (vs.front().deleted && vs.front().time <= _wm) { // deleted for every row to come
                _nversions -= 1;
                vs.erase(vs.begin());
            }
        }
        if (vs.empty()) {
            _versions.erase(it);
            return true;
        }
        return vs.size() == 1 && !vs.front().deleted;
    });
}

void temporal_join_stage::compact_rows() {
    const size_t held = _rows.empty() ? 0 : _rows[0].size();
    if (_waiting.empty()) {
        if (held == 0) return;
        for (size_t c = 0; c < _rows.size(); ++c) _rows[c] = column(_stream->at(c).type);
        return;
    }
    if (held < 1024 || _waiting.size() * 2 >= held) return;
    // Keep the waiting rows in arrival order, so equal times still release in that order.
    std::vector<uint32_t> keep;
    keep.reserve(_waiting.size());
    for (const auto& w : _waiting) keep.push_back(w.second);
    std::sort(keep.begin(), keep.end());
    std::vector<column> next;
    for (size_t c = 0; c < _rows.size(); ++c) {
        next.emplace_back(_stream->at(c).type);
        next.back().push_rows(_rows[c], keep.data(), keep.size());
    }
    _rows = std::move(next);
    for (auto& w : _waiting) w.second = uint32_t(std::lower_bound(keep.begin(), keep.end(), w.second) - keep.begin());
}

std::string temporal_join_stage::snapshot() const {
    state_writer w;
    w.i64(_wm);
    auto waiting = _waiting;
    std::sort(waiting.begin(), waiting.end(), [](const auto& a, const auto& b) { return a.second < b.second; });
    w.u32(uint32_t(waiting.size()));
    for (const auto& [t, i] : waiting) {
        w.i64(t);
        for (const auto& c : _rows) write_value(w, c.value_at(i));
    }
    w.u32(uint32_t(_versions.size()));
    for (const auto& [k, vs] : _versions) {
        w.u32(uint32_t(vs.size()));
        for (const auto& v : vs) {
            w.i64(v.time);
            w.u8(v.deleted ? 1 : 0);
            for (const auto& x : v.row) write_value(w, x);
        }
    }
    return std::move(w.bytes());
}

result<void> temporal_join_stage::restore(std::string_view bytes) {
    if (bytes.empty()) return outcome::success();
    state_reader r(bytes);
    int64_t wm = r.i64();
    std::vector<column> rows;
    for (const auto& f : _stream->fields()) rows.emplace_back(f.type);
    std::vector<std::pair<int64_t, uint32_t>> waiting;
    uint32_t n = r.count(9);
    for (uint32_t i = 0; i < n && r.ok(); ++i) {
        int64_t t = r.i64();
        for (size_t c = 0; c < rows.size(); ++c) rows[c].push_value(read_value(r, _stream->at(c).type));
        waiting.emplace_back(t, i);
    }
    std::vector<version> all;
    uint32_t keys = r.count(4);
    for (uint32_t k = 0; k < keys && r.ok(); ++k) {
        uint32_t nv = r.count(9);
        for (uint32_t j = 0; j < nv && r.ok(); ++j) {
            version v;
            v.time = r.i64();
            v.deleted = r.u8() != 0;
            for (size_t c = 0; c < _tschema->size(); ++c) v.row.push_back(read_value(r, _tschema->at(c).type));
            all.push_back(std::move(v));
        }
    }
    if (!r.ok() || !r.at_end()) return fail(errc::corrupt_state, "temporal join: damaged snapshot");
    _wm = wm;
    _rows = std::move(rows);
    _waiting = std::move(waiting);
    std::make_heap(_waiting.begin(), _waiting.end(), std::greater<>());
    _versions.clear();
    _prunable.clear();
    _nversions = 0;
    for (auto& v : all) {
        batch one(_tschema);
        one.append_row(v.row);
        if (auto k = key_of(one, _tkeys, 0)) add_version(std::move(*k), std::move(v));
    }
    return outcome::success();
}

} // namespace runnel::engine
