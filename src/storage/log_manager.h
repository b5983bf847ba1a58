#pragma once

#include <filesystem>
#include <map>
#include <memory>
#include <vector>

#include "model/model.h"
#include "storage/partition_log.h"

namespace runnel::storage {

/// The partition logs one shard owns, under `<root>/<topic>/<partition>/`.
///
/// Owned by one shard and used only on its thread, like the logs it holds.
class log_manager {
public:
    /// `max_open_segment_files`: the most sealed segment files this shard keeps open at once
    /// (its logs share one `file_cache`); 0 keeps every segment open.
    log_manager(std::filesystem::path root, executor& owner, flusher& flush_thread,
                std::size_t max_open_segment_files = 0)
      : _root(std::move(root))
      , _owner(owner)
      , _flusher(flush_thread)
      , _files(max_open_segment_files ? std::make_shared<file_cache>(max_open_segment_files) : nullptr) {}

    std::filesystem::path directory_of(const model::topic_partition& tp) const;

    /// Opens (creating if needed) the log of `tp`; opening an open one returns it.
    result<std::shared_ptr<partition_log>> open(const model::topic_partition& tp, log_config config);

    std::shared_ptr<partition_log> get(const model::topic_partition& tp) const;

    /// Forgets the log of `tp` (its directory is left for the caller to remove). In-flight
    /// work holding the log finishes against it.
    void remove(const model::topic_partition& tp) { _logs.erase(tp); }
    std::size_t size() const noexcept { return _logs.size(); }

    /// Applies retention to every log; returns the number of segments removed.
    std::size_t apply_retention(model::processing_time now);
    /// Rolls every active segment past its age, and queues the compacted logs due for
    /// cleaning on `cleaner`.
    void schedule_cleaning(log_cleaner& cleaner, model::processing_time now);

    /// Closes every log (flushing it); `done` gets the first error, if any, once all are closed.
    void close_all(std::function<void(result<void>)> done);

private:
    std::filesystem::path _root;
    executor& _owner;
    flusher& _flusher;
    std::shared_ptr<file_cache> _files;
    std::map<model::topic_partition, std::shared_ptr<partition_log>> _logs;
};

} // namespace runnel::storage
