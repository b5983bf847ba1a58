#include "storage/flusher.h"

#include <pthread.h>

namespace runnel::storage {

flusher::flusher(std::string name, std::size_t max_queued)
  : _name(std::move(name))
  , _max_queued(max_queued)
  , _thread([this] { run(); }) {}

flusher::~flusher() {
    {
        std::lock_guard lock(_mu);
        _stopping = true;
    }
    _cv.notify_one();
    _thread.join();
}

void flusher::submit(work_fn work, done_fn done) {
    {
        std::lock_guard lock(_mu);
        if (_jobs.size() < _max_queued && !_stopping) {
            _jobs.push_back({std::move(work), std::move(done)});
            _cv.notify_one();
            return;
        }
    }
    done(std::make_error_code(std::errc::resource_unavailable_try_again));
}

uint64_t flusher::completed() const noexcept {
    std::lock_guard lock(_mu);
    return _completed;
}

void flusher::run() {
    ::pthread_setname_np(::pthread_self(), _name.substr(0, 15).c_str());
    for (;;) {
        job j;
        {
            std::unique_lock lock(_mu);
            _cv.wait(lock, [this] { return _stopping || !_jobs.empty(); });
            if (_jobs.empty()) {
                return;
            }
            j = std::move(_jobs.front());
            _jobs.pop_front();
        }
        auto r = j.work();
        {
            std::lock_guard lock(_mu);
            ++_completed; // counted before `done`, so whoever it wakes sees it
        }
        j.done(std::move(r));
    }
}

} // namespace runnel::storage
