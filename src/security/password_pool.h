#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "base/executor.h"

namespace runnel::security {

/// A few threads that check passwords off the shards' event loops. A SASL/PLAIN password is
/// checked against a SCRAM credential by deriving its PBKDF2 key (4096 or more HMACs: a few
/// milliseconds); on a shard's loop that would stall every connection of the shard, so a burst
/// of logins with wrong passwords would slow the clients that did log in (decision 0025).
///
/// Bounded: at most `max_queued` checks wait or run at once. A caller first asks
/// `try_reserve`; when it says no, the login is refused (and counted in
/// `runnel_sasl_password_checks_refused_total`) instead of queued. The threads run at a lower
/// CPU priority (nice +10) than the shards, so on a busy machine the event loops go first.
///
/// Thread-safe. The constructor starts the threads; the destructor runs what is still queued
/// (each task posts its answer back to a shard, so destroy the pool before the shards), then
/// joins them.
class password_pool final : public executor {
public:
    password_pool(unsigned threads, std::size_t max_queued);
    ~password_pool() override;
    password_pool(const password_pool&) = delete;
    password_pool& operator=(const password_pool&) = delete;

    /// Takes a place for one task; false (counted) when `max_queued` tasks wait or run.
    bool try_reserve();
    /// Runs `task` on a pool thread. Precondition: a `try_reserve` returned true for it.
    void post(std::function<void()> task) override;

    /// Called by a task on a pool thread: gives the task's place back now, when its work is
    /// done and before it posts its answer, instead of when it returns. Otherwise the answer's
    /// receiver (a client told its password was wrong) could try again and be refused for a
    /// place that only this thread, not yet rescheduled at nice +10, still holds.
    void release_current();

    /// Tasks reserved and not yet finished.
    std::size_t pending() const;

private:
    void run();
    void give_back();

    const std::size_t _max_queued;
    mutable std::mutex _mu;
    std::condition_variable _cv;
    std::deque<std::function<void()>> _tasks;
    std::size_t _reserved = 0; ///< reserved and not finished (queued, running, or not yet posted)
    bool _stopping = false;
    std::vector<std::thread> _threads;
};

} // namespace runnel::security
