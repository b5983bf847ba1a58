#include "storage/partition_log.h"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <unistd.h>

#include "storage/batch_scanner.h"

namespace runnel::storage {

const char* errc_message(errc e) noexcept {
    switch (e) {
    case errc::success:
        return "success";
    case errc::offset_out_of_range:
        return "offset is outside the log";
    case errc::corrupt_data:
        return "the log holds a corrupt batch at or before this offset";
    case errc::batch_too_large:
        return "record batch is larger than the log's max batch size";
    case errc::log_failed:
        return "an fsync of this log failed; it takes no more writes";
    case errc::closed:
        return "the log is closed";
    case errc::invalid_config:
        return "invalid log configuration";
    }
    return "unknown storage error";
}

namespace {

/// Faults an operator must act on, counted in the process registry (`/metrics`); the log
/// line beside each names the partition.
struct fault_counters {
    metrics::family<metrics::counter>& append_failures;
    metrics::counter& disk_full;
    metrics::counter& fsync_failures;
    metrics::counter& torn_tails;
    metrics::counter& corrupt;

    static fault_counters& get() {
        auto& r = metrics::default_registry();
        static fault_counters c{
          r.counters("runnel_storage_append_failures_total",
                     "Appends the disk refused, by cause (no_space, io_error); the partition stays usable", {"cause"}),
          r.counter_("runnel_storage_disk_full_total", "Appends refused because the disk is full (ENOSPC)"),
          r.counter_("runnel_storage_fsync_failures_total",
                     "Failed fsyncs; each stops its partition's log from taking writes until a restart"),
          r.counter_("runnel_storage_torn_tails_truncated_total",
                     "Partitions whose unacknowledged torn tail was cut at recovery"),
          r.counter_("runnel_storage_corrupt_partitions_total",
                     "Partitions found holding a corrupt batch in durable data (at recovery or on read); "
                     "they serve nothing past it"),
        };
        // Every cause at zero, so /metrics shows them before the first fault.
        static const bool causes = [] {
            c.append_failures.with({"no_space"});
            c.append_failures.with({"io_error"});
            return true;
        }();
        (void)causes;
        return c;
    }
};

} // namespace

result<void> log_config::validate() const {
    // Positions inside a segment are 32-bit in the indexes.
    if (segment_bytes < 1024 || segment_bytes > (1ull << 31)) {
        return errc::invalid_config;
    }
    if (index_interval_bytes == 0 || max_batch_bytes < model::batch_layout::header_size
        || max_batch_bytes > batch_scanner::max_batch_bytes || segment_age.count() <= 0) {
        return errc::invalid_config;
    }
    return ok();
}

namespace {

spdlog::logger& lg() { return logging::get("storage"); }

constexpr std::string_view log_suffix = ".log";
constexpr uint32_t recovery_point_magic = 0x50524e52; // "RNRP"
constexpr uint32_t log_start_magic = 0x534c4e52; // "RNLS"

std::string segment_name(model::offset base, std::string_view suffix) {
    return fmt::format("{:020d}{}", base(), suffix);
}

std::optional<model::offset> parse_segment_name(const std::string& name) {
    if (name.size() != 20 + log_suffix.size() || !name.ends_with(log_suffix)) {
        return std::nullopt;
    }
    int64_t v = 0;
    auto [end, ec] = std::from_chars(name.data(), name.data() + 20, v);
    if (ec != std::errc() || end != name.data() + 20 || v < 0) {
        return std::nullopt;
    }
    return model::offset(v);
}

byte_buffer encode_recovery_point(model::offset o) { return encode_offset_file(recovery_point_magic, o); }

std::optional<model::offset> read_recovery_point(const file_handle& f) {
    return read_offset_file(f, recovery_point_magic);
}

std::string reason_of(const std::error_code& ec) { return ec.message(); }

} // namespace

/// One segment: a `.log` file of batches and its in-memory index.
struct partition_log::segment {
    model::offset base;
    std::filesystem::path path;
    std::shared_ptr<file_handle> file;
    uint64_t size = 0;
    model::offset next_offset;
    model::event_time max_timestamp = model::event_time::min();
    segment_index index;
    model::processing_time created;

    segment(model::offset b, std::filesystem::path p, uint32_t interval)
      : base(b)
      , path(std::move(p))
      , next_offset(b)
      , index(b, interval)
      , created(model::processing_now()) {}

    std::filesystem::path index_path() const {
        auto p = path;
        return p.replace_extension(".index");
    }
    std::filesystem::path time_index_path() const {
        auto p = path;
        return p.replace_extension(".timeindex");
    }
    segment_summary summary() const { return {size, next_offset, max_timestamp}; }

    void on_batch(const model::batch_header& h, uint64_t position) {
        index.on_batch(h, static_cast<uint32_t>(position));
        size = position + h.size_bytes();
        next_offset = h.next_offset();
        max_timestamp = std::max(max_timestamp, h.max_timestamp);
    }
};

partition_log::partition_log(std::filesystem::path dir, log_config config, executor& owner, flusher& f)
  : _dir(std::move(dir))
  , _config(config)
  , _owner(owner)
  , _flusher(f) {}

partition_log::~partition_log() {
    // A log dropped with writes still waiting for their sync (its topic deleted, the server
    // stopping) answers them: a produce never waits for ever on a log that is gone, and the
    // requests behind it on the same connection are not held up.
    for (auto& w : _waiters) {
        _owner.post([done = std::move(w.done)] { done(errc::closed); });
    }
}

result<std::shared_ptr<partition_log>> partition_log::open(
  std::filesystem::path dir, log_config config, executor& owner, flusher& flush_thread,
  std::shared_ptr<file_cache> files) {
    RUNNEL_TRY(config.validate());
    std::shared_ptr<partition_log> log(new partition_log(std::move(dir), config, owner, flush_thread));
    log->_files = std::move(files);
    RUNNEL_TRY(log->recover());
    return log;
}

result<void> partition_log::recover() {
    fault_counters::get(); // registered with the first partition, so /metrics lists them at zero
    std::error_code ec;
    std::filesystem::create_directories(_dir, ec);
    if (ec) {
        return ec;
    }

    std::vector<model::offset> bases;
    std::vector<std::filesystem::path> cleaned_leftovers;
    for (const auto& entry : std::filesystem::directory_iterator(_dir, ec)) {
        auto name = entry.path().filename().string();
        if (name.ends_with(".tmp")) {
            std::filesystem::remove(entry.path(), ec);
        } else if (name.ends_with(".cleaned")) {
            cleaned_leftovers.push_back(entry.path());
        } else if (auto base = parse_segment_name(name)) {
            bases.push_back(*base);
        }
    }
    if (ec) {
        return ec;
    }
    std::sort(bases.begin(), bases.end());
    settle_cleaned_files(cleaned_leftovers);
    _cleaned_upto = read_cleaner_checkpoint(_dir).value_or(model::offset(0));
    if (_cleaned_upto > model::offset(0)) {
        // Kept tombstones are looked at again one delete.retention.ms after the restart.
        _tombstones_due = model::processing_time(model::processing_now()() + _config.delete_retention_ms);
    }

    // The durable point and the directory are opened when needed (on the flusher thread), so
    // an idle partition holds one descriptor: its active segment.
    RUNNEL_TRY(auto rp_file, file_handle::open(recovery_point_path(), O_RDWR | O_CREAT));
    const std::optional<model::offset> durable = read_recovery_point(rp_file);

    if (bases.empty()) {
        bases.push_back(model::offset(0));
        RUNNEL_TRY(auto created, file_handle::open(_dir / segment_name(bases[0], log_suffix), O_RDWR | O_CREAT));
        ++_dir_changes;
    }
    const std::size_t n = bases.size();

    // Segments from `scan_from` on were written after the last durable point we know of:
    // every batch in them is checked, and a bad batch past that point is an interrupted write.
    std::size_t scan_from = n - 1;
    if (durable) {
        auto it = std::upper_bound(bases.begin(), bases.end(), *durable);
        scan_from = it == bases.begin() ? 0 : static_cast<std::size_t>(it - bases.begin()) - 1;
    }

    for (std::size_t i = 0; i < n; ++i) {
        auto seg = std::make_unique<segment>(bases[i], _dir / segment_name(bases[i], log_suffix),
                                             _config.index_interval_bytes);
        const bool last = i + 1 == n;
        RUNNEL_TRY(auto f, file_handle::open(seg->path, i >= scan_from ? O_RDWR : O_RDONLY));
        seg->file = std::make_shared<file_handle>(std::move(f));
        RUNNEL_TRY(seg->size, seg->file->size());

        bool scan = i >= scan_from;
        if (!scan) {
            auto loaded = segment_index::load(seg->index_path(), seg->time_index_path(), seg->base,
                                              _config.index_interval_bytes, seg->size);
            bool good = loaded.has_value() && (last || loaded->second.next_offset <= bases[i + 1]);
            if (good) {
                // Spot check: the last indexed position must hold the batch the index names.
                auto [pos, off] = loaded->first.position_for_offset(loaded->second.next_offset - 1);
                byte_buffer hb(model::batch_layout::header_size);
                auto got = seg->file->pread(hb.span(), pos);
                auto h = got && got.value() == hb.size() ? model::parse_batch_header(hb.span())
                                                         : result<model::batch_header>(model::errc::batch_truncated);
                good = h.has_value() && h.value().base_offset == off;
            }
            if (good) {
                seg->index = std::move(loaded->first);
                seg->next_offset = loaded->second.next_offset;
                seg->max_timestamp = loaded->second.max_timestamp;
            } else {
                scan = true;
                ++_recovery.indexes_rebuilt;
                lg().warn("{}: index of segment {} is missing or stale; rebuilding", _dir.string(), seg->base);
            }
        }

        bool cut_here = false;
        if (scan) {
            ++_recovery.segments_scanned;
            batch_scanner sc(*seg->file, 0, seg->size);
            model::offset expected = seg->base;
            const uint64_t file_size = seg->size;
            seg->size = 0;
            for (;;) {
                auto r = sc.next(true);
                std::optional<std::string> bad;
                if (!r) {
                    bad = reason_of(r.error());
                } else if (!r.value()) {
                    break;
                } else if (r.value()->header.base_offset != expected
                           && !gap_allowed(expected, r.value()->header.base_offset)) {
                    // The CRC does not cover the base offset; offsets in a segment are contiguous.
                    bad = fmt::format("batch base offset {} where {} was expected",
                                      r.value()->header.base_offset, expected);
                }
                if (!bad) {
                    seg->on_batch(r.value()->header, r.value()->position);
                    expected = r.value()->header.next_offset();
                    ++_recovery.batches_checked;
                    continue;
                }
                const uint64_t at = r ? r.value()->position : sc.position();
                const bool torn = i >= scan_from && (!durable || expected >= *durable);
                if (torn) {
                    recovery_report::torn_tail t;
                    t.segment = seg->base;
                    t.position = at;
                    t.first_offset_dropped = expected;
                    t.reason = *bad;
                    byte_buffer hb(model::batch_layout::header_size);
                    if (auto got = seg->file->pread(hb.span(), at); got && got.value() == hb.size()) {
                        if (auto h = model::parse_batch_header(hb.span()); h && h.value().base_offset >= expected) {
                            t.last_offset_dropped = h.value().last_offset();
                        }
                    }
                    t.bytes_dropped = file_size - at;
                    for (std::size_t j = i + 1; j < n; ++j) {
                        auto p = _dir / segment_name(bases[j], log_suffix);
                        t.bytes_dropped += std::filesystem::file_size(p, ec);
                        for (auto ext : {".log", ".index", ".timeindex"}) {
                            std::filesystem::remove(_dir / segment_name(bases[j], ext), ec);
                        }
                        ++t.segments_removed;
                    }
                    RUNNEL_TRY(seg->file->truncate(at));
                    ++_dir_changes;
                    lg().warn(
                      "{}: torn tail cut at segment {} position {}: {} bytes dropped, offsets from {}{} "
                      "({}; never acknowledged as durable)",
                      _dir.string(), t.segment, t.position, t.bytes_dropped, t.first_offset_dropped,
                      t.last_offset_dropped ? fmt::format(" to {}", *t.last_offset_dropped) : std::string(),
                      t.reason);
                    _recovery.torn = std::move(t);
                    fault_counters::get().torn_tails.inc();
                    cut_here = true;
                } else {
                    recovery_report::corruption c{seg->base, at, expected, *bad};
                    lg().error(
                      "{}: corrupt batch in durable data at segment {} position {} (offset {}): {}; "
                      "the partition serves nothing at or past offset {} and takes no appends",
                      _dir.string(), c.segment, c.position, c.offset, c.reason, c.offset);
                    if (!_corrupt_from) {
                        fault_counters::get().corrupt.inc();
                    }
                    if (!_corrupt_from || expected < *_corrupt_from) {
                        _corrupt_from = expected;
                    }
                    _recovery.corrupt = std::move(c);
                    // Keep every byte; later offsets stay addressable but are never served.
                    seg->size = file_size;
                    if (!last) {
                        seg->next_offset = std::max(expected, bases[i + 1]);
                    }
                }
                break;
            }
            if (!last && !cut_here && !_recovery.corrupt) {
                // A rebuilt index of a sealed segment is written back (synced by the next flush).
                RUNNEL_TRY(auto oi, file_handle::open(seg->index_path(), O_WRONLY | O_CREAT | O_TRUNC));
                RUNNEL_TRY(oi.pwrite(seg->index.encode_offset_index(seg->summary()).span(), 0));
                RUNNEL_TRY(auto ti, file_handle::open(seg->time_index_path(), O_WRONLY | O_CREAT | O_TRUNC));
                RUNNEL_TRY(ti.pwrite(seg->index.encode_time_index(seg->summary()).span(), 0));
                _unsynced.push_back(std::make_shared<file_handle>(std::move(oi)));
                _unsynced.push_back(std::make_shared<file_handle>(std::move(ti)));
            }
        }
        if (i >= scan_from || !durable) {
            _unsynced.push_back(seg->file);
        }
        if (_files && !last && !cut_here) {
            seg->file.reset(); // sealed: reopened through the cache when read
        }
        _segments.push_back(std::move(seg));
        if (cut_here) {
            break;
        }
    }
    // Every flush syncs the active segment anyway.
    std::erase(_unsynced, _segments.back()->file);

    _next_offset = _segments.back()->next_offset;
    _recovery.segments = _segments.size();
    if (durable && *durable > _next_offset && !_recovery.corrupt) {
        _recovery.durable_data_missing_from = _next_offset;
        lg().error("{}: data recorded as durable up to offset {} ends at {}: acknowledged records are "
                   "missing (files were cut or replaced)",
                   _dir.string(), *durable, _next_offset);
    }
    _flushed = std::min(durable.value_or(start_offset()), _next_offset);

    // The start moved by DeleteRecords. It is renamed into place only once synced, so a file
    // that fails its checks was damaged from outside: the records it hid are served again.
    if (std::filesystem::exists(log_start_path(), ec)) {
        RUNNEL_TRY(auto ls_file, file_handle::open(log_start_path(), O_RDONLY));
        if (auto ls = read_offset_file(ls_file, log_start_magic); ls && *ls >= model::offset(0)) {
            // A torn tail may have cut the log below it; the log never starts past its end.
            _log_start = std::min(*ls, _next_offset);
            _log_start_requested = _log_start;
        } else {
            lg().error("{}: {} is unreadable or fails its checksum; ignored", _dir.string(),
                       log_start_path().string());
        }
    }
    // Segments wholly below the start are left when the process stopped between recording the
    // start and deleting them.
    if (_log_start > _segments.front()->base) {
        remove_segments_before(_log_start);
    }
    if (!_recovery.torn && !_recovery.corrupt && !_recovery.durable_data_missing_from) {
        lg().debug("{}: opened {} segments, offsets [{}, {}), {} batches checked", _dir.string(),
                   _segments.size(), start_offset(), _next_offset, _recovery.batches_checked);
    }
    return ok();
}

model::offset partition_log::start_offset() const noexcept {
    return std::max(_segments.front()->base, _log_start);
}

result<std::shared_ptr<file_handle>> partition_log::file_of(const segment& seg) {
    if (seg.file) {
        return seg.file;
    }
    return _files->get(seg.path);
}

std::filesystem::path partition_log::recovery_point_path() const { return _dir / "recovery_point"; }

std::filesystem::path partition_log::log_start_path() const { return _dir / "log_start"; }

model::offset partition_log::active_segment_base() const noexcept { return _segments.back()->base; }

uint64_t partition_log::size_bytes() const noexcept {
    uint64_t total = 0;
    for (const auto& s : _segments) {
        total += s->size;
    }
    return total;
}

result<void> partition_log::set_config(const log_config& config) {
    RUNNEL_TRY(config.validate());
    _config = config;
    return ok();
}

result<void> partition_log::usable_for_append() const {
    if (_closed) {
        return errc::closed;
    }
    if (_failed) {
        return errc::log_failed;
    }
    if (_corrupt_from) {
        return errc::corrupt_data;
    }
    return ok();
}

result<void> partition_log::roll() {
    auto& old = *_segments.back();
    auto summary = old.summary();
    RUNNEL_TRY(auto oi, file_handle::open(old.index_path(), O_WRONLY | O_CREAT | O_TRUNC));
    RUNNEL_TRY(oi.pwrite(old.index.encode_offset_index(summary).span(), 0));
    RUNNEL_TRY(auto ti, file_handle::open(old.time_index_path(), O_WRONLY | O_CREAT | O_TRUNC));
    RUNNEL_TRY(ti.pwrite(old.index.encode_time_index(summary).span(), 0));

    auto seg = std::make_unique<segment>(_next_offset, _dir / segment_name(_next_offset, log_suffix),
                                         _config.index_interval_bytes);
    RUNNEL_TRY(auto f, file_handle::open(seg->path, O_RDWR | O_CREAT | O_TRUNC));
    seg->file = std::make_shared<file_handle>(std::move(f));

    _unsynced.push_back(old.file);
    if (_files) {
        old.file.reset(); // sealed now: `_unsynced` holds it until synced, then reads use the cache
    }
    _unsynced.push_back(std::make_shared<file_handle>(std::move(oi)));
    _unsynced.push_back(std::make_shared<file_handle>(std::move(ti)));
    ++_dir_changes;
    _segments.push_back(std::move(seg));
    return ok();
}

result<append_result> partition_log::append(model::record_batch& batch) {
    RUNNEL_TRY(usable_for_append());
    if (batch.size_bytes() > _config.max_batch_bytes) {
        return errc::batch_too_large;
    }
    {
        auto& active = *_segments.back();
        const bool full = active.size + batch.size_bytes() > _config.segment_bytes;
        const bool old = model::processing_now() - active.created >= _config.segment_age.count();
        // Offsets inside a segment are 32-bit relative to its base.
        const bool offsets_exhausted
          = (_next_offset - active.base) + batch.header().last_offset_delta > INT32_MAX;
        if (active.size > 0 && (full || old || offsets_exhausted)) {
            RUNNEL_TRY(roll());
        }
    }
    auto& active = *_segments.back();
    batch.set_base_offset(_next_offset);
    const uint64_t pos = active.size;
    auto w = fail_point::take("storage.write")
               // A short write, then the error the disk gave: what ENOSPC looks like.
               ? active.file->pwrite(batch.bytes().first(batch.size_bytes() / 2), pos).has_value()
                   ? result<void>(std::error_code(ENOSPC, std::system_category()))
                   : result<void>(std::error_code(EIO, std::system_category()))
               : active.file->pwrite(batch.bytes(), pos);
    if (!w) {
        // Undo a partial write (ENOSPC, EIO) so the segment still ends on a batch boundary.
        (void)active.file->truncate(pos);
        lg().error("{}: append failed: {}", _dir.string(), w.error().message());
        const bool no_space = w.error() == std::errc::no_space_on_device;
        fault_counters::get().append_failures.with({no_space ? "no_space" : "io_error"}).inc();
        if (no_space) {
            fault_counters::get().disk_full.inc();
        }
        return w.error();
    }
    active.on_batch(batch.header(), pos);
    _next_offset = active.next_offset;
    return append_result{batch.header().base_offset, batch.header().last_offset()};
}

void partition_log::flush(done_fn done) {
    if (_failed) {
        _owner.post([done = std::move(done)] { done(errc::log_failed); });
        return;
    }
    if (_next_offset <= _flushed && _unsynced.empty() && _dir_changes == _dir_synced) {
        _owner.post([done = std::move(done)] { done(ok()); });
        return;
    }
    _waiters.push_back({_next_offset, std::move(done)});
    if (!_flush_in_flight) {
        start_flush();
    }
}

void partition_log::start_flush() {
    _flush_in_flight = true;
    const model::offset target = _next_offset;
    // `_unsynced` and the directory stay marked until the sync succeeds; a refused or failed
    // job leaves them for the next one.
    auto files = _unsynced;
    files.push_back(_segments.back()->file);
    const std::size_t covered_files = _unsynced.size();
    const uint64_t dir_generation = _dir_changes;
    const bool dir_changed = _dir_changes > _dir_synced;

    auto work = [files = std::move(files), dir_changed, dir = _dir, rp = recovery_point_path(),
                 target]() -> result<void> {
        for (const auto& f : files) {
            if (fail_point::take("storage.fsync")) {
                return std::error_code(EIO, std::system_category());
            }
            RUNNEL_TRY(f->sync());
        }
        if (dir_changed) {
            RUNNEL_TRY(auto d, file_handle::open_directory(dir));
            RUNNEL_TRY(d.sync());
        }
        // Recorded without its own fsync: a lost update only makes the next recovery check more.
        RUNNEL_TRY(auto f, file_handle::open(rp, O_RDWR | O_CREAT));
        return f.pwrite(encode_recovery_point(target).span(), 0);
    };
    auto done = [weak = weak_from_this(), owner = &_owner, target, covered_files, dir_generation](result<void> r) {
        owner->post([weak, target, covered_files, dir_generation, r] {
            if (auto self = weak.lock()) {
                if (r) {
                    self->_unsynced.erase(self->_unsynced.begin(),
                                          self->_unsynced.begin() + static_cast<long>(covered_files));
                    self->_dir_synced = std::max(self->_dir_synced, dir_generation);
                }
                self->on_flushed(target, r);
            }
        });
    };
    _flusher.submit(std::move(work), std::move(done));
}

void partition_log::on_flushed(model::offset target, result<void> r) {
    _flush_in_flight = false;
    std::vector<waiter> ready;
    if (!r) {
        if (r.error() != std::errc::resource_unavailable_try_again) {
            // After a failed fsync the kernel may have dropped the dirty pages: nothing written
            // since the last good sync can be trusted, so the log stops taking writes.
            _failed = r.error();
            fault_counters::get().fsync_failures.inc();
            lg().critical("{}: fsync failed: {}; the log takes no more writes", _dir.string(),
                          r.error().message());
        }
        ready.assign(std::make_move_iterator(_waiters.begin()), std::make_move_iterator(_waiters.end()));
        _waiters.clear();
        for (auto& w : ready) {
            w.done(_failed ? result<void>(errc::log_failed) : r);
        }
        return;
    }
    _flushed = std::max(_flushed, target);
    while (!_waiters.empty() && _waiters.front().target <= _flushed) {
        ready.push_back(std::move(_waiters.front()));
        _waiters.pop_front();
    }
    // Callbacks often append and flush again at once; holding the in-flight flag while they
    // run queues all of them behind one next sync instead of starting a sync for the first.
    _flush_in_flight = true;
    for (auto& w : ready) {
        w.done(ok());
    }
    _flush_in_flight = false;
    if (!_waiters.empty()) {
        start_flush();
    }
}

void partition_log::advance_start(model::offset o, std::function<void(result<model::offset>)> done) {
    if (_closed) {
        _owner.post([done = std::move(done)] { done(errc::closed); });
        return;
    }
    if (o > _next_offset || o < model::offset(0)) {
        _owner.post([done = std::move(done)] { done(errc::offset_out_of_range); });
        return;
    }
    if (o <= start_offset()) {
        // The start only moves once durable, so the current one needs no write.
        _owner.post([done = std::move(done), s = start_offset()] { done(s); });
        return;
    }
    // Writes reach the flusher in order and each carries the highest start asked for so
    // far, so a later, smaller request never writes the file backwards.
    _log_start_requested = std::max(_log_start_requested, o);
    const model::offset target = _log_start_requested;
    _flusher.submit(
      [path = log_start_path(), target]() -> result<void> {
          if (fail_point::take("storage.log_start_write")) {
              return std::error_code(EIO, std::system_category());
          }
          return write_file_atomic(path, encode_offset_file(log_start_magic, target).span());
      },
      [weak = weak_from_this(), owner = &_owner, target, done = std::move(done)](result<void> r) mutable {
          owner->post([weak, target, r, done = std::move(done)] {
              auto self = weak.lock();
              if (!self) {
                  done(errc::closed);
                  return;
              }
              if (!r) {
                  lg().error("{}: recording the log start {} failed: {}", self->_dir.string(), target,
                             r.error().message());
                  done(r.error());
                  return;
              }
              if (target > self->_log_start) {
                  self->_log_start = target;
                  lg().info("{}: log start moved to {}", self->_dir.string(), target);
                  self->remove_segments_before(target);
              }
              done(self->start_offset());
          });
      });
}

void partition_log::close(done_fn done) {
    _closed = true;
    flush([weak = weak_from_this(), done = std::move(done)](result<void> r) mutable {
        auto self = weak.lock();
        if (!r || !self) {
            done(r);
            return;
        }
        // Make the durable point itself durable, so the next open checks only the tail.
        self->_flusher.submit(
          [rp = self->recovery_point_path()]() -> result<void> {
              RUNNEL_TRY(auto f, file_handle::open(rp, O_RDWR | O_CREAT));
              return f.sync();
          },
          [owner = &self->_owner, done = std::move(done)](result<void> r2) mutable {
              owner->post([done = std::move(done), r2] { done(r2); });
          });
    });
}

void partition_log::unlink_and_sync_directory(std::vector<std::filesystem::path> doomed, std::string what) {
    _flusher.submit(
      [doomed = std::move(doomed), dir = _dir]() -> result<void> {
          for (const auto& p : doomed) {
              if (::unlink(p.c_str()) != 0 && errno != ENOENT) {
                  return last_system_error();
              }
          }
          RUNNEL_TRY(auto d, file_handle::open_directory(dir));
          return d.sync();
      },
      [path = _dir.string(), what = std::move(what)](result<void> r) {
          if (!r) {
              lg().error("{}: {} failed: {}", path, what, r.error().message());
          }
      });
}

partition_log::segment_list::const_iterator partition_log::segment_for(model::offset o) const noexcept {
    auto it = std::upper_bound(_segments.begin(), _segments.end(), o,
                               [](model::offset v, const auto& s) { return v < s->base; });
    return it == _segments.begin() ? it : std::prev(it);
}

void partition_log::mark_corrupt(const segment& seg, uint64_t position, model::offset o, std::string reason) {
    if (_corrupt_from && *_corrupt_from <= o) {
        return;
    }
    if (!_corrupt_from) {
        fault_counters::get().corrupt.inc();
    }
    _corrupt_from = o;
    lg().error("{}: corrupt batch at segment {} position {} (offset {}): {}; the partition serves "
               "nothing at or past offset {} and takes no appends",
               _dir.string(), seg.base, position, o, reason, o);
}

result<read_result> partition_log::read(model::offset start, std::size_t max_bytes, std::optional<model::offset> upto,
                                        bool at_least_one) {
    if (start < start_offset() || start > _next_offset) {
        return errc::offset_out_of_range;
    }
    if (_corrupt_from && start >= *_corrupt_from) {
        return errc::corrupt_data;
    }
    model::offset limit = upto ? std::min(*upto, _next_offset) : _next_offset;
    if (_corrupt_from) {
        limit = std::min(limit, *_corrupt_from);
    }
    read_result out;
    out.log_end = _next_offset;
    out.next_offset = start;
    if (start >= limit || (max_bytes == 0 && !at_least_one)) {
        return out;
    }

    std::vector<std::byte> bytes;
    const auto first = segment_for(start);
    const std::size_t chunk = std::clamp<std::size_t>(max_bytes, 64u << 10, 4u << 20);
    bool full = false;
    for (auto it = first; it != _segments.end() && !full; ++it) {
        const segment& seg = **it;
        auto [pos, expected] = it == first ? seg.index.position_for_offset(start)
                                           : std::pair<uint32_t, model::offset>{0, seg.base};
        auto file = file_of(seg);
        if (!file) {
            if (out.batches == 0) {
                return file.error();
            }
            break;
        }
        batch_scanner sc(*file.value(), pos, seg.size, chunk);
        for (;;) {
            auto r = sc.next(true);
            if (!r) {
                mark_corrupt(seg, sc.position(), expected, r.error().message());
                if (out.batches == 0) {
                    return errc::corrupt_data;
                }
                full = true;
                break;
            }
            if (!r.value()) {
                break;
            }
            const auto& item = *r.value();
            if (item.header.base_offset != expected && !gap_allowed(expected, item.header.base_offset)) {
                mark_corrupt(seg, item.position, expected,
                             fmt::format("batch base offset {} where {} was expected",
                                         item.header.base_offset, expected));
                if (out.batches == 0) {
                    return errc::corrupt_data;
                }
                break;
            }
            expected = item.header.next_offset();
            if (item.header.last_offset() < start) {
                continue;
            }
            if (item.header.base_offset >= limit
                || ((out.batches > 0 || !at_least_one) && bytes.size() + item.bytes.size() > max_bytes)) {
                full = true;
                break;
            }
            if (bytes.empty()) {
                bytes.reserve(std::max(item.bytes.size(), std::min<std::size_t>(max_bytes, 8u << 20)));
            }
            bytes.insert(bytes.end(), item.bytes.begin(), item.bytes.end());
            ++out.batches;
            out.next_offset = item.header.next_offset();
            if (bytes.size() >= max_bytes) {
                full = true;
                break;
            }
        }
    }
    out.bytes = byte_buffer::copy_of(bytes);
    return out;
}

result<std::optional<partition_log::time_match>> partition_log::timequery(model::event_time t) {
    using found = std::optional<time_match>;
    const model::offset start = start_offset(); // records before it are gone
    for (const auto& segp : _segments) {
        const segment& seg = *segp;
        if (seg.max_timestamp < t || seg.next_offset <= start) {
            continue;
        }
        RUNNEL_TRY(auto file, file_of(seg));
        batch_scanner sc(*file, seg.index.position_for_timestamp(t), seg.size, 64u << 10);
        model::offset expected = seg.base;
        for (;;) {
            auto r = sc.next(true);
            if (!r) {
                mark_corrupt(seg, sc.position(), expected, r.error().message());
                return errc::corrupt_data;
            }
            if (!r.value()) {
                break;
            }
            const auto& item = *r.value();
            expected = item.header.next_offset();
            if (item.header.max_timestamp < t || item.header.last_offset() < start) {
                continue;
            }
            if (_corrupt_from && item.header.base_offset >= *_corrupt_from) {
                return errc::corrupt_data;
            }
            if (item.header.log_append_time()) {
                return found(time_match{std::max(item.header.base_offset, start), item.header.max_timestamp});
            }
            std::vector<std::byte> inflated;
            std::string why;
            auto plain = model::uncompressed_batch(item.bytes, item.header, model::max_inflated_bytes, inflated, why);
            if (!plain) {
                // Stored before produce validated compressed bodies: the batch as a whole.
                return found(time_match{std::max(item.header.base_offset, start), item.header.max_timestamp});
            }
            RUNNEL_TRY(auto recs, model::decode_records(*plain));
            for (const auto& rec : recs) {
                if (rec.timestamp >= t && rec.offset_value >= start) {
                    return found(time_match{rec.offset_value, rec.timestamp});
                }
            }
            // Only reached when the header's max timestamp disagrees with its records: go on.
        }
    }
    return found{};
}

model::event_time partition_log::max_timestamp() const noexcept {
    auto out = model::event_time::min();
    const model::offset start = start_offset();
    for (const auto& seg : _segments) {
        if (seg->next_offset > start) {
            out = std::max(out, seg->max_timestamp);
        }
    }
    return out;
}

retention_report partition_log::apply_retention(model::processing_time now) {
    std::size_t keep_from = 0; // segments before this index go
    if (_config.retention_ms >= 0) {
        // As in Kafka, retention compares record timestamps with this machine's clock.
        const model::event_time cutoff(now() - _config.retention_ms);
        while (keep_from + 1 < _segments.size() && _segments[keep_from]->max_timestamp < cutoff) {
            ++keep_from;
        }
    }
    if (_config.retention_bytes >= 0) {
        uint64_t total = size_bytes();
        for (std::size_t i = 0; i < keep_from; ++i) {
            total -= _segments[i]->size;
        }
        while (keep_from + 1 < _segments.size()
               && total - _segments[keep_from]->size >= static_cast<uint64_t>(_config.retention_bytes)) {
            total -= _segments[keep_from]->size;
            ++keep_from;
        }
    }
    return remove_front_segments(keep_from, "retention");
}

retention_report partition_log::remove_segments_before(model::offset o) {
    std::size_t keep_from = 0;
    while (keep_from + 1 < _segments.size() && _segments[keep_from + 1]->base <= o) {
        ++keep_from;
    }
    return remove_front_segments(keep_from, "prefix removal");
}

retention_report partition_log::remove_front_segments(std::size_t count, std::string_view why) {
    retention_report report;
    std::vector<std::filesystem::path> doomed;
    for (std::size_t i = 0; i < count; ++i) {
        auto& seg = *_segments.front();
        report.bytes_removed += seg.size;
        ++report.segments_removed;
        doomed.push_back(seg.path);
        if (_files) {
            _files->forget(seg.path);
        }
        doomed.push_back(seg.index_path());
        doomed.push_back(seg.time_index_path());
        _segments.pop_front();
    }
    report.start_offset = start_offset();
    if (_corrupt_from && *_corrupt_from < report.start_offset) {
        lg().warn("{}: {} removed the corrupt batch at offset {}", _dir.string(), why, *_corrupt_from);
        _corrupt_from.reset();
    }
    if (!doomed.empty()) {
        lg().info("{}: {} removed {} segments ({} bytes); log starts at {}", _dir.string(), why,
                  report.segments_removed, report.bytes_removed, report.start_offset);
        unlink_and_sync_directory(std::move(doomed), "removing old segments");
    }
    return report;
}

// ---- compaction: planning and the swap of cleaned segments (the cleaning is in compactor.cc)

void partition_log::settle_cleaned_files(const std::vector<std::filesystem::path>& leftovers) {
    std::error_code ec;
    auto segment_log = [](const std::filesystem::path& p) {
        auto log = p;
        log.replace_extension(); // drop ".cleaned"
        return log.replace_extension(".log");
    };
    // A `.log.cleaned` still there was never renamed: the swap had not begun. Roll back.
    for (const auto& p : leftovers) {
        if (p.filename().string().ends_with(".log.cleaned")) {
            lg().warn("{}: rolling back an unfinished cleaning of segment {}", _dir.string(),
                      segment_log(p).filename().string());
            for (auto ext : {".log", ".index", ".timeindex"}) {
                std::filesystem::remove(cleaned_path(segment_log(p), ext), ec);
            }
        }
    }
    // Index files whose `.log.cleaned` is gone belong to the renamed segment: finish the swap.
    for (const auto& p : leftovers) {
        if (!std::filesystem::exists(p, ec)) {
            continue;
        }
        auto target = p;
        target.replace_extension(); // "<base>.index" or "<base>.timeindex"
        if (std::filesystem::exists(segment_log(p), ec)) {
            lg().warn("{}: finishing the swap of cleaned segment {}", _dir.string(), target.filename().string());
            std::filesystem::rename(p, target, ec);
        } else {
            std::filesystem::remove(p, ec);
        }
    }
    if (!leftovers.empty()) {
        ++_dir_changes;
    }
}

void partition_log::roll_if_due(model::processing_time now) {
    if (_closed || _failed || _corrupt_from) {
        return;
    }
    const auto& active = *_segments.back();
    if (active.size == 0) {
        return;
    }
    const int64_t age = now() - active.created();
    const bool lagging = _config.compact && age >= _config.max_compaction_lag_ms;
    if (age >= _config.segment_age.count() || lagging) {
        if (auto r = roll(); !r) {
            lg().warn("{}: rolling the active segment by time failed: {}", _dir.string(), r.error().message());
        }
    }
}

std::optional<compaction_job> partition_log::plan_compaction(model::processing_time now) {
    if (!_config.compact || _cleaning || _closed || _failed || _corrupt_from || _segments.size() < 2
        || now < _cleaner_retry_at) {
        return std::nullopt;
    }
    compaction_job job;
    job.dir = _dir;
    job.first_dirty = _cleaned_upto;
    job.index_interval_bytes = _config.index_interval_bytes;
    job.delete_retention_ms = _config.delete_retention_ms;
    job.now = now;
    uint64_t clean = 0;
    uint64_t dirty = 0;
    bool overdue = false;
    for (std::size_t i = 0; i + 1 < _segments.size(); ++i) { // never the active segment
        const auto& seg = *_segments[i];
        const bool below = seg.next_offset <= _cleaned_upto;
        if (!below) {
            if (seg.max_timestamp() > now() - _config.min_compaction_lag_ms) {
                break; // too young (min.compaction.lag.ms); so is what follows, mostly
            }
            dirty += seg.size;
            overdue = overdue || seg.max_timestamp() <= now() - _config.max_compaction_lag_ms;
        } else {
            clean += seg.size;
        }
        job.segments.push_back({seg.base, seg.path, seg.size, seg.next_offset, seg.max_timestamp, below});
    }
    const bool tombstones = _tombstones_due && now >= *_tombstones_due && clean > 0;
    const double ratio = dirty == 0 ? 0.0 : static_cast<double>(dirty) / static_cast<double>(clean + dirty);
    if (!tombstones && (dirty == 0 || (ratio < _config.min_cleanable_dirty_ratio && !overdue))) {
        return std::nullopt;
    }
    _cleaning = true;
    return job;
}

void partition_log::install_compaction(result<compaction_outcome> r) {
    _cleaning = false;
    if (_closed) {
        return; // the `.cleaned` files are settled at the next open
    }
    if (!r) {
        // Looked at again later; the log is as it was (leftover files are overwritten next time).
        if (!stale_or_stopped(r.error())) {
            _cleaner_retry_at = model::processing_time(model::processing_now()() + 30'000);
        }
        return;
    }
    auto& out = r.value();
    // The checkpoint is on disk already: gaps below it are expected from now on.
    _cleaned_upto = std::max(_cleaned_upto, out.cleaned_upto);
    _tombstones_due = out.tombstones_due;
    std::vector<std::filesystem::path> doomed; // unlinked on the flusher thread
    std::size_t swapped = 0;
    bool good = true;
    auto fail = [&](std::string_view step, std::error_code ec) {
        lg().error("{}: swapping in a cleaned segment failed at {}: {}", _dir.string(), step, ec.message());
        good = false;
    };
    for (auto& cs : out.segments) {
        auto it = segment_for(cs.base);
        const bool present = it != _segments.end() && (*it)->base == cs.base && std::next(it) != _segments.end()
                             && (*it)->size == cs.old_size;
        if (!present || cs.new_size == 0) {
            // Removed or changed meanwhile (retention, DeleteRecords): this result is stale.
            for (auto ext : {".log", ".index", ".timeindex"}) {
                doomed.push_back(cleaned_path(_dir / segment_name(cs.base, log_suffix), ext));
            }
            continue;
        }
        segment& seg = **it;
        // Renames and unlinks touch only metadata: the data was synced by the cleaner.
        std::error_code ec;
        std::filesystem::remove(seg.index_path(), ec);
        std::filesystem::remove(seg.time_index_path(), ec);
        if (fail_point::take("cleaner.swap_before_log_rename")) {
            fail("renaming the cleaned segment", std::make_error_code(std::errc::io_error));
            break;
        }
        std::filesystem::rename(cleaned_path(seg.path, ".log"), seg.path, ec);
        if (ec) {
            fail("renaming the cleaned segment", ec);
            break;
        }
        seg.size = cs.new_size;
        seg.index = std::move(cs.index);
        if (_files) {
            _files->forget(seg.path);
        } else {
            auto f = file_handle::open(seg.path, O_RDONLY);
            if (!f) {
                fail("reopening the cleaned segment", f.error());
                break;
            }
            seg.file = std::make_shared<file_handle>(std::move(f).value());
        }
        ++swapped;
        if (fail_point::take("cleaner.swap_after_log_rename")) {
            fail("renaming the cleaned indexes", std::make_error_code(std::errc::io_error));
            break;
        }
        std::filesystem::rename(cleaned_path(seg.path, ".index"), seg.index_path(), ec);
        if (!ec) {
            std::filesystem::rename(cleaned_path(seg.path, ".timeindex"), seg.time_index_path(), ec);
        }
        if (ec) {
            // The segment stands; its index is rebuilt by scanning at the next open.
            lg().warn("{}: renaming the index of cleaned segment {}: {}", _dir.string(), seg.base, ec.message());
        }
    }
    if (_corrupt_from && *_corrupt_from < start_offset()) {
        _corrupt_from.reset();
    }
    ++_dir_changes;
    count_swap(good, swapped);
    if (good) {
        lg().info("{}: cleaned {} segments up to offset {} ({} bytes read, {} written, {} records and {} "
                  "tombstones removed)",
                  _dir.string(), swapped, out.cleaned_upto, out.bytes_read, out.bytes_written, out.records_removed,
                  out.tombstones_removed);
    } else {
        _cleaner_retry_at = model::processing_time(model::processing_now()() + 30'000);
    }
    unlink_and_sync_directory(std::move(doomed), "syncing the directory after a cleaning");
}

} // namespace runnel::storage
