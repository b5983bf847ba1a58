#pragma once

#include <deque>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/base.h"
#include "model/model.h"
#include "storage/compactor.h"
#include "storage/errc.h"
#include "storage/file_cache.h"
#include "storage/flusher.h"
#include "storage/index.h"
#include "storage/log_config.h"

namespace runnel::storage {

/// What opening a log found and did. Anything but a clean open is also logged.
struct recovery_report {
    std::size_t segments = 0;
    std::size_t segments_scanned = 0; ///< segments whose every batch was checked
    std::size_t batches_checked = 0;
    std::size_t indexes_rebuilt = 0;

    /// The log ended in bytes that are not a whole valid batch, past what was known durable:
    /// an interrupted write. They were cut off.
    struct torn_tail {
        model::offset segment;       ///< base offset of the segment that was cut
        uint64_t position = 0;       ///< byte position of the cut in that segment
        uint64_t bytes_dropped = 0;  ///< in that segment and any later ones removed
        std::size_t segments_removed = 0;
        model::offset first_offset_dropped;
        std::optional<model::offset> last_offset_dropped; ///< when the torn header was legible
        std::string reason;
    };
    std::optional<torn_tail> torn;

    /// A batch inside data that was durable (or inside a sealed segment) failed its checks.
    /// Nothing at or past it is served and the log refuses appends; see docs/operations.md.
    struct corruption {
        model::offset segment;
        uint64_t position = 0;
        model::offset offset; ///< the offset the bad batch should have started at
        std::string reason;
    };
    std::optional<corruption> corrupt;

    /// The durable point recorded before the crash lies past the data found: acknowledged
    /// data is missing (the files were cut or replaced from outside).
    std::optional<model::offset> durable_data_missing_from;
};

struct append_result {
    model::offset base;
    model::offset last;
};

struct read_result {
    byte_buffer bytes;           ///< whole batches, exactly as appended
    std::size_t batches = 0;
    model::offset next_offset;   ///< the offset to read from next
    model::offset log_end;       ///< the log's next offset when the read ran
};

struct retention_report {
    std::size_t segments_removed = 0;
    uint64_t bytes_removed = 0;
    model::offset start_offset; ///< the log's first offset afterwards
};

/// An append-only sequence of Kafka RecordBatch v2 batches for one partition, in a directory
/// of segments named by base offset (`00000000000000000000.log` with `.index` and
/// `.timeindex`). Batches are stored byte for byte as given; the log only stamps the base
/// offset, which the CRC does not cover. An open log holds one descriptor for its active
/// segment; sealed segments are opened through a shared `file_cache` when one is given.
///
/// Owned by exactly one shard: every method must be called on the thread that runs
/// `executor`. `append` returns once the batch is in the page cache; `flush` calls back (on
/// that thread) once everything appended before it is on disk, and concurrent callers share
/// one fdatasync (group commit), which runs on `flusher`'s thread. `executor` and `flusher`
/// must outlive the log. Destroying the log without `close` is what a crash looks like: the
/// page cache keeps what was written, nothing more is synced, pending flush callbacks are
/// dropped.
class partition_log : public std::enable_shared_from_this<partition_log> {
public:
    using done_fn = std::function<void(result<void>)>;

    /// Opens (or creates) the log in `dir`, checking every batch written since the last
    /// durable point, cutting a torn tail and rebuilding indexes that are missing or stale.
    /// Blocking: call at start-up, before the shard serves requests. With `files`, sealed
    /// segments hold no descriptor and are opened through that cache when read; without,
    /// every segment stays open.
    static result<std::shared_ptr<partition_log>> open(
      std::filesystem::path dir, log_config config, executor& owner, flusher& flush_thread,
      std::shared_ptr<file_cache> files = nullptr);

    partition_log(const partition_log&) = delete;
    partition_log& operator=(const partition_log&) = delete;
    ~partition_log();

    /// Assigns offsets to `batch` (stamping its base offset) and writes it to the page cache.
    result<append_result> append(model::record_batch& batch);

    /// Calls `done` once everything appended before this call is durable.
    void flush(done_fn done);

    /// Whole batches from the one containing `start`, up to `max_bytes` (with `at_least_one`,
    /// at least one batch when any exists, as Kafka fetch does for the first partition of a
    /// response; without it, never more than `max_bytes`), stopping before any batch that
    /// starts at or past `upto`. Every batch served is CRC-checked; a bad one marks the log
    /// corrupt.
    result<read_result> read(model::offset start, std::size_t max_bytes,
                             std::optional<model::offset> upto = std::nullopt, bool at_least_one = true);

    /// A record found by `timequery`: its offset and its own timestamp.
    struct time_match {
        model::offset offset;
        model::event_time timestamp;
        bool operator==(const time_match&) const = default;
    };
    /// The first record (by offset) whose timestamp is >= `t`, with that timestamp, or nullopt
    /// if none, as Kafka's ListOffsets answers. Records inside compressed batches are inflated
    /// and walked; a batch with log-append time stamps every record with its max timestamp.
    result<std::optional<time_match>> timequery(model::event_time t);
    /// The largest timestamp of the batches served (segments wholly before the start are left
    /// out; records of a segment's first batches below the start may still count), or
    /// `event_time::min()` for an empty log.
    model::event_time max_timestamp() const noexcept;

    /// Deletes whole sealed segments past retention.ms or retention.bytes (never the active
    /// one). Files are removed on the flusher thread.
    retention_report apply_retention(model::processing_time now);

    /// Deletes the whole sealed segments that hold only offsets before `o` (the owner of a
    /// compacted topic, after rewriting their live records past `o`).
    retention_report remove_segments_before(model::offset o);

    /// Moves the log's start to `o` (Kafka's DeleteRecords): records before it are never
    /// served again. The new start is written to `log_start` in the directory (a temporary
    /// file fsynced and renamed on the flusher thread) and `done` runs on the owner with the
    /// log's start once that is durable; the whole segments below it are then deleted. An `o`
    /// at or before the current start changes nothing; past `next_offset()` it is
    /// `offset_out_of_range`.
    void advance_start(model::offset o, std::function<void(result<model::offset>)> done);

    /// Flushes everything, persists the durable point, and refuses further appends.
    void close(done_fn done);

    // Compaction (`compactor.h`): the log cleaner plans on this shard, cleans on its own
    // thread and swaps the result in here.

    /// Rolls a non-empty active segment older than segment.ms (or, compacted, than
    /// max.compaction.lag.ms), so that data stops being active and can be cleaned.
    void roll_if_due(model::processing_time now);
    /// The cleaning due now, if any (compacted, not being cleaned, enough dirty data or
    /// tombstones due); the log then counts as being cleaned until `install_compaction`.
    std::optional<compaction_job> plan_compaction(model::processing_time now);
    /// Swaps in the segments a cleaning wrote (each one still there unchanged): old index
    /// files go, `<base>.log.cleaned` is renamed over `<base>.log`, then the new indexes.
    /// Ends the cleaning either way.
    void install_compaction(result<compaction_outcome> r);
    /// Offsets below this were cleaned: batches there may have gaps between them.
    model::offset cleaned_upto() const noexcept { return _cleaned_upto; }

    /// Takes new settings (for ALTER of topic configs); they apply from the next append.
    result<void> set_config(const log_config& config);

    /// The first offset served: the first segment's base, or the start recorded by
    /// `advance_start` when that is later.
    model::offset start_offset() const noexcept;
    model::offset next_offset() const noexcept { return _next_offset; }
    /// Everything before this offset is durable.
    model::offset flushed_offset() const noexcept { return _flushed; }
    uint64_t size_bytes() const noexcept;
    std::size_t segment_count() const noexcept { return _segments.size(); }
    /// The first offset of the active (last) segment.
    model::offset active_segment_base() const noexcept;
    const recovery_report& recovery() const noexcept { return _recovery; }
    const std::filesystem::path& directory() const noexcept { return _dir; }
    const log_config& config() const noexcept { return _config; }

    struct segment;

private:
    partition_log(std::filesystem::path dir, log_config config, executor& owner, flusher& f);

    result<void> recover();
    result<void> roll();
    retention_report remove_front_segments(std::size_t count, std::string_view why);
    void start_flush();
    void on_flushed(model::offset target, result<void> r);
    void mark_corrupt(const segment& seg, uint64_t position, model::offset o, std::string reason);
    using segment_list = std::deque<std::unique_ptr<segment>>;
    /// The segment holding `o` (the first one if `o` is before the log).
    segment_list::const_iterator segment_for(model::offset o) const noexcept;
    result<void> usable_for_append() const;
    /// The open file of `seg`: its own when active (or without a cache), else the cache's.
    result<std::shared_ptr<file_handle>> file_of(const segment& seg);
    std::filesystem::path recovery_point_path() const;
    std::filesystem::path log_start_path() const;
    /// A batch at `found` where `expected` was due is a gap the cleaner left, not damage.
    bool gap_allowed(model::offset expected, model::offset found) const noexcept {
        return found > expected && expected < _cleaned_upto;
    }
    /// Unlinks `doomed` (missing files are fine) and syncs the directory, on the flusher thread;
    /// a failure is logged as `what` failing.
    void unlink_and_sync_directory(std::vector<std::filesystem::path> doomed, std::string what);
    /// At open: finishes or rolls back a swap of cleaned segments cut short by a crash.
    void settle_cleaned_files(const std::vector<std::filesystem::path>& leftovers);

    std::filesystem::path _dir;
    log_config _config;
    executor& _owner;
    flusher& _flusher;
    std::shared_ptr<file_cache> _files; ///< sealed segments' descriptors; null: each keeps its own

    segment_list _segments;
    model::offset _next_offset;
    model::offset _flushed;
    std::optional<model::offset> _corrupt_from;
    model::offset _log_start;           ///< durable start from `advance_start` (0: none)
    model::offset _log_start_requested; ///< the highest start asked for, written or being written
    std::optional<std::error_code> _failed;
    bool _closed = false;

    // Group commit: files written since their last sync, waiters by target offset.
    std::vector<std::shared_ptr<file_handle>> _unsynced;
    uint64_t _dir_changes = 0; ///< files created or removed in the directory
    uint64_t _dir_synced = 0;  ///< `_dir_changes` as of the last directory sync
    bool _flush_in_flight = false;
    struct waiter {
        model::offset target;
        done_fn done;
    };
    std::deque<waiter> _waiters;

    recovery_report _recovery;

    // Compaction state (`compactor.h`).
    model::offset _cleaned_upto;                          ///< from `cleaner_checkpoint`
    bool _cleaning = false;                               ///< a cleaning is queued or running
    std::optional<model::processing_time> _tombstones_due; ///< a kept tombstone may go then
    model::processing_time _cleaner_retry_at;            ///< after a failed cleaning
};

} // namespace runnel::storage
