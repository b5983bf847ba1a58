#pragma once

// Awaitable forms of the broker's partition calls: each hops to the partition's owner with
// `net::invoke_on`, runs the shard-local form there and resumes the caller on its own shard.
// Includes Asio (through `net/invoke.h`): only files that use Asio include it (the Kafka
// handlers, the gateway), never `broker/broker.h`.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <vector>

#include "broker/broker.h"
#include "net/invoke.h"

namespace runnel::broker::async {

template <typename T>
using awaitable = boost::asio::awaitable<T>;

/// `broker::fetch`, from a coroutine.
inline awaitable<result<fetch_result>> fetch(broker& b, model::topic_partition tp, model::offset offset,
                                             std::size_t max_bytes, bool at_least_one = true,
                                             bool read_committed = false) {
    co_return co_await net::invoke_on(b.owner_of(tp), [&] {
        return b.fetch_local(tp, offset, max_bytes, at_least_one, read_committed);
    });
}

/// `broker::offsets`, from a coroutine.
inline awaitable<result<offsets_result>> offsets(broker& b, model::topic_partition tp) {
    co_return co_await net::invoke_on(b.owner_of(tp), [&] { return b.offsets_local(tp); });
}

/// `broker::offset_for_time`, from a coroutine.
inline awaitable<result<std::optional<broker::time_match>>> offset_for_time(broker& b, model::topic_partition tp,
                                                                           model::event_time t) {
    co_return co_await net::invoke_on(b.owner_of(tp), [&] { return b.offset_for_time_local(tp, t); });
}

/// `broker::describe_producers`, from a coroutine.
inline awaitable<result<std::vector<producer_description>>> describe_producers(broker& b, model::topic_partition tp) {
    co_return co_await net::invoke_on(b.owner_of(tp), [&] { return b.describe_producers_local(tp); });
}

} // namespace runnel::broker::async
