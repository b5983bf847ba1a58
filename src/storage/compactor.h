#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "base/base.h"
#include "model/model.h"
#include "storage/index.h"

namespace runnel::storage {

class partition_log;

/// A sealed segment as the cleaner sees it: a snapshot taken on the log's shard when the
/// cleaning was planned. Sealed segment files never change in place, so the cleaner thread
/// may read them; the swap checks that the segment is still there, unchanged.
struct cleanable_segment {
    model::offset base;
    std::filesystem::path path;
    uint64_t size = 0;
    model::offset next_offset;
    model::event_time max_timestamp = model::event_time::min();
    bool cleaned_before = false; ///< wholly below the log's cleaned point when planned
};

/// One cleaning of one log, planned on its shard (`partition_log::plan_compaction`) and run on
/// the cleaner thread (`compact_segments`). The offset map is built over the dirty segments
/// (from `first_dirty`); every segment listed is rewritten against it.
struct compaction_job {
    std::filesystem::path dir;
    std::vector<cleanable_segment> segments; ///< from the log start to the end of the cleanable range
    model::offset first_dirty;               ///< the log's cleaned point when planned
    uint32_t index_interval_bytes = 4096;
    int64_t delete_retention_ms = 86'400'000;
    model::processing_time now;
};

/// A rewritten segment waiting to be swapped in: `<base>.log.cleaned` with its
/// `.index.cleaned` and `.timeindex.cleaned`, all synced. A segment keeps its last batch
/// (empty if nothing of it is kept), so it never becomes empty.
struct cleaned_segment {
    model::offset base;
    uint64_t old_size = 0;
    uint64_t new_size = 0;
    segment_index index{model::offset(0), 4096};
    segment_summary summary;
};

/// What a cleaning did, for the swap and the metrics.
struct compaction_outcome {
    std::vector<cleaned_segment> segments; ///< only the segments that changed, oldest first
    model::offset cleaned_upto;            ///< the new cleaned point (end of the offset map)
    uint64_t bytes_read = 0;
    uint64_t bytes_written = 0;
    uint64_t records_removed = 0;
    uint64_t tombstones_removed = 0;
    /// When the oldest tombstone kept becomes removable (delete.retention.ms after its
    /// segment was first cleaned); nullopt if none is kept.
    std::optional<model::processing_time> tombstones_due;
};

/// Bounds of the cleaner: `--log-cleaner-dedupe-buffer-bytes`, `--log-cleaner-io-max-bytes-per-second`.
struct cleaner_limits {
    uint64_t dedupe_buffer_bytes = 128ull << 20;
    uint64_t io_bytes_per_second = 64ull << 20;
};

/// Names of the temporary files of a cleaned segment, beside its `.log`.
std::filesystem::path cleaned_path(const std::filesystem::path& segment_log, std::string_view ext);

/// Cleans the segments of `job`: builds the offset map (key → latest offset) over the dirty
/// segments within `limits.dedupe_buffer_bytes`, then rewrites each segment keeping, per key,
/// only the record at the map's offset or later; tombstones (null values) go once their
/// segment was cleaned more than delete.retention.ms ago, keyless records go as in Kafka,
/// control batches stay. A batch keeps its base offset, last offset delta, timestamps,
/// producer id, epoch and base sequence and its codec (a compressed one is inflated, filtered
/// and compressed again); a batch left empty is dropped, so offsets have gaps, except the
/// last of a segment, which stays as an empty batch so the segment still ends where it did. Each changed
/// segment is written to its `.cleaned` files and synced, then the new cleaned point is
/// recorded (`cleaner_checkpoint`, before any swap, so recovery knows gaps below it are
/// meant). Blocking: runs on the cleaner thread, reading and writing at most
/// `limits.io_bytes_per_second`; stops early with `operation_canceled` once `stop` is set.
result<compaction_outcome> compact_segments(const compaction_job& job, const cleaner_limits& limits,
                                            const std::atomic<bool>* stop = nullptr);

/// The cleaned point recorded in `dir/cleaner_checkpoint` by an earlier cleaning, if any.
std::optional<model::offset> read_cleaner_checkpoint(const std::filesystem::path& dir);
/// A cleaning that ended because a segment went meanwhile (retention, DeleteRecords) or the
/// cleaner stopped: not counted or logged as an error.
bool stale_or_stopped(const std::error_code& ec) noexcept;
/// Counts a cleaning's outcome and a swap's in `/metrics` (the cleaner and the log call them).
void count_cleaning(const result<compaction_outcome>& r, double seconds);
void count_swap(bool ok, std::size_t segments);

/// The background log cleaner: one thread that compacts the logs of topics whose
/// cleanup.policy holds `compact`, off the event loops.
///
/// A shard calls `schedule(log, owner)` for its compacted logs (every second from serve);
/// a log due for cleaning (`partition_log::plan_compaction`) is queued, cleaned on the
/// cleaner thread, and its result posted back to `owner`, where `install_compaction` swaps
/// the segments in. Appends, reads and flushes go on meanwhile. At most one cleaning per log
/// is queued or running; the queue is bounded by the number of compacted logs. The
/// destructor stops a running cleaning at its next batch and joins; queued ones are dropped.
class log_cleaner {
public:
    explicit log_cleaner(cleaner_limits limits);
    ~log_cleaner();
    log_cleaner(const log_cleaner&) = delete;
    log_cleaner& operator=(const log_cleaner&) = delete;

    /// Queues a cleaning of `log` if it is due. Call on the thread that owns `log`.
    void schedule(const std::shared_ptr<partition_log>& log, executor& owner, model::processing_time now);

    /// Cleanings finished so far, successful or not (for tests). Thread-safe.
    uint64_t completed() const noexcept { return _completed.load(); }

    const cleaner_limits& limits() const noexcept { return _limits; }

private:
    void run();

    struct job {
        compaction_job work;
        std::weak_ptr<partition_log> log;
        executor* owner;
    };
    cleaner_limits _limits;
    std::mutex _mu;
    std::condition_variable _cv;
    std::deque<job> _jobs;
    std::atomic<bool> _stopping{false};
    std::atomic<uint64_t> _completed{0};
    std::thread _thread;
};

} // namespace runnel::storage
