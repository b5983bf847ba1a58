#include "broker/broker.h"

#include <algorithm>
#include <charconv>
#include <future>
#include <thread>
#include <random>

namespace runnel::broker {
namespace {

spdlog::logger& lg() { return logging::get("broker"); }

std::atomic<uint64_t> next_instance{0};

/// The most bytes `broker.conf` (the dynamic broker configs) may hold.
constexpr std::size_t max_dynamic_config_bytes = 64 * 1024;

/// A `(result, why)` callback that posts `done` to `caller`.
auto answer_on(executor& caller, std::function<void(result<void>, std::string)> done) {
    return [&caller, done = std::move(done)](result<void> r, std::string why) {
        caller.post([done, r, why = std::move(why)] { done(r, why); });
    };
}

/// Posts `value` to `done` on `caller`; values may be move-only.
template <typename T>
void reply(executor& caller, std::function<void(T)> done, T value) {
    auto boxed = std::make_shared<T>(std::move(value));
    caller.post([done = std::move(done), boxed] { done(std::move(*boxed)); });
}

/// The callback-style hop: runs `fn()` on `owner` (a partition's shard) and posts its result
/// to `done` on `caller`. Coroutines hop with `net::invoke_on(owner_of(tp), …)` instead.
template <typename R, typename Fn>
void hop(executor& owner, executor& caller, std::function<void(R)> done, Fn fn) {
    owner.post([&caller, done = std::move(done), fn = std::move(fn)]() mutable { reply<R>(caller, std::move(done), fn()); });
}

std::array<uint8_t, 16> random_uuid() {
    std::random_device rd;
    std::array<uint8_t, 16> id{};
    for (auto& b : id) {
        b = static_cast<uint8_t>(rd());
    }
    id[6] = static_cast<uint8_t>((id[6] & 0x0f) | 0x40); // version 4
    id[8] = static_cast<uint8_t>((id[8] & 0x3f) | 0x80); // RFC 4122 variant
    return id;
}

std::string hex(const std::array<uint8_t, 16>& id) {
    std::string s;
    for (auto b : id) {
        s += fmt::format("{:02x}", b);
    }
    return s;
}

std::optional<std::array<uint8_t, 16>> parse_hex_id(std::string_view s) {
    if (s.size() != 32) {
        return std::nullopt;
    }
    std::array<uint8_t, 16> id{};
    for (std::size_t i = 0; i < 16; ++i) {
        unsigned v = 0;
        auto [end, ec] = std::from_chars(s.data() + 2 * i, s.data() + 2 * i + 2, v, 16);
        if (ec != std::errc() || end != s.data() + 2 * i + 2) {
            return std::nullopt;
        }
        id[i] = static_cast<uint8_t>(v);
    }
    return id;
}

/// Produced batches refused before reaching the log, by the Kafka error they were answered with.
metrics::counter& refused_batches(const std::string& error) {
    static auto& family = metrics::default_registry().counters(
      "runnel_kafka_produce_batches_refused_total",
      "Produced batches refused by validation (CRC, codec, records), by the Kafka error answered", {"error"});
    return family.with({error});
}

errc from_storage(const std::error_code& ec) {
    if (ec == storage::errc::batch_too_large) {
        return errc::message_too_large;
    }
    if (ec == storage::errc::offset_out_of_range) {
        return errc::offset_out_of_range;
    }
    if (ec == storage::errc::closed) {
        return errc::shutting_down;
    }
    if (ec == std::errc::no_space_on_device) {
        return errc::storage_full;
    }
    if (ec == storage::errc::log_failed) {
        return errc::storage_failed;
    }
    if (ec == storage::errc::corrupt_data) {
        return errc::storage_corrupt;
    }
    return errc::storage_error;
}

/// The log settings of topic `t`. The offsets topic is compacted by its coordinator
/// (decision 0004), never by the log cleaner.
storage::log_config log_config_of(const topic_info& t) {
    auto c = t.config.log_config();
    c.compact = c.compact && !is_internal_topic(t.name);
    return c;
}

} // namespace

/// What one shard owns: its partitions' logs and the fetches waiting on them.
struct broker::shard_state {
    executor* exec;
    std::unique_ptr<storage::log_manager> logs;
    struct waiter {
        model::offset offset;
        std::weak_ptr<watch::state> interest;
    };
    std::map<model::topic_partition, std::vector<waiter>> waiters;
    std::map<model::topic_partition, producer_state> producers;
    std::map<model::topic_partition, partition_txns> txns;

    /// Calls `fn(header, bytes)` for every batch of `log` from the one holding `from` on
    /// (start-up only: the partition is not serving yet).
    template <typename Fn>
    static void for_each_batch(storage::partition_log& log, model::offset from, Fn fn) {
        model::offset at = from;
        while (at < log.next_offset()) {
            auto r = log.read(at, 4u << 20);
            if (!r || r.value().batches == 0) {
                break;
            }
            auto bytes = r.value().bytes.span();
            while (!bytes.empty()) {
                auto h = model::parse_batch_header(bytes);
                if (!h) {
                    break;
                }
                fn(h.value(), bytes.first(h.value().size_bytes()));
                bytes = bytes.subspan(h.value().size_bytes());
            }
            at = r.value().next_offset;
        }
    }

    /// Rebuilds a just-opened partition's transactions: the state saved at the last clean
    /// shutdown, then every batch written after it.
    void load_txns(const model::topic_partition& tp, storage::partition_log& log) {
        auto& pt = txns[tp];
        const model::offset from = pt.load(log.directory(), log.start_offset(), log.next_offset());
        for_each_batch(log, from, [&](const model::batch_header& h, std::span<const std::byte> batch) {
            if (h.next_offset() > from && h.is_transactional()) {
                pt.observe(h, h.is_control() && partition_txns::marker_is_abort(batch).value_or(false));
            }
        });
    }

    /// Rebuilds the idempotent producers of a just-opened partition from its active segment.
    void load_producers(const model::topic_partition& tp, storage::partition_log& log) {
        auto& ps = producers[tp];
        for_each_batch(log, std::max(log.active_segment_base(), log.start_offset()),
                       [&](const model::batch_header& h, std::span<const std::byte>) { ps.observe(h); });
    }

    void wake(const model::topic_partition& tp, model::offset end) {
        auto it = waiters.find(tp);
        if (it == waiters.end()) {
            return;
        }
        std::erase_if(it->second, [&](const waiter& w) {
            auto st = w.interest.lock();
            if (!st || st->fired.load()) {
                return true;
            }
            if (end > w.offset) {
                broker::fire(st);
                return true;
            }
            return false;
        });
        if (it->second.empty()) {
            waiters.erase(it);
        }
    }
};

broker::broker(broker_config config, std::vector<executor*> shards, std::vector<storage::flusher*> flushers)
  : _config(std::move(config))
  , _shards(std::move(shards))
  , _meta_worker(std::make_unique<storage::flusher>("metadata"))
  , _topics(std::make_shared<const topic_map>())
  , _instance(next_instance.fetch_add(1) + 1) {
    RUNNEL_ASSERT(!_shards.empty() && _shards.size() == flushers.size(), "one flusher per shard");
    for (std::size_t i = 0; i < _shards.size(); ++i) {
        auto st = std::make_unique<shard_state>();
        st->exec = _shards[i];
        // The open-file bound is shared evenly: each shard's logs have their own cache.
        const std::size_t files = _config.max_open_segment_files == 0
                                    ? 0
                                    : std::max<std::size_t>(_config.max_open_segment_files / _shards.size(), 16);
        st->logs = std::make_unique<storage::log_manager>(_config.data_dir / "topics", *_shards[i], *flushers[i], files);
        _state.push_back(std::move(st));
    }
    _txns = std::make_unique<txn_coordinator>(*this, _config.data_dir,
                                              std::chrono::milliseconds(_config.transaction_max_timeout_ms));
}

broker::~broker() = default;

unsigned broker::shard_of(const model::topic_partition& tp) const noexcept {
    auto h = std::hash<std::string_view>{}(tp.topic) * 31 + static_cast<std::size_t>(tp.partition());
    return static_cast<unsigned>(h % _shards.size());
}

std::shared_ptr<const topic_map> broker::topics() const {
    struct cache {
        uint64_t instance = 0;
        uint64_t version = 0;
        std::shared_ptr<const topic_map> map;
    };
    thread_local cache c;
    const auto version = _topics_version.load(std::memory_order_acquire);
    if (c.instance != _instance || c.version != version || !c.map) {
        c.map = std::atomic_load(&_topics);
        c.instance = _instance;
        c.version = version;
    }
    return c.map;
}

std::shared_ptr<const topic_info> broker::topic(std::string_view name) const {
    auto m = topics();
    auto it = m->find(name);
    return it == m->end() ? nullptr : it->second;
}

std::shared_ptr<const topic_info> broker::topic_by_id(const std::array<uint8_t, 16>& id) const {
    // An index per thread, rebuilt when the topic map it was built from is replaced.
    struct cache {
        std::shared_ptr<const topic_map> from;
        std::map<std::array<uint8_t, 16>, std::shared_ptr<const topic_info>> by_id;
    };
    thread_local cache c;
    auto m = topics();
    if (c.from != m) {
        c.by_id.clear();
        for (const auto& [_, t] : *m) {
            c.by_id.emplace(t->id, t);
        }
        c.from = m;
    }
    auto it = c.by_id.find(id);
    return it == c.by_id.end() ? nullptr : it->second;
}

void broker::publish(topic_map m) {
    std::atomic_store(&_topics, std::make_shared<const topic_map>(std::move(m)));
    _topics_version.fetch_add(1, std::memory_order_release);
}

void broker::run_on(unsigned s, std::function<void()> fn) {
    std::promise<void> done;
    _shards[s]->post([&] {
        fn();
        done.set_value();
    });
    done.get_future().get();
}

result<void> broker::write_topic_conf(const topic_info& t) {
    auto dir = _config.data_dir / "topics" / t.name;
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    if (ec) {
        return ec;
    }
    auto text = fmt::format("id={}\n{}", hex(t.id), t.config.serialize());
    return write_file_atomic(dir / "topic.conf", std::as_bytes(std::span(text)));
}

result<void> broker::open_partitions(const topic_info& t, int32_t from, int32_t to) {
    for (int32_t p = from; p < to; ++p) {
        model::topic_partition tp{t.name, model::partition_id(p)};
        auto s = shard_of(tp);
        result<void> r = ok();
        run_on(s, [&] {
            auto opened = _state[s]->logs->open(tp, log_config_of(t));
            if (!opened) {
                r = opened.error();
                return;
            }
            _state[s]->load_producers(tp, *opened.value());
            _state[s]->load_txns(tp, *opened.value());
        });
        if (!r) {
            lg().error("cannot open {}/{}: {}", t.name, p, r.error().message());
            return r;
        }
    }
    return ok();
}

void broker::schedule_cleaning(unsigned shard, storage::log_cleaner& cleaner, model::processing_time now) {
    _state.at(shard)->logs->schedule_cleaning(cleaner, now);
}

std::size_t broker::apply_retention(unsigned shard, model::processing_time now) {
    return _state.at(shard)->logs->apply_retention(now);
}

std::size_t broker::partition_count() const {
    std::size_t n = 0;
    for (const auto& [_, t] : *topics()) {
        n += static_cast<std::size_t>(t->config.partitions);
    }
    return n;
}

result<void> broker::start() {
    std::lock_guard lock(_meta_mu);
    topic_map m;
    std::error_code ec;
    // Producer ids continue after the last reserved block.
    if (auto f = file_handle::open(_config.data_dir / "producer_ids", O_RDONLY)) {
        char buf[32] = {};
        auto n = f.value().pread(std::as_writable_bytes(std::span(buf, sizeof(buf) - 1)), 0);
        int64_t limit = 0;
        if (n && std::from_chars(buf, buf + n.value(), limit).ec == std::errc()) {
            _next_producer_id = _producer_id_limit = limit;
        }
    }
    // Dynamic broker configs: key=value lines.
    if (auto f = file_handle::open(_config.data_dir / "broker.conf", O_RDONLY)) {
        std::string text(max_dynamic_config_bytes, '\0');
        auto n = f.value().pread(std::as_writable_bytes(std::span(text)), 0);
        text.resize(n ? n.value() : 0);
        std::lock_guard dyn(_dynamic_mu);
        for (std::string_view rest = text; !rest.empty();) {
            auto nl = rest.find('\n');
            auto line = rest.substr(0, nl);
            rest = nl == std::string_view::npos ? std::string_view() : rest.substr(nl + 1);
            if (auto eq = line.find('='); eq != std::string_view::npos && eq > 0) {
                _dynamic[std::string(line.substr(0, eq))] = std::string(line.substr(eq + 1));
            }
        }
    }
    std::filesystem::create_directories(_config.data_dir / "topics", ec);
    if (ec) {
        return ec;
    }
    for (const auto& entry : std::filesystem::directory_iterator(_config.data_dir / "topics", ec)) {
        auto conf = entry.path() / "topic.conf";
        if (!entry.is_directory() || !std::filesystem::exists(conf)) {
            continue;
        }
        auto info = std::make_shared<topic_info>();
        info->name = entry.path().filename().string();
        std::string text;
        {
            auto f = file_handle::open(conf, O_RDONLY);
            if (!f) {
                return f.error();
            }
            byte_buffer b(f.value().size().value());
            RUNNEL_TRY(f.value().pread(b.span(), 0));
            text.assign(reinterpret_cast<const char*>(b.data()), b.size());
        }
        std::string why;
        if (text.starts_with("id=")) {
            auto nl = text.find('\n');
            if (auto id = parse_hex_id(std::string_view(text).substr(3, nl - 3))) {
                info->id = *id;
            }
            text.erase(0, nl == std::string::npos ? text.size() : nl + 1);
        }
        auto cfg = topic_config::parse(text, why);
        if (!cfg) {
            lg().error("{}: {}", conf.string(), why);
            return cfg.error();
        }
        info->config = cfg.value();
        RUNNEL_TRY(open_partitions(*info, 0, info->config.partitions));
        m.emplace(info->name, std::move(info));
    }
    if (ec) {
        return ec;
    }
    // Counted as the ready line counts them: internal topics apart.
    const auto internal = std::count_if(m.begin(), m.end(), [](const auto& t) { return is_internal_topic(t.first); });
    lg().info("{} loaded{}", counted(int64_t(m.size()) - internal, "topic"),
              internal ? fmt::format(" (and {})", counted(internal, "internal topic")) : "");
    publish(std::move(m));
    return ok();
}

void broker::on_meta_thread(std::function<void()> fn) {
    _meta_worker->submit([fn = std::move(fn)] {
        fn();
        return result<void>(ok());
    },
                         [](result<void>) {});
}

result<void> broker::stop() {
    // Let metadata changes in progress finish; they need the shards.
    std::promise<void> drained;
    _meta_worker->submit([] { return result<void>(ok()); }, [&](result<void>) { drained.set_value(); });
    drained.get_future().get();
    // Transactions in flight finish (their markers need the partitions) before they close.
    _txns->stop();
    result<void> first = ok();
    for (unsigned s = 0; s < _shards.size(); ++s) {
        std::promise<result<void>> closed;
        _shards[s]->post([&, s] { _state[s]->logs->close_all([&](result<void> r) { closed.set_value(r); }); });
        if (auto r = closed.get_future().get(); !r && first) {
            first = r;
        }
        // Every partition is closed and durable to its end: save its transactions there, so
        // the next start reads them instead of scanning the log.
        run_on(s, [&, s] {
            auto& st = *_state[s];
            for (const auto& [tp, pt] : st.txns) {
                if (auto log = st.logs->get(tp)) {
                    if (auto r = pt.save(log->directory(), log->next_offset()); !r) {
                        lg().warn("cannot save the transactions of {}/{}: {}", tp.topic, tp.partition(),
                                  r.error().message());
                    }
                }
            }
        });
    }
    return first;
}

void broker::create_topic(std::string name, topic_config config, executor& caller,
                          std::function<void(result<void>, std::string)> done) {
    auto answer = answer_on(caller, std::move(done));
    std::string why;
    if (!valid_topic_name(name, why)) {
        return answer(errc::invalid_topic, why);
    }
    if (config.partitions < 1) {
        return answer(errc::invalid_partitions, "a topic needs at least one partition");
    }
    // Topic creation writes and syncs files: it runs on the metadata thread, never on a shard.
    on_meta_thread([this, name = std::move(name), config, answer]() mutable {
        std::lock_guard lock(_meta_mu);
        auto current = topics();
        if (current->contains(name)) {
            return answer(errc::topic_already_exists, fmt::format("topic '{}' already exists", name));
        }
        auto info = std::make_shared<topic_info>();
        info->name = name;
        info->id = random_uuid();
        info->config = config;
        if (auto r = write_topic_conf(*info); !r) {
            return answer(r, r.error().message());
        }
        if (auto r = open_partitions(*info, 0, config.partitions); !r) {
            return answer(r, r.error().message());
        }
        auto next = *current;
        next.emplace(name, info);
        publish(std::move(next));
        lg().info("created topic {} with {}", name, counted(config.partitions, "partition"));
        answer(ok(), {});
    });
}

void broker::delete_topic(std::string name, executor& caller, done_fn done) {
    on_meta_thread([this, name = std::move(name), &caller, done]() {
        std::lock_guard lock(_meta_mu);
        auto current = topics();
        auto it = current->find(name);
        if (it == current->end()) {
            caller.post([done] { done(errc::unknown_topic_or_partition); });
            return;
        }
        if (is_internal_topic(name)) {
            caller.post([done] { done(errc::invalid_topic); });
            return;
        }
        auto info = it->second;
        auto next = *current;
        next.erase(name);
        publish(std::move(next));
        for (int32_t p = 0; p < info->config.partitions; ++p) {
            model::topic_partition tp{name, model::partition_id(p)};
            auto s = shard_of(tp);
            run_on(s, [&] {
                _state[s]->logs->remove(tp);
                _state[s]->waiters.erase(tp);
                _state[s]->producers.erase(tp);
                _state[s]->txns.erase(tp);
            });
        }
        std::error_code ec;
        std::filesystem::remove_all(_config.data_dir / "topics" / name, ec);
        lg().info("deleted topic {}", name);
        for (const auto& listener : _deletion_listeners) {
            listener(name);
        }
        caller.post([done] { done(ok()); });
    });
}

void broker::create_partitions(std::string name, int32_t count, executor& caller,
                               std::function<void(result<void>, std::string)> done) {
    auto answer = answer_on(caller, std::move(done));
    on_meta_thread([this, name = std::move(name), count, answer]() {
        std::lock_guard lock(_meta_mu);
        auto current = topics();
        auto it = current->find(name);
        if (it == current->end()) {
            return answer(errc::unknown_topic_or_partition, fmt::format("topic '{}' does not exist", name));
        }
        const int32_t have = it->second->config.partitions;
        if (count <= have) {
            return answer(errc::invalid_partitions,
                          fmt::format("topic '{}' has {} partitions; the count can only grow", name, have));
        }
        auto info = std::make_shared<topic_info>(*it->second);
        info->config.partitions = count;
        if (auto r = open_partitions(*info, have, count); !r) {
            return answer(r, r.error().message());
        }
        if (auto r = write_topic_conf(*info); !r) {
            return answer(r, r.error().message());
        }
        auto next = *current;
        next[name] = info;
        publish(std::move(next));
        answer(ok(), {});
    });
}

void broker::alter_config(std::string name, std::vector<std::pair<std::string, std::optional<std::string>>> changes,
                          executor& caller, std::function<void(result<void>, std::string)> done) {
    auto answer = answer_on(caller, std::move(done));
    on_meta_thread([this, name = std::move(name), changes = std::move(changes), answer]() {
        std::lock_guard lock(_meta_mu);
        auto current = topics();
        auto it = current->find(name);
        if (it == current->end()) {
            return answer(errc::unknown_topic_or_partition, fmt::format("topic '{}' does not exist", name));
        }
        auto info = std::make_shared<topic_info>(*it->second);
        std::string why;
        for (const auto& [key, value] : changes) {
            auto r = value ? info->config.set(key, *value, why) : info->config.reset(key, why);
            if (!r) {
                return answer(r, why);
            }
        }
        if (auto r = write_topic_conf(*info); !r) {
            return answer(r, r.error().message());
        }
        for (int32_t p = 0; p < info->config.partitions; ++p) {
            model::topic_partition tp{name, model::partition_id(p)};
            auto s = shard_of(tp);
            run_on(s, [&] {
                if (auto log = _state[s]->logs->get(tp)) {
                    (void)log->set_config(log_config_of(*info));
                }
            });
        }
        auto next = *current;
        next[name] = info;
        publish(std::move(next));
        answer(ok(), {});
    });
}

std::map<std::string, std::string> broker::dynamic_configs() const {
    std::lock_guard lock(_dynamic_mu);
    return _dynamic;
}

void broker::alter_dynamic_configs(std::vector<std::pair<std::string, std::optional<std::string>>> changes,
                                   bool replace, executor& caller,
                                   std::function<void(result<void>, std::string)> done) {
    auto answer = answer_on(caller, std::move(done));
    on_meta_thread([this, changes = std::move(changes), replace, answer]() {
        std::lock_guard meta(_meta_mu);
        auto next = replace ? std::map<std::string, std::string>{} : dynamic_configs();
        for (const auto& [key, value] : changes) {
            const auto bad = [](std::string_view s) { return s.find_first_of("=\n\r") != std::string_view::npos; };
            if (key.empty() || bad(key) || (value && value->find_first_of("\n\r") != std::string::npos)) {
                return answer(errc::invalid_config, fmt::format("config name or value '{}' has '=' or a line break",
                                                                key.substr(0, 256)));
            }
            if (value) {
                next[key] = *value;
            } else {
                next.erase(key);
            }
        }
        std::string text;
        for (const auto& [k, v] : next) {
            text += fmt::format("{}={}\n", k, v);
        }
        if (text.size() > max_dynamic_config_bytes) {
            return answer(errc::invalid_config, fmt::format("the dynamic broker configs would take {} bytes; at most {}",
                                                            text.size(), max_dynamic_config_bytes));
        }
        if (auto r = write_file_atomic(_config.data_dir / "broker.conf", std::as_bytes(std::span(text))); !r) {
            return answer(r, r.error().message());
        }
        {
            std::lock_guard lock(_dynamic_mu);
            _dynamic = std::move(next);
        }
        answer(ok(), {});
    });
}

void broker::produce(model::topic_partition tp, std::span<const std::byte> records, int16_t acks, executor& caller,
                     std::function<void(result<produce_result>)> done, produce_refusal* refusal) {
    // Validate and copy on the caller's shard: CRC work spreads over the connections' shards.
    auto refuse = [&](errc e) { reply<result<produce_result>>(caller, std::move(done), e); };
    // One validation (length, magic, CRC) of exactly one batch: as Kafka, a partition's
    // records are one v2 batch, so a refusal never leaves part of a request appended.
    auto b = model::record_batch::from_bytes(byte_buffer::copy_of(records));
    if (!b) {
        refused_batches(b.error() == model::errc::batch_length_invalid ? "invalid_record" : "corrupt_message").inc();
        return refuse(b.error() == model::errc::batch_length_invalid ? errc::invalid_record
                                                                     : errc::corrupt_message);
    }
    // Then Kafka's rules for produced batches, on every record (inflating compressed ones
    // within the bound), so nothing a consumer cannot read is ever appended.
    std::string why;
    const auto info = topic(tp.topic);
    const model::produce_check_limits limits{_config.max_inflated_batch_bytes, info && info->config.compacted()};
    std::vector<int32_t> keyless;
    if (auto v = model::validate_produced_batch(b.value().bytes(), b.value().header(), limits, why,
                                                refusal ? &keyless : nullptr);
        !v) {
        const bool corrupt = v.error() == model::errc::codec_unknown || v.error() == model::errc::records_undecodable;
        refused_batches(corrupt ? "corrupt_message" : "invalid_record").inc();
        lg().debug("refusing a batch for {}/{}: {}", tp.topic, tp.partition(), why);
        if (refusal) {
            refusal->message = why;
            refusal->records = std::move(keyless);
        }
        return refuse(corrupt ? errc::corrupt_message : errc::invalid_record);
    }
    // A topic with compression.type other than `producer` stores batches in its own codec,
    // as Kafka does: recompressed here, on the caller's shard, keeping every header field.
    if (auto target = info ? info->config.stored_compression() : std::nullopt;
        target && *target != b.value().header().compression() && !b.value().header().is_control()) {
        auto packed = model::recompress_batch(b.value().bytes(), b.value().header(), *target,
                                              _config.max_inflated_batch_bytes, why);
        auto rebuilt = packed ? model::record_batch::from_bytes(byte_buffer::copy_of(*packed))
                              : result<model::record_batch>(model::errc::records_undecodable);
        if (!rebuilt) {
            refused_batches("corrupt_message").inc();
            lg().warn("cannot store a batch for {}/{} as compression.type {}: {}", tp.topic, tp.partition(),
                      info->config.compression_type, why);
            if (refusal) {
                refusal->message = why;
            }
            return refuse(errc::corrupt_message);
        }
        b = std::move(rebuilt);
    }
    auto batches = std::make_shared<std::vector<model::record_batch>>();
    batches->push_back(std::move(b).value());
    auto s = shard_of(tp);
    _shards[s]->post([this, s, tp = std::move(tp), batches, acks, &caller, done = std::move(done)]() mutable {
        auto& st = *_state[s];
        auto log = st.logs->get(tp);
        if (!log) {
            return reply<result<produce_result>>(caller, std::move(done), errc::unknown_topic_or_partition);
        }
        std::optional<model::offset> base;
        auto& producers = st.producers[tp];
        auto& txns = st.txns[tp];
        for (auto& b : *batches) {
            // An epoch older than the one this partition last saw (a transaction marker written
            // when a newer producer of the same transactional id fenced this one) is
            // INVALID_PRODUCER_EPOCH before anything else, as Kafka answers it: the client then
            // knows it was fenced rather than that its transaction went wrong.
            const bool idempotent = b.header().producer_id >= 0;
            const auto v = idempotent ? producers.check(b.header()) : producer_state::verdict{};
            if (idempotent && v.check == sequence_check::fenced_epoch) {
                return reply<result<produce_result>>(caller, std::move(done), errc::invalid_producer_epoch);
            }
            switch (txns.check(b.header())) {
            case partition_txns::admit::ok:
                break;
            case partition_txns::admit::not_in_transaction:
                // KIP-890: a transactional write to a partition its transaction did not add
                // (or after the transaction ended) never joins a finished transaction.
                refused_batches("invalid_txn_state").inc();
                return reply<result<produce_result>>(caller, std::move(done), errc::invalid_txn_state);
            case partition_txns::admit::fenced:
                return reply<result<produce_result>>(caller, std::move(done), errc::invalid_producer_epoch);
            }
            if (idempotent) {
                switch (v.check) {
                case sequence_check::append:
                    break;
                case sequence_check::duplicate:
                    // A retry: answer with where it went the first time (after the same sync).
                    base = base.value_or(*v.duplicate_of);
                    continue;
                case sequence_check::out_of_order:
                    return reply<result<produce_result>>(caller, std::move(done), errc::out_of_order_sequence);
                case sequence_check::old_duplicate:
                    return reply<result<produce_result>>(caller, std::move(done), errc::duplicate_sequence);
                case sequence_check::fenced_epoch:
                    return reply<result<produce_result>>(caller, std::move(done), errc::invalid_producer_epoch);
                case sequence_check::unknown_producer:
                    return reply<result<produce_result>>(caller, std::move(done), errc::unknown_producer_id);
                }
            }
            auto r = log->append(b);
            if (!r) {
                return reply<result<produce_result>>(caller, std::move(done), from_storage(r.error()));
            }
            producers.observe(b.header());
            txns.observe(b.header());
            base = base.value_or(r.value().base);
        }
        st.wake(tp, log->next_offset());
        produce_result out{*base, log->start_offset()};
        if (acks != -1) {
            return reply<result<produce_result>>(caller, std::move(done), out);
        }
        log->flush([&caller, done = std::move(done), out](result<void> r) mutable {
            reply<result<produce_result>>(caller, std::move(done),
                                          r ? result<produce_result>(out) : result<produce_result>(from_storage(r.error())));
        });
    });
}

result<int64_t> broker::allocate_producer_id() {
    constexpr int64_t block = 1000;
    if (_next_producer_id == _producer_id_limit) {
        auto limit = _producer_id_limit + block;
        auto text = std::to_string(limit);
        RUNNEL_TRY(write_file_atomic(_config.data_dir / "producer_ids", std::as_bytes(std::span(text))));
        _producer_id_limit = limit;
    }
    return _next_producer_id++;
}

void broker::init_producer_id(executor& caller, std::function<void(result<producer_identity>)> done) {
    on_meta_thread([this, &caller, done = std::move(done)]() mutable {
        using R = result<producer_identity>;
        auto id = allocate_producer_id();
        reply<R>(caller, std::move(done), id ? R(producer_identity{id.value(), 0}) : R(id.error()));
    });
}

void broker::fetch(model::topic_partition tp, model::offset offset, std::size_t max_bytes, executor& caller,
                   std::function<void(result<fetch_result>)> done, bool at_least_one, bool read_committed) {
    hop<result<fetch_result>>(owner_of(tp), caller, std::move(done), [=, this] {
        return fetch_local(tp, offset, max_bytes, at_least_one, read_committed);
    });
}

result<fetch_result> broker::fetch_local(const model::topic_partition& tp, model::offset offset, std::size_t max_bytes,
                                         bool at_least_one, bool read_committed) {
    auto s = shard_of(tp);
    auto log = _state[s]->logs->get(tp);
    if (!log) {
        return errc::unknown_topic_or_partition;
    }
    auto& txns = _state[s]->txns[tp];
    const model::offset lso = txns.last_stable(log->next_offset());
    std::optional<model::offset> upto;
    if (read_committed) {
        upto = lso;
    }
    storage::read_result data;
    if (read_committed && offset >= lso && offset <= log->next_offset()) {
        // Nothing stable past the offset yet: an empty answer, as Kafka gives.
        data.next_offset = offset;
        data.log_end = log->next_offset();
    } else {
        auto r = log->read(offset, max_bytes, upto, at_least_one);
        if (!r) {
            return from_storage(r.error());
        }
        data = std::move(r).value();
    }
    fetch_result out{std::move(data), log->next_offset(), log->start_offset(), lso, {}};
    if (read_committed && out.data.batches > 0) {
        out.aborted = txns.aborted_between(offset, out.data.next_offset);
    }
    return out;
}

void broker::offsets(model::topic_partition tp, executor& caller, std::function<void(result<offsets_result>)> done) {
    hop<result<offsets_result>>(owner_of(tp), caller, std::move(done), [this, tp] { return offsets_local(tp); });
}

result<offsets_result> broker::offsets_local(const model::topic_partition& tp) {
    auto s = shard_of(tp);
    auto log = _state[s]->logs->get(tp);
    if (!log) {
        return errc::unknown_topic_or_partition;
    }
    return offsets_result{log->start_offset(), log->next_offset(), _state[s]->txns[tp].last_stable(log->next_offset())};
}

void broker::txn_allow(model::topic_partition tp, int64_t producer_id, int16_t epoch, executor& caller,
                       std::function<void(errc)> done) {
    hop<errc>(owner_of(tp), caller, std::move(done), [=, this] { return txn_allow_local(tp, producer_id, epoch); });
}

errc broker::txn_allow_local(const model::topic_partition& tp, int64_t producer_id, int16_t epoch) {
    auto& st = *_state[shard_of(tp)];
    if (!st.logs->get(tp)) {
        return errc::unknown_topic_or_partition;
    }
    st.txns[tp].allow(producer_id, epoch);
    return errc::success;
}

void broker::write_txn_marker(model::topic_partition tp, int64_t producer_id, int16_t epoch, bool commit,
                              int32_t coordinator_epoch, executor& caller, std::function<void(result<void>)> done) {
    auto s = shard_of(tp);
    _shards[s]->post([this, s, tp = std::move(tp), producer_id, epoch, commit, coordinator_epoch, &caller,
                      done = std::move(done)]() mutable {
        auto& st = *_state[s];
        auto log = st.logs->get(tp);
        if (!log) {
            return reply<result<void>>(caller, std::move(done), errc::unknown_topic_or_partition);
        }
        // Kafka's marker: key = version 0, type (0 abort, 1 commit); value = version 0,
        // coordinator epoch.
        std::array<std::byte, 4> key{};
        write_be<int16_t>(key.data(), 0);
        write_be<int16_t>(key.data() + 2, commit ? 1 : 0);
        std::array<std::byte, 6> value{};
        write_be<int16_t>(value.data(), 0);
        write_be<int32_t>(value.data() + 2, coordinator_epoch);
        auto as_view = [](const auto& a) { return std::string_view(reinterpret_cast<const char*>(a.data()), a.size()); };
        model::record_batch_builder builder;
        builder.add(as_view(key), as_view(value), model::event_time(model::processing_now()()))
          .set_producer(producer_id, epoch, -1)
          .set_transactional(true);
        auto batch = builder.build();
        auto r = log->append(batch);
        if (!r) {
            return reply<result<void>>(caller, std::move(done), from_storage(r.error()));
        }
        st.producers[tp].observe(batch.header());
        st.txns[tp].observe(batch.header(), !commit);
        st.wake(tp, log->next_offset());
        log->flush([&caller, done = std::move(done)](result<void> fr) mutable {
            reply<result<void>>(caller, std::move(done), fr ? result<void>(ok()) : result<void>(from_storage(fr.error())));
        });
    });
}

void broker::describe_producers(model::topic_partition tp, executor& caller,
                                std::function<void(result<std::vector<producer_description>>)> done) {
    hop<result<std::vector<producer_description>>>(owner_of(tp), caller, std::move(done),
                                                        [this, tp] { return describe_producers_local(tp); });
}

result<std::vector<producer_description>> broker::describe_producers_local(const model::topic_partition& tp) {
    auto& st = *_state[shard_of(tp)];
    if (!st.logs->get(tp)) {
        return errc::unknown_topic_or_partition;
    }
    std::vector<producer_description> out;
    auto& txns = st.txns[tp];
    for (const auto& p : st.producers[tp].list()) {
        auto open = txns.open_since(p.producer_id);
        out.push_back({p.producer_id, p.epoch, p.last_sequence, -1, open ? (*open)() : -1});
    }
    return out;
}

void broker::remove_segments_before(model::topic_partition tp, model::offset o, executor& caller,
                                    std::function<void(result<model::offset>)> done) {
    hop<result<model::offset>>(owner_of(tp), caller, std::move(done), [this, tp, o]() -> result<model::offset> {
        auto log = _state[shard_of(tp)]->logs->get(tp);
        if (!log) {
            return errc::unknown_topic_or_partition;
        }
        return log->remove_segments_before(o).start_offset;
    });
}

void broker::delete_records(model::topic_partition tp, model::offset o, executor& caller,
                            std::function<void(result<model::offset>)> done) {
    using R = result<model::offset>;
    auto s = shard_of(tp);
    _shards[s]->post([this, s, tp = std::move(tp), o, &caller, done = std::move(done)]() mutable {
        auto log = _state[s]->logs->get(tp);
        if (!log) {
            return reply<R>(caller, std::move(done), errc::unknown_topic_or_partition);
        }
        const model::offset target = o == model::offset(-1) ? log->next_offset() : o;
        log->advance_start(target, [&caller, done = std::move(done)](R r) mutable {
            reply<R>(caller, std::move(done), r ? R(r.value()) : R(from_storage(r.error())));
        });
    });
}

void broker::offset_for_time(model::topic_partition tp, model::event_time t, executor& caller,
                             std::function<void(result<std::optional<time_match>>)> done) {
    hop<result<std::optional<time_match>>>(owner_of(tp), caller, std::move(done),
                                                [this, tp, t] { return offset_for_time_local(tp, t); });
}

result<std::optional<broker::time_match>> broker::offset_for_time_local(const model::topic_partition& tp,
                                                                         model::event_time t) {
    using R = result<std::optional<time_match>>;
    auto log = _state[shard_of(tp)]->logs->get(tp);
    if (!log) {
        return errc::unknown_topic_or_partition;
    }
    auto r = log->timequery(t);
    return r ? R(r.value()) : R(from_storage(r.error()));
}

result<std::optional<broker::time_match>> broker::max_timestamp_local(const model::topic_partition& tp) {
    using R = result<std::optional<time_match>>;
    auto log = _state[shard_of(tp)]->logs->get(tp);
    if (!log) {
        return errc::unknown_topic_or_partition;
    }
    const auto largest = log->max_timestamp();
    if (largest == model::event_time::min()) {
        return R(std::optional<time_match>{});
    }
    // The first record at or after the largest timestamp is the first one holding it.
    auto r = log->timequery(largest);
    return r ? R(r.value()) : R(from_storage(r.error()));
}

void broker::fire(const std::shared_ptr<watch::state>& st) {
    if (!st->fired.exchange(true)) {
        st->caller->post(st->wake);
    }
}

broker::watch broker::watch_for_data(executor& caller, std::function<void()> wake) {
    watch w;
    w._state->caller = &caller;
    w._state->wake = std::move(wake);
    return w;
}

void broker::add_to_watch(const watch& w, model::topic_partition tp, model::offset offset) {
    auto s = shard_of(tp);
    _shards[s]->post([this, s, tp = std::move(tp), offset, st = w._state] {
        if (st->fired.load()) {
            return;
        }
        auto& state = *_state[s];
        auto log = state.logs->get(tp);
        if (!log || log->next_offset() > offset) {
            fire(st);
            return;
        }
        auto& list = state.waiters[tp];
        // Drop watches that timed out, so an idle partition's list stays short.
        std::erase_if(list, [](const shard_state::waiter& x) {
            auto p = x.interest.lock();
            return !p || p->fired.load();
        });
        list.push_back({offset, st});
    });
}

} // namespace runnel::broker
