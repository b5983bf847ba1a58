#include "base/fail_point.h"

#include <csignal>
#include <cstdlib>
#include <map>
#include <mutex>
#include <set>
#include <unistd.h>

namespace runnel::fail_point {
namespace {
std::mutex mu;
std::map<std::string, int, std::less<>> points;
std::set<std::string, std::less<>> kill_points;
} // namespace

bool detail::take_slow(std::string_view name) noexcept {
    std::lock_guard lock(mu);
    if (kill_points.contains(name)) {
        ::kill(::getpid(), SIGKILL);
    }
    auto it = points.find(name);
    if (it == points.end()) {
        return false;
    }
    if (it->second > 0 && --it->second == 0) {
        points.erase(it);
        armed_count.fetch_sub(1);
    }
    return true;
}

void arm(std::string name, int times) {
    std::lock_guard lock(mu);
    auto [it, inserted] = points.insert_or_assign(std::move(name), times);
    if (inserted) {
        detail::armed_count.fetch_add(1);
    }
}

void disarm_all() {
    std::lock_guard lock(mu);
    points.clear();
    kill_points.clear();
    detail::armed_count.store(0);
}

namespace {

/// Crash tests only (tests/crash/compaction_crash_test.py): RUNNEL_TEST_KILL_AT names a point
/// whose first `take` kills the process with SIGKILL, which is what a crash at that step looks
/// like to the disk. Nothing else sets the variable.
const bool kill_point_from_environment = [] {
    const char* point = std::getenv("RUNNEL_TEST_KILL_AT");
    if (point && *point) {
        kill_points.insert(point);
        detail::armed_count.fetch_add(1);
    }
    return true;
}();

} // namespace

} // namespace runnel::fail_point
