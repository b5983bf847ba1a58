#include "net/shard_group.h"

#include <future>
#include <optional>
#include <thread>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <pthread.h>

namespace runnel::net {

namespace asio = boost::asio;

/// One event loop and its thread; `post` hands tasks to the loop.
struct shard_group::shard final : executor {
    explicit shard(unsigned id)
      : work(asio::make_work_guard(ctx))
      , thread([this, id] {
          ::pthread_setname_np(::pthread_self(), fmt::format("shard-{}", id).c_str());
          ctx.run();
          done.set_value();
      }) {}

    void post(std::function<void()> task) override { asio::post(ctx, std::move(task)); }

    asio::io_context ctx{1};
    std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work;
    std::vector<std::shared_ptr<asio::steady_timer>> timers;
    std::promise<void> done;
    std::future<void> finished = done.get_future();
    std::thread thread;
};

shard_group::shard_group(unsigned count) {
    for (unsigned i = 0; i < std::max(count, 1u); ++i) {
        _shards.push_back(std::make_unique<shard>(i));
    }
}

shard_group::~shard_group() { stop(); }

unsigned shard_group::size() const noexcept { return static_cast<unsigned>(_shards.size()); }

executor& shard_group::executor_of(unsigned s) { return *_shards.at(s); }

asio::io_context& shard_group::context_of(unsigned s) { return _shards.at(s)->ctx; }

void shard_group::run_on(unsigned s, std::function<void()> fn) {
    std::promise<void> done;
    auto fut = done.get_future();
    _shards.at(s)->post([&] {
        try {
            fn();
            done.set_value();
        } catch (...) {
            done.set_exception(std::current_exception());
        }
    });
    fut.get();
}

namespace {
void arm(std::shared_ptr<asio::steady_timer> timer, std::chrono::milliseconds interval,
         std::shared_ptr<std::function<void()>> fn) {
    timer->expires_after(interval);
    timer->async_wait([timer, interval, fn](const boost::system::error_code& ec) {
        if (ec) {
            return; // cancelled by stop
        }
        (*fn)();
        arm(timer, interval, fn);
    });
}
} // namespace

void shard_group::every(unsigned s, std::chrono::milliseconds interval, std::function<void()> fn) {
    auto& sh = *_shards.at(s);
    auto timer = std::make_shared<asio::steady_timer>(sh.ctx);
    auto f = std::make_shared<std::function<void()>>(std::move(fn));
    asio::post(sh.ctx, [&sh, timer, interval, f] {
        sh.timers.push_back(timer);
        arm(timer, interval, f);
    });
}

void shard_group::stop(std::chrono::milliseconds grace) {
    for (auto& sh : _shards) {
        if (!sh->thread.joinable()) {
            continue;
        }
        asio::post(sh->ctx, [raw = sh.get()] {
            for (auto& t : raw->timers) {
                t->cancel();
            }
            raw->timers.clear();
            raw->work.reset();
        });
    }
    const auto deadline = std::chrono::steady_clock::now() + grace;
    for (std::size_t i = 0; i < _shards.size(); ++i) {
        auto& sh = *_shards[i];
        if (!sh.thread.joinable()) {
            continue;
        }
        if (sh.finished.wait_until(deadline) != std::future_status::ready) {
            logging::get("net").warn("shard {} still had work {} ms after stop; stopping its loop",
                                     i, grace.count());
            sh.ctx.stop();
        }
        sh.thread.join();
    }
}

} // namespace runnel::net
