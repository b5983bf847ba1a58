#include "storage/compactor.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <pthread.h>
#include <string_view>
#include <sys/stat.h>
#include <unordered_map>

#include "storage/batch_scanner.h"
#include "storage/partition_log.h"

namespace runnel::storage {
namespace {

namespace L = model::batch_layout;

spdlog::logger& lg() { return logging::get("storage"); }

constexpr uint32_t checkpoint_magic = 0x43434e52; // "RNCC"
/// What one key costs in the offset map beyond its bytes: the node, the hash slot, the offset.
constexpr uint64_t map_entry_overhead = 64;
constexpr std::size_t write_chunk = 1u << 20;

/// The cleaner's counters in the process registry (`/metrics`).
struct cleaner_metrics {
    metrics::counter& bytes_read;
    metrics::counter& bytes_written;
    metrics::counter& segments_cleaned;
    metrics::counter& runs;
    metrics::counter& errors;
    metrics::counter& records_removed;
    metrics::counter& tombstones_removed;
    metrics::gauge& last_run;
    metrics::gauge& last_run_seconds;

    static cleaner_metrics& get() {
        auto& r = metrics::default_registry();
        static cleaner_metrics m{
          r.counter_("runnel_log_cleaner_bytes_read_total", "Bytes of segments the log cleaner read"),
          r.counter_("runnel_log_cleaner_bytes_written_total", "Bytes of cleaned segments the log cleaner wrote"),
          r.counter_("runnel_log_cleaner_segments_cleaned_total", "Segments rewritten or removed by the log cleaner"),
          r.counter_("runnel_log_cleaner_runs_total", "Cleanings of compacted logs finished and swapped in"),
          r.counter_("runnel_log_cleaner_errors_total",
                     "Cleanings that failed (unreadable segment, disk error); the log is left as it was"),
          r.counter_("runnel_log_cleaner_records_removed_total",
                     "Records the log cleaner dropped (superseded by a later record of their key, or keyless)"),
          r.counter_("runnel_log_cleaner_tombstones_removed_total",
                     "Tombstones dropped after delete.retention.ms"),
          r.gauge_("runnel_log_cleaner_last_run_timestamp_seconds", "When the last cleaning finished (Unix time)"),
          r.gauge_("runnel_log_cleaner_last_run_duration_seconds", "How long the last cleaning took"),
        };
        return m;
    }
};

/// Keeps the cleaner's disk traffic at or under a rate: after each read or write it sleeps
/// until the bytes so far fit the rate since the start.
class throttle {
public:
    throttle(uint64_t bytes_per_second, const std::atomic<bool>* stop)
      : _rate(bytes_per_second)
      , _stop(stop)
      , _start(std::chrono::steady_clock::now()) {}

    void spend(uint64_t n) {
        _bytes += n;
        if (_rate == 0) {
            return;
        }
        const auto due = _start + std::chrono::microseconds(_bytes * 1'000'000 / _rate);
        while (std::chrono::steady_clock::now() < due && !(_stop && _stop->load())) {
            std::this_thread::sleep_for(std::min<std::chrono::steady_clock::duration>(
              due - std::chrono::steady_clock::now(), std::chrono::milliseconds(50)));
        }
    }

private:
    uint64_t _rate;
    const std::atomic<bool>* _stop;
    std::chrono::steady_clock::time_point _start;
    uint64_t _bytes = 0;
};

struct string_hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
};
using offset_map = std::unordered_map<std::string, int64_t, string_hash, std::equal_to<>>;

/// One record of an uncompressed records section: where its bytes are and what the cleaner
/// needs of it.
struct record_ref {
    std::span<const std::byte> bytes;
    model::offset offset;
    std::optional<std::string_view> key;
    bool tombstone = false;
};

std::optional<int64_t> read_varint(std::span<const std::byte> b, std::size_t& pos) {
    return model::varint::read(b, pos);
}

/// Walks the records of an uncompressed section (`records`, the bytes after the header) of a
/// batch based at `base`. Stored batches passed the produce checks, so a record that does not
/// parse means the segment is damaged: the cleaning stops.
result<std::vector<record_ref>> walk_records(std::span<const std::byte> records, model::offset base, int32_t count) {
    std::vector<record_ref> out;
    out.reserve(static_cast<std::size_t>(std::max(count, 0)));
    std::size_t pos = 0;
    while (pos < records.size()) {
        auto len = read_varint(records, pos);
        if (!len || *len < 1 || static_cast<uint64_t>(*len) > records.size() - pos) {
            return model::errc::record_malformed;
        }
        auto rec = records.subspan(pos, static_cast<std::size_t>(*len));
        pos += rec.size();
        std::size_t at = 1; // attributes
        auto ts = read_varint(rec, at);
        auto off = read_varint(rec, at);
        auto klen = read_varint(rec, at);
        if (!ts || !off || !klen || *klen < -1 || (*klen > 0 && static_cast<uint64_t>(*klen) > rec.size() - at)) {
            return model::errc::record_malformed;
        }
        record_ref r;
        r.bytes = rec; // the body; its length prefix is written again when it is copied
        r.offset = base + *off;
        if (*klen >= 0) {
            r.key = std::string_view(reinterpret_cast<const char*>(rec.data() + at), static_cast<std::size_t>(*klen));
            at += static_cast<std::size_t>(*klen);
        }
        auto vlen = read_varint(rec, at);
        if (!vlen) {
            return model::errc::record_malformed;
        }
        r.tombstone = *vlen < 0;
        out.push_back(r);
    }
    if (static_cast<int64_t>(out.size()) != count) {
        return model::errc::record_malformed;
    }
    return out;
}

/// The uncompressed records section of a stored batch; `storage` holds an inflated copy.
result<std::span<const std::byte>> records_of(std::span<const std::byte> batch, const model::batch_header& h,
                                              std::vector<std::byte>& storage) {
    std::string why;
    auto plain = model::uncompressed_batch(batch, h, model::max_inflated_bytes, storage, why);
    if (!plain) {
        lg().warn("log cleaner: batch at offset {}: {}", h.base_offset, why);
        return model::errc::records_undecodable;
    }
    return plain->subspan(L::header_size);
}

/// Appends a varint-length-prefixed record copy: the length is re-encoded, the body copied.
void append_record(std::vector<std::byte>& out, std::span<const std::byte> body) {
    model::varint::append(out, static_cast<int64_t>(body.size()));
    out.insert(out.end(), body.begin(), body.end());
}

/// Rebuilds the batch `orig` (header `h`) holding only `kept`, with the same base offset,
/// last offset delta, timestamps, producer fields and codec (none when `kept` is empty).
result<std::vector<std::byte>> rebuild_batch(std::span<const std::byte> orig, const model::batch_header& h,
                                             const std::vector<const record_ref*>& kept) {
    std::vector<std::byte> section;
    for (const auto* r : kept) {
        append_record(section, r->bytes);
    }
    std::string body;
    if (kept.empty() || h.compression() == model::compression::none) {
        body.assign(reinterpret_cast<const char*>(section.data()), section.size());
    } else {
        std::string why;
        auto packed = model::compress_records(h.compression(), section, why);
        if (!packed) {
            lg().warn("log cleaner: recompressing the batch at offset {}: {}", h.base_offset, why);
            return model::errc::records_undecodable;
        }
        body = std::move(*packed);
    }
    std::vector<std::byte> out(orig.begin(), orig.begin() + L::header_size);
    const auto* packed_body = reinterpret_cast<const std::byte*>(body.data());
    out.insert(out.end(), packed_body, packed_body + body.size());
    write_be<int32_t>(out.data() + L::length, static_cast<int32_t>(out.size() - L::length_field_end));
    write_be<int32_t>(out.data() + L::record_count, static_cast<int32_t>(kept.size()));
    if (kept.empty()) {
        // An empty batch has no body to compress: it says "uncompressed".
        write_be<int16_t>(out.data() + L::attributes, static_cast<int16_t>(h.attributes & ~0x7));
    }
    write_be<uint32_t>(out.data() + L::crc, model::compute_batch_crc(out));
    return out;
}

std::optional<model::processing_time> file_mtime(const std::filesystem::path& p) {
    struct stat st {};
    if (::stat(p.c_str(), &st) != 0) {
        return std::nullopt;
    }
    return model::processing_time(static_cast<int64_t>(st.st_mtim.tv_sec) * 1000 + st.st_mtim.tv_nsec / 1'000'000);
}

result<void> set_mtime(const file_handle& f, model::processing_time t) {
    timespec times[2];
    times[0].tv_sec = 0;
    times[0].tv_nsec = UTIME_OMIT;
    times[1].tv_sec = t() / 1000;
    times[1].tv_nsec = (t() % 1000) * 1'000'000;
    if (::futimens(f.fd(), times) != 0) {
        return last_system_error();
    }
    return ok();
}

/// Reads the batches of `seg` in order, CRC-checked and paced by `io`, counting them in
/// `bytes_read`, and calls `fn(item)` (a `result<bool>`: false stops) for each. Ends with
/// `operation_canceled` once `stop` is set.
template <typename F>
result<void> scan_segment(const cleanable_segment& seg, throttle& io, uint64_t& bytes_read,
                          const std::atomic<bool>* stop, F&& fn) {
    RUNNEL_TRY(auto f, file_handle::open(seg.path, O_RDONLY));
    batch_scanner sc(f, 0, seg.size);
    for (;;) {
        if (stop && stop->load()) {
            return std::make_error_code(std::errc::operation_canceled);
        }
        RUNNEL_TRY(auto item, sc.next(true));
        if (!item) {
            return ok();
        }
        io.spend(item->bytes.size());
        bytes_read += item->bytes.size();
        RUNNEL_TRY(auto more, fn(*item));
        if (!more) {
            return ok();
        }
    }
}

result<void> write_synced(const std::filesystem::path& p, std::span<const std::byte> bytes) {
    RUNNEL_TRY(auto f, file_handle::open(p, O_WRONLY | O_CREAT | O_TRUNC));
    RUNNEL_TRY(f.pwrite(bytes, 0));
    return f.sync();
}

} // namespace

std::filesystem::path cleaned_path(const std::filesystem::path& segment_log, std::string_view ext) {
    auto p = segment_log;
    p.replace_extension(std::string(ext) + ".cleaned");
    return p;
}

result<compaction_outcome> compact_segments(const compaction_job& job, const cleaner_limits& limits,
                                            const std::atomic<bool>* stop) {
    compaction_outcome out;
    throttle io(limits.io_bytes_per_second, stop);
    std::vector<std::byte> inflated;

    // 1. The offset map over the dirty segments, within the dedupe buffer.
    offset_map map;
    uint64_t map_bytes = 0;
    model::offset map_end = job.first_dirty;
    bool full = false;
    for (const auto& seg : job.segments) {
        if (seg.next_offset <= job.first_dirty || full) {
            continue;
        }
        auto scanned = scan_segment(seg, io, out.bytes_read, stop, [&](const batch_scanner::item& item) -> result<bool> {
            const auto& h = item.header;
            if (h.last_offset() < job.first_dirty) {
                return true;
            }
            if (!h.is_control()) {
                RUNNEL_TRY(auto section, records_of(item.bytes, h, inflated));
                RUNNEL_TRY(auto recs, walk_records(section, h.base_offset, h.record_count));
                uint64_t added = 0;
                for (const auto& r : recs) {
                    if (r.key && !map.contains(*r.key)) {
                        added += r.key->size() + map_entry_overhead;
                    }
                }
                if (!map.empty() && map_bytes + added > limits.dedupe_buffer_bytes) {
                    full = true; // this batch and everything after it wait for the next cleaning
                    return false;
                }
                map_bytes += added;
                for (const auto& r : recs) {
                    if (r.key) {
                        map[std::string(*r.key)] = r.offset();
                    }
                }
            }
            map_end = h.next_offset();
            return true;
        });
        RUNNEL_TRY(scanned);
        if (!full) {
            map_end = std::max(map_end, seg.next_offset);
        }
    }
    out.cleaned_upto = map_end;
    const bool anything_clean = std::any_of(job.segments.begin(), job.segments.end(),
                                            [](const auto& s) { return s.cleaned_before; });
    if (map_end <= job.first_dirty && !anything_clean) {
        return out;
    }
    // With nothing dirty (a cleaning for due tombstones) the map is empty and the segments
    // already cleaned are rewritten only for their tombstones.

    // 2. Every segment that starts before the map's end is rewritten against it.
    const int64_t horizon = job.now() - job.delete_retention_ms;
    for (const auto& seg : job.segments) {
        if (seg.base >= map_end) {
            break;
        }
        const auto first_cleaned = file_mtime(seg.path).value_or(job.now);
        cleaned_segment cs;
        cs.base = seg.base;
        cs.old_size = seg.size;
        cs.index = segment_index(seg.base, job.index_interval_bytes);
        std::optional<file_handle> out_file;
        std::vector<std::byte> pending; // written in chunks to `<base>.log.cleaned`
        uint64_t written = 0;
        bool changed = false;
        auto emit = [&](std::span<const std::byte> batch, const model::batch_header& h) -> result<void> {
            cs.index.on_batch(h, static_cast<uint32_t>(written + pending.size()));
            pending.insert(pending.end(), batch.begin(), batch.end());
            if (pending.size() >= write_chunk) {
                if (!out_file) {
                    RUNNEL_TRY(auto of, file_handle::open(cleaned_path(seg.path, ".log"), O_WRONLY | O_CREAT | O_TRUNC));
                    out_file.emplace(std::move(of));
                }
                RUNNEL_TRY(out_file->pwrite(pending, written));
                io.spend(pending.size());
                written += pending.size();
                pending.clear();
            }
            return ok();
        };
        auto rewritten = scan_segment(seg, io, out.bytes_read, stop, [&](const batch_scanner::item& item) -> result<bool> {
            const auto& h = item.header;
            if (h.is_control()) {
                RUNNEL_TRY(emit(item.bytes, h)); // transaction markers stay
                return true;
            }
            RUNNEL_TRY(auto section, records_of(item.bytes, h, inflated));
            RUNNEL_TRY(auto recs, walk_records(section, h.base_offset, h.record_count));
            std::vector<const record_ref*> kept;
            kept.reserve(recs.size());
            for (const auto& r : recs) {
                if (r.offset >= map_end) {
                    kept.push_back(&r); // past this cleaning's map: not judged yet
                    continue;
                }
                if (!r.key) {
                    ++out.records_removed; // Kafka's cleaner drops keyless records too
                    continue;
                }
                auto it = map.find(*r.key);
                if (it != map.end() && r.offset() < it->second) {
                    ++out.records_removed;
                    continue;
                }
                if (r.tombstone) {
                    // delete.retention.ms counts from when the segment was first cleaned
                    // (its file's time, kept across later rewrites).
                    if (seg.cleaned_before && first_cleaned() <= horizon) {
                        ++out.tombstones_removed;
                        continue;
                    }
                    const auto due = model::processing_time(
                      (seg.cleaned_before ? first_cleaned() : job.now()) + job.delete_retention_ms);
                    out.tombstones_due = out.tombstones_due ? std::min(*out.tombstones_due, due) : due;
                }
                kept.push_back(&r);
            }
            if (kept.size() == recs.size()) {
                RUNNEL_TRY(emit(item.bytes, h));
                return true;
            }
            changed = true;
            const bool last_in_segment = item.position + item.bytes.size() >= seg.size;
            if (kept.empty() && !last_in_segment) {
                return true; // the whole batch goes; its offsets become a gap
            }
            // A segment's last batch stays, empty if need be, so the segment still ends at its
            // last offset and a consumer reading there moves on (as Kafka keeps empty batches).
            RUNNEL_TRY(auto rebuilt, rebuild_batch(item.bytes, h, kept));
            RUNNEL_TRY(auto nh, model::parse_batch_header(rebuilt));
            RUNNEL_TRY(emit(rebuilt, nh));
            return true;
        });
        RUNNEL_TRY(rewritten);
        if (!changed) {
            if (out_file) {
                std::error_code ec;
                out_file.reset();
                std::filesystem::remove(cleaned_path(seg.path, ".log"), ec);
            }
            continue;
        }
        cs.new_size = written + pending.size();
        cs.summary = segment_summary{cs.new_size, seg.next_offset, seg.max_timestamp};
        if (cs.new_size > 0) {
            if (!out_file) {
                RUNNEL_TRY(auto of, file_handle::open(cleaned_path(seg.path, ".log"), O_WRONLY | O_CREAT | O_TRUNC));
                out_file.emplace(std::move(of));
            }
            RUNNEL_TRY(out_file->pwrite(pending, written));
            io.spend(pending.size());
            RUNNEL_TRY(out_file->sync());
            if (seg.cleaned_before) {
                // Keeps the time of the first cleaning, from which tombstones are counted.
                RUNNEL_TRY(set_mtime(*out_file, first_cleaned));
            }
            RUNNEL_TRY(write_synced(cleaned_path(seg.path, ".index"), cs.index.encode_offset_index(cs.summary).span()));
            RUNNEL_TRY(write_synced(cleaned_path(seg.path, ".timeindex"), cs.index.encode_time_index(cs.summary).span()));
        }
        out.bytes_written += cs.new_size;
        out.segments.push_back(std::move(cs));
    }
    if (fail_point::take("cleaner.after_write")) {
        return std::error_code(EIO, std::system_category());
    }
    // Recorded before any swap: recovery then knows that gaps below this point are meant.
    RUNNEL_TRY(write_file_atomic(job.dir / "cleaner_checkpoint", encode_offset_file(checkpoint_magic, map_end).span()));
    if (fail_point::take("cleaner.after_checkpoint")) {
        return std::error_code(EIO, std::system_category());
    }
    return out;
}

bool stale_or_stopped(const std::error_code& ec) noexcept {
    return ec == std::errc::no_such_file_or_directory || ec == std::errc::operation_canceled;
}

std::optional<model::offset> read_cleaner_checkpoint(const std::filesystem::path& dir) {
    std::error_code ec;
    if (!std::filesystem::exists(dir / "cleaner_checkpoint", ec)) {
        return std::nullopt;
    }
    auto f = file_handle::open(dir / "cleaner_checkpoint", O_RDONLY);
    if (!f) {
        return std::nullopt;
    }
    return read_offset_file(f.value(), checkpoint_magic);
}

void count_cleaning(const result<compaction_outcome>& r, double seconds) {
    auto& m = cleaner_metrics::get();
    if (!r) {
        // A segment that retention or DeleteRecords removed meanwhile, or a stop, is no fault.
        if (!stale_or_stopped(r.error())) {
            m.errors.inc();
        }
        return;
    }
    m.bytes_read.inc(r.value().bytes_read);
    m.bytes_written.inc(r.value().bytes_written);
    m.records_removed.inc(r.value().records_removed);
    m.tombstones_removed.inc(r.value().tombstones_removed);
    m.last_run.set(static_cast<double>(model::processing_now()()) / 1000.0);
    m.last_run_seconds.set(seconds);
}

void count_swap(bool ok, std::size_t segments) {
    auto& m = cleaner_metrics::get();
    if (ok) {
        m.runs.inc();
        m.segments_cleaned.inc(segments);
    } else {
        m.errors.inc();
    }
}

log_cleaner::log_cleaner(cleaner_limits limits)
  : _limits(limits) {
    cleaner_metrics::get(); // listed in /metrics at zero from the start
    _thread = std::thread([this] { run(); });
}

log_cleaner::~log_cleaner() {
    {
        std::lock_guard lock(_mu);
        _stopping = true;
    }
    _cv.notify_one();
    _thread.join();
}

void log_cleaner::schedule(const std::shared_ptr<partition_log>& log, executor& owner, model::processing_time now) {
    log->roll_if_due(now);
    auto plan = log->plan_compaction(now);
    if (!plan) {
        return;
    }
    std::lock_guard lock(_mu);
    if (_stopping) {
        log->install_compaction(std::make_error_code(std::errc::operation_canceled));
        return;
    }
    _jobs.push_back(job{std::move(*plan), log, &owner});
    _cv.notify_one();
}

void log_cleaner::run() {
    ::pthread_setname_np(::pthread_self(), "log-cleaner");
    for (;;) {
        job j;
        {
            std::unique_lock lock(_mu);
            _cv.wait(lock, [this] { return _stopping || !_jobs.empty(); });
            if (_stopping) {
                return;
            }
            j = std::move(_jobs.front());
            _jobs.pop_front();
        }
        const auto started = std::chrono::steady_clock::now();
        auto r = compact_segments(j.work, _limits, &_stopping);
        count_cleaning(r, std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
        if (!r && !stale_or_stopped(r.error())) {
            lg().error("{}: log cleaning failed: {}", j.work.dir.string(), r.error().message());
        }
        ++_completed;
        j.owner->post([weak = j.log, r = std::move(r)]() mutable {
            if (auto log = weak.lock()) {
                log->install_compaction(std::move(r));
            }
        });
    }
}

} // namespace runnel::storage
