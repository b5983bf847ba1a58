#include "engine/group.h"

#include <cmath>
#include <cstring>
#include <map>
#include <optional>

#include <fmt/format.h>

#include "engine/value_io.h"
#include "engine/window.h"

namespace runnel::engine {

namespace {

constexpr uint32_t snapshot_magic = 0x50524752; // "RGRP"
constexpr uint32_t snapshot_version = 1;

enum class store : uint8_t { integral, real, text };

store store_of(data_type t) {
    switch (t.id) {
    case type_id::float64: return store::real;
    case type_id::string: return store::text;
    default: return store::integral;
    }
}

int64_t int_of(const column& c, size_t i) {
    return c.type().id == type_id::boolean ? int64_t(c.bool_at(i)) : c.int64_at(i);
}

/// Orders doubles totally: NaN after every number, equal to itself.
struct double_less {
    bool operator()(double a, double b) const { return a < b || (!std::isnan(a) && std::isnan(b)); }
};

/// A value with how many times it is present; a count that drops to 0 removes it.
template <class T, class Less = std::less<T>>
using counted = std::map<T, int64_t, Less>;

template <class M, class K>
void add_counted(M& m, K&& k, int sign) {
    if (sign > 0) {
        ++m[std::forward<K>(k)];
        return;
    }
    auto it = m.find(k);
    if (it != m.end() && --it->second <= 0) m.erase(it);
}

/// One aggregate's result outside a batch, without a `value` (no variant, no allocation for
/// numbers): what a group's row held before a batch changed it.
struct cell {
    bool null = true;
    int64_t i = 0;
    double d = 0;
    std::string s;

    friend bool operator==(const cell& a, const cell& b) {
        if (a.null || b.null) return a.null == b.null;
        return a.i == b.i && a.d == b.d && a.s == b.s;
    }
};

void push_cell(column& c, const cell& x) {
    if (x.null) {
        c.push_null();
        return;
    }
    switch (c.type().id) {
    case type_id::boolean: c.push_bool(x.i != 0); break;
    case type_id::int64:
    case type_id::timestamp: c.push_int64(x.i); break;
    case type_id::float64: c.push_float64(x.d); break;
    case type_id::string: c.push_string(x.s); break;
    }
}

/// The key encoding (`encode_key_part`) of a non-NULL integral value, as the snapshot of a
/// COUNT(DISTINCT) has always written it.
std::string encode_integral(int64_t v, type_id t) {
    std::string out(1, '\1');
    if (t == type_id::boolean) {
        out.push_back(v != 0 ? '\1' : '\0');
    } else {
        out.append(reinterpret_cast<const char*>(&v), sizeof v);
    }
    return out;
}

std::optional<int64_t> decode_integral(std::string_view k, type_id t) {
    if (t == type_id::boolean) {
        if (k.size() != 2 || k[0] != '\1') return std::nullopt;
        return int64_t(k[1] != 0);
    }
    if (k.size() != 1 + sizeof(int64_t) || k[0] != '\1') return std::nullopt;
    int64_t v;
    std::memcpy(&v, k.data() + 1, sizeof v);
    return v;
}

/// The key columns of a group aggregate: their numbers into `cols`, their fields into `out`.
result<void> bind_keys(const schema& input, const std::vector<std::string>& keys, std::vector<size_t>& cols,
                       std::vector<field>& out) {
    for (const auto& k : keys) {
        auto i = input.index_of(k);
        if (!i) {
            return fail(errc::unknown_column,
                        fmt::format("group-aggregate: unknown key column '{}' in {}", k, input.to_string()));
        }
        cols.push_back(*i);
        out.push_back(input.at(*i));
    }
    return outcome::success();
}

} // namespace

/// The state of one aggregate for every group, slot by slot (slot = group). Retractable:
/// sums and counts subtract; MIN/MAX (with `retract`) and COUNT(DISTINCT) keep counted values.
class group_stage::accumulator {
public:
    accumulator(const bound_aggregate& a, bool retract)
      : _kind(a.kind)
      , _in(a.input_type)
      , _st(store_of(a.input_type))
      , _retract(retract) {}

    void resize(size_t n) {
        _n.resize(n);
        switch (_kind) {
        case agg_kind::sum:
        case agg_kind::avg:
            if (_st == store::real) _d.resize(n);
            else _i.resize(n);
            break;
        case agg_kind::min:
        case agg_kind::max:
            if (_retract) {
                if (_st == store::integral) _mi.resize(n);
                else if (_st == store::real) _md.resize(n);
                else _ms.resize(n);
            } else if (_st == store::integral) _i.resize(n);
            else if (_st == store::real) _d.resize(n);
            else _s.resize(n);
            break;
        case agg_kind::count_distinct:
            if (_st == store::integral) _distinct_i.resize(n);
            else _distinct.resize(n);
            break;
        default: break;
        }
    }

    void clear(uint32_t s) {
        _n[s] = 0;
        if (!_i.empty()) _i[s] = 0;
        if (!_d.empty()) _d[s] = 0;
        if (!_s.empty()) _s[s].clear();
        if (!_mi.empty()) _mi[s].reset();
        if (!_md.empty()) _md[s].reset();
        if (!_ms.empty()) _ms[s].reset();
        if (!_distinct.empty()) _distinct[s].reset();
        if (!_distinct_i.empty()) _distinct_i[s].reset();
    }

    /// Adds row `r` of `c` to slot `s` (sign +1) or takes it back (−1). False when a
    /// retraction reaches a MIN/MAX that keeps no multiset.
    bool update(uint32_t s, const column* c, size_t r, int sign) {
        if (_kind == agg_kind::count_star) {
            _n[s] += sign;
            return true;
        }
        if (c->is_null(r)) return true;
        switch (_kind) {
        case agg_kind::count: _n[s] += sign; break;
        case agg_kind::sum:
        case agg_kind::avg:
            _n[s] += sign;
            if (_st == store::real) {
                _d[s] += sign > 0 ? c->float64_at(r) : -c->float64_at(r);
            } else {
                uint64_t v = uint64_t(int_of(*c, r));
                _i[s] = int64_t(sign > 0 ? uint64_t(_i[s]) + v : uint64_t(_i[s]) - v); // wraps on overflow
            }
            break;
        case agg_kind::min:
        case agg_kind::max: {
            if (!_retract) {
                if (sign < 0) return false;
                bool is_min = _kind == agg_kind::min;
                bool first = _n[s] == 0;
                _n[s] = 1;
                if (_st == store::integral) {
                    int64_t v = int_of(*c, r);
                    if (first || (is_min ? v < _i[s] : v > _i[s])) _i[s] = v;
                } else if (_st == store::real) {
                    double v = c->float64_at(r);
                    if (first || (is_min ? v < _d[s] : v > _d[s])) _d[s] = v;
                } else {
                    auto v = c->string_at(r);
                    if (first || (is_min ? v < _s[s] : v > _s[s])) _s[s].assign(v);
                }
                break;
            }
            _n[s] += sign;
            if (_st == store::integral) {
                if (!_mi[s]) _mi[s] = std::make_unique<counted<int64_t>>();
                add_counted(*_mi[s], int_of(*c, r), sign);
            } else if (_st == store::real) {
                if (!_md[s]) _md[s] = std::make_unique<counted<double, double_less>>();
                add_counted(*_md[s], c->float64_at(r), sign);
            } else {
                if (!_ms[s]) _ms[s] = std::make_unique<counted<std::string>>();
                add_counted(*_ms[s], std::string(c->string_at(r)), sign);
            }
            break;
        }
        case agg_kind::count_distinct: {
            if (_st == store::integral) {
                // Integers (the usual case) are counted by value, not by their key encoding.
                auto& m = _distinct_i[s];
                if (!m) m = std::make_unique<distinct_int_map>();
                int64_t v = int_of(*c, r);
                if (sign > 0) {
                    ++(*m)[v];
                } else if (auto it = m->find(v); it != m->end() && --it->second <= 0) {
                    m->erase(it);
                }
                break;
            }
            if (!_distinct[s]) _distinct[s] = std::make_unique<distinct_map>();
            _key.clear();
            encode_key_part(*c, r, _key);
            if (sign > 0) {
                ++(*_distinct[s])[_key];
            } else if (auto it = _distinct[s]->find(_key); it != _distinct[s]->end() && --it->second <= 0) {
                _distinct[s]->erase(it);
            }
            break;
        }
        default: break;
        }
        return true;
    }

    /// Folds row `r` of a local phase's partial columns `in[0]` (and `in[1]` for AVG) into
    /// slot `s`: what `update` would have done with the rows it summarises.
    void merge_partial(uint32_t s, const column* in, size_t r) {
        switch (_kind) {
        case agg_kind::count_star:
        case agg_kind::count: _n[s] += in[0].int64_at(r); return;
        case agg_kind::avg:
            // The partial sum is a double, so this slot's sum is one too (`bind_partial`).
            _n[s] += in[1].int64_at(r);
            _d[s] += in[0].float64_at(r);
            return;
        default: update(s, in, r, 1); return; // SUM, MIN, MAX: a value as the input's, or NULL
        }
    }

    value result(uint32_t s, data_type out) const {
        switch (_kind) {
        case agg_kind::count_star:
        case agg_kind::count: return value::of(_n[s]);
        case agg_kind::count_distinct: return value::of(distinct_count(s));
        default: break;
        }
        if (_n[s] <= 0) return value::null(out);
        switch (_kind) {
        case agg_kind::sum:
            return _st == store::real ? value::of(_d[s]) : value{out, _i[s]};
        case agg_kind::avg:
            return value::of((_st == store::real ? _d[s] : double(_i[s])) / double(_n[s]));
        case agg_kind::min:
        case agg_kind::max: {
            bool is_min = _kind == agg_kind::min;
            if (!_retract) {
                if (_st == store::real) return value::of(_d[s]);
                if (_st == store::text) return value::of(_s[s]);
                return integral(_i[s], out);
            }
            if (_st == store::integral) {
                if (!_mi[s] || _mi[s]->empty()) return value::null(out);
                return integral(is_min ? _mi[s]->begin()->first : _mi[s]->rbegin()->first, out);
            }
            if (_st == store::real) {
                if (!_md[s] || _md[s]->empty()) return value::null(out);
                return value::of(is_min ? _md[s]->begin()->first : _md[s]->rbegin()->first);
            }
            if (!_ms[s] || _ms[s]->empty()) return value::null(out);
            return value::of(is_min ? _ms[s]->begin()->first : _ms[s]->rbegin()->first);
        }
        default: return value::null(out);
        }
    }

    /// `result(s, out)` written into `x`.
    void result_cell(uint32_t s, data_type out, cell& x) const {
        x.null = false;
        x.i = 0;
        x.d = 0;
        x.s.clear();
        switch (_kind) {
        case agg_kind::count_star:
        case agg_kind::count: x.i = _n[s]; return;
        case agg_kind::count_distinct: x.i = distinct_count(s); return;
        default: break;
        }
        if (_n[s] <= 0) {
            x.null = true;
            return;
        }
        switch (_kind) {
        case agg_kind::sum:
            if (_st == store::real) x.d = _d[s];
            else x.i = _i[s];
            return;
        case agg_kind::avg: x.d = (_st == store::real ? _d[s] : double(_i[s])) / double(_n[s]); return;
        case agg_kind::min:
        case agg_kind::max: {
            bool is_min = _kind == agg_kind::min;
            if (!_retract) {
                if (_st == store::real) x.d = _d[s];
                else if (_st == store::text) x.s = _s[s];
                else x.i = out.id == type_id::boolean ? int64_t(_i[s] != 0) : _i[s];
                return;
            }
            if (_st == store::integral) {
                if (!_mi[s] || _mi[s]->empty()) x.null = true;
                else x.i = is_min ? _mi[s]->begin()->first : _mi[s]->rbegin()->first;
                if (!x.null && out.id == type_id::boolean) x.i = int64_t(x.i != 0);
            } else if (_st == store::real) {
                if (!_md[s] || _md[s]->empty()) x.null = true;
                else x.d = is_min ? _md[s]->begin()->first : _md[s]->rbegin()->first;
            } else {
                if (!_ms[s] || _ms[s]->empty()) x.null = true;
                else x.s = is_min ? _ms[s]->begin()->first : _ms[s]->rbegin()->first;
            }
            return;
        }
        default: x.null = true; return;
        }
    }

    void write(uint32_t s, state_writer& w) const {
        w.i64(_n[s]);
        if (!_i.empty()) w.i64(_i[s]);
        if (!_d.empty()) w.f64(_d[s]);
        if (!_s.empty()) w.str(_s[s]);
        auto write_map = [&](const auto& m, auto write_key) {
            w.u32(m ? uint32_t(m->size()) : 0);
            if (!m) return;
            for (const auto& [k, n] : *m) {
                write_key(k);
                w.i64(n);
            }
        };
        if (!_mi.empty()) write_map(_mi[s], [&](int64_t k) { w.i64(k); });
        if (!_md.empty()) write_map(_md[s], [&](double k) { w.f64(k); });
        if (!_ms.empty()) write_map(_ms[s], [&](const std::string& k) { w.str(k); });
        if (!_distinct.empty()) write_map(_distinct[s], [&](const std::string& k) { w.str(k); });
        if (!_distinct_i.empty()) {
            write_map(_distinct_i[s], [&](int64_t k) { w.str(encode_integral(k, _in.id)); });
        }
    }

    bool read(uint32_t s, state_reader& r) {
        _n[s] = r.i64();
        if (!_i.empty()) _i[s] = r.i64();
        if (!_d.empty()) _d[s] = r.f64();
        if (!_s.empty()) _s[s] = std::string(r.str());
        auto read_map = [&](auto& m, auto read_key) {
            uint32_t n = r.count(9);
            if (n == 0) return;
            m = std::make_unique<typename std::decay_t<decltype(m)>::element_type>();
            for (uint32_t i = 0; i < n && r.ok(); ++i) {
                auto k = read_key();
                (*m)[std::move(k)] = r.i64();
            }
        };
        if (!_mi.empty()) read_map(_mi[s], [&] { return r.i64(); });
        if (!_md.empty()) read_map(_md[s], [&] { return r.f64(); });
        if (!_ms.empty()) read_map(_ms[s], [&] { return std::string(r.str()); });
        if (!_distinct.empty()) read_map(_distinct[s], [&] { return std::string(r.str()); });
        bool keys_ok = true;
        if (!_distinct_i.empty()) {
            read_map(_distinct_i[s], [&] {
                auto v = decode_integral(r.str(), _in.id);
                if (!v) keys_ok = false;
                return v.value_or(0);
            });
        }
        return r.ok() && keys_ok;
    }

private:
    using distinct_map = boost::unordered_flat_map<std::string, int64_t, key_hash, key_equal>;
    using distinct_int_map = boost::unordered_flat_map<int64_t, int64_t>;

    int64_t distinct_count(uint32_t s) const {
        if (_st == store::integral) return _distinct_i[s] ? int64_t(_distinct_i[s]->size()) : 0;
        return _distinct[s] ? int64_t(_distinct[s]->size()) : 0;
    }

    static value integral(int64_t v, data_type out) {
        if (out.id == type_id::boolean) return value::of(v != 0);
        return value{out, v};
    }

    agg_kind _kind;
    data_type _in;
    store _st;
    bool _retract;
    std::vector<int64_t> _n; ///< values (or rows, for COUNT(*)) in the group
    std::vector<int64_t> _i; ///< integral sums; MIN/MAX without a multiset
    std::vector<double> _d;  ///< double sums; MIN/MAX without a multiset
    std::vector<std::string> _s;
    std::vector<std::unique_ptr<counted<int64_t>>> _mi;
    std::vector<std::unique_ptr<counted<double, double_less>>> _md;
    std::vector<std::unique_ptr<counted<std::string>>> _ms;
    std::vector<std::unique_ptr<distinct_map>> _distinct;
    std::vector<std::unique_ptr<distinct_int_map>> _distinct_i;
    std::string _key;
};

group_stage::~group_stage() = default;

result<std::unique_ptr<group_stage>> group_stage::make(schema_ptr input, std::vector<std::string> keys,
                                                       std::vector<aggregate_spec> aggs, group_options opts) {
    std::unique_ptr<group_stage> s(new group_stage());
    s->_in = input;
    s->_opts = opts;
    if (opts.phase == agg_phase::local) {
        return fail(errc::invalid_argument, "group-aggregate: the local phase is a group_local_stage");
    }
    std::vector<field> out;
    RUNNEL_TRY(bind_keys(*input, keys, s->_keys, out));
    if (aggs.empty()) return fail(errc::invalid_argument, "group-aggregate: no aggregates");
    for (const auto& a : aggs) {
        RUNNEL_TRY(auto b, opts.phase == agg_phase::global ? bind_partial(a, *input) : bind_aggregate(a, *input));
        switch (b.kind) {
        case agg_kind::first_value:
        case agg_kind::last_value:
        case agg_kind::percentile:
            return fail(errc::invalid_argument,
                        fmt::format("group-aggregate: aggregate '{}' needs a window (first, last and percentile "
                                    "values cannot be taken back)",
                                    b.name));
        default: break;
        }
        for (const auto& f : out) {
            if (f.name == b.name) {
                return fail(errc::invalid_argument,
                            fmt::format("group-aggregate: two output columns named '{}'; rename one with as()", b.name));
            }
        }
        out.push_back({b.name, b.output_type, true});
        s->_acc.push_back(std::make_unique<accumulator>(b, opts.retractions));
        s->_aggs.push_back(std::move(b));
    }
    s->_out = make_schema(std::move(out));
    return s;
}

uint32_t group_stage::add_group(std::string key, const batch& b, size_t row) {
    uint32_t slot;
    if (!_free.empty()) {
        slot = _free.back();
        _free.pop_back();
    } else {
        slot = uint32_t(_slot_key.size());
        _slot_key.emplace_back();
        _slot_values.emplace_back();
        _rows.push_back(0);
        _seen.push_back(0);
        if (_slot_key.size() > _capacity) {
            _capacity = std::max<size_t>(64, _capacity * 2);
            for (auto& a : _acc) a->resize(_capacity);
        }
    }
    std::vector<value> vals;
    vals.reserve(_keys.size());
    for (auto k : _keys) vals.push_back(b.col(k).value_at(row));
    _slot_values[slot] = std::move(vals);
    _slot_key[slot] = key;
    _rows[slot] = 0;
    _seen[slot] = 0;
    _index.emplace(std::move(key), slot);
    return slot;
}

void group_stage::free_group(uint32_t slot) {
    _index.erase(_slot_key[slot]);
    _slot_key[slot].clear();
    _slot_values[slot].clear();
    _rows[slot] = 0;
    for (auto& a : _acc) a->clear(slot);
    _free.push_back(slot);
}

void group_stage::reset() {
    _index.clear();
    _slot_key.clear();
    _slot_values.clear();
    _rows.clear();
    _seen.clear();
    _free.clear();
    _capacity = 0;
    for (auto& a : _acc) a->resize(0);
}

std::vector<value> group_stage::result_row(uint32_t slot) const {
    std::vector<value> row = _slot_values[slot];
    for (size_t a = 0; a < _acc.size(); ++a) row.push_back(_acc[a]->result(slot, _aggs[a].output_type));
    return row;
}

void group_stage::on_batch(size_t, batch b, stage_output& out) {
    const size_t n = b.num_rows();
    metrics().rows_in += n;
    ++metrics().batches_in;
    ++_batch_no;
    const size_t naggs = _acc.size();
    const bool partials = _opts.phase == agg_phase::global;
    std::vector<const column*> inputs;
    for (const auto& a : _aggs) {
        inputs.push_back(a.kind == agg_kind::count_star && !partials ? nullptr : &b.col(a.input));
    }
    // The groups this batch touches, in first-touch order, with their aggregates before it
    // (`naggs` cells per touched group; `had` says whether the group had a result).
    std::vector<uint32_t> touched;
    std::vector<uint8_t> had;
    std::vector<cell> before;
    for (size_t r = 0; r < n; ++r) {
        row_kind k = b.kind(r);
        int sign = k == row_kind::insert || k == row_kind::update_after ? 1 : -1;
        _key_buf.clear();
        for (auto c : _keys) encode_key_part(b.col(c), r, _key_buf);
        uint32_t slot;
        if (auto it = _index.find(_key_buf); it != _index.end()) {
            slot = it->second;
        } else if (sign < 0) {
            continue; // takes back from a group that does not exist
        } else {
            slot = add_group(_key_buf, b, r);
        }
        if (_seen[slot] != _batch_no) {
            _seen[slot] = _batch_no;
            touched.push_back(slot);
            had.push_back(_rows[slot] > 0 ? 1 : 0);
            before.resize(before.size() + naggs);
            if (_rows[slot] > 0) {
                cell* x = before.data() + before.size() - naggs;
                for (size_t a = 0; a < naggs; ++a) _acc[a]->result_cell(slot, _aggs[a].output_type, x[a]);
            }
        }
        _rows[slot] += sign;
        if (partials) {
            // A local phase sends inserts only (its input is append-only).
            for (size_t a = 0; a < naggs; ++a) _acc[a]->merge_partial(slot, inputs[a], r);
            continue;
        }
        for (size_t a = 0; a < naggs; ++a) {
            if (!_acc[a]->update(slot, inputs[a], r, sign) && _failure.empty()) {
                _failure = fmt::format("a retraction reached aggregate '{}', which keeps no values to take back "
                                       "(the input was declared append-only)",
                                       _aggs[a].name);
            }
        }
    }
    // The changes, written straight into the output's columns.
    batch changes(_out);
    std::vector<row_kind> kinds;
    bool only_inserts = true;
    const size_t nkeys = _keys.size();
    auto emit = [&](uint32_t slot, const cell* cells, row_kind kind) {
        for (size_t k = 0; k < nkeys; ++k) changes.mutable_col(k).push_value(_slot_values[slot][k]);
        for (size_t a = 0; a < naggs; ++a) push_cell(changes.mutable_col(nkeys + a), cells[a]);
        kinds.push_back(kind);
        only_inserts = only_inserts && kind == row_kind::insert;
    };
    std::vector<cell> after(naggs);
    for (size_t i = 0; i < touched.size(); ++i) {
        uint32_t slot = touched[i];
        const cell* was = before.data() + i * naggs;
        if (_rows[slot] > 0) {
            for (size_t a = 0; a < naggs; ++a) _acc[a]->result_cell(slot, _aggs[a].output_type, after[a]);
            if (!had[i]) {
                emit(slot, after.data(), row_kind::insert);
            } else if (!std::equal(after.begin(), after.end(), was)) {
                emit(slot, was, row_kind::update_before);
                emit(slot, after.data(), row_kind::update_after);
            }
            continue;
        }
        if (had[i]) emit(slot, was, row_kind::delete_row);
        free_group(slot);
    }
    changes.seal();
    if (!only_inserts) changes.set_row_kinds(std::move(kinds));
    metrics().rows_out += changes.num_rows();
    out.emit(std::move(changes));
}

std::string group_stage::snapshot() const {
    state_writer w;
    w.u32(snapshot_magic);
    w.u32(snapshot_version);
    w.u32(uint32_t(_aggs.size()));
    w.u32(uint32_t(_index.size()));
    for (const auto& [key, slot] : _index) {
        w.str(key);
        w.i64(_rows[slot]);
        for (const auto& v : _slot_values[slot]) write_value(w, v);
        for (const auto& a : _acc) a->write(slot, w);
    }
    return std::move(w.bytes());
}

result<void> group_stage::restore(std::string_view bytes) {
    if (bytes.empty()) return outcome::success();
    state_reader r(bytes);
    if (r.u32() != snapshot_magic || r.u32() != snapshot_version || r.u32() != _aggs.size()) {
        return fail(errc::corrupt_state, "group-aggregate: the snapshot is of another stage or version");
    }
    reset();
    uint32_t groups = r.count(12);
    for (uint32_t g = 0; g < groups && r.ok(); ++g) {
        std::string key(r.str());
        int64_t rows = r.i64();
        std::vector<value> vals;
        for (auto k : _keys) vals.push_back(read_value(r, _in->at(k).type));
        if (!r.ok() || _index.contains(key)) break;
        uint32_t slot = uint32_t(_slot_key.size());
        _slot_key.push_back(key);
        _slot_values.push_back(std::move(vals));
        _rows.push_back(rows);
        _seen.push_back(0);
        if (_slot_key.size() > _capacity) {
            _capacity = std::max<size_t>(64, _capacity * 2);
            for (auto& a : _acc) a->resize(_capacity);
        }
        _index.emplace(std::move(key), slot);
        for (auto& a : _acc) {
            if (!a->read(slot, r)) break;
        }
    }
    if (!r.ok() || !r.at_end() || _index.size() != groups) {
        reset();
        return fail(errc::corrupt_state, "group-aggregate: damaged snapshot");
    }
    return outcome::success();
}

group_local_stage::~group_local_stage() = default;

result<std::unique_ptr<group_local_stage>> group_local_stage::make(schema_ptr input, std::vector<std::string> keys,
                                                                   std::vector<aggregate_spec> aggs) {
    std::unique_ptr<group_local_stage> s(new group_local_stage());
    std::vector<field> out;
    RUNNEL_TRY(bind_keys(*input, keys, s->_keys, out));
    if (aggs.empty()) return fail(errc::invalid_argument, "group-aggregate: no aggregates");
    for (const auto& a : aggs) {
        RUNNEL_TRY(auto b, bind_aggregate(a, *input));
        if (!splittable(b.kind)) {
            return fail(errc::invalid_argument, fmt::format("group-aggregate: aggregate '{}' cannot be split into a "
                                                            "local and a global phase (only COUNT, SUM, MIN, MAX "
                                                            "and AVG can)",
                                                            b.name));
        }
        auto adds = partial_fields(b);
        for (const auto& f : out) {
            for (const auto& g : adds) {
                if (f.name == g.name) {
                    return fail(errc::invalid_argument, fmt::format("group-aggregate: two output columns named "
                                                                    "'{}'; rename one with as()",
                                                                    g.name));
                }
            }
        }
        s->_agg_at.push_back(out.size());
        out.insert(out.end(), adds.begin(), adds.end());
        s->_aggs.push_back(std::move(b));
    }
    s->_out = make_schema(std::move(out));
    const bool int_key = s->_keys.size() == 1 && (input->at(s->_keys[0]).type.id == type_id::int64 ||
                                                  input->at(s->_keys[0]).type.id == type_id::timestamp);
    s->_table = std::make_unique<group_table>(s->_aggs, int_key);
    return s;
}

void group_local_stage::on_batch(size_t, batch b, stage_output& out) {
    const size_t n = b.num_rows();
    metrics().rows_in += n;
    ++metrics().batches_in;
    if (!_failure.empty() || n == 0) return;
    for (size_t r = 0; b.has_row_kinds() && r < n; ++r) {
        if (b.kind(r) != row_kind::insert) {
            _failure = fmt::format("group-aggregate (local phase): a {} row arrived, but a local phase takes "
                                   "append-only input",
                                   row_kind_name(b.kind(r)));
            return;
        }
    }
    group_table& t = *_table;
    t.clear();
    _slots.resize(n);
    const column* k0 = t.int_keys ? &b.col(_keys[0]) : nullptr;
    if (k0 && k0->null_count() == 0) {
        t.find_or_add_ints(k0->int64_data(), n, _slots.data());
    } else {
        for (size_t r = 0; r < n; ++r) {
            _key_buf.clear();
            if (k0 && k0->valid(r)) {
                _slots[r] = t.find_or_add_int(k0->int64_at(r));
                continue;
            }
            for (auto c : _keys) encode_key_part(b.col(c), r, _key_buf);
            _slots[r] = t.find_or_add(_key_buf);
        }
    }
    for (size_t a = 0; a < _aggs.size(); ++a) {
        const column* in = _aggs[a].kind == agg_kind::count_star ? nullptr : &b.col(_aggs[a].input);
        t.aggs[a].update(in, nullptr, _slots.data(), 0, n);
    }
    batch partials(_out);
    t.append_keys(0, t.size(), &partials.mutable_col(0), _keys.size());
    for (size_t a = 0; a < _aggs.size(); ++a) t.aggs[a].emit_partial(0, t.size(), &partials.mutable_col(_agg_at[a]));
    partials.seal();
    metrics().rows_out += partials.num_rows();
    out.emit(std::move(partials));
}

result<std::unique_ptr<upsert_stage>> upsert_stage::make(schema_ptr input, const std::vector<std::string>& keys) {
    std::unique_ptr<upsert_stage> s(new upsert_stage());
    if (keys.empty()) return fail(errc::invalid_argument, "upsert: needs key columns");
    for (const auto& k : keys) {
        auto i = input->index_of(k);
        if (!i) return fail(errc::unknown_column, fmt::format("upsert: unknown key column '{}' in {}", k, input->to_string()));
        s->_keys.push_back(*i);
    }
    s->_schema = std::move(input);
    return s;
}

void upsert_stage::on_batch(size_t, batch b, stage_output& out) {
    const size_t n = b.num_rows();
    metrics().rows_in += n;
    if (!b.has_row_kinds()) {
        metrics().rows_out += n;
        out.emit(std::move(b));
        return;
    }
    std::vector<row_kind> kinds(n);
    std::vector<uint8_t> keep(n, 1);
    bool dropped = false;
    std::string a, c;
    for (size_t r = 0; r < n; ++r) {
        kinds[r] = b.kind(r);
        if (kinds[r] != row_kind::update_before) continue;
        bool replaced = false;
        if (r + 1 < n && b.kind(r + 1) == row_kind::update_after) {
            a.clear();
            c.clear();
            for (auto k : _keys) {
                encode_key_part(b.col(k), r, a);
                encode_key_part(b.col(k), r + 1, c);
            }
            replaced = a == c;
        }
        if (replaced) {
            keep[r] = 0;
            dropped = true;
        } else {
            kinds[r] = row_kind::delete_row;
        }
    }
    b.set_row_kinds(std::move(kinds));
    if (dropped) b = b.select(keep);
    metrics().rows_out += b.num_rows();
    out.emit(std::move(b));
}

} // namespace runnel::engine
