#pragma once

#include "engine/pipeline.h"

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace runnel::engine {

class exchange_sender;

/// Moves rows between the parallel instances of one dataflow by key, so that every row of a
/// key reaches the same instance (the one its key hashes to, `hash_partition`).
///
/// Each instance is its own `pipeline`, run by its own thread (a shard); instance i calls
/// `stream::exchange(x, i, keys)` where the dataflow needs rows keyed, and the stream it gets
/// back carries the rows of every instance whose key belongs to i. Between each pair of
/// instances is a channel of at most `capacity` messages (batches or watermarks): a sending
/// stage is not ready while one of its channels is full, so a slow instance stops the sources
/// of every instance that feeds it (credit-based backpressure across shards). Watermarks and
/// changes of `watermark_status` are sent on every channel; a receiving instance's watermark is
/// the minimum over the senders that are active and have not ended, so an instance whose
/// partitions are all idle (or that reads none) holds no window back, and the receiver's own
/// output is idle while every sender left is. The only lock is one mutex per channel, taken per
/// batch.
///
/// Sending is column-wise: the sending stage owns each batch, hashes its key columns a column
/// at a time (by the exchange's `key_routing`: `fnv1a`, what parallel jobs' checkpoints are
/// split by, or the cheaper `columnar` for dataflows without such checkpoints), sorts the row
/// numbers by receiver in one pass (a selection vector per receiver), gathers each column once
/// for every other receiver and keeps its own instance's rows in the batch, in place; a batch
/// whose rows all go to one receiver is moved there whole, without a copy. Receivers take
/// ownership of what they are handed.
///
/// `set_waker(i, fn)` tells the exchange how to wake instance i; `fn` is called on the thread
/// of another instance, with no lock held. Instance i is woken when a channel to it receives a
/// message after i's receiver found every channel empty (it may be about to park), and when a
/// full channel from i gets room; a busy receiver costs its senders no wake-up at all.
///
/// An aggregate of few distinct keys is cheaper to split around the exchange than to feed it
/// every row: a local window or group stage before it and a global one after it (`agg_phase`).
///
/// Checkpoints: with the sources paused, a consistent cut of all instances exists once every
/// pipeline is quiescent and `in_flight()` is 0 (the sending stage keeps no rows between
/// batches).
class exchange {
public:
    /// `routing` assigns keys to instances (`hash_partition`); a dataflow restored from a
    /// checkpoint must use the routing its state was split by.
    explicit exchange(uint32_t parallelism, size_t capacity = 8, key_routing routing = key_routing::fnv1a);
    exchange(const exchange&) = delete;
    exchange& operator=(const exchange&) = delete;

    uint32_t parallelism() const { return _n; }
    key_routing routing() const { return _routing; }
    void set_waker(uint32_t instance, std::function<void()> wake);
    /// Messages sent and not yet taken, over every channel.
    size_t in_flight() const;
    /// Messages instance `i` has sent, and taken, so far. Exact when read on i's own thread;
    /// the sums over all instances agree once nothing is in flight (a job's checkpoint
    /// coordinator compares them to find a moment when every instance is idle).
    uint64_t sent_by(uint32_t i) const { return _counts[i].sent.load(std::memory_order_relaxed); }
    uint64_t taken_by(uint32_t i) const { return _counts[i].taken.load(std::memory_order_relaxed); }

private:
    friend class stream;
    friend class exchange_sender;
    struct channel {
        mutable std::mutex mu;
        std::deque<message> q;
    };
    channel& chan(uint32_t from, uint32_t to) { return *_ch[size_t(from) * _n + to]; }
    /// What `stream::exchange` wires: the sending sink and the receiving source of `instance`.
    bool can_send(uint32_t from) const;
    void send(uint32_t from, uint32_t to, message m);
    void broadcast(uint32_t from, const message& m);
    source_fn receiver(uint32_t to);
    void wake(uint32_t instance);

    uint32_t _n;
    size_t _capacity;
    key_routing _routing;
    std::vector<std::unique_ptr<channel>> _ch;
    std::vector<std::function<void()>> _wakers;
    /// One instance's figures, on a cache line of its own (each is written by its own thread).
    struct alignas(64) counts {
        std::atomic<uint64_t> sent{0}, taken{0};
        /// Set by the instance's receiver when it found every channel empty; the sender that
        /// next makes one non-empty clears it and wakes the instance.
        std::atomic<bool> waiting{false};
    };
    std::unique_ptr<counts[]> _counts;
};

} // namespace runnel::engine
