#include "engine/parallel.h"

#include <fmt/format.h>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <thread>

#include <time.h>

namespace runnel::engine {

stream exchange_set::exchange(stream s, uint32_t instance, std::vector<std::string> keys, key_routing routing) {
    RUNNEL_ASSERT(instance < _n, "an instance of the set's dataflow");
    const size_t k = _next[instance]++;
    if (k == _xs.size()) {
        _xs.push_back(std::make_unique<engine::exchange>(_n, _capacity, routing));
        for (uint32_t i = 0; i < _n; ++i) {
            if (_wakers[i]) _xs.back()->set_waker(i, _wakers[i]);
        }
    }
    auto& x = *_xs[k];
    RUNNEL_ASSERT(x.routing() == routing, "every instance builds the same exchanges");
    return s.exchange(x, instance, std::move(keys));
}

void exchange_set::set_waker(uint32_t instance, std::function<void()> wake) {
    _wakers[instance] = wake;
    for (auto& x : _xs) x->set_waker(instance, wake);
}

uint64_t exchange_set::sent_by(uint32_t instance) const {
    uint64_t n = 0;
    for (const auto& x : _xs) n += x->sent_by(instance);
    return n;
}

uint64_t exchange_set::taken_by(uint32_t instance) const {
    uint64_t n = 0;
    for (const auto& x : _xs) n += x->taken_by(instance);
    return n;
}

std::chrono::nanoseconds thread_cpu_time() {
    timespec ts{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return std::chrono::seconds(ts.tv_sec) + std::chrono::nanoseconds(ts.tv_nsec);
}

result<void> run_parallel(const std::vector<pipeline*>& instances, exchange_set& xs,
                          std::vector<std::chrono::nanoseconds>* cpu) {
    const size_t n = instances.size();
    if (cpu) cpu->assign(n, std::chrono::nanoseconds(0));
    /// Where a thread sleeps while its instance has nothing to do.
    struct parker {
        std::mutex mu;
        std::condition_variable cv;
        bool woken = false;
    };
    std::vector<parker> parkers(n);
    for (size_t i = 0; i < n; ++i) {
        xs.set_waker(uint32_t(i), [&parkers, i] {
            std::lock_guard g(parkers[i].mu);
            parkers[i].woken = true;
            parkers[i].cv.notify_one();
        });
    }
    std::atomic<bool> stop{false};
    std::mutex failed_mu;
    std::optional<error> failed;
    std::vector<std::thread> threads;
    for (size_t i = 0; i < n; ++i) {
        threads.emplace_back([&, i] {
            struct cpu_note {
                std::vector<std::chrono::nanoseconds>* out;
                size_t i;
                ~cpu_note() {
                    if (out) (*out)[i] = thread_cpu_time();
                }
            } note{cpu, i};
            while (!stop.load(std::memory_order_relaxed)) {
                auto r = instances[i]->run_once();
                if (!r) {
                    std::lock_guard g(failed_mu);
                    if (!failed) failed = error(r.error().code, fmt::format("instance {}: {}", i, r.error().message));
                    stop = true;
                    return;
                }
                if (r.value()) return;
                if (!instances[i]->made_progress()) {
                    std::unique_lock g(parkers[i].mu);
                    parkers[i].cv.wait_for(g, std::chrono::milliseconds(1), [&] { return parkers[i].woken; });
                    parkers[i].woken = false;
                }
            }
        });
    }
    for (auto& t : threads) t.join();
    for (size_t i = 0; i < n; ++i) xs.set_waker(uint32_t(i), {});
    if (failed) return *failed;
    return outcome::success();
}

} // namespace runnel::engine
