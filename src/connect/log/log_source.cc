#include "connect/log/log_source.h"

#include "connect/format/row_format.h"

#include <fmt/format.h>

#include "base/logging.h"
#include "broker/broker.h"
#include "engine/state_io.h"

namespace runnel::connect {
namespace {

spdlog::logger& lg() { return logging::get("connect"); }

/// The most a compressed batch may inflate to.
using model::max_inflated_bytes;

} // namespace

struct log_source::impl : std::enable_shared_from_this<impl> {
    struct partition {
        int64_t next_fetch = -1; ///< -1: not resolved yet (start per the options)
        int64_t handed = -1;     ///< next offset after what the pipeline has taken
        bool in_flight = false;
        bool caught_up = false;
    };
    struct item {
        engine::batch rows;
        int32_t partition;
        int64_t next_offset;
        std::size_t bytes;
    };

    impl(broker::broker& b, executor& h, log_source_options o, std::function<void()> w)
      : brk(b)
      , home(h)
      , opts(std::move(o))
      , wake(std::move(w)) {}

    broker::broker& brk;
    executor& home;
    log_source_options opts;
    std::function<void()> wake;
    std::vector<partition> parts;
    std::deque<item> buffer;
    std::size_t buffered = 0;  ///< bytes of the fetched batches not yet handed out
    std::size_t requested = 0; ///< the byte limits of fetches in flight
    uint64_t skipped = 0;
    std::string waiting;
    std::optional<broker::broker::watch> watch;
    bool stopped = false;

    bool mine(std::size_t p) const { return opts.instances <= 1 || int32_t(p) % opts.instances == opts.instance; }

    model::topic_partition tp(std::size_t p) const { return {opts.topic, model::partition_id(int32_t(p))}; }

    void pump() {
        if (stopped) return;
        auto topic = brk.topic(opts.topic);
        if (!topic) {
            waiting = fmt::format("topic '{}' does not exist", opts.topic);
            return;
        }
        waiting.clear();
        if (parts.size() < std::size_t(topic->config.partitions)) parts.resize(std::size_t(topic->config.partitions));
        bool all_caught_up = true;
        for (std::size_t p = 0; p < parts.size(); ++p) {
            if (!mine(p)) continue;
            auto& st = parts[p];
            if (st.in_flight) {
                all_caught_up = false;
                continue;
            }
            if (st.next_fetch < 0) {
                resolve(p);
                all_caught_up = false;
                continue;
            }
            if (st.caught_up) continue;
            all_caught_up = false;
            // Ask only for the room left, counting fetches in flight.
            if (buffered + requested < opts.max_buffered_bytes) {
                fetch(p, std::min(opts.fetch_bytes, opts.max_buffered_bytes - buffered - requested));
            }
        }
        if (all_caught_up && !parts.empty()) arm_watch();
    }

    void resolve(std::size_t p) {
        parts[p].in_flight = true;
        using start_at = log_source_options::start_at;
        if (opts.start == start_at::group_offsets && opts.groups) {
            opts.groups->fetch_offsets(
              opts.group_id, std::vector<model::topic_partition>{tp(p)}, home,
              [self = shared_from_this(), p](broker::offsets_fetch_result r) {
                  if (self->stopped) return;
                  auto e = r.error;
                  if (e == broker::errc::success && !r.partitions.empty()) e = r.partitions[0].error;
                  if (e != broker::errc::success) {
                      // The coordinator may still be loading: asked again on the next wake.
                      self->parts[p].in_flight = false;
                      self->waiting = fmt::format("group '{}': {}", self->opts.group_id,
                                                  broker::make_error_code(e).message());
                      return;
                  }
                  const int64_t committed = r.partitions.empty() ? -1 : r.partitions[0].value.offset;
                  if (committed >= 0) return self->resolved(p, committed);
                  self->resolve_at(p, self->opts.group_fallback);
              });
            return;
        }
        if (opts.start == start_at::timestamp) {
            brk.offset_for_time(tp(p), model::event_time(opts.start_timestamp_ms), home,
                                [self = shared_from_this(), p](result<std::optional<broker::broker::time_match>> r) {
                                    if (self->stopped) return;
                                    if (!r) {
                                        self->parts[p].in_flight = false;
                                        self->waiting = fmt::format("partition {}: {}", p, r.error().message());
                                        return;
                                    }
                                    // No record that late: start at the end, as Kafka's ListOffsets does.
                                    if (r.value()) return self->resolved(p, r.value()->offset());
                                    self->resolve_at(p, start_at::latest);
                                });
            return;
        }
        resolve_at(p, opts.start);
    }

    /// Starts partition `p` at its log start or its end.
    void resolve_at(std::size_t p, log_source_options::start_at where) {
        parts[p].in_flight = true;
        brk.offsets(tp(p), home, [self = shared_from_this(), p, where](result<broker::offsets_result> r) {
            if (self->stopped) return;
            if (!r) {
                self->parts[p].in_flight = false;
                self->waiting = fmt::format("partition {}: {}", p, r.error().message());
                return;
            }
            self->resolved(p, where == log_source_options::start_at::latest ? r.value().high_watermark()
                                                                             : r.value().log_start());
        });
    }

    void resolved(std::size_t p, int64_t offset) {
        auto& st = parts[p];
        st.in_flight = false;
        st.next_fetch = offset;
        if (st.handed < 0) st.handed = st.next_fetch;
        pump();
        wake();
    }

    void fetch(std::size_t p, std::size_t max_bytes) {
        auto& st = parts[p];
        st.in_flight = true;
        requested += max_bytes;
        const int64_t from = st.next_fetch;
        brk.fetch(tp(p), model::offset(from), max_bytes, home,
                  [self = shared_from_this(), p, from, max_bytes](result<broker::fetch_result> r) {
                      self->parts[p].in_flight = false;
                      self->requested -= max_bytes;
                      if (self->stopped) return;
                      self->fetched(p, from, std::move(r));
                      self->pump();
                      self->wake();
                  });
    }

    void fetched(std::size_t p, int64_t from, result<broker::fetch_result> r) {
        auto& st = parts[p];
        if (!r) {
            if (r.error() == broker::errc::offset_out_of_range) {
                // Retention removed what was not read yet: start over at the log start.
                brk.offsets(tp(p), home, [self = shared_from_this(), p, from](result<broker::offsets_result> o) {
                    if (self->stopped || !o) return;
                    auto& s = self->parts[p];
                    if (o.value().log_start() > from) {
                        self->skipped += uint64_t(o.value().log_start() - from);
                        lg().warn("log source {}/{}: offsets {}..{} were removed by retention before they were read",
                                  self->opts.topic, p, from, o.value().log_start() - 1);
                        s.next_fetch = o.value().log_start();
                    } else if (o.value().high_watermark() < from) {
                        s.next_fetch = o.value().high_watermark(); // the topic was recreated
                    }
                    self->pump();
                    self->wake();
                });
                return;
            }
            waiting = fmt::format("partition {}: {}", p, r.error().message());
            st.caught_up = true; // retried when the watch or a tick comes
            return;
        }
        auto& data = r.value().data;
        if (data.batches == 0) {
            st.caught_up = true;
            return;
        }
        engine::batch out(schema());
        auto& cols = out.columns();
        const std::size_t bytes = data.bytes.size();
        auto span = data.bytes.span();
        std::size_t pos = 0;
        std::vector<std::byte> inflated;
        while (pos < span.size()) {
            auto h = model::parse_batch_header(span.subspan(pos));
            if (!h || h.value().size_bytes() > span.size() - pos) break;
            const auto& hdr = h.value();
            auto whole = span.subspan(pos, hdr.size_bytes());
            pos += hdr.size_bytes();
            if (hdr.next_offset()() <= from || hdr.is_control() || hdr.record_count == 0) continue;
            std::string why;
            auto plain = model::uncompressed_batch(whole, hdr, max_inflated_bytes, inflated, why);
            auto records = plain ? model::decode_records(*plain) : result<std::vector<model::record_view>>(model::errc::record_malformed);
            if (!records) {
                skipped += uint64_t(hdr.record_count);
                lg().warn("log source {}/{}: skipping offsets {}..{}: {}", opts.topic, p, hdr.base_offset(),
                          hdr.last_offset()(), plain ? records.error().message() : why);
                continue;
            }
            for (const auto& rec : records.value()) {
                if (rec.offset_value() < from) continue;
                auto text = [](const std::optional<std::span<const std::byte>>& b, engine::column& c) {
                    if (!b) return c.push_null();
                    c.push_string(std::string_view(reinterpret_cast<const char*>(b->data()), b->size()));
                };
                text(rec.key, cols[0]);
                text(rec.value, cols[1]);
                cols[2].push_int64(int64_t(p));
                cols[3].push_int64(rec.offset_value());
                cols[4].push_int64(rec.timestamp.value());
            }
        }
        out.seal();
        st.next_fetch = std::max(from, data.next_offset());
        if (out.num_rows() > 0) {
            out.set_source_partition(int32_t(p));
            buffered += bytes;
            buffer.push_back({std::move(out), int32_t(p), st.next_fetch, bytes});
        }
    }

    void arm_watch() {
        if (watch && !watch->fired()) {
            for (std::size_t p = 0; p < parts.size(); ++p) {
                if (mine(p)) brk.add_to_watch(*watch, tp(p), model::offset(parts[p].next_fetch));
            }
            return;
        }
        watch = brk.watch_for_data(home, [w = weak_from_this()] {
            auto self = w.lock();
            if (!self || self->stopped) return;
            for (auto& st : self->parts) st.caught_up = false;
            self->pump();
            self->wake();
        });
        for (std::size_t p = 0; p < parts.size(); ++p) {
            if (mine(p)) brk.add_to_watch(*watch, tp(p), model::offset(parts[p].next_fetch));
        }
    }
};

log_source::log_source(broker::broker& brk, executor& home, log_source_options opts, std::function<void()> wake)
  : _impl(std::make_shared<impl>(brk, home, std::move(opts), std::move(wake))) {}

log_source::~log_source() { stop(); }

engine::schema_ptr log_source::schema() { return record_schema(); }

engine::source_fn log_source::fn() {
    return [this]() -> engine::source_poll {
        if (_paused) return engine::source_poll::idle();
        auto& im = *_impl;
        if (im.buffer.empty()) {
            im.pump();
            return engine::source_poll::idle();
        }
        auto it = std::move(im.buffer.front());
        im.buffer.pop_front();
        im.buffered -= it.bytes;
        im.parts[std::size_t(it.partition)].handed = it.next_offset;
        im.pump();
        return engine::source_poll::data(std::move(it.rows));
    };
}

int32_t log_source::partitions() const { return int32_t(_impl->parts.size()); }

std::string log_source::state() const {
    engine::state_writer w;
    w.u32(uint32_t(_impl->parts.size()));
    for (const auto& p : _impl->parts) w.i64(p.handed);
    return std::move(w.bytes());
}

result<void> log_source::restore(std::string_view bytes) {
    engine::state_reader r(bytes);
    uint32_t n = r.count(8);
    std::vector<impl::partition> parts(n);
    for (auto& p : parts) {
        p.handed = r.i64();
        p.next_fetch = p.handed;
    }
    if (!r.ok() || !r.at_end()) return std::error_code(EINVAL, std::generic_category());
    _impl->parts = std::move(parts);
    _impl->buffer.clear();
    _impl->buffered = 0;
    return ok();
}

void log_source::checkpoint_durable(std::string_view bytes) {
    auto& im = *_impl;
    if (im.opts.group_id.empty() || !im.opts.groups || im.stopped) return;
    engine::state_reader r(bytes);
    const uint32_t n = r.count(8);
    broker::commit_request req;
    req.group_id = im.opts.group_id;
    const auto now = model::processing_now()();
    for (uint32_t p = 0; p < n; ++p) {
        const int64_t handed = r.i64();
        if (handed >= 0 && im.mine(p)) req.partitions.push_back({im.tp(p), broker::committed_offset{handed, -1, {}, now}});
    }
    if (!r.ok() || req.partitions.empty()) return;
    // A simple commit (no member, no generation), as a consumer that assigns its own partitions makes.
    im.opts.groups->commit(std::move(req), im.home,
                           [topic = im.opts.topic, group = im.opts.group_id](broker::errc e, std::vector<broker::partition_error> each) {
                               for (const auto& pe : each) {
                                   if (pe.error != broker::errc::success) e = pe.error;
                               }
                               if (e != broker::errc::success) {
                                   lg().warn("log source {}: cannot commit offsets to group '{}': {}", topic, group,
                                             broker::make_error_code(e).message());
                               }
                           });
}

std::size_t log_source::buffered_bytes() const { return _impl->buffered; }
uint64_t log_source::skipped_records() const { return _impl->skipped; }
std::string log_source::waiting_for() const { return _impl->waiting; }

void log_source::stop() {
    _impl->stopped = true;
    if (_impl->watch) _impl->watch->cancel();
}

} // namespace runnel::connect
