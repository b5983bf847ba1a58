#include "connect/log/log_sink.h"

#include <set>
#include <tuple>

#include <fmt/format.h>

#include "base/fail_point.h"
#include "base/text.h"
#include "base/logging.h"
#include "broker/broker.h"
#include "engine/state_io.h"

namespace runnel::connect {
namespace {

spdlog::logger& lg() { return logging::get("connect"); }

/// Records per partition are cut into batches of about this size, well under the default
/// max.message.bytes of a topic.
constexpr std::size_t batch_target_bytes = 512u << 10;

/// A sealed batch's producer fields rewritten (and its CRC made again).
void restamp(std::string& bytes, int64_t pid, int16_t epoch, int32_t seq) {
    namespace L = model::batch_layout;
    auto* d = reinterpret_cast<std::byte*>(bytes.data());
    write_be<int64_t>(d + L::producer_id, pid);
    write_be<int16_t>(d + L::producer_epoch, epoch);
    write_be<int32_t>(d + L::base_sequence, seq);
    write_be<uint32_t>(d + L::crc, model::compute_batch_crc(std::as_bytes(std::span(bytes))));
}

} // namespace

struct log_sink::impl : std::enable_shared_from_this<impl> {
    struct sealed_batch {
        int32_t partition;
        int64_t pid;
        int16_t epoch;
        int32_t seq;
        int32_t count;
        std::string bytes;
    };

    impl(broker::broker& b, executor& h, log_sink_options o, std::function<void()> w)
      : brk(b)
      , home(h)
      , opts(std::move(o))
      , wake(std::move(w)) {}

    broker::broker& brk;
    executor& home;
    log_sink_options opts;
    std::function<void()> wake;
    int32_t partitions = 0;
    int64_t pid = -1;
    int16_t epoch = 0;
    std::vector<int32_t> next_seq;
    std::vector<int64_t> known_end; ///< end of this sink's last append (or the log end at start)
    std::vector<std::vector<model::record_batch_builder>> open;
    std::vector<std::size_t> open_part_bytes;
    std::size_t open_bytes = 0;
    std::vector<sealed_batch> sealed;
    std::vector<int64_t> sealed_scan_from;
    // at-least-once
    std::size_t in_flight = 0, in_flight_bytes = 0;
    std::vector<std::function<void(result<void>)>> waiting_release;
    std::error_code append_error;
    uint64_t rows = 0, rr = 0;
    std::vector<std::size_t> key_cols;
    const engine::schema* key_schema = nullptr;
    bool stopped = false;
    // `create_on_first_row`: the topic is missing until the first row (`deferred`), then
    // created (`creating`) while the rows wait in `open`.
    bool deferred = false;
    bool creating = false;

    /// Sizes the per-partition state for `n` partitions.
    void size_for(int32_t n) {
        partitions = n;
        next_seq.assign(std::size_t(n), 0);
        known_end.assign(std::size_t(n), 0);
        open.assign(std::size_t(n), {});
        open_part_bytes.assign(std::size_t(n), 0);
    }

    /// At-least-once: appends every open builder now (partition p of a planned count goes to
    /// p modulo the topic's real one).
    void append_open() {
        for (int32_t p = 0; p < int32_t(open.size()); ++p) {
            for (auto& bld : open[std::size_t(p)]) {
                if (!bld.empty()) append_now(p % partitions, bld);
            }
            open[std::size_t(p)].clear();
            open_part_bytes[std::size_t(p)] = 0;
        }
        open_bytes = 0;
    }

    /// Creates the deferred topic, then appends what waited; release waiters are answered
    /// once those appends are durable (or at once, with the error, if creation failed).
    void create_deferred() {
        creating = true;
        broker::topic_config cfg;
        cfg.partitions = std::max(partitions, 1);
        brk.create_topic(opts.topic, cfg, home, [self = shared_from_this()](result<void> r, std::string) {
            self->creating = false;
            if (!r && r.error() != broker::errc::topic_already_exists && !self->append_error) self->append_error = r.error();
            auto t = self->brk.topic(self->opts.topic);
            if (!t && !self->append_error) self->append_error = broker::errc::unknown_topic_or_partition;
            if (self->stopped || self->append_error) {
                auto waiting = std::move(self->waiting_release);
                for (auto& fn : waiting) fn(self->append_error ? result<void>(self->append_error) : ok());
                return self->wake();
            }
            self->deferred = false;
            const int32_t real = std::max(t->config.partitions, 1);
            self->partitions = real;
            self->append_open();
            self->size_for(real);
            if (self->in_flight == 0) {
                auto waiting = std::move(self->waiting_release);
                for (auto& fn : waiting) fn(ok());
            }
            self->wake();
        });
    }

    model::topic_partition tp(int32_t p) const { return {opts.topic, model::partition_id(p)}; }

    void append_now(int32_t p, model::record_batch_builder& b) {
        auto batch = b.build();
        const auto n = batch.size_bytes();
        ++in_flight;
        in_flight_bytes += n;
        brk.produce(tp(p), batch.bytes(), -1, home, [self = shared_from_this(), n](result<broker::produce_result> r) {
            --self->in_flight;
            self->in_flight_bytes -= n;
            if (!r && !self->append_error) self->append_error = r.error();
            if (self->in_flight == 0) {
                auto waiting = std::move(self->waiting_release);
                for (auto& fn : waiting) fn(self->append_error ? result<void>(self->append_error) : ok());
            }
            self->wake();
        });
    }

    /// Appends `batches` (one partition's, in order) one after the other; `done` after the last.
    void append_chain(std::shared_ptr<std::vector<sealed_batch>> batches, std::size_t i,
                      std::function<void(result<void>)> done) {
        if (i == batches->size()) return done(ok());
        auto& sb = (*batches)[i];
        brk.produce(tp(sb.partition), std::as_bytes(std::span(sb.bytes)), -1, home,
                    [self = shared_from_this(), batches, i, done = std::move(done)](result<broker::produce_result> r) mutable {
                        if (!r) return done(r.error());
                        auto& b = (*batches)[i];
                        self->known_end[std::size_t(b.partition)] = r.value().base() + b.count;
                        self->append_chain(batches, i + 1, std::move(done));
                    });
    }

    /// Appends every sealed batch (partitions in parallel, each in order).
    void release_sealed(std::function<void(result<void>)> done) {
        // Tests stop here as a crash would, once the checkpoint is durable: nothing of its
        // output appended, or the first batch only.
        if (!sealed.empty() && fail_point::take("log_sink.crash_before_release")) {
            sealed.clear();
            return done(std::error_code(ECANCELED, std::generic_category()));
        }
        if (sealed.size() > 1 && fail_point::take("log_sink.crash_mid_release")) {
            sealed.resize(1);
            auto first = std::make_shared<std::vector<sealed_batch>>(std::move(sealed));
            sealed.clear();
            return append_chain(first, 0, [done = std::move(done)](result<void>) {
                done(std::error_code(ECANCELED, std::generic_category()));
            });
        }
        std::map<int32_t, std::vector<sealed_batch>> by_part;
        for (auto& sb : sealed) by_part[sb.partition].push_back(std::move(sb));
        sealed.clear();
        if (by_part.empty()) return done(ok());
        struct join {
            std::size_t left;
            std::error_code err;
            std::function<void(result<void>)> done;
        };
        auto j = std::make_shared<join>(join{by_part.size(), {}, std::move(done)});
        for (auto& [p, list] : by_part) {
            append_chain(std::make_shared<std::vector<sealed_batch>>(std::move(list)), 0, [j](result<void> r) {
                if (!r && !j->err) j->err = r.error();
                if (--j->left == 0) j->done(j->err ? result<void>(j->err) : ok());
            });
        }
    }

    /// Reads partition `p` from `from` to its end and collects (partition, producer id,
    /// sequence) of the batches there; `done` with the set.
    void scan(int32_t p, int64_t from, std::shared_ptr<std::set<std::tuple<int32_t, int64_t, int32_t>>> found,
              std::function<void(result<void>)> done) {
        brk.fetch(tp(p), model::offset(from), 4u << 20, home,
                  [self = shared_from_this(), p, found, done = std::move(done)](result<broker::fetch_result> r) mutable {
                      if (!r) return done(r.error());
                      auto span = r.value().data.bytes.span();
                      std::size_t pos = 0;
                      while (pos < span.size()) {
                          auto h = model::parse_batch_header(span.subspan(pos));
                          if (!h || h.value().size_bytes() > span.size() - pos) break;
                          if (h.value().producer_id >= 0) {
                              found->emplace(p, h.value().producer_id, h.value().base_sequence);
                          }
                          pos += h.value().size_bytes();
                      }
                      if (r.value().data.batches == 0 || r.value().data.next_offset() >= r.value().high_watermark()) {
                          return done(ok());
                      }
                      self->scan(p, r.value().data.next_offset(), found, std::move(done));
                  });
    }
};

log_sink::log_sink(broker::broker& brk, executor& home, log_sink_options opts, std::function<void()> wake)
  : _impl(std::make_shared<impl>(brk, home, std::move(opts), std::move(wake))) {}

log_sink::~log_sink() { stop(); }

void log_sink::start(int32_t partitions, done_fn done) {
    auto self = _impl;
    auto after_topic = [self, done](result<void> r) mutable {
        if (!r) return done(r);
        auto t = self->brk.topic(self->opts.topic);
        if (!t) return done(broker::errc::unknown_topic_or_partition);
        self->size_for(t->config.partitions);
        self->brk.init_producer_id(self->home, [self, done](result<broker::broker::producer_identity> id) mutable {
            if (!id) return done(id.error());
            self->pid = id.value().id;
            self->epoch = id.value().epoch;
            auto left = std::make_shared<int32_t>(self->partitions);
            auto failed = std::make_shared<std::error_code>();
            for (int32_t p = 0; p < self->partitions; ++p) {
                self->brk.offsets(self->tp(p), self->home, [self, p, left, failed, done](result<broker::offsets_result> o) {
                    if (o) self->known_end[std::size_t(p)] = o.value().high_watermark();
                    else if (!*failed) *failed = o.error();
                    if (--*left == 0) done(*failed ? result<void>(*failed) : ok());
                });
            }
        });
    };
    if (self->brk.topic(self->opts.topic)) return after_topic(ok());
    if (self->opts.create_on_first_row && self->opts.mode == delivery::at_least_once) {
        self->deferred = true;
        self->size_for(std::max(partitions, 1));
        return done(ok());
    }
    broker::topic_config cfg;
    cfg.partitions = std::max(partitions, 1);
    self->brk.create_topic(self->opts.topic, cfg, self->home, [after_topic](result<void> r, std::string) mutable {
        if (!r && r.error() != broker::errc::topic_already_exists) return after_topic(r);
        after_topic(ok());
    });
}

void log_sink::write(const engine::batch& b) {
    auto& im = *_impl;
    if (im.partitions == 0 || im.stopped) return;
    if (im.key_schema != b.schema_of().get()) {
        im.key_cols.clear();
        for (const auto& k : im.opts.key_columns) {
            if (auto i = b.schema_of()->index_of(k)) im.key_cols.push_back(*i);
        }
        im.key_schema = b.schema_of().get();
    }
    const model::event_time now(model::processing_now()());
    std::string key;
    for (std::size_t r = 0; r < b.num_rows(); ++r) {
        // A keyed sink upserts: a deleted row is a tombstone (null value) for its key, and an
        // update_before needs no record (the update_after that follows replaces the row).
        const auto kind = b.kind(r);
        const bool keyed = !im.key_cols.empty();
        if (keyed && kind == engine::row_kind::update_before) continue;
        const bool tombstone = keyed && kind == engine::row_kind::delete_row;
        auto json = tombstone ? std::string() : row_to_json(b, r);
        int32_t p;
        std::optional<std::string_view> k;
        if (keyed) {
            key = row_key(b, r, im.key_cols);
            k = key;
            p = model::partition_for_key(key, im.partitions);
        } else {
            p = int32_t(im.rr++ % uint64_t(im.partitions));
        }
        auto& builders = im.open[std::size_t(p)];
        if (builders.empty() || im.open_part_bytes[std::size_t(p)] >= batch_target_bytes) {
            builders.emplace_back();
            im.open_part_bytes[std::size_t(p)] = 0;
        }
        builders.back().add(k, tombstone ? std::nullopt : std::optional<std::string_view>(json), now);
        const auto n = json.size() + (k ? k->size() : 0) + 16;
        im.open_part_bytes[std::size_t(p)] += n;
        im.open_bytes += n;
        ++im.rows;
    }
    if (im.opts.mode == delivery::at_least_once) {
        if (!im.deferred) return im.append_open();
        if (!im.creating && im.open_bytes > 0) im.create_deferred();
    }
}

bool log_sink::ready() const {
    const auto& im = *_impl;
    if (_draining) return true;
    return (im.opts.mode == delivery::exactly_once ? im.open_bytes : im.in_flight_bytes + im.open_bytes) <
           im.opts.max_pending_bytes;
}

bool log_sink::wants_checkpoint() const {
    return _impl->opts.mode == delivery::exactly_once && _impl->open_bytes >= _impl->opts.max_pending_bytes / 2;
}

std::string log_sink::seal() {
    auto& im = *_impl;
    if (im.opts.mode != delivery::exactly_once) return {};
    RUNNEL_ASSERT(im.sealed.empty(), "seal before the previous output was released");
    engine::state_writer w;
    w.u32(uint32_t(im.partitions));
    for (auto e : im.known_end) w.i64(e);
    for (int32_t p = 0; p < im.partitions; ++p) {
        for (auto& bld : im.open[std::size_t(p)]) {
            if (bld.empty()) continue;
            const auto count = bld.record_count();
            const auto seq = im.next_seq[std::size_t(p)];
            bld.set_producer(im.pid, im.epoch, seq);
            im.next_seq[std::size_t(p)] += count;
            auto batch = bld.build();
            auto bytes = batch.bytes();
            im.sealed.push_back({p, im.pid, im.epoch, seq, count,
                                 std::string(reinterpret_cast<const char*>(bytes.data()), bytes.size())});
        }
        im.open[std::size_t(p)].clear();
        im.open_part_bytes[std::size_t(p)] = 0;
    }
    im.open_bytes = 0;
    w.u32(uint32_t(im.sealed.size()));
    for (const auto& sb : im.sealed) {
        w.u32(uint32_t(sb.partition));
        w.i64(sb.pid);
        w.u32(uint32_t(uint16_t(sb.epoch)));
        w.u32(uint32_t(sb.seq));
        w.u32(uint32_t(sb.count));
        w.str(sb.bytes);
    }
    return std::move(w.bytes());
}

void log_sink::release(done_fn done) {
    auto& im = *_impl;
    if (im.opts.mode == delivery::exactly_once) return im.release_sealed(std::move(done));
    if (im.in_flight == 0 && !im.creating) return done(im.append_error ? result<void>(im.append_error) : ok());
    im.waiting_release.push_back(std::move(done));
}

void log_sink::recover(std::string_view bytes, done_fn done) {
    auto self = _impl;
    if (bytes.empty() || self->opts.mode != delivery::exactly_once) return done(ok());
    engine::state_reader r(bytes);
    uint32_t n = r.count(8);
    std::vector<int64_t> scan_from(n);
    for (auto& e : scan_from) e = r.i64();
    uint32_t m = r.count(24);
    std::vector<impl::sealed_batch> batches(m);
    for (auto& sb : batches) {
        sb.partition = int32_t(r.u32());
        sb.pid = r.i64();
        sb.epoch = int16_t(uint16_t(r.u32()));
        sb.seq = int32_t(r.u32());
        sb.count = int32_t(r.u32());
        sb.bytes = std::string(r.str());
    }
    if (!r.ok() || !r.at_end()) return done(std::error_code(EINVAL, std::generic_category()));
    for (const auto& sb : batches) {
        if (sb.partition < 0 || sb.partition >= self->partitions || std::size_t(sb.partition) >= n) {
            return done(broker::errc::unknown_topic_or_partition);
        }
    }
    // Which of the sealed batches each partition already holds.
    std::set<int32_t> parts;
    for (const auto& sb : batches) parts.insert(sb.partition);
    auto found = std::make_shared<std::set<std::tuple<int32_t, int64_t, int32_t>>>();
    auto left = std::make_shared<std::size_t>(parts.size());
    auto failed = std::make_shared<std::error_code>();
    auto all = std::make_shared<std::vector<impl::sealed_batch>>(std::move(batches));
    auto finish = [self, found, all, done]() mutable {
        std::size_t again = 0;
        for (auto& sb : *all) {
            if (found->contains({sb.partition, sb.pid, sb.seq})) continue;
            auto seq = self->next_seq[std::size_t(sb.partition)];
            restamp(sb.bytes, self->pid, self->epoch, seq);
            self->next_seq[std::size_t(sb.partition)] += sb.count;
            sb.pid = self->pid;
            sb.seq = seq;
            self->sealed.push_back(std::move(sb));
            ++again;
        }
        if (!all->empty()) {
            lg().info("log sink {}: {} of {} batches of the last checkpoint were not in the log; appending them",
                      self->opts.topic, again, all->size());
        }
        self->release_sealed(std::move(done));
    };
    if (parts.empty()) return finish();
    for (auto p : parts) {
        self->scan(p, scan_from[std::size_t(p)], found, [left, failed, finish, done](result<void> s) mutable {
            if (!s && !*failed) *failed = s.error();
            if (--*left > 0) return;
            if (*failed) return done(*failed);
            finish();
        });
    }
}

uint64_t log_sink::rows_written() const { return _impl->rows; }
std::size_t log_sink::pending_bytes() const {
    return _impl->opts.mode == delivery::exactly_once ? _impl->open_bytes : _impl->in_flight_bytes + _impl->open_bytes;
}
const std::string& log_sink::name() const { return _impl->opts.topic; }
bool log_sink::exactly_once() const { return _impl->opts.mode == delivery::exactly_once; }

void log_sink::stop() { _impl->stopped = true; }

} // namespace runnel::connect
