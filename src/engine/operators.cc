#include "engine/operators.h"

#include <algorithm>

#include <fmt/format.h>

#include "engine/state_io.h"
#include "engine/window.h"

namespace runnel::engine {

source_fn from_batches(std::vector<batch> batches) {
    auto state = std::make_shared<std::pair<std::vector<batch>, size_t>>(std::move(batches), 0);
    return [state]() {
        if (state->second == state->first.size()) return source_poll::end();
        return source_poll::data(std::move(state->first[state->second++]));
    };
}

watermark_stage::watermark_stage(schema_ptr s, size_t time_column, int64_t bound_ms, watermark_options opts)
  : _schema(std::move(s))
  , _time(time_column)
  , _bound(std::min(bound_ms, max_event_time))
  , _opts(std::move(opts)) {
    auto t = _schema->at(_time).type;
    _micros = t.id == type_id::timestamp && t.unit == time_unit::micros;
    _parts.resize(size_t(std::max(_opts.partitions, 1)));
    if (_opts.instances > 1) {
        for (size_t p = 0; p < _parts.size(); ++p) _parts[p].idle = int32_t(p) % _opts.instances != _opts.instance;
    }
    if (!_opts.clock) _opts.clock = model::processing_now;
}

watermark_stage::partition_state& watermark_stage::part(int32_t p, model::processing_time now) {
    if (!_started) {
        for (auto& s : _parts) s.last_active = now;
        _started = true;
    }
    size_t i = size_t(std::max(p, 0));
    if (i >= _parts.size()) {
        _parts.resize(i + 1);
        _parts[i].last_active = now;
    }
    return _parts[i];
}

void watermark_stage::on_batch(size_t, batch b, stage_output& out) {
    auto now = _opts.clock();
    auto& ps = part(_opts.processing_time ? 0 : b.source_partition(), now);
    const column& c = b.col(_time);
    int64_t mx = ps.max_ts;
    for (size_t i = 0; i < b.num_rows(); ++i) {
        if (c.valid(i)) {
            int64_t t = _micros ? (c.int64_at(i) >= 0 ? c.int64_at(i) / 1000 : -((-c.int64_at(i) + 999) / 1000))
                                : c.int64_at(i);
            if (t >= -max_event_time && t <= max_event_time) mx = std::max(mx, t); // others cannot move time
        }
    }
    ps.max_ts = mx;
    ps.last_active = now;
    ps.idle = false;
    if (_idle) {
        _idle = false;
        out.status(watermark_status::active);
    }
    metrics().rows_in += b.num_rows();
    metrics().rows_out += b.num_rows();
    out.emit(std::move(b));
    advance(out);
}

void watermark_stage::on_tick(model::processing_time now, stage_output& out) {
    if (_opts.processing_time) {
        auto& ps = part(0, now);
        ps.max_ts = std::max(ps.max_ts, now.value() + _bound);
        advance(out);
        return;
    }
    if (_opts.idle_timeout.count() > 0) {
        part(0, now);
        bool changed = false;
        for (auto& p : _parts) {
            if (!p.idle && now - p.last_active >= _opts.idle_timeout.count()) {
                p.idle = true;
                changed = true;
            }
        }
        if (changed) advance(out);
    }
    mark_idle(out);
}

void watermark_stage::mark_idle(stage_output& out) {
    if (_idle || _opts.processing_time) return;
    for (const auto& p : _parts) {
        if (!p.idle) return;
    }
    _idle = true;
    out.status(watermark_status::idle);
}

void watermark_stage::advance(stage_output& out) {
    int64_t wm = INT64_MAX;
    int64_t most_advanced = INT64_MIN; // over every partition, idle or not
    bool any = false;
    for (const auto& p : _parts) {
        int64_t w = p.max_ts == INT64_MIN ? INT64_MIN : p.max_ts - _bound - 1;
        most_advanced = std::max(most_advanced, w);
        if (p.idle) continue;
        any = true;
        wm = std::min(wm, w);
    }
    // Every partition idle (a topic read to its end): the input is as far as its most advanced
    // partition, so windows over data already in the log close.
    if (!any) wm = most_advanced;
    if (wm == INT64_MIN || wm <= _emitted) return;
    _emitted = wm;
    metrics().watermark = wm;
    out.watermark(model::event_time(wm));
}

std::string watermark_stage::waiting_for() const {
    if (_opts.processing_time) return {};
    bool others_sent = false;
    for (const auto& p : _parts) others_sent = others_sent || p.max_ts != INT64_MIN;
    // Nothing arrived anywhere: the source says why, if it knows. An instance of a parallel job
    // cannot see whether the others' partitions sent, so it names its own that did not.
    if (!others_sent && _opts.instances <= 1) return {};
    for (size_t i = 0; i < _parts.size(); ++i) {
        const auto& p = _parts[i];
        if (p.idle || p.max_ts != INT64_MIN) continue;
        const auto where = _opts.input.empty() ? std::to_string(i) : fmt::format("{}/{}", _opts.input, i);
        if (_opts.idle_timeout.count() <= 0) {
            return fmt::format("partition {}: no data yet, and no idle timeout lets the watermark go on without it",
                               where);
        }
        return fmt::format("partition {}: no data yet, idle after {} ms", where, _opts.idle_timeout.count());
    }
    return {};
}

std::string watermark_stage::snapshot() const {
    state_writer w;
    w.u8(_started ? 1 : 0);
    w.i64(_emitted);
    w.u32(uint32_t(_parts.size()));
    for (const auto& p : _parts) {
        w.i64(p.max_ts);
        w.u8(p.idle ? 1 : 0);
    }
    return std::move(w.bytes());
}

result<void> watermark_stage::restore(std::string_view bytes) {
    if (bytes.empty()) return outcome::success();
    state_reader r(bytes);
    bool started = r.u8() != 0;
    int64_t emitted = r.i64();
    uint32_t n = r.count(9);
    std::vector<partition_state> parts(n);
    auto now = _opts.clock();
    for (auto& p : parts) {
        p.max_ts = r.i64();
        p.idle = r.u8() != 0;
        p.last_active = now; // idleness is measured again from the restart
    }
    if (!r.ok() || !r.at_end()) return fail(errc::corrupt_state, "watermark: damaged snapshot");
    if (parts.size() < _parts.size()) parts.resize(_parts.size(), partition_state{INT64_MIN, now, false});
    _started = started;
    _emitted = emitted;
    _parts = std::move(parts);
    metrics().watermark = emitted;
    return outcome::success();
}

void watermark_stage::on_watermark(model::event_time wm, stage_output& out) {
    // Only the end of input arrives here: sources carry no watermarks of their own. Under
    // processing time, event-time watermarks from an earlier stage mean nothing.
    if (_opts.processing_time && wm != end_of_time) return;
    if (wm.value() > _emitted) {
        _emitted = wm.value();
        metrics().watermark = wm.value();
        out.watermark(wm);
    }
}

result<std::unique_ptr<filter_stage>> filter_stage::make(schema_ptr input, const expr& predicate) {
    RUNNEL_TRY(auto p, bind(predicate, *input));
    if (p.type().id != type_id::boolean) {
        return fail(errc::type_mismatch, fmt::format("filter: '{}' is {}, not boolean", predicate.to_string(),
                                                     p.type().name()));
    }
    return std::unique_ptr<filter_stage>(new filter_stage(std::move(input), std::move(p)));
}

filter_stage::filter_stage(schema_ptr s, bound_expr p)
  : _schema(std::move(s))
  , _pred(std::move(p)) {}

filter_stage::~filter_stage() = default;

schema_ptr filter_stage::output_schema(size_t) const { return _then ? _then->output_schema(0) : _schema; }

void filter_stage::fuse(std::unique_ptr<project_stage> then) { _then = std::move(then); }

void filter_stage::on_batch(size_t, batch b, stage_output& out) {
    size_t n = b.num_rows();
    metrics().rows_in += n;
    if (_rows.size() < n) _rows.resize(n);
    size_t kept = _pred.select_true(b, _rows.data());
    metrics().rows_out += kept;
    if (kept == 0) return;
    if (kept == n) {
        out.emit(_then ? _then->apply(std::move(b)) : std::move(b));
        return;
    }
    out.emit(_then ? _then->apply_rows(b, _rows.data(), kept) : b.select(_rows.data(), kept));
}

result<std::unique_ptr<project_stage>> project_stage::make(schema_ptr input, const std::vector<named_expr>& cols) {
    std::unique_ptr<project_stage> s(new project_stage());
    std::vector<field> fields;
    for (const auto& c : cols) {
        RUNNEL_TRY(auto e, bind(c.e, *input));
        std::string name = c.name.empty() ? c.e.to_string() : c.name;
        for (const auto& f : fields) {
            if (f.name == name) {
                return fail(errc::invalid_argument, fmt::format("project: two columns named '{}'", name));
            }
        }
        bool nullable = true;
        if (auto i = e.column_index()) nullable = input->at(*i).nullable;
        fields.push_back({name, e.type(), nullable});
        e.columns_read(s->_read);
        s->_whole.exprs.push_back(std::move(e));
    }
    if (fields.empty()) return fail(errc::invalid_argument, "project: no columns");
    std::sort(s->_read.begin(), s->_read.end());
    s->_read.erase(std::unique(s->_read.begin(), s->_read.end()), s->_read.end());
    std::vector<size_t> to(input->size(), 0);
    std::vector<field> narrow;
    for (size_t k = 0; k < s->_read.size(); ++k) {
        to[s->_read[k]] = k;
        narrow.push_back(input->at(s->_read[k]));
    }
    s->_narrow_schema = make_schema(std::move(narrow));
    for (const auto& e : s->_whole.exprs) s->_narrow.exprs.push_back(e.remap_columns(to));
    for (plan* p : {&s->_whole, &s->_narrow}) {
        p->uses.assign(p == &s->_whole ? input->size() : s->_read.size(), 0);
        for (const auto& e : p->exprs) {
            if (auto i = e.column_index()) ++p->uses[*i];
        }
    }
    s->_out = make_schema(std::move(fields));
    return s;
}

void project_stage::on_batch(size_t, batch b, stage_output& out) {
    metrics().rows_in += b.num_rows();
    metrics().rows_out += b.num_rows();
    out.emit(apply(std::move(b)));
}

batch project_stage::apply(batch b) { return run(_whole, std::move(b)); }

batch project_stage::apply_rows(const batch& b, const uint32_t* rows, size_t n) {
    if (_read.empty()) return apply(b.select(rows, n)); // constants only: the row count matters
    std::vector<column> cols;
    cols.reserve(_read.size());
    for (size_t c : _read) {
        cols.emplace_back(b.col(c).type());
        cols.back().push_rows(b.col(c), rows, n);
    }
    std::vector<row_kind> kinds;
    if (b.has_row_kinds()) {
        kinds.resize(n);
        for (size_t k = 0; k < n; ++k) kinds[k] = b.kind(rows[k]);
    }
    batch narrow(_narrow_schema, std::move(cols), std::move(kinds));
    narrow.set_source_partition(b.source_partition());
    return run(_narrow, std::move(narrow));
}

batch project_stage::run(const plan& p, batch b) const {
    std::vector<column> cols(p.exprs.size());
    for (size_t k = 0; k < p.exprs.size(); ++k) {
        if (!p.exprs[k].column_index()) cols[k] = p.exprs[k].evaluate(b);
    }
    // Plain column references take the input column itself when only one output uses it.
    for (size_t k = 0; k < p.exprs.size(); ++k) {
        if (auto i = p.exprs[k].column_index()) {
            if (p.uses[*i] == 1) cols[k] = std::move(b.mutable_col(*i));
            else cols[k] = b.col(*i);
        }
    }
    std::vector<row_kind> kinds;
    if (b.has_row_kinds()) {
        for (size_t i = 0; i < b.num_rows(); ++i) kinds.push_back(b.kind(i));
    }
    batch o(_out, std::move(cols), std::move(kinds));
    o.set_source_partition(b.source_partition());
    return o;
}

result<std::unique_ptr<dedup_stage>> dedup_stage::make(schema_ptr input, const std::vector<std::string>& keys,
                                                       std::unique_ptr<state_store> store) {
    std::unique_ptr<dedup_stage> s(new dedup_stage());
    s->_store = std::move(store);
    if (keys.empty()) return fail(errc::invalid_argument, "deduplicate: no key columns");
    for (const auto& k : keys) {
        auto i = input->index_of(k);
        if (!i) {
            return fail(errc::unknown_column, fmt::format("deduplicate: unknown column '{}' in {}", k, input->to_string()));
        }
        s->_keys.push_back(*i);
    }
    s->_schema = std::move(input);
    return s;
}

void dedup_stage::on_batch(size_t, batch b, stage_output& out) {
    metrics().rows_in += b.num_rows();
    std::vector<uint8_t> keep(b.num_rows());
    size_t kept = 0;
    std::string key;
    for (size_t i = 0; i < b.num_rows(); ++i) {
        key.clear();
        for (size_t k : _keys) encode_key_part(b.col(k), i, key);
        if (_store) {
            keep[i] = !_store->get(key, _value);
            if (keep[i]) _store->put(key, {});
        } else {
            keep[i] = _seen.insert(key).second;
        }
        kept += keep[i];
    }
    metrics().rows_out += kept;
    if (kept == b.num_rows()) out.emit(std::move(b));
    else if (kept > 0) out.emit(b.select(keep));
}

std::string dedup_stage::snapshot() const {
    if (_store) return _store->snapshot();
    state_writer w;
    w.u32(0x50454452); // "RDEP"
    w.u32(uint32_t(_seen.size()));
    for (const auto& k : _seen) w.str(k);
    return std::move(w.bytes());
}

result<void> dedup_stage::restore(std::string_view bytes) {
    if (_store) return _store->restore(bytes);
    state_reader r(bytes);
    if (r.u32() != 0x50454452) return fail(errc::corrupt_state, "deduplicate snapshot: wrong magic");
    uint32_t n = r.count(4);
    _seen.clear();
    for (uint32_t i = 0; i < n && r.ok(); ++i) _seen.insert(std::string(r.str()));
    if (!r.ok() || !r.at_end()) return fail(errc::corrupt_state, "deduplicate snapshot: truncated or damaged");
    return outcome::success();
}

} // namespace runnel::engine
