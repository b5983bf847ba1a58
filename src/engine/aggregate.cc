#include "engine/aggregate.h"

#include <fmt/format.h>

namespace runnel::engine {

namespace {
aggregate_spec spec(agg_kind k, std::string column, const char* prefix) {
    aggregate_spec a;
    a.kind = k;
    a.name = column.empty() ? prefix : fmt::format("{}_{}", prefix, column);
    a.column = std::move(column);
    return a;
}

enum class store : uint8_t { none, integral, real, text };

store store_of(data_type t) {
    switch (t.id) {
    case type_id::boolean:
    case type_id::int64:
    case type_id::timestamp: return store::integral;
    case type_id::float64: return store::real;
    case type_id::string: return store::text;
    }
    return store::none;
}

int64_t int_of(const column& c, size_t i) {
    return c.type().id == type_id::boolean ? int64_t(c.bool_at(i)) : c.int64_at(i);
}
} // namespace

aggregate_spec count() { return spec(agg_kind::count_star, "", "count"); }
aggregate_spec count(std::string c) { return spec(agg_kind::count, std::move(c), "count"); }
aggregate_spec sum(std::string c) { return spec(agg_kind::sum, std::move(c), "sum"); }
aggregate_spec min(std::string c) { return spec(agg_kind::min, std::move(c), "min"); }
aggregate_spec max(std::string c) { return spec(agg_kind::max, std::move(c), "max"); }
aggregate_spec avg(std::string c) { return spec(agg_kind::avg, std::move(c), "avg"); }
aggregate_spec count_distinct(std::string c) {
    return spec(agg_kind::count_distinct, std::move(c), "count_distinct");
}
aggregate_spec first_value(std::string c) { return spec(agg_kind::first_value, std::move(c), "first"); }
aggregate_spec last_value(std::string c) { return spec(agg_kind::last_value, std::move(c), "last"); }
aggregate_spec percentile(std::string c, double q) {
    auto a = spec(agg_kind::percentile, std::move(c), "percentile");
    a.q = q;
    return a;
}

result<bound_aggregate> bind_aggregate(const aggregate_spec& a, const schema& s) {
    bound_aggregate b;
    b.kind = a.kind;
    b.q = a.q;
    b.name = a.name;
    if (a.kind == agg_kind::count_star) {
        b.output_type = data_type::int64();
        return b;
    }
    auto idx = s.index_of(a.column);
    if (!idx) {
        return fail(errc::unknown_column,
                    fmt::format("aggregate '{}': unknown column '{}' in {}", a.name, a.column, s.to_string()));
    }
    b.input = *idx;
    b.input_type = s.at(*idx).type;
    auto need_number = [&]() -> result<void> {
        if (b.input_type.is_numeric()) {
            return outcome::success();
        }
        return fail(errc::type_mismatch, fmt::format("aggregate '{}' needs a number, but column '{}' is {}",
                                                     a.name, a.column, b.input_type.name()));
    };
    switch (a.kind) {
    case agg_kind::count:
    case agg_kind::count_distinct: b.output_type = data_type::int64(); break;
    case agg_kind::sum: {
        RUNNEL_TRY(need_number());
        b.output_type = b.input_type;
        break;
    }
    case agg_kind::avg: {
        RUNNEL_TRY(need_number());
        b.output_type = data_type::float64();
        break;
    }
    case agg_kind::percentile: {
        RUNNEL_TRY(need_number());
        if (!(a.q >= 0 && a.q <= 1)) {
            return fail(errc::invalid_argument,
                        fmt::format("aggregate '{}': percentile {} is outside [0, 1]", a.name, a.q));
        }
        b.output_type = data_type::float64();
        break;
    }
    default: b.output_type = b.input_type; break;
    }
    return b;
}

bool splittable(agg_kind k) {
    switch (k) {
    case agg_kind::count_star:
    case agg_kind::count:
    case agg_kind::sum:
    case agg_kind::min:
    case agg_kind::max:
    case agg_kind::avg: return true;
    default: return false;
    }
}

std::vector<field> partial_fields(const bound_aggregate& a) {
    switch (a.kind) {
    case agg_kind::count_star:
    case agg_kind::count: return {{a.name, data_type::int64(), false}};
    case agg_kind::avg: return {{a.name, data_type::float64(), false}, {a.name + "$count", data_type::int64(), false}};
    default: return {{a.name, a.input_type, true}};
    }
}

result<bound_aggregate> bind_partial(const aggregate_spec& a, const schema& s) {
    if (!splittable(a.kind)) {
        return fail(errc::invalid_argument, fmt::format("aggregate '{}' cannot be split into a local and a global "
                                                        "phase (only COUNT, SUM, MIN, MAX and AVG can)",
                                                        a.name));
    }
    auto idx = s.index_of(a.name);
    if (!idx) {
        return fail(errc::unknown_column, fmt::format("aggregate '{}': no partial column '{}' in {} (the global "
                                                      "phase takes the output of a local phase with the same "
                                                      "aggregates)",
                                                      a.name, a.name, s.to_string()));
    }
    bound_aggregate b;
    b.kind = a.kind;
    b.q = a.q;
    b.name = a.name;
    b.input = *idx;
    b.input_type = s.at(*idx).type;
    // The partial columns must be what a local phase with this aggregate emits.
    auto is = [&](size_t i, type_id t) { return i < s.size() && s.at(i).type.id == t; };
    bool ok = true;
    switch (a.kind) {
    case agg_kind::count_star:
    case agg_kind::count:
        ok = is(*idx, type_id::int64);
        b.output_type = data_type::int64();
        break;
    case agg_kind::avg:
        ok = is(*idx, type_id::float64) && is(*idx + 1, type_id::int64) && s.at(*idx + 1).name == a.name + "$count";
        b.output_type = data_type::float64();
        break;
    case agg_kind::sum:
        ok = b.input_type.is_numeric();
        b.output_type = b.input_type;
        break;
    default: b.output_type = b.input_type; break;
    }
    if (!ok) {
        return fail(errc::type_mismatch, fmt::format("aggregate '{}': the partial columns in {} are not what a "
                                                     "local phase emits",
                                                     a.name, s.to_string()));
    }
    return b;
}

agg_column::agg_column(const bound_aggregate& a)
  : _kind(a.kind)
  , _in(a.input_type)
  , _q(a.q) {}

void agg_column::resize(size_t n) {
    _slots = n;
    _n.resize(n);
    switch (_kind) {
    case agg_kind::count_star:
    case agg_kind::count: break;
    case agg_kind::avg: _d.resize(n); break;
    case agg_kind::count_distinct: _sets.resize(n); break;
    case agg_kind::percentile: _sketches.resize(n); break;
    case agg_kind::first_value:
    case agg_kind::last_value: _ts.resize(n); [[fallthrough]];
    default:
        switch (store_of(_in)) {
        case store::integral: _i.resize(n); break;
        case store::real: _d.resize(n); break;
        case store::text: _s.resize(n); break;
        case store::none: break;
        }
    }
}

void agg_column::clear(uint32_t s) {
    _n[s] = 0;
    if (!_sets.empty()) _sets[s].reset();
    if (!_sketches.empty()) _sketches[s].reset();
    if (!_s.empty()) _s[s].clear();
    if (!_d.empty()) _d[s] = 0;
    if (!_i.empty()) _i[s] = 0;
}

void agg_column::update(const column* in, const int64_t* ts, const uint32_t* slots, size_t from,
                        size_t to) {
    switch (_kind) {
    case agg_kind::count_star:
        for (size_t r = from; r < to; ++r) ++_n[slots[r - from]];
        return;
    case agg_kind::count:
        for (size_t r = from; r < to; ++r) _n[slots[r - from]] += in->valid(r);
        return;
    default: break;
    }
    const column& c = *in;
    bool no_nulls = c.null_count() == 0;
    store st = store_of(_in);
    for (size_t r = from; r < to; ++r) {
        if (!no_nulls && c.is_null(r)) {
            continue;
        }
        uint32_t s = slots[r - from];
        switch (_kind) {
        case agg_kind::sum:
            if (st == store::real) _d[s] += c.float64_at(r);
            else _i[s] = int64_t(uint64_t(_i[s]) + uint64_t(c.int64_at(r))); // wraps on overflow
            _n[s] = 1;
            break;
        case agg_kind::avg:
            _d[s] += c.number_at(r);
            ++_n[s];
            break;
        case agg_kind::min:
        case agg_kind::max: {
            bool is_min = _kind == agg_kind::min;
            bool first = _n[s] == 0;
            _n[s] = 1;
            if (st == store::integral) {
                int64_t v = int_of(c, r);
                if (first || (is_min ? v < _i[s] : v > _i[s])) _i[s] = v;
            } else if (st == store::real) {
                double v = c.float64_at(r);
                if (first || (is_min ? v < _d[s] : v > _d[s])) _d[s] = v;
            } else {
                auto v = c.string_at(r);
                if (first || (is_min ? v < _s[s] : v > _s[s])) _s[s].assign(v);
            }
            break;
        }
        case agg_kind::first_value:
        case agg_kind::last_value: {
            bool take = _n[s] == 0 || (_kind == agg_kind::first_value ? ts[r] < _ts[s] : ts[r] >= _ts[s]);
            if (!take) break;
            _n[s] = 1;
            _ts[s] = ts[r];
            if (st == store::integral) _i[s] = int_of(c, r);
            else if (st == store::real) _d[s] = c.float64_at(r);
            else _s[s].assign(c.string_at(r));
            break;
        }
        case agg_kind::count_distinct: {
            if (!_sets[s]) _sets[s] = std::make_unique<boost::unordered_flat_set<std::string, key_hash, key_equal>>();
            std::string k;
            encode_key_part(c, r, k);
            _sets[s]->insert(std::move(k));
            break;
        }
        case agg_kind::percentile:
            if (!_sketches[s]) _sketches[s] = std::make_unique<quantile_sketch>();
            _sketches[s]->add(c.number_at(r));
            break;
        default: break;
        }
    }
}

void agg_column::merge(uint32_t d, const agg_column& o, uint32_t s) {
    if (o._n.empty() || (o._n[s] == 0 && _kind != agg_kind::count_distinct && _kind != agg_kind::percentile)) {
        return;
    }
    store st = store_of(_in);
    bool first = _n[d] == 0;
    switch (_kind) {
    case agg_kind::count_star:
    case agg_kind::count: _n[d] += o._n[s]; break;
    case agg_kind::sum:
        if (st == store::real) _d[d] += o._d[s];
        else _i[d] = int64_t(uint64_t(_i[d]) + uint64_t(o._i[s]));
        _n[d] = 1;
        break;
    case agg_kind::avg:
        _d[d] += o._d[s];
        _n[d] += o._n[s];
        break;
    case agg_kind::min:
    case agg_kind::max: {
        bool is_min = _kind == agg_kind::min;
        _n[d] = 1;
        if (st == store::integral) {
            if (first || (is_min ? o._i[s] < _i[d] : o._i[s] > _i[d])) _i[d] = o._i[s];
        } else if (st == store::real) {
            if (first || (is_min ? o._d[s] < _d[d] : o._d[s] > _d[d])) _d[d] = o._d[s];
        } else if (first || (is_min ? o._s[s] < _s[d] : o._s[s] > _s[d])) {
            _s[d] = o._s[s];
        }
        break;
    }
    case agg_kind::first_value:
    case agg_kind::last_value: {
        bool take = first || (_kind == agg_kind::first_value ? o._ts[s] < _ts[d] : o._ts[s] >= _ts[d]);
        if (!take) break;
        _n[d] = 1;
        _ts[d] = o._ts[s];
        if (st == store::integral) _i[d] = o._i[s];
        else if (st == store::real) _d[d] = o._d[s];
        else _s[d] = o._s[s];
        break;
    }
    case agg_kind::count_distinct:
        if (o._sets[s]) {
            if (!_sets[d]) _sets[d] = std::make_unique<boost::unordered_flat_set<std::string, key_hash, key_equal>>();
            _sets[d]->insert(o._sets[s]->begin(), o._sets[s]->end());
        }
        break;
    case agg_kind::percentile:
        if (o._sketches[s]) {
            if (!_sketches[d]) _sketches[d] = std::make_unique<quantile_sketch>();
            _sketches[d]->merge(*o._sketches[s]);
        }
        break;
    }
}

void agg_column::emit(uint32_t s, column& out) const {
    switch (_kind) {
    case agg_kind::count_star:
    case agg_kind::count: out.push_int64(_n[s]); return;
    case agg_kind::count_distinct: out.push_int64(_sets[s] ? int64_t(_sets[s]->size()) : 0); return;
    case agg_kind::percentile:
        if (_sketches[s] && _sketches[s]->count() > 0) out.push_float64(_sketches[s]->quantile(_q));
        else out.push_null();
        return;
    case agg_kind::avg:
        if (_n[s] == 0) out.push_null();
        else out.push_float64(_d[s] / double(_n[s]));
        return;
    default: break;
    }
    if (_n[s] == 0) {
        out.push_null();
        return;
    }
    switch (store_of(_in)) {
    case store::integral:
        if (_in.id == type_id::boolean) out.push_bool(_i[s] != 0);
        else out.push_int64(_i[s]);
        break;
    case store::real: out.push_float64(_d[s]); break;
    case store::text: out.push_string(_s[s]); break;
    case store::none: out.push_null(); break;
    }
}

void agg_column::merge_range(const uint32_t* dst, const agg_column& src, size_t n) {
    if (_kind == agg_kind::count_star || _kind == agg_kind::count) {
        for (size_t i = 0; i < n; ++i) _n[dst[i]] += src._n[i];
        return;
    }
    if (_kind == agg_kind::sum && store_of(_in) == store::real) {
        for (size_t i = 0; i < n; ++i) {
            if (src._n[i] == 0) continue;
            _d[dst[i]] += src._d[i];
            _n[dst[i]] = 1;
        }
        return;
    }
    for (size_t i = 0; i < n; ++i) merge(dst[i], src, uint32_t(i));
}

void agg_column::emit_range(uint32_t from, uint32_t to, column& out) const {
    if (_kind == agg_kind::count_star || _kind == agg_kind::count) {
        out.append_int64(_n.data() + from, to - from);
        return;
    }
    if (_kind == agg_kind::sum && store_of(_in) == store::real) {
        // A sum is NULL only when its group saw no non-NULL input; runs of non-NULL sums go
        // in at once.
        for (uint32_t s = from; s < to;) {
            if (_n[s] == 0) {
                out.push_null();
                ++s;
                continue;
            }
            uint32_t e = s + 1;
            while (e < to && _n[e] != 0) ++e;
            out.append_float64(_d.data() + s, e - s);
            s = e;
        }
        return;
    }
    for (uint32_t s = from; s < to; ++s) emit(s, out);
}

void agg_column::take_rows(const uint32_t* slots, size_t n, column& out) {
    if (_kind == agg_kind::count_star || _kind == agg_kind::count) {
        out.append_int64(_n.data(), slots, n);
        for (size_t i = 0; i < n; ++i) _n[slots[i]] = 0;
        return;
    }
    if (_kind == agg_kind::sum && store_of(_in) == store::real) {
        // Runs of non-NULL sums go in at once (see emit_range).
        for (size_t i = 0; i < n;) {
            if (_n[slots[i]] == 0) {
                out.push_null();
                _d[slots[i]] = 0;
                ++i;
                continue;
            }
            size_t j = i + 1;
            while (j < n && _n[slots[j]] != 0) ++j;
            out.append_float64(_d.data(), slots + i, j - i);
            for (size_t k = i; k < j; ++k) {
                _n[slots[k]] = 0;
                _d[slots[k]] = 0;
            }
            i = j;
        }
        return;
    }
    for (size_t i = 0; i < n; ++i) {
        emit(slots[i], out);
        clear(slots[i]);
    }
}

void agg_column::emit_partial(uint32_t from, uint32_t to, column* out) const {
    switch (_kind) {
    case agg_kind::count_star:
    case agg_kind::count: out[0].append_int64(_n.data() + from, to - from); return;
    case agg_kind::avg:
        out[0].append_float64(_d.data() + from, to - from);
        out[1].append_int64(_n.data() + from, to - from);
        return;
    default: emit_range(from, to, out[0]); return; // SUM, MIN, MAX: the value so far, or NULL
    }
}

void agg_column::merge_partial(const column* in, const uint32_t* slots, size_t from, size_t to) {
    switch (_kind) {
    case agg_kind::count_star:
    case agg_kind::count: {
        const int64_t* n = in[0].int64_data();
        for (size_t r = from; r < to; ++r) _n[slots[r - from]] += n[r];
        return;
    }
    case agg_kind::avg: {
        const double* d = in[0].float64_data();
        const int64_t* n = in[1].int64_data();
        for (size_t r = from; r < to; ++r) {
            _d[slots[r - from]] += d[r];
            _n[slots[r - from]] += n[r];
        }
        return;
    }
    default:
        // A partial SUM, MIN or MAX folds in as one value of the input would (NULL: no value).
        update(in, nullptr, slots, from, to);
        return;
    }
}

void agg_column::write(uint32_t s, state_writer& w) const {
    w.i64(_n[s]);
    if (!_i.empty()) w.i64(_i[s]);
    if (!_d.empty()) w.f64(_d[s]);
    if (!_ts.empty()) w.i64(_ts[s]);
    if (!_s.empty()) w.str(_s[s]);
    if (_kind == agg_kind::count_distinct) {
        w.u32(_sets[s] ? uint32_t(_sets[s]->size()) : 0);
        if (_sets[s]) {
            for (const auto& k : *_sets[s]) w.str(k);
        }
    }
    if (_kind == agg_kind::percentile) {
        w.u8(_sketches[s] ? 1 : 0);
        if (_sketches[s]) _sketches[s]->write(w);
    }
}

bool agg_column::read(uint32_t s, state_reader& r) {
    _n[s] = r.i64();
    if (!_i.empty()) _i[s] = r.i64();
    if (!_d.empty()) _d[s] = r.f64();
    if (!_ts.empty()) _ts[s] = r.i64();
    if (!_s.empty()) _s[s] = std::string(r.str());
    if (_kind == agg_kind::count_distinct) {
        uint32_t n = r.count(4);
        if (n > 0) {
            _sets[s] = std::make_unique<boost::unordered_flat_set<std::string, key_hash, key_equal>>();
            for (uint32_t i = 0; i < n && r.ok(); ++i) _sets[s]->insert(std::string(r.str()));
        }
    }
    if (_kind == agg_kind::percentile && r.u8() == 1) {
        _sketches[s] = std::make_unique<quantile_sketch>();
        if (!_sketches[s]->read(r)) return false;
    }
    return r.ok();
}

} // namespace runnel::engine
