#include "base/fail_point.h"

#include <map>
#include <mutex>

namespace runnel::fail_point {
namespace {
std::mutex mu;
std::map<std::string, int, std::less<>> points;
} // namespace

bool detail::take_slow(std::string_view name) noexcept {
    std::lock_guard lock(mu);
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
    detail::armed_count.store(0);
}

} // namespace runnel::fail_point
