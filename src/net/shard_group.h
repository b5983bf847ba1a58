#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <vector>

#include "base/base.h"

namespace boost::asio {
class io_context;
} // namespace boost::asio

namespace runnel::net {

/// The shards: one event loop (a Boost.Asio `io_context`) per thread, usually one per core.
///
/// Each shard owns its partitions and their state; work for a shard is posted to it and runs
/// on its thread, so the data path needs no locks. Created at start-up by the main thread,
/// which also calls `stop`; `executor_of` and `run_on` may be called from any thread. Asio
/// stays out of this header so that most of the code base compiles without it.
class shard_group {
public:
    /// Starts `count` shard threads (at least one).
    explicit shard_group(unsigned count);
    ~shard_group();
    shard_group(const shard_group&) = delete;
    shard_group& operator=(const shard_group&) = delete;

    unsigned size() const noexcept;

    /// The executor that runs tasks on shard `shard`'s thread.
    executor& executor_of(unsigned shard);

    /// The shard's event loop, for listeners and timers (include Asio where you use it).
    boost::asio::io_context& context_of(unsigned shard);

    /// Runs `fn` on shard `shard` and waits for it. For start-up and shutdown only: never
    /// call it from a shard thread.
    void run_on(unsigned shard, std::function<void()> fn);

    /// Runs `fn` on shard `shard` every `interval`, first after one interval, until `stop`.
    void every(unsigned shard, std::chrono::milliseconds interval, std::function<void()> fn);

    /// Lets every loop finish what is queued, then joins the threads. A loop still busy after
    /// `grace` (a connection's coroutine waiting on something that will never come) is stopped
    /// outright; callers stop anything holding durable state before this. Idempotent.
    void stop(std::chrono::milliseconds grace = std::chrono::seconds(3));

    /// The shard that owns `key` (a hash of what is being placed).
    unsigned shard_for(std::size_t key) const noexcept { return static_cast<unsigned>(key % size()); }

private:
    struct shard;
    std::vector<std::unique_ptr<shard>> _shards;
};

} // namespace runnel::net
