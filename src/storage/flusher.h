#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

#include "base/base.h"

namespace runnel::storage {

/// A thread that runs blocking disk work (fdatasync, unlink) so event loops never do.
///
/// One per shard. Jobs run in submission order; `done` runs on the flusher thread right after
/// its job, so callers post from it back to their own shard. The queue holds at most
/// `max_queued` jobs (each log has at most one flush and one deletion outstanding, so the
/// limit is only reached by a bug or an absurd number of partitions); past it `done` gets
/// `resource_unavailable_try_again` at once. The destructor runs the jobs already queued,
/// then joins.
class flusher {
public:
    explicit flusher(std::string name = "flusher", std::size_t max_queued = 65536);
    ~flusher();
    flusher(const flusher&) = delete;
    flusher& operator=(const flusher&) = delete;

    using work_fn = std::function<result<void>()>;
    using done_fn = std::function<void(result<void>)>;

    /// Queues `work`. Thread-safe.
    void submit(work_fn work, done_fn done);

    /// Jobs run so far (for tests and metrics).
    uint64_t completed() const noexcept;

private:
    void run();

    struct job {
        work_fn work;
        done_fn done;
    };
    std::string _name;
    std::size_t _max_queued;
    mutable std::mutex _mu;
    std::condition_variable _cv;
    std::deque<job> _jobs;
    bool _stopping = false;
    uint64_t _completed = 0;
    std::thread _thread;
};

} // namespace runnel::storage
