#include "engine/pipeline.h"

#include <fmt/format.h>

namespace runnel::engine {

pipeline::pipeline(pipeline_options opts)
  : _opts(std::move(opts)) {
    if (_opts.queue_capacity == 0) _opts.queue_capacity = 1;
}

void pipeline::fail_build(error e) {
    if (!_error) _error = std::move(e);
}

bool pipeline::ok_to_build(const stream& s) {
    if (_error) return false;
    if (s._p != this || s._node >= _nodes.size()) {
        fail_build(error(errc::invalid_pipeline, "a stream of another pipeline (or an empty stream) used here"));
        return false;
    }
    return true;
}

std::vector<pipeline::link> pipeline::links() const {
    std::vector<link> out;
    for (size_t id = 0; id < _nodes.size(); ++id) {
        for (size_t port = 0; port < _nodes[id].outs.size(); ++port) {
            for (const auto& e : _nodes[id].outs[port]) out.push_back({id, port, e.node});
        }
    }
    return out;
}

stream pipeline::add(std::unique_ptr<stage> st, const std::vector<const stream*>& inputs, std::string time) {
    size_t id = _nodes.size();
    node n;
    n.outs.resize(st->num_outputs());
    n.inputs.resize(inputs.size());
    n.input_wm.assign(inputs.size(), INT64_MIN);
    n.input_idle.assign(inputs.size(), false);
    n.input_ended.assign(inputs.size(), false);
    n.st = std::move(st);
    _nodes.push_back(std::move(n));
    for (size_t k = 0; k < inputs.size(); ++k) {
        auto& src = _nodes[inputs[k]->_node];
        if (inputs[k]->_port >= src.outs.size()) {
            fail_build(error(errc::invalid_pipeline, fmt::format("stage '{}' has no output {}", src.st->name(),
                                                                 inputs[k]->_port)));
            return {};
        }
        src.outs[inputs[k]->_port].push_back({id, k});
        ++_edges;
    }
    return stream(this, id, 0, std::move(time));
}

stream pipeline::source(schema_ptr s, source_fn fn) {
    if (_error) return {};
    if (!s || !fn) {
        fail_build(error(errc::invalid_pipeline, "source: needs a schema and a function"));
        return {};
    }
    auto st = add(std::make_unique<source_stage>(std::move(s), std::move(fn)), {}, "");
    _nodes.back().is_source = true;
    return st;
}

result<void> pipeline::check() const {
    if (_error) return outcome::failure(*_error);
    if (_nodes.empty()) return fail(errc::invalid_pipeline, "the pipeline has no source");
    return outcome::success();
}

schema_ptr stream::schema_of() const {
    if (!_p || _p->_error || _node >= _p->_nodes.size()) return nullptr;
    return _p->_nodes[_node].st->output_schema(_port);
}

stream stream::watermark(std::string time_column, std::chrono::milliseconds bound, watermark_options opts) {
    if (!_p || !_p->ok_to_build(*this)) return {};
    auto s = schema_of();
    auto t = s->index_of(time_column);
    if (!t) {
        _p->fail_build(error(errc::unknown_column, fmt::format("watermark: unknown column '{}' in {}", time_column,
                                                               s->to_string())));
        return {};
    }
    if (!s->at(*t).type.is_integral()) {
        _p->fail_build(error(errc::type_mismatch, fmt::format("watermark: column '{}' is {}; event time must be a "
                                                              "timestamp or bigint milliseconds",
                                                              time_column, s->at(*t).type.name())));
        return {};
    }
    if (bound.count() < 0) {
        _p->fail_build(error(errc::invalid_argument, "watermark: out-of-orderness bound must not be negative"));
        return {};
    }
    if (!opts.clock) opts.clock = _p->_opts.clock;
    return _p->add(std::make_unique<watermark_stage>(s, *t, bound.count(), std::move(opts)), {this}, time_column);
}

stream stream::decode(decode_format f, schema_ptr output, std::string value_column) {
    if (!_p || !_p->ok_to_build(*this)) return {};
    auto st = decode_stage::make(schema_of(), std::move(value_column), f, std::move(output));
    if (!st) {
        _p->fail_build(st.error());
        return {};
    }
    return _p->add(std::unique_ptr<stage>(std::move(st).value()), {this}, "");
}

stream stream::filter(const expr& predicate) {
    if (!_p || !_p->ok_to_build(*this)) return {};
    auto st = filter_stage::make(schema_of(), predicate);
    if (!st) {
        _p->fail_build(st.error());
        return {};
    }
    return _p->add(std::unique_ptr<stage>(std::move(st).value()), {this}, _time);
}

stream stream::project(const std::vector<named_expr>& columns) {
    if (!_p || !_p->ok_to_build(*this)) return {};
    auto st = project_stage::make(schema_of(), columns);
    if (!st) {
        _p->fail_build(st.error());
        return {};
    }
    // The event time survives a projection that keeps its column under the same name.
    std::string time;
    for (const auto& c : columns) {
        if (!_time.empty() && c.e.node().op == expr_op::column && c.e.node().name == _time && c.name == _time) {
            time = _time;
        }
    }
    // A projection straight after a filter is fused into it (see filter_stage).
    auto& up = _p->_nodes[_node];
    if (auto* f = dynamic_cast<filter_stage*>(up.st.get());
        f && !f->fused() && _port == 0 && up.outs[0].empty() && _node + 1 == _p->_nodes.size()) {
        f->fuse(std::move(st).value());
        return stream(_p, _node, 0, time);
    }
    return _p->add(std::unique_ptr<stage>(std::move(st).value()), {this}, time);
}

keyed_stream stream::key_by(std::vector<std::string> keys) { return keyed_stream(*this, std::move(keys)); }

windowed_stream stream::window(window_spec w, window_options opts) { return windowed_stream(*this, {}, w, opts); }

stream stream::deduplicate(std::vector<std::string> keys, state_options state) {
    if (!_p || !_p->ok_to_build(*this)) return {};
    std::unique_ptr<state_store> store;
    if (!state.rocksdb_dir.empty()) {
        auto s = rocksdb_state(state.rocksdb_dir);
        if (!s) {
            _p->fail_build(s.error());
            return {};
        }
        store = std::move(s).value();
    }
    auto st = dedup_stage::make(schema_of(), keys, std::move(store));
    if (!st) {
        _p->fail_build(st.error());
        return {};
    }
    return _p->add(std::unique_ptr<stage>(std::move(st).value()), {this}, _time);
}

stream stream::union_with(const std::vector<stream>& others) {
    if (!_p || !_p->ok_to_build(*this)) return {};
    std::vector<const stream*> ins{this};
    auto s = schema_of();
    for (const auto& o : others) {
        if (!_p->ok_to_build(o)) return {};
        if (!(*o.schema_of() == *s)) {
            _p->fail_build(error(errc::type_mismatch, fmt::format("union: schemas differ: {} and {}", s->to_string(),
                                                                  o.schema_of()->to_string())));
            return {};
        }
        ins.push_back(&o);
    }
    std::string time = _time;
    for (const auto& o : others) {
        if (o._time != time) time.clear();
    }
    return _p->add(std::make_unique<union_stage>(s), ins, time);
}

stream stream::join(const stream& right, join_spec spec) {
    if (!_p || !_p->ok_to_build(*this) || !_p->ok_to_build(right)) return {};
    std::string time = spec.interval ? spec.interval->left_time : "";
    auto st = join_stage::make(schema_of(), right.schema_of(), std::move(spec));
    if (!st) {
        _p->fail_build(st.error());
        return {};
    }
    return _p->add(std::unique_ptr<stage>(std::move(st).value()), {this, &right}, time);
}

stream stream::window_join(const stream& right, window_join_spec spec, std::string time_column) {
    if (!_p || !_p->ok_to_build(*this) || !_p->ok_to_build(right)) return {};
    auto st = window_join_stage::make(schema_of(), right.schema_of(), std::move(spec));
    if (!st) {
        _p->fail_build(st.error());
        return {};
    }
    if (!time_column.empty() && !st.value()->output_schema(0)->index_of(time_column)) {
        _p->fail_build(error(errc::unknown_column, fmt::format("window join: no time column '{}' in the output",
                                                               time_column)));
        return {};
    }
    return _p->add(std::unique_ptr<stage>(std::move(st).value()), {this, &right}, std::move(time_column));
}

stream stream::lookup_join(const stream& table, std::vector<std::string> keys, std::vector<std::string> table_keys,
                           join_type type, bool table_first) {
    if (!_p || !_p->ok_to_build(*this) || !_p->ok_to_build(table)) return {};
    auto st = lookup_join_stage::make(schema_of(), table.schema_of(), std::move(keys), std::move(table_keys), type,
                                      table_first);
    if (!st) {
        _p->fail_build(st.error());
        return {};
    }
    return _p->add(std::unique_ptr<stage>(std::move(st).value()), {this, &table}, _time);
}

stream stream::temporal_join(const stream& table, std::vector<std::string> keys, std::vector<std::string> table_keys,
                             join_type type) {
    if (!_p || !_p->ok_to_build(*this) || !_p->ok_to_build(table)) return {};
    if (_time.empty() || table._time.empty()) {
        _p->fail_build(error(errc::invalid_argument,
                             fmt::format("temporal join: the {} has no event time (a watermark)",
                                         _time.empty() ? "stream" : "table")));
        return {};
    }
    auto st = temporal_join_stage::make(schema_of(), table.schema_of(), std::move(keys), std::move(table_keys), _time,
                                        table._time, type);
    if (!st) {
        _p->fail_build(st.error());
        return {};
    }
    return _p->add(std::unique_ptr<stage>(std::move(st).value()), {this, &table}, _time);
}

stream stream::top_n(top_n_spec spec) {
    if (!_p || !_p->ok_to_build(*this)) return {};
    auto st = top_n_stage::make(schema_of(), std::move(spec));
    if (!st) {
        _p->fail_build(st.error());
        return {};
    }
    return _p->add(std::unique_ptr<stage>(std::move(st).value()), {this}, _time);
}

stream stream::group_aggregate(std::vector<std::string> keys, std::vector<aggregate_spec> aggs, group_options opts) {
    if (!_p || !_p->ok_to_build(*this)) return {};
    if (opts.phase == agg_phase::local) {
        auto st = group_local_stage::make(schema_of(), std::move(keys), std::move(aggs));
        if (!st) {
            _p->fail_build(st.error());
            return {};
        }
        return _p->add(std::unique_ptr<stage>(std::move(st).value()), {this}, "");
    }
    auto st = group_stage::make(schema_of(), std::move(keys), std::move(aggs), opts);
    if (!st) {
        _p->fail_build(st.error());
        return {};
    }
    return _p->add(std::unique_ptr<stage>(std::move(st).value()), {this}, "");
}

stream stream::upsert(std::vector<std::string> keys) {
    if (!_p || !_p->ok_to_build(*this)) return {};
    auto st = upsert_stage::make(schema_of(), keys);
    if (!st) {
        _p->fail_build(st.error());
        return {};
    }
    return _p->add(std::unique_ptr<stage>(std::move(st).value()), {this}, _time);
}

stream stream::side_output() const {
    if (!_p || _p->_error) return {};
    if (_p->_nodes[_node].st->num_outputs() < 2) {
        _p->fail_build(error(errc::invalid_pipeline, fmt::format("stage '{}' has no side output",
                                                                 _p->_nodes[_node].st->name())));
        return {};
    }
    return stream(_p, _node, 1, "");
}

void stream::sink(sink_fn fn, watermark_fn on_watermark, ready_fn ready) {
    if (!_p || !_p->ok_to_build(*this)) return;
    if (!fn) {
        _p->fail_build(error(errc::invalid_pipeline, "sink: no function"));
        return;
    }
    _p->add(std::make_unique<sink_stage>(schema_of(), std::move(fn), std::move(on_watermark), std::move(ready)), {this},
            "");
}

windowed_stream keyed_stream::window(window_spec w, window_options opts) {
    return windowed_stream(_s, _keys, w, opts);
}

stream keyed_stream::deduplicate(state_options state) { return _s.deduplicate(_keys, std::move(state)); }

stream keyed_stream::aggregate(std::vector<aggregate_spec> aggs, group_options opts) {
    return _s.group_aggregate(_keys, std::move(aggs), opts);
}

stream windowed_stream::aggregate(std::vector<aggregate_spec> aggs) {
    pipeline* p = _s._p;
    if (!p || !p->ok_to_build(_s)) return {};
    if (_s._time.empty()) {
        p->fail_build(error(errc::invalid_pipeline, "window: the stream has no event time; call watermark(column, "
                                                    "bound) before windowing"));
        return {};
    }
    auto st = window_stage::make(_s.schema_of(), _s._time, _keys, _w, std::move(aggs), _opts);
    if (!st) {
        p->fail_build(st.error());
        return {};
    }
    // A local stage's partial rows carry the time of their pane, which the global stage windows by.
    return p->add(std::unique_ptr<stage>(std::move(st).value()), {&_s},
                  _opts.phase == agg_phase::local ? pane_start_column : "");
}

// ---- running ----

bool pipeline::flush(node& n) {
    while (n.pending_pos < n.pending.size()) {
        auto& [port, m] = n.pending[n.pending_pos];
        bool is_wm = port == SIZE_MAX;
        // Every target must have room: a batch waits rather than overfill a queue.
        for (size_t p = 0; p < n.outs.size(); ++p) {
            if (!is_wm && p != port) continue;
            for (const auto& e : n.outs[p]) {
                if (_nodes[e.node].inputs[e.input].size() >= _opts.queue_capacity) return false;
            }
        }
        std::vector<const edge*> targets;
        for (size_t p = 0; p < n.outs.size(); ++p) {
            if (!is_wm && p != port) continue;
            for (const auto& e : n.outs[p]) targets.push_back(&e);
        }
        for (size_t k = 0; k < targets.size(); ++k) {
            auto& q = _nodes[targets[k]->node].inputs[targets[k]->input];
            if (k + 1 == targets.size()) q.push_back(std::move(m));
            else q.push_back(m);
        }
        ++n.pending_pos;
        _moved = true;
    }
    n.pending.clear();
    n.pending_pos = 0;
    return true;
}

void pipeline::process(size_t id, size_t input, message m) {
    node& n = _nodes[id];
    if (auto* b = std::get_if<batch>(&m)) {
        n.st->on_batch(input, std::move(*b), _out);
    } else if (auto* wm = std::get_if<model::event_time>(&m)) {
        n.input_wm[input] = std::max(n.input_wm[input], wm->value());
        advance(n);
    } else {
        n.input_idle[input] = std::get<watermark_status>(m) == watermark_status::idle;
        advance(n);
    }
    auto& out = _out.pending();
    for (auto& x : out) n.pending.push_back(std::move(x));
    out.clear();
}

void pipeline::advance(node& n) {
    watermark_meet meet;
    for (size_t k = 0; k < n.inputs.size(); ++k) {
        if (n.st->ignores_watermark_of(k) || (n.input_ended[k] && n.inputs[k].empty())) continue;
        meet.input(n.input_wm[k], n.input_idle[k]);
    }
    const bool now_idle = meet.idle();
    if (!now_idle && n.idle) {
        n.idle = false; // the status goes out before the watermark it lets through
        n.st->on_watermark_status(watermark_status::active, _out);
    }
    if (meet.watermark() > n.wm) {
        n.wm = meet.watermark();
        n.st->on_watermark(model::event_time(n.wm), _out);
    }
    if (now_idle && !n.idle) {
        n.idle = true; // after the watermark it holds
        n.st->on_watermark_status(watermark_status::idle, _out);
    }
}

bool pipeline::waits_for_other_input(const node& n, size_t input) const {
    for (size_t j = 0; j < n.inputs.size(); ++j) {
        if (j != input && n.st->waits_for_end_of(j) && !(n.input_ended[j] && n.inputs[j].empty())) return true;
    }
    return false;
}

result<void> pipeline::check_stages() const {
    for (const auto& n : _nodes) {
        if (auto f = n.st->failure(); !f.empty()) {
            return fail(errc::state_failed, fmt::format("stage '{}': {}", n.st->name(), f));
        }
    }
    return outcome::success();
}

result<bool> pipeline::run_once() {
    RUNNEL_TRY(check());
    RUNNEL_TRY(check_stages());
    bool progress = false;
    bool blocked = false; ///< a stage that is not ready holds input back
    _moved = false;
    for (size_t id = _nodes.size(); id-- > 0;) {
        node& n = _nodes[id];
        if (!flush(n)) continue;
        if (n.is_source && !n.source_done) {
            auto r = static_cast<source_stage&>(*n.st).poll();
            if (r.st == source_poll::status::data) {
                if (!(*r.rows.schema_of() == *n.st->output_schema(0))) {
                    return fail(errc::invalid_pipeline,
                                fmt::format("source returned a batch of schema {}, declared {}",
                                            r.rows.schema_of()->to_string(), n.st->output_schema(0)->to_string()));
                }
                n.st->metrics().rows_in += r.rows.num_rows();
                n.st->metrics().rows_out += r.rows.num_rows();
                ++n.st->metrics().batches_in;
                n.pending.emplace_back(0, message(std::move(r.rows)));
                progress = true;
            } else if (r.st == source_poll::status::watermark) {
                n.st->metrics().watermark = r.wm.value();
                n.pending.emplace_back(SIZE_MAX, message(r.wm));
                progress = true;
            } else if (r.st == source_poll::status::mark) {
                n.pending.emplace_back(SIZE_MAX, message(r.mark));
                progress = true;
            } else if (r.st == source_poll::status::end) {
                n.source_done = true;
                n.pending.emplace_back(SIZE_MAX, message(end_of_time));
                progress = true;
            }
            flush(n);
        } else if (!n.is_source) {
            for (size_t k = 0; k < n.inputs.size(); ++k) {
                if (waits_for_other_input(n, k)) continue;
                while (!n.inputs[k].empty() && n.pending.empty()) {
                    if (!n.st->ready()) {
                        blocked = true;
                        break;
                    }
                    message m = std::move(n.inputs[k].front());
                    n.inputs[k].pop_front();
                    process(id, k, std::move(m));
                    progress = true;
                    if (!flush(n)) break;
                }
            }
        }
        // A stage whose inputs have all ended (and drained) sees the final watermark, then ends.
        bool all_done = !n.is_source || n.source_done;
        for (size_t k = 0; k < n.inputs.size(); ++k) all_done = all_done && n.input_ended[k] && n.inputs[k].empty();
        if (all_done && !n.ended && n.pending.empty()) {
            if (!n.is_source) {
                if (n.wm < end_of_time.value()) {
                    n.wm = end_of_time.value();
                    n.st->on_watermark(end_of_time, _out);
                }
                n.st->on_end(_out);
                auto& out = _out.pending();
                for (auto& x : out) n.pending.push_back(std::move(x));
                out.clear();
            }
            n.ended = true;
            progress = true;
        }
        if (n.ended && flush(n)) {
            for (auto& port : n.outs) {
                for (const auto& e : port) {
                    if (!_nodes[e.node].input_ended[e.input]) {
                        _nodes[e.node].input_ended[e.input] = true;
                        progress = true;
                    }
                }
            }
        }
    }
    _progress = progress || _moved;
    bool finished = true;
    for (const auto& n : _nodes) finished = finished && n.ended && n.pending.empty();
    bool sources_done = true;
    for (const auto& n : _nodes) sources_done = sources_done && (!n.is_source || n.source_done);
    if (!progress && !_moved && !blocked && sources_done && !finished) {
        // Cannot happen while every stage drains its inputs; report rather than spin.
        return fail(errc::invalid_pipeline, "pipeline stalled: sources ended but stages still hold data");
    }
    // Time-driven work (idle inputs) runs every pass: a busy source must not starve it.
    if (!finished) {
        auto now = _opts.clock();
        for (size_t id = 0; id < _nodes.size(); ++id) {
            node& n = _nodes[id];
            if (n.ended) continue;
            n.st->on_tick(now, _out);
            auto& out = _out.pending();
            for (auto& x : out) n.pending.push_back(std::move(x));
            out.clear();
        }
    }
    return finished;
}

result<void> pipeline::run() {
    while (true) {
        RUNNEL_TRY(bool done, run_once());
        if (done) return outcome::success();
    }
}

bool pipeline::quiescent() const {
    for (const auto& n : _nodes) {
        if (n.pending_pos < n.pending.size()) return false;
        for (const auto& q : n.inputs) {
            if (!q.empty()) return false;
        }
    }
    return true;
}

size_t pipeline::queued_messages() const {
    size_t total = 0;
    for (const auto& n : _nodes) {
        for (const auto& q : n.inputs) total += q.size();
    }
    return total;
}

std::vector<std::string> pipeline::snapshot() const {
    std::vector<std::string> out;
    for (const auto& n : _nodes) out.push_back(n.st->snapshot());
    return out;
}

result<void> pipeline::restore(const std::vector<std::string>& states) {
    if (states.size() != _nodes.size()) {
        return fail(errc::corrupt_state, fmt::format("snapshot has {} stages, the pipeline {}", states.size(),
                                                     _nodes.size()));
    }
    for (size_t i = 0; i < states.size(); ++i) {
        RUNNEL_TRY(_nodes[i].st->restore(states[i]));
    }
    return outcome::success();
}

} // namespace runnel::engine
