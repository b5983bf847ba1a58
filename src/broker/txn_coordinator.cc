#include "broker/txn_coordinator.h"

#include <algorithm>
#include <cstring>
#include <future>
#include <set>
#include <thread>

#include "broker/broker.h"
#include "storage/storage.h"

namespace runnel::broker {
namespace {

spdlog::logger& lg() { return logging::get("txn"); }

constexpr std::string_view log_name = "transactions.log";
/// Each record: payload length, CRC-32C of the payload, payload (`txn::encode`).
constexpr std::size_t frame_header = 8;
/// A record larger than this is not one the coordinator wrote: the log ends there.
constexpr uint32_t max_record_bytes = 64u << 20;
/// Partitions and pending offsets one transaction may hold; more are refused
/// (INVALID_REQUEST-like errors would be worse: the client cannot shrink a transaction).
constexpr std::size_t max_partitions_per_txn = 10000;
/// The epoch this node's coordinator writes into markers (one coordinator, never moved).
constexpr int32_t coordinator_epoch = 0;
/// How long a recovering commit waits for its group's offsets to load.
constexpr auto group_load_wait = std::chrono::seconds(60);
/// A transactional id idle this long (no transaction open) is forgotten, as Kafka's
/// transactional.id.expiration.ms (7 days) does.
constexpr int64_t id_expiration_ms = 7ll * 24 * 3600 * 1000;

/// Runs posted tasks inline: the coordinator thread hands it to broker calls and blocks on
/// the answer, which the shard then delivers straight to the waiting promise.
class inline_executor final : public executor {
public:
    void post(std::function<void()> task) override { task(); }
};

/// Starts a callback operation and blocks this (non-shard) thread until it answers.
template <typename T, typename Start>
T wait_for(Start start) {
    inline_executor ex;
    std::promise<T> p;
    auto f = p.get_future();
    start(ex, std::function<void(T)>([&p](T v) { p.set_value(std::move(v)); }));
    return f.get();
}

metrics::counter& counter(const char* name, const char* help) {
    return metrics::default_registry().counters(name, help).with({});
}
metrics::counter& ended(const char* outcome) {
    static auto& family = metrics::default_registry().counters(
      "runnel_kafka_transactions_ended_total", "Transactions completed, by outcome (commit, abort, timeout)",
      {"outcome"});
    return family.with({outcome});
}
metrics::counter& marker_failures() {
    static auto& c = counter("runnel_kafka_txn_marker_failures_total",
                             "Transaction markers that could not be written (the transaction stays prepared and is "
                             "retried; check the partitions' storage)");
    return c;
}
metrics::counter& log_failures() {
    static auto& c = counter("runnel_kafka_txn_log_write_failures_total",
                             "Writes of the transaction log (DATA_DIR/transactions.log) that failed; the requests "
                             "were refused with COORDINATOR_NOT_AVAILABLE");
    return c;
}
metrics::gauge& open_gauge() {
    static auto& g = metrics::default_registry().gauge_("runnel_kafka_transactions_open",
                                                        "Transactions open (ongoing or completing) on this node");
    return g;
}
metrics::gauge& oldest_gauge() {
    static auto& g = metrics::default_registry().gauge_(
      "runnel_kafka_transaction_oldest_open_seconds", "Age of the oldest open transaction (0 when none is open)");
    return g;
}

std::vector<std::byte> frame(const txn_metadata& m) {
    auto payload = txn::encode(m);
    std::vector<std::byte> out(frame_header + payload.size());
    write_be<uint32_t>(out.data(), static_cast<uint32_t>(payload.size()));
    write_be<uint32_t>(out.data() + 4, crc32c::value(std::span<const std::byte>(payload)));
    std::memcpy(out.data() + frame_header, payload.data(), payload.size());
    return out;
}

} // namespace

txn_coordinator::txn_coordinator(broker& b, std::filesystem::path data_dir, std::chrono::milliseconds max_timeout)
  : _broker(b)
  , _path(data_dir / log_name)
  , _max_timeout(max_timeout)
  , _worker(std::make_unique<storage::flusher>("txn")) {
    // Listed in /metrics from the start, so operators can alert on them.
    marker_failures();
    log_failures();
}

txn_coordinator::~txn_coordinator() { stop(); }

int64_t txn_coordinator::now_ms() const { return model::processing_now()(); }

void txn_coordinator::run(std::function<void()> job) {
    std::lock_guard lock(_worker_mu);
    if (!_worker) {
        return; // stopped: nothing runs any more
    }
    _worker->submit([job = std::move(job)] {
        job();
        return result<void>(ok());
    },
                    [](result<void>) {});
}

void txn_coordinator::stop() {
    _started.store(false);
    std::unique_ptr<storage::flusher> worker;
    {
        std::lock_guard lock(_worker_mu);
        worker = std::move(_worker);
    }
    worker.reset(); // runs what is queued, then joins
}

result<void> txn_coordinator::start(group_coordinator* groups) {
    _groups = groups;
    // Replay: the last record of each id is its state; a torn or corrupt tail ends the log.
    uint64_t good = 0;
    std::size_t records = 0;
    if (auto f = file_handle::open(_path, O_RDONLY)) {
        auto size = f.value().size();
        if (!size) {
            return size.error();
        }
        std::vector<std::byte> header(frame_header);
        std::vector<std::byte> payload;
        while (good + frame_header <= size.value()) {
            RUNNEL_TRY(f.value().pread(header, good));
            const auto len = read_be<uint32_t>(header.data());
            const auto crc = read_be<uint32_t>(header.data() + 4);
            if (len > max_record_bytes || good + frame_header + len > size.value()) {
                break;
            }
            payload.resize(len);
            RUNNEL_TRY(f.value().pread(payload, good + frame_header));
            if (crc32c::value(std::span<const std::byte>(payload)) != crc) {
                break;
            }
            auto m = txn::decode(payload);
            if (!m) {
                break;
            }
            if (m->status == txn_status::dead) {
                _txns.erase(m->id); // an expired id
            } else {
                _txns[m->id] = std::move(*m);
            }
            good += frame_header + len;
            ++records;
        }
        if (good != size.value()) {
            lg().warn("{}: cut {} bytes of a torn or corrupt tail after {}", _path.string(), size.value() - good,
                      counted(int64_t(records), "record"));
        }
    }
    // Rewrite with one record per id: the log starts compact, and a torn tail is gone.
    RUNNEL_TRY(compact());
    std::size_t ongoing = 0;
    std::size_t prepared = 0;
    for (const auto& [id, m] : _txns) {
        if (m.status == txn_status::ongoing) {
            ++ongoing;
            // The producer may go on writing its transaction: its partitions take it again.
            for (const auto& tp : m.partitions) {
                (void)wait_for<errc>([&, &m = m](executor& ex, std::function<void(errc)> done) {
                    _broker.txn_allow(tp, m.producer_id, m.producer_epoch, ex, std::move(done));
                });
            }
        } else if (m.preparing()) {
            ++prepared;
        }
    }
    if (!_txns.empty()) {
        lg().info("{} recovered: {} ongoing, {} to complete", counted(int64_t(_txns.size()), "transactional id"),
                  ongoing, prepared);
    }
    _started.store(true);
    // Prepared transactions complete before anyone can ask: a consumer must not read a group
    // offset older than the one a transaction that committed already decided.
    std::promise<void> recovered;
    run([this, &recovered] {
        for (auto& [id, m] : _txns) {
            if (m.preparing()) {
                finish(m);
            }
        }
        abort_expired();
        update_gauges();
        recovered.set_value();
    });
    recovered.get_future().get();
    return ok();
}

result<void> txn_coordinator::compact() {
    std::vector<std::byte> all;
    for (const auto& [id, m] : _txns) {
        auto f = frame(m);
        all.insert(all.end(), f.begin(), f.end());
    }
    _log.reset();
    RUNNEL_TRY(write_file_atomic(_path, all));
    auto f = file_handle::open(_path, O_WRONLY);
    if (!f) {
        return f.error();
    }
    _log = std::make_unique<file_handle>(std::move(f).value());
    _log_size = all.size();
    _records_since_compaction = 0;
    return ok();
}

result<void> txn_coordinator::persist(const txn_metadata& m) {
    if (!_log) {
        log_failures().inc();
        return errc::coordinator_not_available;
    }
    auto bytes = frame(m);
    auto w = _log->pwrite(bytes, _log_size);
    if (w) {
        w = _log->sync();
    }
    if (!w) {
        log_failures().inc();
        lg().error("cannot write {}: {}", _path.string(), w.error().message());
        return errc::coordinator_not_available;
    }
    _log_size += bytes.size();
    // Once the log holds many more records than ids, it is rewritten with one per id.
    if (++_records_since_compaction > 10000 && _records_since_compaction > 4 * _txns.size()) {
        _txns[m.id] = m; // the rewrite must hold this record too
        if (auto r = compact(); !r) {
            lg().warn("cannot compact {}: {}", _path.string(), r.error().message());
        }
    }
    return ok();
}

void txn_coordinator::finish(txn_metadata& m) {
    const bool commit = m.status == txn_status::prepare_commit;
    bool all_written = true;
    for (const auto& tp : m.partitions) {
        auto r = wait_for<result<void>>([&](executor& ex, std::function<void(result<void>)> done) {
            _broker.write_txn_marker(tp, m.producer_id, m.producer_epoch, commit, coordinator_epoch, ex,
                                     std::move(done));
        });
        if (!r && r.error() != errc::unknown_topic_or_partition) {
            // A deleted partition needs no marker; any other failure keeps the transaction
            // prepared so the next tick writes its markers again.
            marker_failures().inc();
            lg().error("transactional id {}: cannot write the {} marker to {}/{}: {}", m.id,
                       commit ? "commit" : "abort", tp.topic, tp.partition(), r.error().message());
            all_written = false;
        }
    }
    if (commit && _groups && !m.offsets.empty()) {
        std::map<std::string, commit_request> by_group;
        for (const auto& o : m.offsets) {
            auto& req = by_group[o.group];
            req.group_id = o.group;
            req.from_transaction = true;
            req.partitions.push_back({o.tp, committed_offset{o.offset, o.leader_epoch, o.metadata, -1}});
        }
        for (auto& [group, req] : by_group) {
            const auto deadline = std::chrono::steady_clock::now() + group_load_wait;
            for (;;) {
                auto [top, each] = wait_for<std::pair<errc, std::vector<partition_error>>>(
                  [&, &req = req](executor& ex, std::function<void(std::pair<errc, std::vector<partition_error>>)> done) {
                      _groups->commit(req, ex, [done](errc e, std::vector<partition_error> p) { done({e, std::move(p)}); });
                  });
                if (top == errc::coordinator_loading && std::chrono::steady_clock::now() < deadline) {
                    std::this_thread::sleep_for(std::chrono::milliseconds(50)); // the group's offsets are loading
                    continue;
                }
                if (top != errc::success) {
                    lg().error("transactional id {}: cannot commit the offsets of group {}: {}", m.id, group,
                               errc_message(top));
                    marker_failures().inc();
                    all_written = false;
                }
                break;
            }
        }
    }
    if (!all_written) {
        return;
    }
    auto done = m;
    txn::complete(done, now_ms());
    if (persist(done)) {
        ended(commit ? "commit" : "abort").inc();
        m = std::move(done);
    }
}

void txn_coordinator::abort_expired() {
    const auto now = now_ms();
    for (auto it = _txns.begin(); it != _txns.end();) {
        auto& m = it->second;
        if (!m.open() && now - m.update_ms > id_expiration_ms) {
            auto dead = m;
            dead.status = txn_status::dead;
            dead.update_ms = now;
            if (persist(dead)) {
                lg().info("transactional id {}: forgotten after {} ms without a transaction", it->first,
                          now - m.update_ms);
                it = _txns.erase(it);
                continue;
            }
        }
        ++it;
    }
    for (auto& [id, m] : _txns) {
        if (m.preparing()) {
            finish(m); // markers that failed earlier
            continue;
        }
        if (!txn::expired(m, now)) {
            continue;
        }
        lg().info("transactional id {}: aborting the transaction open for {} ms (timeout {} ms)", id,
                  now - m.start_ms, m.timeout_ms);
        auto next = m;
        // As Kafka: the epoch moves on, fencing the producer that let its transaction expire.
        if (next.producer_epoch < txn::max_epoch) {
            ++next.producer_epoch;
        }
        next.status = txn_status::prepare_abort;
        next.update_ms = now;
        if (!persist(next)) {
            continue;
        }
        m = std::move(next);
        ended("timeout").inc();
        finish(m);
    }
}

void txn_coordinator::update_gauges() {
    std::size_t open = 0;
    int64_t oldest = -1;
    for (const auto& [id, m] : _txns) {
        if (m.open()) {
            ++open;
            if (m.start_ms >= 0 && (oldest < 0 || m.start_ms < oldest)) {
                oldest = m.start_ms;
            }
        }
    }
    open_gauge().set(static_cast<double>(open));
    oldest_gauge().set(oldest < 0 ? 0.0 : static_cast<double>(std::max<int64_t>(0, now_ms() - oldest)) / 1000.0);
}

void txn_coordinator::tick() {
    if (!_started.load() || _tick_queued.exchange(true)) {
        return;
    }
    run([this] {
        _tick_queued.store(false);
        abort_expired();
        update_gauges();
    });
}

txn_metadata* txn_coordinator::current(const std::string& id, int64_t producer_id, int16_t epoch, errc& error) {
    auto it = _txns.find(id);
    if (it == _txns.end()) {
        error = errc::invalid_producer_id_mapping;
        return nullptr;
    }
    error = txn::check_producer(it->second, producer_id, epoch);
    return error == errc::success ? &it->second : nullptr;
}

void txn_coordinator::init_producer(std::string id, int32_t timeout_ms, int64_t producer_id, int16_t epoch,
                                    executor& caller, std::function<void(result<txn_producer>)> done) {
    using R = result<txn_producer>;
    auto answer = [&caller, done = std::move(done)](R r) { caller.post([done, r] { done(r); }); };
    if (!_started.load()) {
        return answer(errc::coordinator_not_available);
    }
    if (timeout_ms <= 0 || timeout_ms > _max_timeout.count()) {
        return answer(errc::invalid_transaction_timeout);
    }
    run([this, id = std::move(id), timeout_ms, producer_id, epoch, answer] {
        auto fresh_id = [this]() -> result<int64_t> {
            auto r = wait_for<result<broker::producer_identity>>(
              [&](executor& ex, std::function<void(result<broker::producer_identity>)> d) {
                  _broker.init_producer_id(ex, std::move(d));
              });
            if (!r) {
                return r.error();
            }
            return r.value().id;
        };
        auto it = _txns.find(id);
        if (it == _txns.end()) {
            auto pid = fresh_id();
            if (!pid) {
                return answer(errc::coordinator_not_available);
            }
            txn_metadata m;
            m.id = id;
            m.producer_id = pid.value();
            m.producer_epoch = 0;
            m.timeout_ms = timeout_ms;
            m.update_ms = now_ms();
            if (auto r = persist(m); !r) {
                return answer(r.error());
            }
            _txns.emplace(id, m);
            update_gauges();
            return answer(txn_producer{m.producer_id, m.producer_epoch});
        }
        auto& m = it->second;
        auto step = txn::plan_init(m, producer_id, epoch);
        if (step == txn::init_step::retry) {
            finish(m);
            step = txn::plan_init(m, producer_id, epoch);
        }
        switch (step) {
        case txn::init_step::refuse:
            return answer(errc::producer_fenced);
        case txn::init_step::retry:
            return answer(errc::concurrent_transactions);
        case txn::init_step::abort_then_bump: {
            // The open transaction is aborted under a newer epoch, fencing its producer.
            auto next = m;
            if (next.producer_epoch < txn::max_epoch) {
                ++next.producer_epoch;
            }
            next.status = txn_status::prepare_abort;
            next.update_ms = now_ms();
            if (auto r = persist(next); !r) {
                return answer(r.error());
            }
            m = std::move(next);
            finish(m);
            if (m.preparing()) {
                return answer(errc::concurrent_transactions);
            }
            break;
        }
        case txn::init_step::bump:
            break;
        }
        auto next = m;
        int64_t fresh = -1;
        if (next.producer_epoch >= txn::max_epoch) {
            auto pid = fresh_id();
            if (!pid) {
                return answer(errc::coordinator_not_available);
            }
            fresh = pid.value();
        }
        txn::bump_epoch(next, fresh);
        next.timeout_ms = timeout_ms;
        next.status = txn_status::empty;
        next.start_ms = -1;
        next.update_ms = now_ms();
        if (auto r = persist(next); !r) {
            return answer(r.error());
        }
        m = std::move(next);
        update_gauges();
        answer(txn_producer{m.producer_id, m.producer_epoch});
    });
}

void txn_coordinator::add_partitions(std::string id, int64_t producer_id, int16_t epoch,
                                     std::vector<model::topic_partition> tps, bool verify_only, executor& caller,
                                     std::function<void(partition_errors)> done) {
    auto answer = [&caller, done = std::move(done)](partition_errors r) {
        caller.post([done, r = std::move(r)] { done(r); });
    };
    auto all = [](const std::vector<model::topic_partition>& tps, errc e) {
        partition_errors out;
        for (const auto& tp : tps) {
            out.emplace_back(tp, e);
        }
        return out;
    };
    if (!_started.load()) {
        return answer(all(tps, errc::coordinator_not_available));
    }
    run([this, id = std::move(id), producer_id, epoch, tps = std::move(tps), verify_only, answer, all] {
        errc e;
        auto* found = current(id, producer_id, epoch, e);
        if (!found) {
            return answer(all(tps, e));
        }
        auto& m = *found;
        if (verify_only) {
            partition_errors out;
            for (const auto& tp : tps) {
                const bool in = m.status == txn_status::ongoing && m.partitions.contains(tp);
                out.emplace_back(tp, in ? errc::success : errc::invalid_txn_state);
            }
            return answer(std::move(out));
        }
        // Unknown partitions fail the request; the others are then not attempted, as Kafka does.
        const auto topics = _broker.topics();
        partition_errors out;
        bool failed = false;
        for (const auto& tp : tps) {
            auto t = topics->find(tp.topic);
            const bool known = t != topics->end() && t->second->has_partition(tp.partition());
            // Internal topics take no markers: their readers are the broker's own.
            const errc e = !known ? errc::unknown_topic_or_partition
                           : is_internal_topic(tp.topic) ? errc::invalid_topic
                                                         : errc::success;
            failed |= e != errc::success;
            out.emplace_back(tp, e);
        }
        auto next = m;
        if (!failed) {
            if (e = txn::begin(next, now_ms()); e != errc::success) {
                return answer(all(tps, e));
            }
            next.partitions.insert(tps.begin(), tps.end());
            if (next.partitions.size() > max_partitions_per_txn) {
                lg().warn("transactional id {}: refusing more than {} partitions in one transaction", id,
                          max_partitions_per_txn);
                return answer(all(tps, errc::invalid_txn_state));
            }
        }
        if (failed) {
            for (auto& [tp, e] : out) {
                if (e == errc::success) {
                    e = errc::operation_not_attempted;
                }
            }
            return answer(std::move(out));
        }
        if (next != m) {
            if (auto r = persist(next); !r) {
                return answer(all(tps, errc::coordinator_not_available));
            }
            m = std::move(next);
        }
        for (auto& [tp, e] : out) {
            e = wait_for<errc>([&, &tp = tp](executor& ex, std::function<void(errc)> d) {
                _broker.txn_allow(tp, m.producer_id, m.producer_epoch, ex, std::move(d));
            });
        }
        update_gauges();
        answer(std::move(out));
    });
}

void txn_coordinator::add_offsets(std::string id, int64_t producer_id, int16_t epoch, std::string group,
                                  executor& caller, errc_fn done) {
    auto answer = [&caller, done = std::move(done)](errc e) { caller.post([done, e] { done(e); }); };
    if (!_started.load()) {
        return answer(errc::coordinator_not_available);
    }
    if (group.empty()) {
        return answer(errc::invalid_group_id);
    }
    run([this, id = std::move(id), producer_id, epoch, group = std::move(group), answer] {
        errc e;
        auto* found = current(id, producer_id, epoch, e);
        if (!found) {
            return answer(e);
        }
        auto& m = *found;
        auto next = m;
        if (e = txn::begin(next, now_ms()); e != errc::success) {
            return answer(e);
        }
        next.groups.insert(group);
        if (next != m) {
            if (auto r = persist(next); !r) {
                return answer(errc::coordinator_not_available);
            }
            m = std::move(next);
        }
        update_gauges();
        answer(errc::success);
    });
}

void txn_coordinator::commit_offsets(std::string id, std::string group, int64_t producer_id, int16_t epoch,
                                     std::vector<txn_pending_offset> offsets, executor& caller,
                                     std::function<void(partition_errors)> done) {
    auto answer = [&caller, done = std::move(done)](partition_errors r) {
        caller.post([done, r = std::move(r)] { done(r); });
    };
    auto all = [](const std::vector<txn_pending_offset>& offs, errc e) {
        partition_errors out;
        for (const auto& o : offs) {
            out.emplace_back(o.tp, e);
        }
        return out;
    };
    if (!_started.load()) {
        return answer(all(offsets, errc::coordinator_not_available));
    }
    run([this, id = std::move(id), group = std::move(group), producer_id, epoch, offsets = std::move(offsets), answer,
         all]() mutable {
        errc e;
        auto* found = current(id, producer_id, epoch, e);
        if (!found) {
            return answer(all(offsets, e));
        }
        auto& m = *found;
        if (m.status != txn_status::ongoing || !m.groups.contains(group)) {
            return answer(all(offsets, errc::invalid_txn_state));
        }
        const auto topics = _broker.topics();
        auto next = m;
        partition_errors out;
        for (auto& o : offsets) {
            auto t = topics->find(o.tp.topic);
            errc e = errc::success;
            if (t == topics->end() || !t->second->has_partition(o.tp.partition())) {
                e = errc::unknown_topic_or_partition;
            } else if (o.metadata && o.metadata->size() > 4096) {
                e = errc::offset_metadata_too_large;
            } else if (next.offsets.size() >= max_partitions_per_txn) {
                e = errc::invalid_txn_state;
            } else {
                o.group = group;
                txn::add_offset(next, o);
            }
            out.emplace_back(o.tp, e);
        }
        if (next != m) {
            if (auto r = persist(next); !r) {
                return answer(all(offsets, errc::coordinator_not_available));
            }
            m = std::move(next);
        }
        answer(std::move(out));
    });
}

void txn_coordinator::end(std::string id, int64_t producer_id, int16_t epoch, bool commit, executor& caller,
                          errc_fn done) {
    auto answer = [&caller, done = std::move(done)](errc e) { caller.post([done, e] { done(e); }); };
    if (!_started.load()) {
        return answer(errc::coordinator_not_available);
    }
    run([this, id = std::move(id), producer_id, epoch, commit, answer] {
        errc e;
        auto* found = current(id, producer_id, epoch, e);
        if (!found) {
            return answer(e);
        }
        auto& m = *found;
        if (m.preparing()) {
            finish(m); // markers that failed before: try again now
        }
        auto next = m;
        auto step = txn::end(next, commit, now_ms());
        if (!step) {
            return answer(static_cast<errc>(step.error().value()));
        }
        if (step.value() == txn::end_step::done) {
            return answer(errc::success);
        }
        if (auto r = persist(next); !r) {
            return answer(errc::coordinator_not_available);
        }
        m = std::move(next);
        if (fail_point::take("txn.crash_after_prepare")) {
            return answer(errc::coordinator_not_available); // tests: as if the process died here
        }
        // The outcome is decided and durable: answer success even if a marker must be retried.
        finish(m);
        update_gauges();
        answer(errc::success);
    });
}

namespace {
txn_description describe_one(const txn_metadata& m) {
    txn_description d;
    d.id = m.id;
    d.state = std::string(txn_status_name(m.status));
    d.timeout_ms = m.timeout_ms;
    d.start_ms = m.start_ms;
    d.producer_id = m.producer_id;
    d.producer_epoch = m.producer_epoch;
    d.partitions.assign(m.partitions.begin(), m.partitions.end());
    return d;
}
} // namespace

void txn_coordinator::describe(std::vector<std::string> ids, executor& caller,
                               std::function<void(std::vector<txn_description>)> done) {
    auto answer = [&caller, done = std::move(done)](std::vector<txn_description> r) {
        caller.post([done, r = std::move(r)] { done(r); });
    };
    if (!_started.load()) {
        std::vector<txn_description> out;
        for (auto& id : ids) {
            auto& d = out.emplace_back();
            d.error = errc::coordinator_not_available;
            d.id = std::move(id);
        }
        return answer(std::move(out));
    }
    run([this, ids = std::move(ids), answer] {
        std::vector<txn_description> out;
        for (const auto& id : ids) {
            auto it = _txns.find(id);
            if (it == _txns.end()) {
                auto& d = out.emplace_back();
                d.error = errc::transactional_id_not_found;
                d.id = id;
            } else {
                out.push_back(describe_one(it->second));
            }
        }
        answer(std::move(out));
    });
}

void txn_coordinator::list(std::vector<std::string> states, std::vector<int64_t> producer_ids, int64_t min_duration_ms,
                           executor& caller, std::function<void(listing)> done) {
    auto answer = [&caller, done = std::move(done)](listing r) { caller.post([done, r = std::move(r)] { done(r); }); };
    if (!_started.load()) {
        return answer({});
    }
    run([this, states = std::move(states), producer_ids = std::move(producer_ids), min_duration_ms, answer] {
        listing out;
        std::set<txn_status> wanted;
        for (const auto& s : states) {
            if (auto st = parse_txn_status(s)) {
                wanted.insert(*st);
            } else {
                out.unknown_states.push_back(s);
            }
        }
        const auto now = now_ms();
        for (const auto& [id, m] : _txns) {
            if (!states.empty() && !wanted.contains(m.status)) {
                continue;
            }
            if (!producer_ids.empty()
                && std::find(producer_ids.begin(), producer_ids.end(), m.producer_id) == producer_ids.end()) {
                continue;
            }
            if (min_duration_ms >= 0 && (m.start_ms < 0 || !m.open() || now - m.start_ms < min_duration_ms)) {
                continue;
            }
            out.transactions.push_back(describe_one(m));
        }
        answer(std::move(out));
    });
}

} // namespace runnel::broker
