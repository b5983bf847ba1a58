#include "connect/kafka/kafka.h"

#include <atomic>
#include <charconv>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <thread>

#include <fmt/format.h>
#include <librdkafka/rdkafka.h>

#include "base/fail_point.h"
#include "base/logging.h"
#include "base/secret.h"
#include "connect/format/row_format.h"
#include "engine/state_io.h"
#include "model/record_batch.h"

namespace runnel::connect {
namespace {

spdlog::logger& lg() { return logging::get("connect"); }

/// A librdkafka configuration: the table's client properties (`client`, may be null), then
/// the connector's own `props`; or null with the reason one property was refused (secrets
/// masked).
rd_kafka_conf_t* make_conf(const kafka_client_config* client,
                           const std::vector<std::pair<std::string, std::string>>& props, std::string& why) {
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    char err[512];
    auto set = [&](const std::string& k, const std::string& v) {
        if (rd_kafka_conf_set(conf, k.c_str(), v.c_str(), err, sizeof err) == RD_KAFKA_CONF_OK) return true;
        why = fmt::format("{}={}: {}", k, text::secret_key(k) ? std::string(text::masked) : v, err);
        if (client) why = client->mask(std::move(why));
        rd_kafka_conf_destroy(conf);
        return false;
    };
    if (client) {
        for (const auto& p : client->properties) {
            if (!set(p.name, p.value)) return nullptr;
        }
    }
    for (const auto& [k, v] : props) {
        if (!set(k, v)) return nullptr;
    }
    return conf;
}

/// True for a client error an operator must act on: the cluster refused the credentials or
/// the TLS handshake failed (librdkafka retries these without end).
bool access_error(rd_kafka_resp_err_t e) {
    return e == RD_KAFKA_RESP_ERR__AUTHENTICATION || e == RD_KAFKA_RESP_ERR__SSL ||
           e == RD_KAFKA_RESP_ERR_SASL_AUTHENTICATION_FAILED || e == RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED ||
           e == RD_KAFKA_RESP_ERR_CLUSTER_AUTHORIZATION_FAILED;
}

/// The cluster's last refusal of a client (its login or TLS handshake), which librdkafka
/// reports through its error callback and retries without end: kept for the job's status, and
/// logged once until it changes kind or clears. Any thread.
class refusal_log {
public:
    /// Notes librdkafka error `e` of the client of `who` (masked with `client`): true when it
    /// is a refusal (then `text()` says it); other errors are logged as warnings.
    bool note(rd_kafka_resp_err_t e, const char* reason, const kafka_client_config& client,
              const std::string& bootstrap, std::string_view who) {
        if (!access_error(e)) {
            lg().warn("{}: {}", who, client.mask(reason));
            return false;
        }
        auto what = client.mask(fmt::format("{} refuses access: {}", bootstrap, reason));
        std::lock_guard lock(_mu);
        if (e != _code) lg().error("{}: {}", who, what); // once, not at every retry
        _code = e;
        _text = std::move(what);
        return true;
    }
    std::string text() const {
        std::lock_guard lock(_mu);
        return _text;
    }
    void clear() {
        std::lock_guard lock(_mu);
        _text.clear();
        _code = RD_KAFKA_RESP_ERR_NO_ERROR;
    }

private:
    mutable std::mutex _mu;
    std::string _text; ///< under _mu
    rd_kafka_resp_err_t _code = RD_KAFKA_RESP_ERR_NO_ERROR; ///< under _mu
};

} // namespace

result<int32_t> kafka_partitions(const std::string& bootstrap, const std::string& topic,
                                 std::chrono::milliseconds timeout, std::string& why) {
    auto* conf = make_conf(nullptr, {{"bootstrap.servers", bootstrap}, {"allow.auto.create.topics", "false"}}, why);
    if (!conf) return std::error_code(EINVAL, std::generic_category());
    char err[512];
    rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    if (!rk) {
        why = err;
        return std::error_code(EINVAL, std::generic_category());
    }
    rd_kafka_topic_t* t = rd_kafka_topic_new(rk, topic.c_str(), nullptr);
    const rd_kafka_metadata_t* md = nullptr;
    auto e = rd_kafka_metadata(rk, 0, t, &md, int(timeout.count()));
    int32_t parts = 0;
    if (e) why = fmt::format("cannot reach {}: {}", bootstrap, rd_kafka_err2str(e));
    else if (md->topic_cnt != 1 || md->topics[0].err) why = fmt::format("topic '{}' does not exist on {}", topic, bootstrap);
    else parts = md->topics[0].partition_cnt;
    if (md) rd_kafka_metadata_destroy(md);
    rd_kafka_topic_destroy(t);
    rd_kafka_destroy(rk);
    if (parts <= 0) return std::error_code(ENOENT, std::generic_category());
    return parts;
}

// ---- source ------------------------------------------------------------------------------

struct kafka_source::impl : std::enable_shared_from_this<impl> {
    impl(kafka_source_options o, executor& h, std::function<void()> w)
      : opts(std::move(o))
      , home(h)
      , wake(std::move(w)) {}
    ~impl() {
        if (setup.joinable()) setup.join();
        if (queue) rd_kafka_queue_destroy(queue);
        if (rk) {
            rd_kafka_consumer_close(rk);
            rd_kafka_destroy(rk);
        }
    }

    kafka_source_options opts;
    executor& home;
    std::function<void()> wake;
    rd_kafka_t* rk = nullptr;
    rd_kafka_queue_t* queue = nullptr;
    std::thread setup; ///< joined by ~impl
    std::atomic<bool> ready{false}, stopped{false};
    mutable std::mutex mu;
    std::string waiting; ///< under mu
    refusal_log refusals;
    std::map<int32_t, int64_t> handed; ///< job thread; restored or taken
    std::deque<engine::batch> split;   ///< batches of one poll not yet handed
    std::size_t split_bytes = 0;

    /// Creates the consumer, finds the partitions and assigns them at the handed offsets (or
    /// the earliest). Runs on its own thread: metadata requests block.
    void start() {
        std::string why;
        auto* conf = make_conf(&opts.client,
                               {{"bootstrap.servers", opts.bootstrap}, {"group.id", opts.client_id},
                                {"client.id", opts.client_id}, {"enable.auto.commit", "false"},
                                {"enable.auto.offset.store", "false"}, {"auto.offset.reset", "earliest"},
                                {"queued.max.messages.kbytes", std::to_string(std::max<std::size_t>(opts.max_buffered_bytes / 1024, 64))}},
                               why);
        char err[512];
        if (conf) {
            rd_kafka_conf_set_opaque(conf, this);
            rd_kafka_conf_set_error_cb(conf, [](rd_kafka_t*, int e, const char* reason, void* opaque) {
                static_cast<impl*>(opaque)->client_error(rd_kafka_resp_err_t(e), reason);
            });
            rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
            if (!rk) rd_kafka_conf_destroy(conf); // not taken on failure
        }
        if (!rk) {
            set_waiting(conf ? opts.client.mask(fmt::format("cannot create a consumer: {}", err)) : why);
            return;
        }
        queue = rd_kafka_queue_get_consumer(rk);
        // Wake the job when records arrive in an empty queue.
        rd_kafka_queue_cb_event_enable(queue, [](rd_kafka_t*, void* opaque) {
            auto* self = static_cast<impl*>(opaque);
            if (!self->stopped) self->home.post([w = self->weak_from_this()] {
                if (auto s = w.lock(); s && !s->stopped) s->wake();
            });
        }, this);
        while (!stopped) {
            rd_kafka_topic_t* t = rd_kafka_topic_new(rk, opts.topic.c_str(), nullptr);
            const rd_kafka_metadata_t* md = nullptr;
            auto e = rd_kafka_metadata(rk, 0, t, &md, 5000);
            int32_t parts = 0;
            if (e == RD_KAFKA_RESP_ERR_NO_ERROR && md->topic_cnt == 1 && md->topics[0].err == RD_KAFKA_RESP_ERR_NO_ERROR) {
                parts = md->topics[0].partition_cnt;
            } else {
                set_waiting(fmt::format("topic '{}' on {}: {}", opts.topic, opts.bootstrap,
                                        rd_kafka_err2str(e ? e : md->topic_cnt ? md->topics[0].err : RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC)));
            }
            if (md) rd_kafka_metadata_destroy(md);
            rd_kafka_topic_destroy(t);
            if (parts > 0) {
                auto* list = rd_kafka_topic_partition_list_new(parts);
                {
                    std::lock_guard lock(mu);
                    for (int32_t p = 0; p < parts; ++p) {
                        auto it = handed.find(p);
                        rd_kafka_topic_partition_list_add(list, opts.topic.c_str(), p)->offset =
                          it != handed.end() ? it->second
                          : opts.start_at_end ? RD_KAFKA_OFFSET_END
                                              : RD_KAFKA_OFFSET_BEGINNING;
                    }
                }
                auto ae = rd_kafka_assign(rk, list);
                rd_kafka_topic_partition_list_destroy(list);
                if (ae == RD_KAFKA_RESP_ERR_NO_ERROR) {
                    set_waiting("");
                    // From now on errors reach error_cb through the consumer queue, which the
                    // job polls.
                    rd_kafka_poll_set_consumer(rk);
                    ready = true;
                    home.post([w = weak_from_this()] {
                        if (auto s = w.lock(); s && !s->stopped) s->wake();
                    });
                    return;
                }
                set_waiting(fmt::format("cannot assign {}: {}", opts.topic, rd_kafka_err2str(ae)));
            }
            // Retry in 1 s, serving librdkafka's error callbacks meanwhile (a refused login).
            for (int i = 0; i < 20 && !stopped; ++i) rd_kafka_poll(rk, 50);
        }
    }

    void set_waiting(std::string w) {
        std::lock_guard lock(mu);
        waiting = std::move(w);
    }

    /// librdkafka's error callback (any thread that polls): a refused login or TLS handshake
    /// is kept for `waiting_for` (and so the job's status and /metrics) until records arrive.
    void client_error(rd_kafka_resp_err_t e, const char* reason) {
        refusals.note(e, reason, opts.client, opts.bootstrap, "kafka source " + opts.topic);
    }
};

kafka_source::kafka_source(kafka_source_options opts, executor& home, std::function<void()> wake)
  : _impl(std::make_shared<impl>(std::move(opts), home, std::move(wake))) {}

kafka_source::~kafka_source() { stop(); }

engine::source_fn kafka_source::fn() {
    return [this]() -> engine::source_poll {
        auto& im = *_impl;
        if (!im.setup.joinable() && !im.stopped) im.setup = std::thread([s = _impl.get()] { s->start(); });
        if (_paused || !im.ready) return engine::source_poll::idle();
        if (im.split.empty()) {
            rd_kafka_message_t* msgs[1024];
            auto n = rd_kafka_consume_batch_queue(im.queue, 0, msgs, 1024);
            if (n <= 0) return engine::source_poll::idle();
            engine::batch cur;
            int32_t cur_part = -1;
            auto flush = [&] {
                if (cur_part >= 0 && cur.num_columns() > 0) {
                    cur.seal();
                    cur.set_source_partition(cur_part);
                    im.split.push_back(std::move(cur));
                }
            };
            for (ssize_t i = 0; i < n; ++i) {
                auto* m = msgs[i];
                if (m->err) {
                    if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) im.client_error(m->err, rd_kafka_message_errstr(m));
                    rd_kafka_message_destroy(m);
                    continue;
                }
                if (m->partition != cur_part) {
                    flush();
                    cur = engine::batch(record_schema());
                    cur_part = m->partition;
                }
                auto& cols = cur.columns();
                if (m->key) cols[0].push_string(std::string_view(static_cast<const char*>(m->key), m->key_len));
                else cols[0].push_null();
                if (m->payload) cols[1].push_string(std::string_view(static_cast<const char*>(m->payload), m->len));
                else cols[1].push_null();
                cols[2].push_int64(m->partition);
                cols[3].push_int64(m->offset);
                rd_kafka_timestamp_type_t tt;
                cols[4].push_int64(rd_kafka_message_timestamp(m, &tt));
                im.split_bytes += m->len + m->key_len;
                rd_kafka_message_destroy(m);
            }
            flush();
            if (im.split.empty()) return engine::source_poll::idle();
            im.refusals.clear(); // records arrive: the client is let in again
        }
        auto b = std::move(im.split.front());
        im.split.pop_front();
        const auto& offsets = b.col(3);
        std::lock_guard lock(im.mu);
        im.handed[b.source_partition()] = offsets.int64_at(b.num_rows() - 1) + 1;
        if (im.split.empty()) im.split_bytes = 0;
        return engine::source_poll::data(std::move(b));
    };
}

std::string kafka_source::state() const {
    std::lock_guard lock(_impl->mu);
    engine::state_writer w;
    w.u32(uint32_t(_impl->handed.size()));
    for (const auto& [p, o] : _impl->handed) {
        w.u32(uint32_t(p));
        w.i64(o);
    }
    return std::move(w.bytes());
}

result<void> kafka_source::restore(std::string_view bytes) {
    engine::state_reader r(bytes);
    uint32_t n = r.count(12);
    std::map<int32_t, int64_t> handed;
    for (uint32_t i = 0; i < n; ++i) {
        auto p = int32_t(r.u32());
        handed[p] = r.i64();
    }
    if (!r.ok() || !r.at_end()) return std::error_code(EINVAL, std::generic_category());
    std::lock_guard lock(_impl->mu);
    _impl->handed = std::move(handed);
    return ok();
}

std::size_t kafka_source::buffered_bytes() const { return _impl->split_bytes; }

std::string kafka_source::waiting_for() const {
    if (auto refused = _impl->refusals.text(); !refused.empty()) return refused;
    std::lock_guard lock(_impl->mu);
    return _impl->waiting;
}

void kafka_source::stop() {
    _impl->stopped = true;
    if (_impl->queue) rd_kafka_queue_cb_event_enable(_impl->queue, nullptr, nullptr);
}

// ---- sink --------------------------------------------------------------------------------

namespace {

constexpr const char* seal_header = "runnel-seal";
constexpr const char* sink_header = "runnel-sink";
constexpr uint8_t sealed_format = 1;

/// A failed transactional call: whether librdkafka asks for an abort (the transaction can be
/// tried again after it) or for a retry of the same call; neither means fatal.
struct txn_error {
    bool abortable = false;
    bool retriable = false;
    std::string what;
};

/// `e` (taken and destroyed) as a `txn_error`, or nothing on success.
std::optional<txn_error> take(rd_kafka_error_t* e, const char* step) {
    if (!e) return std::nullopt;
    txn_error t{bool(rd_kafka_error_txn_requires_abort(e)), bool(rd_kafka_error_is_retriable(e)),
                fmt::format("{}: {}", step, rd_kafka_error_string(e))};
    rd_kafka_error_destroy(e);
    return t;
}

/// The value of header `name` of `m`, if it has one.
std::optional<std::string_view> header(rd_kafka_message_t* m, const char* name) {
    rd_kafka_headers_t* hdrs = nullptr;
    if (rd_kafka_message_headers(m, &hdrs) != RD_KAFKA_RESP_ERR_NO_ERROR || !hdrs) return std::nullopt;
    const void* v = nullptr;
    std::size_t n = 0;
    if (rd_kafka_header_get_last(hdrs, name, &v, &n) != RD_KAFKA_RESP_ERR_NO_ERROR || !v) return std::nullopt;
    return std::string_view(static_cast<const char*>(v), n);
}

} // namespace

struct kafka_sink::impl : std::enable_shared_from_this<impl> {
    /// One encoded row, with the partition chosen for it at `write`.
    struct record {
        int32_t partition = 0;
        bool has_key = false;
        std::string key;
        std::string value;
        bool tombstone = false; ///< a null value: the key was deleted
    };
    /// The rows of one checkpoint interval (exactly-once).
    struct generation {
        int64_t number = 0;
        std::vector<record> records;
        std::size_t bytes = 0;
    };

    impl(kafka_sink_options o, executor& h, std::function<void()> w)
      : opts(std::move(o))
      , home(h)
      , wake(std::move(w)) {}
    ~impl() {
        stopping = true;
        if (rk) rd_kafka_yield(rk);
        if (thread.joinable()) thread.join();
        if (rk) {
            if (!opts.exactly_once) rd_kafka_flush(rk, 5000);
            rd_kafka_destroy(rk);
        }
    }

    kafka_sink_options opts;
    executor& home;
    std::function<void()> wake;
    rd_kafka_t* rk = nullptr;
    std::thread thread; ///< the sink's thread; joined by ~impl
    std::atomic<bool> stopping{false};
    std::mutex task_mu;
    std::deque<std::function<void()>> tasks; ///< under task_mu: run by the sink's thread
    std::atomic<int64_t> outstanding{0};
    mutable std::mutex mu;
    std::error_code failed; ///< under mu: the first delivery failure (at-least-once)
    std::string failure;    ///< under mu: librdkafka's words for the last failure
    refusal_log refusals;
    std::vector<done_fn> waiting; ///< under mu
    std::vector<std::size_t> key_cols;
    const engine::schema* key_schema = nullptr;
    // Exactly-once, the job's thread only.
    int32_t partitions = 0;
    uint64_t rr = 0;
    std::vector<record> held;
    std::size_t held_bytes = 0;
    std::optional<generation> sealed;
    int64_t next_generation = 1;

    int timeout_ms() const { return int(opts.transaction_timeout.count()); }

    /// Runs `task` on the sink's thread.
    void post(std::function<void()> task) {
        {
            std::lock_guard lock(task_mu);
            tasks.push_back(std::move(task));
        }
        rd_kafka_yield(rk); // ends the thread's rd_kafka_poll early
    }

    /// Runs `done(r)` on `home` unless the sink is gone by then.
    void answer(done_fn done, result<void> r) {
        home.post([w = weak_from_this(), done = std::move(done), r] {
            if (auto s = w.lock(); s && !s->stopping) done(r);
        });
    }

    /// librdkafka's error callback (the sink's thread, which polls): a refused login or TLS
    /// handshake becomes the sink's failure, so the job fails with the reason instead of
    /// waiting for acknowledgements that never come.
    void client_error(rd_kafka_resp_err_t e, const char* reason) {
        if (!refusals.note(e, reason, opts.client, opts.bootstrap, "kafka sink " + opts.topic)) return;
        std::lock_guard lock(mu);
        failure = refusals.text();
        if (!failed) failed = std::error_code(EACCES, std::generic_category());
    }

    /// Records `why` as the sink's failure (logged, and told by `failure()`).
    std::error_code fail(std::string why, int code = EIO) {
        lg().error("kafka sink {}: {}", opts.topic, why);
        std::lock_guard lock(mu);
        failure = std::move(why);
        return std::error_code(code, std::generic_category());
    }

    /// The sink's thread: runs posted tasks and, between them, serves librdkafka's callbacks
    /// (delivery reports), answering at-least-once `release` waiters once nothing is
    /// outstanding.
    void run() {
        while (!stopping) {
            std::function<void()> task;
            {
                std::lock_guard lock(task_mu);
                if (!tasks.empty()) {
                    task = std::move(tasks.front());
                    tasks.pop_front();
                }
            }
            if (task) {
                task();
                continue;
            }
            rd_kafka_poll(rk, 50);
            std::vector<done_fn> ready;
            {
                std::lock_guard lock(mu);
                // A refused login fails what waits rather than leaving it waiting unseen.
                if ((outstanding == 0 || failed.value() == EACCES) && !waiting.empty()) ready.swap(waiting);
            }
            for (auto& d : ready) {
                std::lock_guard lock(mu);
                answer(std::move(d), failed ? result<void>(failed) : ok());
            }
        }
    }

    /// One transaction holding every record of `g`, committed. Sink's thread.
    std::optional<txn_error> transact(const generation& g) {
        if (auto e = take(rd_kafka_begin_transaction(rk), "begin_transaction")) return e;
        const auto gen = std::to_string(g.number);
        for (const auto& r : g.records) {
            for (;;) {
                auto e = rd_kafka_producev(
                  rk, RD_KAFKA_V_TOPIC(opts.topic.c_str()), RD_KAFKA_V_PARTITION(r.partition),
                  RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                  RD_KAFKA_V_VALUE(r.tombstone ? nullptr : const_cast<char*>(r.value.data()),
                                   r.tombstone ? 0 : r.value.size()),
                  RD_KAFKA_V_KEY(r.has_key ? r.key.data() : nullptr, r.has_key ? r.key.size() : 0),
                  RD_KAFKA_V_HEADER(seal_header, gen.data(), ssize_t(gen.size())),
                  RD_KAFKA_V_HEADER(sink_header, opts.transactional_id.data(), ssize_t(opts.transactional_id.size())),
                  RD_KAFKA_V_END);
                if (e == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
                    rd_kafka_poll(rk, 10); // librdkafka's own queue is full: let it drain a little
                    continue;
                }
                if (e == RD_KAFKA_RESP_ERR__FATAL) {
                    char why[512];
                    rd_kafka_fatal_error(rk, why, sizeof why);
                    return txn_error{false, false, fmt::format("produce: {}", why)};
                }
                if (e) return txn_error{true, false, fmt::format("produce: {}", rd_kafka_err2str(e))};
                break;
            }
        }
        // Tests stop here as a crash would: the records are sent, the transaction left open.
        if (fail_point::take("kafka_sink.crash_before_commit")) {
            rd_kafka_flush(rk, timeout_ms());
            return txn_error{false, false, "stopped before commit_transaction (fail point)"};
        }
        auto e = take(rd_kafka_commit_transaction(rk, timeout_ms()), "commit_transaction");
        if (e && e->retriable && !e->abortable) {
            lg().warn("kafka sink {}: generation {}: {}; committing again", opts.topic, g.number, e->what);
            e = take(rd_kafka_commit_transaction(rk, timeout_ms()), "commit_transaction");
        }
        return e;
    }

    /// Commits `g` in one transaction; a transaction that needs an abort is aborted and tried
    /// once more. Sink's thread.
    result<void> send(const generation& g) {
        if (g.records.empty()) return ok();
        for (int attempt = 1;; ++attempt) {
            auto e = transact(g);
            if (!e) return ok();
            if (e->abortable && attempt == 1) {
                lg().warn("kafka sink {}: generation {}: {}; aborting and trying once more", opts.topic, g.number, e->what);
                if (auto a = take(rd_kafka_abort_transaction(rk, timeout_ms()), "abort_transaction")) {
                    return fail(fmt::format("generation {} to {}: {} (after {})", g.number, opts.bootstrap, a->what, e->what));
                }
                continue;
            }
            return fail(fmt::format("generation {} to {}: {}", g.number, opts.bootstrap, e->what));
        }
    }

    /// The highest generation this transactional id committed to the topic, read by a
    /// read_committed consumer from the last `recover_scan_records` records of every
    /// partition (0: none). Sink's thread.
    result<int64_t> highest_committed() {
        std::string why;
        auto* conf = make_conf(&opts.client,
                               {{"bootstrap.servers", opts.bootstrap}, {"group.id", opts.transactional_id + ".recover"},
                                {"enable.auto.commit", "false"}, {"enable.auto.offset.store", "false"},
                                {"isolation.level", "read_committed"}, {"enable.partition.eof", "true"},
                                {"auto.offset.reset", "earliest"}},
                               why);
        if (!conf) return fail(why);
        char err[512];
        rd_kafka_t* c = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
        if (!c) {
            rd_kafka_conf_destroy(conf); // not taken on failure
            return fail(opts.client.mask(fmt::format("cannot create a consumer: {}", err)));
        }
        rd_kafka_poll_set_consumer(c);
        auto done = [c](result<int64_t> r) {
            rd_kafka_consumer_close(c);
            rd_kafka_destroy(c);
            return r;
        };
        rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(partitions);
        for (int32_t p = 0; p < partitions; ++p) {
            int64_t low = 0, high = 0;
            auto e = rd_kafka_query_watermark_offsets(c, opts.topic.c_str(), p, &low, &high, timeout_ms());
            if (e) {
                rd_kafka_topic_partition_list_destroy(list);
                return done(fail(fmt::format("recovery: offsets of {} [{}]: {}", opts.topic, p, rd_kafka_err2str(e))));
            }
            if (high > low) {
                rd_kafka_topic_partition_list_add(list, opts.topic.c_str(), p)->offset =
                  std::max(low, high - opts.recover_scan_records);
            }
        }
        const int reading = list->cnt;
        auto ae = reading > 0 ? rd_kafka_assign(c, list) : RD_KAFKA_RESP_ERR_NO_ERROR;
        rd_kafka_topic_partition_list_destroy(list);
        if (ae) return done(fail(fmt::format("recovery: cannot assign {}: {}", opts.topic, rd_kafka_err2str(ae))));
        int64_t highest = 0;
        std::set<int32_t> at_end;
        const auto deadline = std::chrono::steady_clock::now() + opts.transaction_timeout;
        uint64_t read = 0;
        while (int(at_end.size()) < reading && !stopping) {
            if (std::chrono::steady_clock::now() > deadline) {
                return done(fail(fmt::format("recovery: {} of {} partitions of {} not read to their end within {} ms",
                                             reading - int(at_end.size()), reading, opts.topic, timeout_ms())));
            }
            rd_kafka_message_t* m = rd_kafka_consumer_poll(c, 100);
            if (!m) continue;
            if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
                at_end.insert(m->partition);
            } else if (m->err) {
                lg().warn("kafka sink {}: recovery read: {}", opts.topic, rd_kafka_message_errstr(m));
            } else {
                ++read;
                auto sink = header(m, sink_header);
                auto seal = header(m, seal_header);
                if (sink && seal && *sink == opts.transactional_id) {
                    int64_t g = 0;
                    auto [end, ec] = std::from_chars(seal->data(), seal->data() + seal->size(), g);
                    if (ec == std::errc() && end == seal->data() + seal->size()) highest = std::max(highest, g);
                }
            }
            rd_kafka_message_destroy(m);
        }
        if (stopping) return done(std::error_code(ECANCELED, std::generic_category()));
        lg().info("kafka sink {}: recovery read {} records of {} partitions; newest committed generation {}", opts.topic,
                  read, reading, highest);
        return done(highest);
    }
};

kafka_sink::kafka_sink(kafka_sink_options opts, executor& home, std::function<void()> wake)
  : _impl(std::make_shared<impl>(std::move(opts), home, std::move(wake)))
  , _exactly_once(_impl->opts.exactly_once) {}

kafka_sink::~kafka_sink() { stop(); }

void kafka_sink::start(int32_t, done_fn done) {
    auto& im = *_impl;
    if (im.opts.exactly_once && im.opts.transactional_id.empty()) {
        return done(im.fail("exactly-once output needs a transactional id", EINVAL));
    }
    std::string why;
    std::vector<std::pair<std::string, std::string>> props{
      {"bootstrap.servers", im.opts.bootstrap}, {"enable.idempotence", "true"}, {"acks", "all"}, {"linger.ms", "5"},
      {"partitioner", "murmur2_random"},
      {"queue.buffering.max.messages", std::to_string(std::max<std::size_t>(im.opts.max_pending_rows * 2, 1000))}};
    if (im.opts.exactly_once) props.emplace_back("transactional.id", im.opts.transactional_id);
    auto* conf = make_conf(&im.opts.client, props, why);
    if (!conf) return done(im.fail(why, EINVAL));
    rd_kafka_conf_set_opaque(conf, _impl.get());
    rd_kafka_conf_set_error_cb(conf, [](rd_kafka_t*, int e, const char* reason, void* opaque) {
        static_cast<impl*>(opaque)->client_error(rd_kafka_resp_err_t(e), reason);
    });
    if (!im.opts.exactly_once) {
        rd_kafka_conf_set_dr_msg_cb(conf, [](rd_kafka_t*, const rd_kafka_message_t* m, void* opaque) {
            auto* self = static_cast<impl*>(opaque);
            if (m->err) {
                std::lock_guard lock(self->mu);
                if (!self->failed) {
                    self->failed = std::error_code(EIO, std::generic_category());
                    self->failure = fmt::format("delivery failed: {}", rd_kafka_err2str(m->err));
                    lg().error("kafka sink {}: {}", self->opts.topic, self->failure);
                }
            }
            --self->outstanding;
        });
    }
    char err[512];
    im.rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    if (!im.rk) {
        rd_kafka_conf_destroy(conf); // not taken on failure
        return done(im.fail(im.opts.client.mask(fmt::format("cannot create a producer: {}", err)), EINVAL));
    }
    im.thread = std::thread([s = _impl.get()] { s->run(); }); // joined by ~impl
    if (!im.opts.exactly_once) return done(ok());
    // init_transactions blocks until the coordinator has fenced the previous incarnation and
    // finished its open transaction; metadata blocks too.
    im.post([s = _impl.get(), done = std::move(done)]() mutable {
        if (auto e = take(rd_kafka_init_transactions(s->rk, s->timeout_ms()), "init_transactions")) {
            rd_kafka_poll(s->rk, 0); // serves the error callback: a refused login says why
            if (auto refused = s->refusals.text(); !refused.empty()) {
                return s->answer(std::move(done), s->fail(refused, EACCES));
            }
            return s->answer(std::move(done),
                             s->fail(fmt::format("exactly-once output needs Kafka transactions, and {} did not start them "
                                                 "for transactional id '{}': {}",
                                                 s->opts.bootstrap, s->opts.transactional_id, e->what),
                                     ENOTSUP));
        }
        rd_kafka_topic_t* t = rd_kafka_topic_new(s->rk, s->opts.topic.c_str(), nullptr);
        const rd_kafka_metadata_t* md = nullptr;
        auto e = rd_kafka_metadata(s->rk, 0, t, &md, s->timeout_ms());
        int32_t parts = 0;
        if (e == RD_KAFKA_RESP_ERR_NO_ERROR && md->topic_cnt == 1 && md->topics[0].err == RD_KAFKA_RESP_ERR_NO_ERROR) {
            parts = md->topics[0].partition_cnt;
        }
        std::string why = parts > 0 ? std::string()
                                    : fmt::format("topic '{}' on {}: {}", s->opts.topic, s->opts.bootstrap,
                                                  rd_kafka_err2str(e ? e : md->topic_cnt ? md->topics[0].err : RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC));
        if (md) rd_kafka_metadata_destroy(md);
        rd_kafka_topic_destroy(t);
        if (parts <= 0) return s->answer(std::move(done), s->fail(why, ENOENT));
        s->home.post([w = s->weak_from_this(), parts, done = std::move(done)] {
            auto self = w.lock();
            if (!self || self->stopping) return;
            self->partitions = parts;
            done(ok());
        });
    });
}

void kafka_sink::write(const engine::batch& b) {
    auto& im = *_impl;
    if (!im.rk || im.stopping) return;
    if (im.opts.exactly_once && im.partitions == 0) return;
    if (im.key_schema != b.schema_of().get()) {
        im.key_cols.clear();
        for (const auto& k : im.opts.key_columns) {
            if (auto i = b.schema_of()->index_of(k)) im.key_cols.push_back(*i);
        }
        im.key_schema = b.schema_of().get();
    }
    for (std::size_t r = 0; r < b.num_rows(); ++r) {
        // Keyed: upserts, a deleted row as a tombstone (null value); as the embedded log's sink writes them.
        const auto kind = b.kind(r);
        const bool keyed = !im.key_cols.empty();
        if (keyed && kind == engine::row_kind::update_before) continue;
        const bool tombstone = keyed && kind == engine::row_kind::delete_row;
        auto json = tombstone ? std::string() : row_to_json(b, r);
        const std::string key = row_key(b, r, im.key_cols);
        if (im.opts.exactly_once) {
            const int32_t p = keyed ? model::partition_for_key(key, im.partitions) : int32_t(im.rr++ % uint64_t(im.partitions));
            im.held_bytes += json.size() + key.size() + 16;
            im.held.push_back({p, keyed, std::move(key), std::move(json), tombstone});
            continue;
        }
        ++im.outstanding;
        for (;;) {
            auto e = rd_kafka_producev(im.rk, RD_KAFKA_V_TOPIC(im.opts.topic.c_str()),
                                       RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                       RD_KAFKA_V_VALUE(tombstone ? nullptr : json.data(), json.size()),
                                       RD_KAFKA_V_KEY(im.key_cols.empty() ? nullptr : key.data(), im.key_cols.empty() ? 0 : key.size()),
                                       RD_KAFKA_V_END);
            if (e == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
                rd_kafka_poll(im.rk, 10); // librdkafka's own queue is full: let it drain a little
                continue;
            }
            if (e) {
                --im.outstanding;
                std::lock_guard lock(im.mu);
                if (!im.failed) {
                    im.failed = std::error_code(EIO, std::generic_category());
                    im.failure = fmt::format("produce failed: {}", rd_kafka_err2str(e));
                }
            }
            break;
        }
    }
}

bool kafka_sink::ready() const {
    if (_draining) return true;
    if (_exactly_once) return _impl->held.size() < _impl->opts.max_pending_rows;
    return _impl->outstanding < int64_t(_impl->opts.max_pending_rows);
}

bool kafka_sink::wants_checkpoint() const {
    return _exactly_once && _impl->held.size() >= std::max<std::size_t>(_impl->opts.max_pending_rows / 2, 1);
}

std::string kafka_sink::seal() {
    auto& im = *_impl;
    if (!_exactly_once) return {};
    RUNNEL_ASSERT(!im.sealed, "seal before the previous generation was released");
    impl::generation g{im.next_generation++, std::move(im.held), im.held_bytes};
    im.held.clear();
    im.held_bytes = 0;
    engine::state_writer w;
    w.u8(sealed_format);
    w.i64(g.number);
    w.u32(uint32_t(g.records.size()));
    for (const auto& r : g.records) {
        w.u32(uint32_t(r.partition));
        w.u8(uint8_t((r.has_key ? 1 : 0) | (r.tombstone ? 2 : 0)));
        w.str(r.key);
        w.str(r.value);
    }
    im.sealed = std::move(g);
    return std::move(w.bytes());
}

void kafka_sink::release(done_fn done) {
    auto& im = *_impl;
    if (!_exactly_once) {
        std::lock_guard lock(im.mu);
        im.waiting.push_back(std::move(done)); // the sink's thread answers once nothing is outstanding
        return;
    }
    if (!im.sealed || im.sealed->records.empty()) {
        im.sealed.reset();
        return done(ok());
    }
    if (!im.rk) return done(std::error_code(ENOTCONN, std::generic_category()));
    auto g = std::make_shared<impl::generation>(std::move(*im.sealed));
    im.sealed.reset();
    im.post([s = _impl.get(), g, done = std::move(done)]() mutable { s->answer(std::move(done), s->send(*g)); });
}

void kafka_sink::recover(std::string_view bytes, done_fn done) {
    auto& im = *_impl;
    if (!_exactly_once) return done(ok());
    if (!im.rk) return done(std::error_code(ENOTCONN, std::generic_category()));
    std::optional<impl::generation> g;
    if (!bytes.empty()) {
        engine::state_reader r(bytes);
        const auto format = r.u8();
        g = impl::generation{};
        g->number = r.i64();
        const uint32_t n = r.count(13);
        g->records.resize(n);
        for (auto& rec : g->records) {
            rec.partition = int32_t(r.u32());
            const uint8_t flags = r.u8();
            rec.has_key = (flags & 1) != 0;
            rec.tombstone = (flags & 2) != 0;
            rec.key = std::string(r.str());
            rec.value = std::string(r.str());
            g->bytes += rec.key.size() + rec.value.size() + 16;
        }
        if (!r.ok() || !r.at_end() || format != sealed_format) {
            return done(im.fail("the checkpoint's part of this sink is not readable", EINVAL));
        }
        for (const auto& rec : g->records) {
            if (rec.partition < 0 || rec.partition >= im.partitions) {
                return done(im.fail(fmt::format("the checkpoint holds a record for partition {} of {}, which has {}",
                                                rec.partition, im.opts.topic, im.partitions),
                                    EINVAL));
            }
        }
    }
    auto sg = std::make_shared<std::optional<impl::generation>>(std::move(g));
    im.post([s = _impl.get(), sg, done = std::move(done)]() mutable {
        auto highest = s->highest_committed();
        if (!highest) return s->answer(std::move(done), highest.error());
        const auto& g = *sg;
        result<void> r = ok();
        if (g && highest.value() >= g->number) {
            lg().info("kafka sink {}: generation {} of the last checkpoint is committed already", s->opts.topic, g->number);
        } else if (g) {
            lg().info("kafka sink {}: generation {} of the last checkpoint ({} records) is not in the topic; sending it",
                      s->opts.topic, g->number, g->records.size());
            r = s->send(*g);
        }
        const int64_t next = std::max(g ? g->number : 0, highest.value()) + 1;
        s->home.post([w = s->weak_from_this(), next, r, done = std::move(done)] {
            auto self = w.lock();
            if (!self || self->stopping) return;
            self->next_generation = next;
            done(r);
        });
    });
}

std::size_t kafka_sink::pending_bytes() const {
    if (_exactly_once) return _impl->held_bytes + (_impl->sealed ? _impl->sealed->bytes : 0);
    return std::size_t(std::max<int64_t>(0, _impl->outstanding));
}

const std::string& kafka_sink::name() const { return _impl->opts.topic; }

std::string kafka_sink::failure() const {
    std::lock_guard lock(_impl->mu);
    return _impl->failure;
}

void kafka_sink::stop() {
    _impl->stopping = true;
    if (_impl->rk) rd_kafka_yield(_impl->rk);
}

} // namespace runnel::connect
