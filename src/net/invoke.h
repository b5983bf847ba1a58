#pragma once

// The one shard hop as an awaitable, and the adapter from callback-style calls to awaitables.
// Includes Asio: include it only where Asio is used (`.cc` files and module-private headers
// such as `kafka/server/handler.h`), never from a module's public header, which `net/net.h`
// keeps free of Asio.

#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <type_traits>
#include <utility>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "base/base.h"
#include "net/shard_group.h"

namespace runnel::net {

/// Runs `fn()` on the thread of `target` (any shard's executor, this one's included) and
/// resumes the awaiting coroutine on its own executor with what `fn` returned; an exception
/// thrown by `fn` is rethrown in the caller. As Seastar's `sharded<T>::invoke_on`: `fn` may
/// refer to the caller's locals, which live until it has run, but it must touch only what
/// `target`'s thread owns (or what is immutable) while it runs.
template <typename Fn>
boost::asio::awaitable<std::invoke_result_t<Fn&>> invoke_on(executor& target, Fn fn) {
    namespace asio = boost::asio;
    using R = std::invoke_result_t<Fn&>;
    const asio::any_io_executor home = co_await asio::this_coro::executor;
    if constexpr (std::is_void_v<R>) {
        auto init = [&target, &fn, home](auto handler) {
            auto h = std::make_shared<decltype(handler)>(std::move(handler));
            target.post([h, home, &fn] {
                std::exception_ptr error;
                try {
                    fn();
                } catch (...) {
                    error = std::current_exception();
                }
                asio::post(home, [h, error] { std::move (*h)(error); });
            });
        };
        co_await asio::async_initiate<const asio::use_awaitable_t<>&, void(std::exception_ptr)>(init,
                                                                                              asio::use_awaitable);
    } else {
        using boxed = std::shared_ptr<std::optional<R>>;
        auto init = [&target, &fn, home](auto handler) {
            auto h = std::make_shared<decltype(handler)>(std::move(handler));
            target.post([h, home, &fn] {
                std::exception_ptr error;
                auto value = std::make_shared<std::optional<R>>();
                try {
                    value->emplace(fn());
                } catch (...) {
                    error = std::current_exception();
                }
                asio::post(home, [h, error, value] { std::move (*h)(error, value); });
            });
        };
        boxed out = co_await asio::async_initiate<const asio::use_awaitable_t<>&, void(std::exception_ptr, boxed)>(
          init, asio::use_awaitable);
        co_return std::move(**out);
    }
}

/// `invoke_on` shard `shard` of `shards`.
template <typename Fn>
boost::asio::awaitable<std::invoke_result_t<Fn&>> invoke_on(shard_group& shards, unsigned shard, Fn fn) {
    co_return co_await invoke_on(shards.executor_of(shard), std::move(fn));
}

/// Awaits an operation that reports through a callback `void(T)`: `start(callback)` begins
/// it. The operation must call the callback on the awaiting coroutine's thread, as the
/// broker's and the coordinators' calls do (they post their answer to the `caller` executor
/// they are given).
template <typename T, typename Start>
boost::asio::awaitable<T> await_callback(Start start) {
    namespace asio = boost::asio;
    auto init = [&start](auto handler) {
        auto h = std::make_shared<decltype(handler)>(std::move(handler));
        start(std::function<void(T)>([h](T v) { (*h)(std::move(v)); }));
    };
    co_return co_await asio::async_initiate<const asio::use_awaitable_t<>&, void(T)>(init, asio::use_awaitable);
}

/// `await_callback` for a callback `void(A, B)`, whose arguments come back as a pair.
template <typename A, typename B, typename Start>
boost::asio::awaitable<std::pair<A, B>> await_pair(Start start) {
    using pair_t = std::pair<A, B>;
    co_return co_await await_callback<pair_t>([&start](std::function<void(pair_t)> done) {
        start([done = std::move(done)](A a, B b) { done(pair_t(std::move(a), std::move(b))); });
    });
}

} // namespace runnel::net
