#include "jobs/job.h"

#include "base/file.h"
#include "base/logging.h"
#include "broker/broker.h"
#include "engine/state_io.h"
#include "storage/flusher.h"

#include <fmt/format.h>

#include <fstream>

namespace runnel::jobs {
namespace {

spdlog::logger& lg() {
    return logging::get("jobs");
}

constexpr auto step_budget = std::chrono::milliseconds(2);

/// Pipelines that failed, for /metrics (the reason is in each one's REST state); registered at
/// start so it shows before the first failure.
metrics::counter& pipelines_failed = metrics::default_registry().counter_(
  "runnel_pipelines_failed_total", "Pipelines that failed while running (see GET /v1/pipelines/{id})");
/// Of those, the ones that went over --pipeline-max-memory-bytes.
metrics::counter& memory_failures = metrics::default_registry().counter_(
  "runnel_pipelines_memory_budget_exceeded_total", "Pipelines failed for holding more than --pipeline-max-memory-bytes");

/// Runs `ops` (each taking a completion) together and calls `done` once all have finished,
/// with the first error.
void all_of(std::vector<std::function<void(std::function<void(result<void>)>)>> ops,
            std::function<void(result<void>)> done) {
    if (ops.empty())
        return done(ok());
    struct state {
        std::size_t left;
        std::error_code err;
        std::function<void(result<void>)> done;
    };
    auto st = std::make_shared<state>(state{ops.size(), {}, std::move(done)});
    for (auto& op : ops) {
        op([st](result<void> r) {
            if (!r && !st->err)
                st->err = r.error();
            if (--st->left == 0)
                st->done(st->err ? result<void>(st->err) : ok());
        });
    }
}

/// Why a sink failed: its own words when it has them (an external cluster's reason), else `e`.
std::string reason(const engine::checkpointed_sink& s, const std::error_code& e) {
    auto f = s.failure();
    return f.empty() ? e.message() : f;
}

/// `e` told with the reasons of every sink that has one ("topic: why; …").
template <typename Sinks>
std::string reasons(const Sinks& sinks, const std::error_code& e) {
    std::string out;
    for (const auto& s : sinks) {
        if (auto f = s.sink->failure(); !f.empty()) out += fmt::format("{}{}: {}", out.empty() ? "" : "; ", s.sink->name(), f);
    }
    return out.empty() ? e.message() : out;
}

std::string encode_stages(const std::vector<std::string>& states) {
    engine::state_writer w;
    w.u32(uint32_t(states.size()));
    for (const auto& s : states)
        w.str(s);
    return std::move(w.bytes());
}

std::optional<std::vector<std::string>> decode_stages(std::string_view bytes) {
    engine::state_reader r(bytes);
    uint32_t n = r.count(4);
    std::vector<std::string> out;
    for (uint32_t i = 0; i < n; ++i)
        out.emplace_back(r.str());
    if (!r.ok() || !r.at_end())
        return std::nullopt;
    return out;
}

} // namespace

job::job(broker::broker& brk, executor& home, storage::flusher& writer, std::filesystem::path dir,
         job_definition def, std::shared_ptr<job_group> group, uint32_t instance)
    : _broker(brk)
    , _home(home)
    , _writer(writer)
    , _dir(std::move(dir))
    , _def(std::move(def))
    , _group(group ? std::move(group) : std::make_shared<job_group>())
    , _instance(instance) {
    _status.id = _def.id;
    _status.template_name = _def.template_name;
    _status.state = "starting";
}

job::~job() = default;

result<void> job::build(std::string& why) {
    const auto& all = templates();
    auto t = all.find(_def.template_name);
    if (t == all.end()) {
        why = unknown_template(_def.template_name);
        return std::error_code(EINVAL, std::generic_category());
    }
    RUNNEL_TRY(t->second(*this, _def, why));
    if (auto c = _pipeline.check(); !c) {
        why = c.error().message;
        return std::error_code(EINVAL, std::generic_category());
    }
    return ok();
}

result<void> job::load() {
    engine::checkpoint_store store(_dir / "checkpoints");
    auto c = store.latest();
    if (!c) {
        fail(c.error().message);
        return std::error_code(EIO, std::generic_category());
    }
    _restored = std::move(c).value();
    // The failure that stopped the job before this start, if any, to be reported beside it.
    if (std::ifstream in(_dir / "last_error"); in) {
        int64_t at = 0;
        std::string why;
        if (in >> at && std::getline(in >> std::ws, why)) {
            std::lock_guard lock(_status_mu);
            _status.last_error = std::move(why);
            _status.last_error_ms = at;
        }
    }
    return ok();
}

std::function<void()> job::waker() {
    return [w = weak_from_this()] {
        if (auto self = w.lock())
            self->wake();
    };
}

void job::append(const std::string& topic, std::string value) {
    auto produce = [self = shared_from_this(), topic, value = std::move(value)]() {
        model::record_batch_builder b;
        b.add(std::nullopt, std::string_view(value), model::event_time(model::processing_now()()));
        auto batch = std::make_shared<model::record_batch>(b.build());
        self->_broker.produce({topic, model::partition_id(0)}, batch->bytes(), -1, self->_home,
                              [batch, topic, id = self->_def.id](result<broker::produce_result> r) {
                                  if (!r)
                                      lg().error("job {}: cannot append to {}: {}", id, topic,
                                                 r.error().message());
                              });
    };
    if (_broker.topic(topic))
        return produce();
    broker::topic_config cfg;
    cfg.partitions = 1;
    _broker.create_topic(topic, cfg, _home, [produce](result<void>, std::string) { produce(); });
}

engine::stream job::source(connect::log_source_options opts) {
    return source(std::make_unique<connect::log_source>(_broker, _home, std::move(opts), waker()),
                  connect::log_source::schema());
}

engine::stream job::source(std::unique_ptr<engine::checkpointed_source> src,
                           engine::schema_ptr schema) {
    _sources.push_back(std::move(src));
    return _pipeline.source(std::move(schema), _sources.back()->fn());
}

void job::sink(engine::stream s, connect::log_sink_options opts, int32_t partitions) {
    if (opts.create_on_first_row)
        _side_topics.push_back(opts.topic);
    sink(std::move(s),
         std::make_unique<connect::log_sink>(_broker, _home, std::move(opts), waker()), partitions);
}

void job::sink(engine::stream s, std::unique_ptr<engine::checkpointed_sink> sk,
               int32_t partitions) {
    auto* raw = sk.get();
    s.sink([raw](const engine::batch& b) { raw->write(b); }, {}, [raw] { return raw->ready(); });
    _sinks.push_back({std::move(sk), partitions});
}

int32_t job::partitions_of(const std::string& topic) const {
    auto t = _broker.topic(topic);
    return t ? t->config.partitions : 0;
}

engine::stream job::exchange(engine::stream s, std::vector<std::string> keys, engine::key_routing routing) {
    if (!_group->exchanges)
        return s;
    _group->exchanges->set_waker(_instance, [w = weak_from_this(), home = &_home] {
        home->post([w] {
            if (auto self = w.lock())
                self->wake();
        });
    });
    const auto sender = _pipeline.num_stages(); // the exchange adds a sink, then a source
    auto out = _group->exchanges->exchange(s, _instance, keys, routing);
    if (out.stage_id() > sender)
        _exchanges.push_back({sender, out.stage_id(), "hash", std::move(keys)});
    return out;
}

std::string job::part_prefix() const {
    return _instance == 0 ? std::string() : fmt::format("{}/", _instance);
}

void job::post_to(uint32_t i, std::function<void(job&)> fn) {
    auto m = i < _group->members.size() ? _group->members[i].lock() : nullptr;
    if (!m && i == _instance)
        m = shared_from_this();
    if (!m)
        return;
    m->_home.post([m, fn = std::move(fn)] { fn(*m); });
}

void job::begin() {
    _home.post([self = shared_from_this()] {
        if (self->_phase != phase::starting)
            return;
        if (self->_restored) {
            const auto& c = *self->_restored;
            self->_checkpoint_id = c.id;
            const auto pre = self->part_prefix();
            auto stages = c.parts.count(pre + "stages") ? decode_stages(c.parts.at(pre + "stages"))
                                                        : std::nullopt;
            if (!stages)
                return self->fail(fmt::format("checkpoint {} has no readable stage states", c.id));
            if (auto r = self->_pipeline.restore(*stages); !r) {
                return self->fail(fmt::format("checkpoint {}: {}", c.id, r.error().message));
            }
            for (std::size_t i = 0; i < self->_sources.size(); ++i) {
                auto it = c.parts.find(fmt::format("{}source.{}", pre, i));
                if (it == c.parts.end() || !self->_sources[i]->restore(it->second)) {
                    return self->fail(
                        fmt::format("checkpoint {}: source {} cannot be restored", c.id, i));
                }
            }
            lg().info("job {}: resuming from checkpoint {}", self->_def.id, c.id);
        }
        self->start_sinks(0);
    });
}

void job::start_sinks(std::size_t i) {
    if (_phase != phase::starting)
        return;
    if (i == _sinks.size()) {
        _phase = phase::recovering;
        return recover_sinks(0);
    }
    _sinks[i].sink->start(_sinks[i].partitions, [self = shared_from_this(), i](result<void> r) {
        if (!r) return self->fail(fmt::format("sink {}: {}", self->_sinks[i].sink->name(), reason(*self->_sinks[i].sink, r.error())));
        self->start_sinks(i + 1);
    });
}

void job::recover_sinks(std::size_t i) {
    if (_phase != phase::recovering)
        return;
    if (i == _sinks.size()) {
        _restored.reset();
        _phase = phase::running;
        _last_checkpoint = std::chrono::steady_clock::now();
        publish();
        return wake();
    }
    std::string sealed;
    if (_restored) {
        if (auto it = _restored->parts.find(fmt::format("{}sink.{}", part_prefix(), i));
            it != _restored->parts.end()) {
            sealed = it->second;
        }
    }
    _sinks[i].sink->recover(sealed, [self = shared_from_this(), i](result<void> r) {
        if (!r) {
            return self->fail(fmt::format("sink {}: recovery failed: {}", self->_sinks[i].sink->name(),
                                          reason(*self->_sinks[i].sink, r.error())));
        }
        self->recover_sinks(i + 1);
    });
}

void job::wake() {
    if (_scheduled || _phase != phase::running)
        return;
    _scheduled = true;
    _home.post([self = shared_from_this()] { self->step(); });
}

void job::step() {
    _scheduled = false;
    if (_phase != phase::running)
        return;
    const auto start = std::chrono::steady_clock::now();
    bool progress = false;
    for (int i = 0; i < 1024; ++i) {
        auto r = _pipeline.run_once();
        if (!r)
            return fail(r.error().message);
        if (!_pipeline.made_progress())
            break;
        progress = true;
        if (r.value() || std::chrono::steady_clock::now() - start > step_budget)
            break;
    }
    const auto now = std::chrono::steady_clock::now();
    if (!_draining) {
        bool want = false;
        for (const auto& s : _sinks)
            want = want || s.sink->wants_checkpoint();
        if (_instance == 0) {
            if (!_round &&
                (want || _requested || now - _last_checkpoint >= _def.checkpoint_interval))
                start_round();
        } else if (want && !_asked) {
            _asked = true;
            post_to(0, [](job& leader) {
                leader._requested = true;
                leader.wake();
            });
        }
    }
    if (_draining) {
        if (!_pipeline.quiescent()) {
            _poked = false;
            progress = true;
        } else if (!_poked) {
            _poked = true;
            post_to(0, [](job& leader) { leader.poked(); });
        }
    }
    publish();
    if (progress) {
        _scheduled = true;
        _home.post([self = shared_from_this()] { self->step(); });
    }
}

// ---- checkpoints: every instance ----

void job::begin_checkpoint() {
    if (_phase != phase::running)
        return;
    _draining = true;
    _poked = false;
    for (auto& s : _sources)
        s->pause(true);
    for (auto& s : _sinks)
        s.sink->set_draining(true);
    wake();
}

void job::probe(uint64_t round, int wave) {
    const bool quiet = _phase == phase::running && _draining && _pipeline.quiescent();
    const auto* x = _group->exchanges.get();
    const uint64_t sent = x ? x->sent_by(_instance) : 0, taken = x ? x->taken_by(_instance) : 0;
    post_to(0, [round, wave, quiet, sent, taken](job& leader) {
        leader.answered(round, wave, quiet, sent, taken);
    });
}

void job::snapshot(uint64_t round) {
    if (_phase != phase::running)
        return;
    _checkpoint_started = std::chrono::steady_clock::now();
    std::map<std::string, std::string> parts;
    const auto pre = part_prefix();
    parts[pre + "stages"] = encode_stages(_pipeline.snapshot());
    if (auto r = _pipeline.check_stages(); !r)
        return fail(fmt::format("checkpoint: {}", r.error().message));
    // The memory budget: the state as snapshotted (its encoded size stands for what the
    // operators hold) plus what the sources and sinks buffer.
    const uint64_t state = parts[pre + "stages"].size();
    uint64_t buffered = 0;
    for (const auto& s : _sources)
        buffered += s->buffered_bytes();
    for (const auto& s : _sinks)
        buffered += s.sink->pending_bytes();
    {
        std::lock_guard lock(_status_mu);
        _state_bytes = state;
        _status.memory_bytes = state + buffered; // a failed job's status is not refreshed again
    }
    if (_group->max_memory_bytes && state + buffered > _group->max_memory_bytes) {
        if (!_group->over_budget.exchange(true))
            memory_failures.inc(); // once per pipeline, as `fail` counts it
        return fail(fmt::format("memory budget exceeded: operator state {} bytes and buffers {} bytes, more than "
                                "the limit of {} bytes (--pipeline-max-memory-bytes)",
                                state, buffered, _group->max_memory_bytes));
    }
    _source_states.clear();
    for (std::size_t i = 0; i < _sources.size(); ++i) {
        _source_states.push_back(_sources[i]->state());
        parts[fmt::format("{}source.{}", pre, i)] = _source_states.back();
    }
    for (std::size_t i = 0; i < _sinks.size(); ++i)
        parts[fmt::format("{}sink.{}", pre, i)] = _sinks[i].sink->seal();
    post_to(0, [round, parts = std::move(parts)](job& leader) mutable {
        leader.parts_taken(round, std::move(parts));
    });
    // At-least-once output must be durable before the checkpoint that moves past its input.
    std::vector<std::function<void(std::function<void(result<void>)>)>> durable_first;
    for (auto& s : _sinks) {
        auto* sk = s.sink.get();
        if (!sk->exactly_once()) {
            durable_first.push_back(
                [sk](std::function<void(result<void>)> cb) { sk->release(std::move(cb)); });
        }
    }
    all_of(std::move(durable_first), [self = shared_from_this(), round](result<void> r) {
        if (!r) self->fail(fmt::format("sink append failed: {}", reasons(self->_sinks, r.error())));
        self->post_to(0, [round, r](job& leader) { leader.parts_durable(round, r); });
    });
}

void job::resume() {
    _draining = false;
    _asked = false;
    for (auto& s : _sources)
        s->pause(false);
    for (auto& s : _sinks)
        s.sink->set_draining(false);
    wake();
}

void job::release(uint64_t round) {
    if (_phase != phase::running)
        return;
    // The checkpoint is durable: sources may report how far they consumed.
    for (std::size_t i = 0; i < _sources.size() && i < _source_states.size(); ++i)
        _sources[i]->checkpoint_durable(_source_states[i]);
    std::vector<std::function<void(std::function<void(result<void>)>)>> releases;
    for (auto& s : _sinks) {
        auto* sk = s.sink.get();
        if (!sk->exactly_once())
            continue;
        releases.push_back(
            [sk](std::function<void(result<void>)> cb) { sk->release(std::move(cb)); });
    }
    all_of(std::move(releases), [self = shared_from_this(), round](result<void> r) {
        if (!r) {
            self->fail(fmt::format("releasing checkpoint output failed: {}", reasons(self->_sinks, r.error())));
        }
        self->post_to(0, [round, r](job& leader) { leader.released(round, r); });
    });
}

// ---- checkpoints: the leader ----

void job::start_round() {
    _round = round_state{};
    _round->id = ++_checkpoint_id;
    _requested = false;
    for (uint32_t i = 0; i < _group->parallelism; ++i)
        post_to(i, [](job& j) { j.begin_checkpoint(); });
}

void job::poked() {
    if (!_round || _round->snapshotting)
        return;
    if (_round->wave != 0) {
        _round->wave_pending = true;
        return;
    }
    start_wave();
}

void job::start_wave() {
    auto& r = *_round;
    ++r.wave;
    r.wave_pending = false;
    r.answers = 0;
    r.quiet = true;
    r.sent = r.taken = 0;
    for (uint32_t i = 0; i < _group->parallelism; ++i) {
        post_to(i, [id = r.id, wave = r.wave](job& j) { j.probe(id, wave); });
    }
}

void job::answered(uint64_t round, int wave, bool quiet, uint64_t sent, uint64_t taken) {
    if (!_round || _round->id != round || _round->wave != wave || _round->snapshotting)
        return;
    auto& r = *_round;
    r.quiet = r.quiet && quiet;
    r.sent += sent;
    r.taken += taken;
    if (++r.answers < _group->parallelism)
        return;
    const bool ok = r.quiet && r.sent == r.taken;
    if (ok && r.last_ok && r.sent == r.last_sent && r.taken == r.last_taken) {
        // Two waves in a row saw every instance quiet, nothing in flight and nothing moved
        // between them: the instances form a consistent cut now. Take it.
        r.snapshotting = true;
        r.c = std::make_shared<engine::checkpoint>();
        r.c->id = r.id;
        for (uint32_t i = 0; i < _group->parallelism; ++i)
            post_to(i, [id = r.id](job& j) { j.snapshot(id); });
        return;
    }
    r.last_ok = ok;
    r.last_sent = r.sent;
    r.last_taken = r.taken;
    if (ok || r.wave_pending)
        return start_wave();
    r.wave = 0; // an instance still works: it pokes again once quiescent
}

void job::parts_taken(uint64_t round, std::map<std::string, std::string> parts) {
    if (!_round || _round->id != round)
        return;
    for (auto& [k, v] : parts)
        _round->c->parts[k] = std::move(v);
    if (++_round->parts < _group->parallelism)
        return;
    // Every part is taken: the sources may go on while the checkpoint is written.
    for (uint32_t i = 0; i < _group->parallelism; ++i)
        post_to(i, [](job& j) { j.resume(); });
    if (_round->durable == _group->parallelism)
        write_checkpoint();
}

void job::parts_durable(uint64_t round, result<void> r) {
    if (!_round || _round->id != round)
        return;
    if (!r)
        return fail(fmt::format("sink append failed: {}", r.error().message()));
    if (++_round->durable == _group->parallelism && _round->parts == _group->parallelism)
        write_checkpoint();
}

void job::write_checkpoint() {
    if (_phase != phase::running)
        return;
    auto c = _round->c;
    uint64_t bytes = 0;
    for (const auto& [k, v] : c->parts)
        bytes += k.size() + v.size();
    auto store = std::make_shared<engine::checkpoint_store>(_dir / "checkpoints");
    auto err = std::make_shared<std::string>();
    auto self = shared_from_this();
    _writer.submit(
        [store, c, err]() -> result<void> {
            if (auto w = store->write(*c); !w) {
                *err = w.error().message;
                return std::error_code(EIO, std::generic_category());
            }
            return ok();
        },
        [self, err, bytes, id = c->id](result<void> w) {
            self->_home.post([self, err, w, bytes, id] {
                if (!w)
                    return self->fail(fmt::format("checkpoint write failed: {}",
                                                  err->empty() ? w.error().message() : *err));
                if (!self->_round || self->_round->id != id)
                    return;
                std::lock_guard lock(self->_status_mu);
                self->_status.last_checkpoint_bytes = bytes;
                for (uint32_t i = 0; i < self->_group->parallelism; ++i)
                    self->post_to(i, [id](job& j) { j.release(id); });
            });
        });
}

void job::released(uint64_t round, result<void> r) {
    if (!_round || _round->id != round)
        return;
    if (!r)
        return fail(fmt::format("releasing checkpoint output failed: {}", r.error().message()));
    if (++_round->released < _group->parallelism)
        return;
    _round.reset();
    _last_checkpoint = std::chrono::steady_clock::now();
    {
        std::lock_guard lock(_status_mu);
        ++_status.checkpoints;
        _status.last_checkpoint_id = _checkpoint_id;
        _status.last_checkpoint_ms =
            std::chrono::duration<double, std::milli>(_last_checkpoint - _checkpoint_started)
                .count();
        auto& recent = _status.recent_checkpoints;
        if (recent.size() >= job_status::max_recent_checkpoints)
            recent.erase(recent.begin());
        recent.push_back({_checkpoint_id, model::processing_now()(), _status.last_checkpoint_ms,
                          _status.last_checkpoint_bytes});
    }
    wake();
}

void job::fail(std::string why, bool logged) {
    if (_phase == phase::failed || _phase == phase::stopped)
        return;
    if (logged) {
        lg().error("job {} failed: {}", _def.id, why);
        // Kept for the next start, which retries the job (one line: epoch ms, reason).
        if (_instance == 0) {
            auto text = std::make_shared<std::string>(fmt::format("{} {}\n", model::processing_now()(), why));
            _writer.submit(
                [path = _dir / "last_error", text]() -> result<void> {
                    return write_file_atomic(path, std::as_bytes(std::span(*text)));
                },
                [id = _def.id](result<void> r) {
                    if (!r)
                        lg().warn("job {}: cannot keep its failure for the next start: {}", id, r.error().message());
                });
        }
    }
    _phase = phase::failed;
    if (_instance == 0) {
        pipelines_failed.inc(); // once per pipeline: its instances fail together
    }
    // The instances of a job fail together: their checkpoints are one.
    for (uint32_t i = 0; i < _group->parallelism; ++i) {
        if (i != _instance)
            post_to(i, [why, logged](job& j) { j.fail(why, logged); });
    }
    for (auto& s : _sources)
        s->stop();
    for (auto& s : _sinks)
        s.sink->stop();
    std::lock_guard lock(_status_mu);
    _status.state = "failed";
    _status.error = std::move(why);
}

void job::stop() {
    if (_phase == phase::stopped)
        return;
    _phase = phase::stopped;
    for (auto& s : _sources)
        s->stop();
    for (auto& s : _sinks)
        s.sink->stop();
    std::lock_guard lock(_status_mu);
    _status.state = "stopped";
}

void job::publish() {
    job_status st;
    {
        std::lock_guard lock(_status_mu);
        st = _status;
    }
    static constexpr const char* names[] = {"starting", "recovering", "running", "failed",
                                            "stopped"};
    st.state = names[int(_phase)];
    st.stages.clear();
    int64_t wm = INT64_MAX;
    for (std::size_t i = 0; i < _pipeline.num_stages(); ++i) {
        auto& stg = _pipeline.stage_at(i);
        const auto& m = stg.metrics();
        st.stages.push_back({fmt::format("{}.{}", i, stg.name()), m.rows_in, m.rows_out,
                             m.late_rows, m.dead_letters});
        if (stg.num_outputs() == 0 && m.watermark > INT64_MIN)
            wm = std::min(wm, m.watermark);
    }
    st.edges.clear();
    for (const auto& l : _pipeline.links())
        st.edges.push_back({l.from, l.to, l.port == 0 ? "forward" : "side", {}});
    st.edges.insert(st.edges.end(), _exchanges.begin(), _exchanges.end());
    if (wm != INT64_MAX && wm < engine::end_of_time.value()) {
        st.watermark_ms = wm;
        st.watermark_lag_ms = std::max<int64_t>(0, model::processing_now()() - wm);
    }
    st.queued_messages = _pipeline.queued_messages();
    st.queue_capacity = _pipeline.queue_capacity();
    st.source_buffered_bytes = 0;
    st.records_skipped = 0;
    st.waiting_for.clear();
    for (const auto& s : _sources) {
        st.source_buffered_bytes += s->buffered_bytes();
        st.records_skipped += s->skipped_records();
        if (st.waiting_for.empty())
            st.waiting_for = s->waiting_for();
    }
    // A source that waits says so first; else a stage held back by its inputs (a watermark
    // waiting for a partition that never sent).
    for (std::size_t i = 0; i < _pipeline.num_stages() && st.waiting_for.empty(); ++i)
        st.waiting_for = _pipeline.stage_at(i).waiting_for();
    st.sink_pending_bytes = 0;
    for (const auto& s : _sinks)
        st.sink_pending_bytes += s.sink->pending_bytes();
    std::lock_guard lock(_status_mu);
    st.memory_bytes = _state_bytes + st.source_buffered_bytes + st.sink_pending_bytes;
    st.checkpoints = _status.checkpoints;
    st.last_checkpoint_id = _status.last_checkpoint_id;
    st.last_checkpoint_ms = _status.last_checkpoint_ms;
    st.last_checkpoint_bytes = _status.last_checkpoint_bytes;
    st.recent_checkpoints = _status.recent_checkpoints;
    if (_phase != phase::failed)
        st.error.clear();
    else
        st.error = _status.error;
    _status = std::move(st);
}

job_status job::status() const {
    std::lock_guard lock(_status_mu);
    return _status;
}

} // namespace runnel::jobs
