#include "connect/kafka/kafka.h"

#include <atomic>
#include <deque>
#include <map>
#include <mutex>
#include <thread>

#include <fmt/format.h>
#include <librdkafka/rdkafka.h>

#include "base/logging.h"
#include "connect/log/log_source.h"
#include "connect/log/log_sink.h"
#include "engine/state_io.h"

namespace runnel::connect {
namespace {

spdlog::logger& lg() { return logging::get("connect"); }

/// A librdkafka configuration, or the reason one property was refused.
rd_kafka_conf_t* make_conf(const std::vector<std::pair<std::string, std::string>>& props, std::string& why) {
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    char err[512];
    for (const auto& [k, v] : props) {
        if (rd_kafka_conf_set(conf, k.c_str(), v.c_str(), err, sizeof err) != RD_KAFKA_CONF_OK) {
            why = fmt::format("{}={}: {}", k, v, err);
            rd_kafka_conf_destroy(conf);
            return nullptr;
        }
    }
    return conf;
}

} // namespace

result<int32_t> kafka_partitions(const std::string& bootstrap, const std::string& topic,
                                 std::chrono::milliseconds timeout, std::string& why) {
    auto* conf = make_conf({{"bootstrap.servers", bootstrap}, {"allow.auto.create.topics", "false"}}, why);
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
    std::map<int32_t, int64_t> handed; ///< job thread; restored or taken
    std::deque<engine::batch> split;   ///< batches of one poll not yet handed
    std::size_t split_bytes = 0;

    /// Creates the consumer, finds the partitions and assigns them at the handed offsets (or
    /// the earliest). Runs on its own thread: metadata requests block.
    void start() {
        std::string why;
        auto* conf = make_conf({{"bootstrap.servers", opts.bootstrap}, {"group.id", opts.client_id},
                                {"client.id", opts.client_id}, {"enable.auto.commit", "false"},
                                {"enable.auto.offset.store", "false"}, {"auto.offset.reset", "earliest"},
                                {"queued.max.messages.kbytes", std::to_string(std::max<std::size_t>(opts.max_buffered_bytes / 1024, 64))}},
                               why);
        char err[512];
        if (conf) rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
        if (!rk) {
            set_waiting(conf ? fmt::format("cannot create a consumer: {}", err) : why);
            return;
        }
        rd_kafka_poll_set_consumer(rk);
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
                          it == handed.end() ? RD_KAFKA_OFFSET_BEGINNING : it->second;
                    }
                }
                auto ae = rd_kafka_assign(rk, list);
                rd_kafka_topic_partition_list_destroy(list);
                if (ae == RD_KAFKA_RESP_ERR_NO_ERROR) {
                    set_waiting("");
                    ready = true;
                    home.post([w = weak_from_this()] {
                        if (auto s = w.lock(); s && !s->stopped) s->wake();
                    });
                    return;
                }
                set_waiting(fmt::format("cannot assign {}: {}", opts.topic, rd_kafka_err2str(ae)));
            }
            for (int i = 0; i < 20 && !stopped; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(50)); // retry in 1 s
        }
    }

    void set_waiting(std::string w) {
        std::lock_guard lock(mu);
        waiting = std::move(w);
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
                    if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
                        lg().warn("kafka source {}: {}", im.opts.topic, rd_kafka_message_errstr(m));
                    }
                    rd_kafka_message_destroy(m);
                    continue;
                }
                if (m->partition != cur_part) {
                    flush();
                    cur = engine::batch(log_source::schema());
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
    std::lock_guard lock(_impl->mu);
    return _impl->waiting;
}

void kafka_source::stop() {
    _impl->stopped = true;
    if (_impl->queue) rd_kafka_queue_cb_event_enable(_impl->queue, nullptr, nullptr);
}

// ---- sink --------------------------------------------------------------------------------

struct kafka_sink::impl : std::enable_shared_from_this<impl> {
    impl(kafka_sink_options o, executor& h, std::function<void()> w)
      : opts(std::move(o))
      , home(h)
      , wake(std::move(w)) {}
    ~impl() {
        stopping = true;
        if (poller.joinable()) poller.join();
        if (rk) {
            rd_kafka_flush(rk, 5000);
            rd_kafka_destroy(rk);
        }
    }

    kafka_sink_options opts;
    executor& home;
    std::function<void()> wake;
    rd_kafka_t* rk = nullptr;
    std::thread poller;
    std::atomic<bool> stopping{false};
    std::atomic<int64_t> outstanding{0};
    std::mutex mu;
    std::error_code failed; ///< under mu: the first delivery failure
    std::string failure;
    std::vector<done_fn> waiting; ///< under mu
    std::vector<std::size_t> key_cols;
    const engine::schema* key_schema = nullptr;

    /// Serves delivery reports; answers `release` waiters once nothing is outstanding.
    void poll_loop() {
        while (!stopping) {
            rd_kafka_poll(rk, 50);
            std::vector<done_fn> ready;
            {
                std::lock_guard lock(mu);
                if (outstanding == 0 && !waiting.empty()) ready.swap(waiting);
            }
            for (auto& d : ready) {
                home.post([d = std::move(d), self = shared_from_this()] {
                    std::lock_guard lock(self->mu);
                    d(self->failed ? result<void>(self->failed) : ok());
                });
            }
        }
    }
};

kafka_sink::kafka_sink(kafka_sink_options opts, executor& home, std::function<void()> wake)
  : _impl(std::make_shared<impl>(std::move(opts), home, std::move(wake))) {}

kafka_sink::~kafka_sink() { stop(); }

void kafka_sink::start(int32_t, done_fn done) {
    auto& im = *_impl;
    if (im.opts.exactly_once) {
        lg().error("kafka sink {}: exactly-once output to an external cluster needs Kafka transactions, which Runnel "
                   "does not drive yet; use delivery at_least_once",
                   im.opts.topic);
        return done(std::error_code(ENOTSUP, std::generic_category()));
    }
    std::string why;
    auto* conf = make_conf({{"bootstrap.servers", im.opts.bootstrap}, {"enable.idempotence", "true"}, {"acks", "all"},
                            {"linger.ms", "5"}, {"partitioner", "murmur2_random"},
                            {"queue.buffering.max.messages", std::to_string(im.opts.max_pending_rows * 2)}},
                           why);
    if (!conf) {
        lg().error("kafka sink {}: {}", im.opts.topic, why);
        return done(std::error_code(EINVAL, std::generic_category()));
    }
    rd_kafka_conf_set_opaque(conf, _impl.get());
    rd_kafka_conf_set_dr_msg_cb(conf, [](rd_kafka_t*, const rd_kafka_message_t* m, void* opaque) {
        auto* self = static_cast<impl*>(opaque);
        if (m->err) {
            std::lock_guard lock(self->mu);
            if (!self->failed) {
                self->failed = std::error_code(EIO, std::generic_category());
                self->failure = rd_kafka_err2str(m->err);
                lg().error("kafka sink {}: delivery failed: {}", self->opts.topic, self->failure);
            }
        }
        --self->outstanding;
    });
    char err[512];
    im.rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    if (!im.rk) {
        lg().error("kafka sink {}: cannot create a producer: {}", im.opts.topic, err);
        return done(std::error_code(EINVAL, std::generic_category()));
    }
    im.poller = std::thread([s = _impl.get()] { s->poll_loop(); }); // joined by ~impl
    done(ok());
}

void kafka_sink::write(const engine::batch& b) {
    auto& im = *_impl;
    if (!im.rk) return;
    if (im.key_schema != b.schema_of().get()) {
        im.key_cols.clear();
        for (const auto& k : im.opts.key_columns) {
            if (auto i = b.schema_of()->index_of(k)) im.key_cols.push_back(*i);
        }
        im.key_schema = b.schema_of().get();
    }
    for (std::size_t r = 0; r < b.num_rows(); ++r) {
        auto json = row_to_json(b, r);
        std::string key;
        for (std::size_t i = 0; i < im.key_cols.size(); ++i) {
            if (i > 0) key += '|';
            auto v = b.col(im.key_cols[i]).value_at(r);
            if (v.is_null()) continue;
            key += v.type.id == engine::type_id::string ? std::get<std::string>(v.v) : v.to_string();
        }
        ++im.outstanding;
        for (;;) {
            auto e = rd_kafka_producev(im.rk, RD_KAFKA_V_TOPIC(im.opts.topic.c_str()),
                                       RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                       RD_KAFKA_V_VALUE(json.data(), json.size()),
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
                    im.failure = rd_kafka_err2str(e);
                }
            }
            break;
        }
    }
}

bool kafka_sink::ready() const {
    return _draining || _impl->outstanding < int64_t(_impl->opts.max_pending_rows);
}

void kafka_sink::release(done_fn done) {
    std::lock_guard lock(_impl->mu);
    _impl->waiting.push_back(std::move(done)); // the poller answers once nothing is outstanding
}

std::size_t kafka_sink::pending_bytes() const { return std::size_t(std::max<int64_t>(0, _impl->outstanding)); }
const std::string& kafka_sink::name() const { return _impl->opts.topic; }

void kafka_sink::stop() { _impl->stopping = true; }

} // namespace runnel::connect
