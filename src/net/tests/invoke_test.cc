#include <gtest/gtest.h>

#include <chrono>
#include <future>
#include <stdexcept>
#include <string>
#include <thread>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>

#include "net/invoke.h"
#include "net/net.h"

namespace runnel::net {
namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;

struct hop_report {
    std::thread::id home_before, ran_on, home_after, target;
    int value = 0;
    std::string error;
    bool void_ran = false;
};

/// On shard 0: hops to shard 1 three times (a value, a void, a throw) and notes the threads.
asio::awaitable<void> hop(shard_group& shards, std::promise<hop_report>& done) {
    hop_report r;
    r.home_before = std::this_thread::get_id();
    int local = 41; // the caller's local, read on the other shard while the caller waits
    r.value = co_await invoke_on(shards, 1, [&] {
        r.ran_on = std::this_thread::get_id();
        return local + 1;
    });
    r.home_after = std::this_thread::get_id();
    co_await invoke_on(shards, 1, [&] { r.void_ran = true; });
    try {
        co_await invoke_on(shards, 1, []() -> int { throw std::runtime_error("refused"); });
    } catch (const std::runtime_error& e) {
        r.error = e.what();
    }
    if (std::this_thread::get_id() != r.home_before) {
        r.error += " (resumed on another thread)";
    }
    done.set_value(std::move(r));
}

TEST(invoke_on, runs_on_the_target_shard_and_resumes_on_the_callers) {
    shard_group shards(2);
    std::thread::id target;
    shards.run_on(1, [&] { target = std::this_thread::get_id(); });
    std::promise<hop_report> done;
    auto result = done.get_future();
    asio::co_spawn(shards.context_of(0), hop(shards, done), asio::detached);
    ASSERT_EQ(result.wait_for(30s), std::future_status::ready);
    auto r = result.get();
    shards.stop();
    EXPECT_EQ(r.value, 42);
    EXPECT_EQ(r.ran_on, target);
    EXPECT_NE(r.home_before, target);
    EXPECT_EQ(r.home_after, r.home_before);
    EXPECT_TRUE(r.void_ran);
    EXPECT_EQ(r.error, "refused");
}

/// A callback answered on the caller's executor, as the broker answers.
asio::awaitable<void> adapt(executor& caller, std::promise<std::pair<int, std::string>>& done) {
    auto n = co_await await_callback<int>([&](std::function<void(int)> cb) { caller.post([cb] { cb(7); }); });
    auto [a, b] = co_await await_pair<int, std::string>(
      [&](std::function<void(int, std::string)> cb) { caller.post([cb] { cb(1, "why"); }); });
    done.set_value({n + a, b});
}

TEST(await_callback, turns_callbacks_answered_on_the_caller_into_awaitables) {
    shard_group shards(1);
    std::promise<std::pair<int, std::string>> done;
    auto result = done.get_future();
    asio::co_spawn(shards.context_of(0), adapt(shards.executor_of(0), done), asio::detached);
    ASSERT_EQ(result.wait_for(30s), std::future_status::ready);
    EXPECT_EQ(result.get(), (std::pair<int, std::string>{8, "why"}));
    shards.stop();
}

} // namespace
} // namespace runnel::net
