#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>

namespace runnel {

/// Runs posted tasks, in order, on the thread that owns it.
///
/// This is the seam between the shards (Asio event loops, in `net`) and modules that must not
/// depend on Asio (`storage`): work done on a helper thread (an fsync) is handed back to its
/// owning shard by posting to that shard's executor. `post` is thread-safe.
class executor {
public:
    virtual ~executor() = default;
    virtual void post(std::function<void()> task) = 0;
};

/// An executor run by hand: tests and tools call `run_until` on the owning thread.
class manual_executor final : public executor {
public:
    void post(std::function<void()> task) override {
        {
            std::lock_guard lock(_mu);
            _tasks.push_back(std::move(task));
        }
        _cv.notify_one();
    }

    /// Runs tasks (waiting for them as they arrive) until `done()` holds; false if `timeout`
    /// passes first.
    template <typename Pred>
    bool run_until(Pred done, std::chrono::milliseconds timeout = std::chrono::seconds(60)) {
        auto deadline = std::chrono::steady_clock::now() + timeout;
        while (!done()) {
            std::function<void()> task;
            {
                std::unique_lock lock(_mu);
                if (!_cv.wait_until(lock, deadline, [this] { return !_tasks.empty(); })) {
                    return false;
                }
                task = std::move(_tasks.front());
                _tasks.pop_front();
            }
            task();
        }
        return true;
    }

    /// Runs whatever is queued now, without waiting; returns how many tasks ran.
    std::size_t poll() {
        std::size_t n = 0;
        for (;;) {
            std::function<void()> task;
            {
                std::lock_guard lock(_mu);
                if (_tasks.empty()) {
                    return n;
                }
                task = std::move(_tasks.front());
                _tasks.pop_front();
            }
            task();
            ++n;
        }
    }

private:
    std::mutex _mu;
    std::condition_variable _cv;
    std::deque<std::function<void()>> _tasks;
};

} // namespace runnel
