#include "base/file.h"
#include "base/logging.h"
#include "base/metrics.h"
#include "broker/broker.h"
#include "jobs/job.h"
#include "net/shard_group.h"
#include "storage/flusher.h"

#include <boost/json.hpp>
#include <fmt/format.h>

#include <fstream>

namespace runnel::jobs {
namespace {

namespace json = boost::json;

spdlog::logger& lg() {
    return logging::get("jobs");
}

constexpr int64_t max_parallelism = 64;

/// A job being replaced keeps its directory under `<id>~replaced` (never a job id) until the
/// new one runs; `start` puts back one left by a crash when its successor's directory is absent.
constexpr std::string_view replaced_suffix = "~replaced";

bool valid_id(std::string_view id) {
    if (id.empty() || id.size() > 128 || id == "." || id == "..")
        return false;
    for (char c : id) {
        if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_' && c != '.')
            return false;
    }
    return true;
}

/// One status for the instances of a job: the leader's checkpoints, the worst state, rows
/// summed per operator, the lowest watermark, queues and buffers added up.
job_status merge_status(std::vector<job_status> parts) {
    job_status st = std::move(parts.front());
    st.parallelism = uint32_t(parts.size());
    for (std::size_t i = 1; i < parts.size(); ++i) {
        auto& p = parts[i];
        if (p.state == "failed" && st.state != "failed") {
            st.state = p.state;
            st.error = p.error;
        } else if (st.state == "running" && p.state != "running") {
            st.state = p.state;
        }
        for (std::size_t k = 0; k < st.stages.size() && k < p.stages.size(); ++k) {
            st.stages[k].rows_in += p.stages[k].rows_in;
            st.stages[k].rows_out += p.stages[k].rows_out;
            st.stages[k].late_rows += p.stages[k].late_rows;
            st.stages[k].dead_letters += p.stages[k].dead_letters;
        }
        if (p.watermark_ms < st.watermark_ms) {
            st.watermark_ms = p.watermark_ms;
            st.watermark_lag_ms = p.watermark_lag_ms;
        }
        st.queued_messages += p.queued_messages;
        st.queue_capacity += p.queue_capacity;
        st.source_buffered_bytes += p.source_buffered_bytes;
        st.sink_pending_bytes += p.sink_pending_bytes;
        st.memory_bytes += p.memory_bytes;
        st.records_skipped += p.records_skipped;
        if (st.waiting_for.empty())
            st.waiting_for = p.waiting_for;
    }
    return st;
}

constexpr const char* job_states[] = {"starting", "recovering", "running", "failed", "stopped"};

/// A job's error or what it waits for, cut to a bounded label value.
std::string reason_label(const job_status& st) {
    std::string r = !st.error.empty() ? st.error : st.waiting_for;
    constexpr std::size_t max_label = 200;
    if (r.size() > max_label) {
        std::size_t cut = max_label;
        while (cut > 0 && (static_cast<unsigned char>(r[cut]) & 0xC0) == 0x80)
            --cut; // not inside a UTF-8 sequence
        r.resize(cut);
        r += "…";
    }
    return r;
}

} // namespace

std::string job_definition::to_json() const {
    json::object o;
    o["id"] = id;
    o["template"] = template_name;
    o["checkpoint_interval_ms"] = checkpoint_interval.count();
    if (parallelism != 1)
        o["parallelism"] = parallelism;
    json::object p;
    for (const auto& [k, v] : params)
        p[k] = v;
    o["params"] = std::move(p);
    return json::serialize(o);
}

result<job_definition> job_definition::from_json(std::string_view text, std::string& why) {
    auto bad = [&](std::string w) -> result<job_definition> {
        why = std::move(w);
        return std::error_code(EINVAL, std::generic_category());
    };
    boost::system::error_code ec;
    auto v = json::parse(text, ec);
    if (ec)
        return bad(fmt::format("not JSON: {}", ec.message()));
    if (!v.is_object())
        return bad("a job definition is a JSON object");
    const auto& o = v.as_object();
    job_definition d;
    auto str = [&](const char* k) -> std::optional<std::string> {
        auto* x = o.if_contains(k);
        if (!x || !x->is_string())
            return std::nullopt;
        return std::string(x->as_string());
    };
    auto id = str("id");
    auto tmpl = str("template");
    if (!id || !valid_id(*id))
        return bad("'id' must be a string of letters, digits, '-', '_' and '.'");
    if (!tmpl)
        return bad("'template' must be a string");
    d.id = *id;
    d.template_name = *tmpl;
    if (auto* ci = o.if_contains("checkpoint_interval_ms")) {
        if (!ci->is_int64() || ci->as_int64() < 10 || ci->as_int64() > 3'600'000) {
            return bad("'checkpoint_interval_ms' must be an integer from 10 to 3600000");
        }
        d.checkpoint_interval = std::chrono::milliseconds(ci->as_int64());
    }
    if (auto* par = o.if_contains("parallelism")) {
        if (!par->is_int64() || par->as_int64() < 1 || par->as_int64() > max_parallelism) {
            return bad(
                fmt::format("'parallelism' must be an integer from 1 to {}", max_parallelism));
        }
        d.parallelism = uint32_t(par->as_int64());
    }
    if (auto* p = o.if_contains("params")) {
        if (!p->is_object())
            return bad("'params' must be an object");
        for (const auto& [k, x] : p->as_object()) {
            if (x.is_string())
                d.params[std::string(k)] = std::string(x.as_string());
            else if (x.is_int64() || x.is_uint64() || x.is_double() || x.is_bool())
                d.params[std::string(k)] = json::serialize(x);
            else
                return bad(fmt::format("parameter '{}' must be a string, number or boolean",
                                       std::string(k)));
        }
    }
    return d;
}

struct manager::impl {
    storage::flusher writer{"checkpoints"};
    mutable std::mutex mu;
    struct entry {
        std::vector<std::shared_ptr<job>> instances;
        std::vector<unsigned> shards;
    };
    std::map<std::string, entry> jobs;
    /// Jobs per shard, woken by the shard's tick (shared with the tick callbacks, which may
    /// outlive the manager until the shards stop).
    struct ticks {
        std::mutex mu;
        std::vector<std::vector<std::weak_ptr<job>>> per_shard;
    };
    std::shared_ptr<ticks> tick = std::make_shared<ticks>();
    metrics::registry::collector_handle collector;
    std::size_t max_memory_bytes = 0; ///< set before start; read by `launch`
    broker::group_coordinator* groups = nullptr;
};

manager::manager(broker::broker& brk, net::shard_group& shards, std::filesystem::path dir,
                 broker::group_coordinator* groups)
    : _broker(brk)
    , _shards(shards)
    , _dir(std::move(dir))
    , _impl(std::make_unique<impl>()) {
    _impl->groups = groups;
}

manager::~manager() {
    stop();
}

result<void> manager::start() {
    std::error_code ec;
    std::filesystem::create_directories(_dir, ec);
    if (ec)
        return ec;
    _impl->tick->per_shard.resize(_shards.size());
    for (unsigned s = 0; s < _shards.size(); ++s) {
        _shards.every(s, std::chrono::milliseconds(100), [t = _impl->tick, s] {
            std::vector<std::shared_ptr<job>> live;
            {
                std::lock_guard lock(t->mu);
                for (auto& w : t->per_shard[s]) {
                    if (auto j = w.lock())
                        live.push_back(std::move(j));
                }
            }
            for (auto& j : live)
                j->wake();
        });
    }
    std::vector<std::filesystem::path> dirs;
    for (const auto& e : std::filesystem::directory_iterator(_dir, ec)) {
        if (!e.is_directory())
            continue;
        const auto name = e.path().filename().string();
        if (name.ends_with(replaced_suffix)) {
            // A replacement the server stopped in: the new job counts once its directory exists.
            const auto id = name.substr(0, name.size() - replaced_suffix.size());
            std::error_code ec2;
            if (std::filesystem::exists(_dir / id / "job.json", ec2)) {
                std::filesystem::remove_all(e.path(), ec2);
            } else {
                std::filesystem::remove_all(_dir / id, ec2);
                std::filesystem::rename(e.path(), _dir / id, ec2);
                if (!ec2)
                    dirs.push_back(_dir / id);
            }
            continue;
        }
        dirs.push_back(e.path());
    }
    std::sort(dirs.begin(), dirs.end());
    dirs.erase(std::unique(dirs.begin(), dirs.end()), dirs.end());
    for (const auto& d : dirs) {
        std::ifstream in(d / "job.json");
        if (!in)
            continue;
        std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        std::string why;
        auto def = job_definition::from_json(text, why);
        if (!def) {
            lg().error("job in {}: job.json: {}", d.string(), why);
            continue;
        }
        if (def.value().id != d.filename().string()) {
            lg().error("job in {}: its id '{}' is not its directory's name", d.string(),
                       def.value().id);
            continue;
        }
        const bool paused = std::filesystem::exists(d / "stopped", ec);
        if (!launch(std::move(def).value(), why, paused))
            lg().error("job {}: {}", d.filename().string(), why);
    }
    _impl->collector = metrics::default_registry().add_collector([this](metrics::sample_sink& out) {
        for (const auto& st : status()) {
            // `pipeline`, not `job`: Prometheus puts its own `job` label on every series.
            const metrics::label job{"pipeline", st.id};
            out.gauge("runnel_job_running", "1 while the job runs, 0 when it failed or stopped",
                      {job}, st.state == "running" ? 1 : 0);
            for (const char* state : job_states) {
                out.gauge("runnel_job_state",
                          "1 for the state the job is in (starting, recovering, running, failed, "
                          "stopped), 0 for the others",
                          {job, {"state", state}}, st.state == state ? 1 : 0);
            }
            // The reason, when there is one, on a series of its own: one per job at a time.
            out.gauge("runnel_job_info",
                      "Always 1; labels say the job's template and why it does not run normally "
                      "(its error, or what it waits for; empty when it runs normally)",
                      {job, {"template", st.template_name}, {"reason", reason_label(st)}}, 1);
            for (const auto& s : st.stages) {
                const metrics::label op{"operator", s.name};
                out.counter("runnel_job_records_in_total", "Rows each operator of a job took in",
                            {job, op}, double(s.rows_in));
                out.counter("runnel_job_records_out_total", "Rows each operator of a job emitted",
                            {job, op}, double(s.rows_out));
                if (s.late_rows)
                    out.counter("runnel_job_late_records_total",
                                "Rows past the allowed lateness, sent to the late output",
                                {job, op}, double(s.late_rows));
                if (s.dead_letters)
                    out.counter("runnel_job_dead_letters_total",
                                "Records that could not be decoded", {job, op},
                                double(s.dead_letters));
            }
            if (st.watermark_ms != INT64_MIN) {
                out.gauge("runnel_job_watermark_lag_seconds",
                          "Processing time minus the job's output watermark (freshness)", {job},
                          double(st.watermark_lag_ms) / 1000.0);
            }
            out.counter("runnel_job_checkpoints_total", "Checkpoints completed", {job},
                        double(st.checkpoints));
            out.gauge("runnel_job_checkpoint_duration_seconds",
                      "The last checkpoint, from snapshot to released output", {job},
                      st.last_checkpoint_ms / 1000.0);
            out.gauge("runnel_job_checkpoint_size_bytes", "Bytes of the last checkpoint", {job},
                      double(st.last_checkpoint_bytes));
            out.gauge(
                "runnel_job_queue_fill_ratio",
                "Messages queued between the job's operators over their capacity (backpressure)",
                {job},
                st.queue_capacity ? double(st.queued_messages) / double(st.queue_capacity) : 0.0);
            out.gauge("runnel_job_source_buffered_bytes",
                      "Records fetched from the log, not yet taken by the job", {job},
                      double(st.source_buffered_bytes));
            out.gauge("runnel_job_memory_bytes",
                      "Operator state at the last checkpoint plus source and sink buffers "
                      "(bounded by --pipeline-max-memory-bytes)",
                      {job}, double(st.memory_bytes));
            out.gauge("runnel_job_sink_pending_bytes",
                      "Output held for the next checkpoint or being appended", {job},
                      double(st.sink_pending_bytes));
        }
    });
    return ok();
}

void manager::set_max_memory_bytes(std::size_t bytes) { _impl->max_memory_bytes = bytes; }

result<void> manager::launch(job_definition def, std::string& why, bool paused) {
    const auto id = def.id;
    const unsigned first = _shards.shard_for(std::hash<std::string>{}(id));
    auto group = std::make_shared<job_group>();
    group->parallelism = std::max<uint32_t>(def.parallelism, 1);
    group->groups = _impl->groups;
    group->max_memory_bytes = _impl->max_memory_bytes;
    if (group->parallelism > 1)
        group->exchanges = std::make_unique<engine::exchange_set>(group->parallelism);
    impl::entry e;
    bool built = true;
    for (uint32_t i = 0; i < group->parallelism; ++i) {
        const unsigned shard = (first + i) % _shards.size();
        auto j = std::make_shared<job>(_broker, _shards.executor_of(shard), _impl->writer,
                                       _dir / id, def, group, i);
        group->members.push_back(j);
        e.instances.push_back(j);
        e.shards.push_back(shard);
    }
    if (paused) {
        for (uint32_t i = 0; i < e.instances.size(); ++i)
            _shards.run_on(e.shards[i], [j = e.instances[i]] { j->stop(); });
        std::lock_guard lock(_impl->mu);
        _impl->jobs[id] = e;
        return ok();
    }
    for (auto& j : e.instances) {
        if (!built || !why.empty())
            break;
        built = bool(j->build(why));
        if (built) {
            if (auto l = j->load(); !l)
                why = j->status().error;
        }
    }
    {
        std::lock_guard lock(_impl->mu);
        _impl->jobs[id] = e;
    }
    if (!built || !why.empty()) {
        // Kept as failed with the reason, so the pipeline's page says why it does not run (the
        // caller logs it or answers it).
        for (uint32_t i = 0; i < e.instances.size(); ++i)
            _shards.run_on(e.shards[i], [j = e.instances[i], why] { j->fail(why, false); });
        return std::error_code(EINVAL, std::generic_category());
    }
    {
        std::lock_guard lock(_impl->tick->mu);
        for (uint32_t i = 0; i < e.instances.size(); ++i)
            _impl->tick->per_shard[e.shards[i]].push_back(e.instances[i]);
    }
    for (auto& j : e.instances)
        j->begin();
    return ok();
}

result<void> manager::submit(job_definition def, std::string& why) {
    if (!valid_id(def.id)) {
        why = "a job id is letters, digits, '-', '_' and '.' (at most 128)";
        return std::error_code(EINVAL, std::generic_category());
    }
    {
        std::lock_guard lock(_impl->mu);
        if (_impl->jobs.count(def.id)) {
            why = fmt::format("pipeline '{}' exists already; remove it first (DELETE /v1/pipelines/{}) or "
                              "choose another id",
                              def.id, def.id);
            return std::error_code(EEXIST, std::generic_category());
        }
    }
    auto t = templates().find(def.template_name);
    if (t == templates().end()) {
        why = unknown_template(def.template_name);
        return std::error_code(EINVAL, std::generic_category());
    }
    std::error_code ec;
    std::filesystem::create_directories(_dir / def.id, ec);
    if (ec)
        return ec;
    auto text = def.to_json();
    RUNNEL_TRY(write_file_atomic(_dir / def.id / "job.json", std::as_bytes(std::span(text))));
    const auto id = def.id;
    auto launched = launch(std::move(def), why);
    if (!launched) {
        // Refused: nothing of it stays (a stored job that fails at start stays, to be seen).
        (void)remove(id);
    }
    return launched;
}

result<void> manager::replace(job_definition def, std::string& why, const std::vector<std::string>& views) {
    if (!valid_id(def.id) || !templates().count(def.template_name))
        return submit(std::move(def), why); // refused with the reason, the old job untouched
    {
        std::lock_guard lock(_impl->mu);
        if (!_impl->jobs.count(def.id))
            return submit(std::move(def), why);
    }
    const auto id = def.id;
    const auto dir = _dir / id;
    const auto kept = _dir / (id + std::string(replaced_suffix));
    std::error_code ec;
    std::filesystem::remove_all(kept, ec);
    const bool was_paused = std::filesystem::exists(dir / "stopped", ec);
    std::ifstream in(dir / "job.json");
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::string old_why;
    auto old = job_definition::from_json(text, old_why);
    auto side = stop_instances(id, true);
    if (!side)
        return submit(std::move(def), why); // removed meanwhile
    // The old query's rows and side outputs go; the new one writes views and topics of the
    // same names.
    for (const auto& v : views)
        default_views().drop(v);
    delete_side_topics(side.value(), false);
    std::filesystem::rename(dir, kept, ec);
    auto made = ec ? result<void>(ec) : submit(std::move(def), why);
    if (made) {
        std::filesystem::remove_all(kept, ec);
        return made;
    }
    if (why.empty())
        why = made.error().message();
    // Put the old job back, from its own directory and checkpoints.
    std::filesystem::remove_all(dir, ec);
    std::filesystem::rename(kept, dir, ec);
    if (!old || ec || !launch(std::move(old).value(), old_why, was_paused))
        lg().error("job {}: not replaced ({}), and the old one cannot run again: {}", id, why,
                   ec ? ec.message() : old_why);
    return made;
}

result<std::vector<std::string>> manager::stop_instances(const std::string& id, bool forget) {
    impl::entry e;
    {
        std::lock_guard lock(_impl->mu);
        auto it = _impl->jobs.find(id);
        if (it == _impl->jobs.end())
            return std::error_code(ENOENT, std::generic_category());
        e = it->second;
        if (forget)
            _impl->jobs.erase(it);
    }
    for (uint32_t i = 0; i < e.instances.size(); ++i)
        _shards.run_on(e.shards[i], [j = e.instances[i]] { j->stop(); });
    if (e.instances.empty())
        return std::vector<std::string>{};
    return e.instances.front()->side_topics();
}

result<void> manager::remove(const std::string& id, bool keep_side_topics_with_records) {
    auto side = stop_instances(id, true);
    if (!side)
        return side.error();
    // Its side outputs' topics (dead letters, late rows) go with it; the caller may keep those
    // that hold records.
    delete_side_topics(side.value(), keep_side_topics_with_records);
    std::error_code ec;
    std::filesystem::remove_all(_dir / id, ec);
    return ec ? result<void>(ec) : ok();
}

result<void> manager::pause(const std::string& id) {
    RUNNEL_TRY(stop_instances(id, false));
    return write_file_atomic(_dir / id / "stopped", std::as_bytes(std::span(std::string_view("stopped\n"))));
}

result<void> manager::restart(const std::string& id, std::string& why) {
    RUNNEL_TRY(stop_instances(id, true));
    std::error_code ec;
    std::filesystem::remove(_dir / id / "stopped", ec);
    std::ifstream in(_dir / id / "job.json");
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    auto def = job_definition::from_json(text, why);
    if (!def)
        return std::error_code(EINVAL, std::generic_category());
    return launch(std::move(def).value(), why);
}

void manager::pause_async(std::string id, executor& caller, std::function<void(result<void>)> done) {
    _impl->writer.submit([this, id = std::move(id)] { return pause(id); },
                         [&caller, done = std::move(done)](result<void> r) { caller.post([r, done] { done(r); }); });
}

void manager::restart_async(std::string id, executor& caller,
                            std::function<void(result<void>, std::string why)> done) {
    auto why = std::make_shared<std::string>();
    _impl->writer.submit([this, id = std::move(id), why] { return restart(id, *why); },
                         [&caller, why, done = std::move(done)](result<void> r) {
                             caller.post([r, why, done] { done(r, *why); });
                         });
}

void manager::delete_side_topics(const std::vector<std::string>& topics, bool keep_with_records) {
    manual_executor here;
    for (const auto& topic : topics) {
        auto t = _broker.topic(topic);
        if (!t)
            continue; // never got a row
        if (keep_with_records) {
            int64_t records = 0;
            int32_t left = t->config.partitions;
            for (int32_t p = 0; p < t->config.partitions; ++p) {
                _broker.offsets({topic, model::partition_id(p)}, here,
                                [&](result<broker::offsets_result> o) {
                                    if (o)
                                        records += o.value().high_watermark() - o.value().log_start();
                                    --left;
                                });
            }
            here.run_until([&] { return left == 0; });
            if (left != 0 || records > 0) {
                lg().info("kept side output topic {} ({})", topic, counted(records, "record"));
                continue;
            }
        }
        std::optional<result<void>> done;
        _broker.delete_topic(topic, here, [&](result<void> r) { done = r; });
        if (!here.run_until([&] { return done.has_value(); }))
            lg().warn("side output topic {}: no answer to its deletion", topic);
        else if (!*done && done->error() != broker::errc::unknown_topic_or_partition)
            lg().warn("cannot delete side output topic {}: {}", topic, done->error().message());
    }
}

void manager::submit_async(job_definition def, executor& caller,
                           std::function<void(result<void>, std::string why)> done) {
    auto why = std::make_shared<std::string>();
    auto d = std::make_shared<job_definition>(std::move(def));
    _impl->writer.submit([this, d, why] { return submit(std::move(*d), *why); },
                         [&caller, why, done = std::move(done)](result<void> r) {
                             caller.post([r, why, done] { done(r, *why); });
                         });
}

void manager::replace_async(job_definition def, std::vector<std::string> views, executor& caller,
                            std::function<void(result<void>, std::string why)> done) {
    auto why = std::make_shared<std::string>();
    auto d = std::make_shared<job_definition>(std::move(def));
    _impl->writer.submit([this, d, why, views = std::move(views)] { return replace(std::move(*d), *why, views); },
                         [&caller, why, done = std::move(done)](result<void> r) {
                             caller.post([r, why, done] { done(r, *why); });
                         });
}

void manager::remove_async(std::string id, executor& caller,
                           std::function<void(result<void>)> done, bool keep_side_topics_with_records) {
    _impl->writer.submit(
        [this, id = std::move(id), keep_side_topics_with_records] {
            return remove(id, keep_side_topics_with_records);
        },
        [&caller, done = std::move(done)](result<void> r) { caller.post([r, done] { done(r); }); });
}

std::vector<job_status> manager::status() const {
    std::vector<job_status> out;
    std::lock_guard lock(_impl->mu);
    for (const auto& [id, e] : _impl->jobs) {
        std::vector<job_status> parts;
        for (const auto& j : e.instances)
            parts.push_back(j->status());
        out.push_back(merge_status(std::move(parts)));
    }
    return out;
}

void manager::stop() {
    _impl->collector.reset();
    std::map<std::string, impl::entry> jobs;
    {
        std::lock_guard lock(_impl->mu);
        jobs.swap(_impl->jobs); // a second stop (the destructor's) finds none
    }
    for (auto& [id, e] : jobs) {
        for (uint32_t i = 0; i < e.instances.size(); ++i)
            _shards.run_on(e.shards[i], [j = e.instances[i]] { j->stop(); });
    }
    std::lock_guard lock(_impl->tick->mu);
    for (auto& v : _impl->tick->per_shard)
        v.clear();
}

} // namespace runnel::jobs
