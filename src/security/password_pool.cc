#include "security/password_pool.h"

#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "base/base.h"

namespace runnel::security {
namespace {

/// The pool threads' niceness: below the shards, above idle, so checks still progress when
/// the machine is saturated (Linux applies a thread's own niceness to that thread only).
constexpr int pool_niceness = 10;

struct pool_metrics {
    metrics::gauge& pending = metrics::default_registry().gauge_(
      "runnel_sasl_password_checks_pending",
      "SASL/PLAIN password checks (PBKDF2) waiting for or running on the password-check threads");
    metrics::counter& done = metrics::default_registry().counter_(
      "runnel_sasl_password_checks_total", "SASL/PLAIN password checks (PBKDF2) run on the password-check threads");
    metrics::counter& refused = metrics::default_registry().counter_(
      "runnel_sasl_password_checks_refused_total",
      "SASL/PLAIN logins refused because --sasl-password-check-queue checks were already waiting");
};

pool_metrics& stats() {
    static pool_metrics m;
    return m;
}

/// Whether the task running on this pool thread has given its place back.
thread_local bool current_released = false;

} // namespace

password_pool::password_pool(unsigned threads, std::size_t max_queued) : _max_queued(max_queued) {
    RUNNEL_ASSERT(threads > 0 && max_queued > 0, "a password pool needs a thread and room for a task");
    stats();
    for (unsigned i = 0; i < threads; ++i) {
        _threads.emplace_back([this] { run(); });
    }
}

password_pool::~password_pool() {
    {
        std::lock_guard lock(_mu);
        _stopping = true;
    }
    _cv.notify_all();
    for (auto& t : _threads) {
        t.join();
    }
}

bool password_pool::try_reserve() {
    std::lock_guard lock(_mu);
    if (_reserved >= _max_queued) {
        stats().refused.inc();
        return false;
    }
    ++_reserved;
    stats().pending.add(1);
    return true;
}

void password_pool::post(std::function<void()> task) {
    {
        std::lock_guard lock(_mu);
        RUNNEL_ASSERT(_tasks.size() < _reserved, "password_pool::post without try_reserve");
        _tasks.push_back(std::move(task));
    }
    _cv.notify_one();
}

std::size_t password_pool::pending() const {
    std::lock_guard lock(_mu);
    return _reserved;
}

void password_pool::run() {
    ::setpriority(PRIO_PROCESS, static_cast<id_t>(::syscall(SYS_gettid)), pool_niceness);
    for (;;) {
        std::function<void()> task;
        {
            std::unique_lock lock(_mu);
            _cv.wait(lock, [this] { return _stopping || !_tasks.empty(); });
            if (_tasks.empty()) {
                return; // stopping, and everything queued has run
            }
            task = std::move(_tasks.front());
            _tasks.pop_front();
        }
        current_released = false;
        task();
        if (!current_released) {
            give_back();
        }
    }
}

void password_pool::release_current() {
    RUNNEL_ASSERT(!current_released, "password_pool::release_current called twice by one task");
    current_released = true;
    give_back();
}

void password_pool::give_back() {
    std::lock_guard lock(_mu);
    --_reserved;
    stats().pending.sub(1);
    stats().done.inc();
}

} // namespace runnel::security
