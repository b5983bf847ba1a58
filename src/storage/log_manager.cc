#include "storage/log_manager.h"

namespace runnel::storage {

std::filesystem::path log_manager::directory_of(const model::topic_partition& tp) const {
    return _root / tp.topic / std::to_string(tp.partition());
}

result<std::shared_ptr<partition_log>> log_manager::open(const model::topic_partition& tp, log_config config) {
    if (auto it = _logs.find(tp); it != _logs.end()) {
        return it->second;
    }
    RUNNEL_TRY(auto log, partition_log::open(directory_of(tp), config, _owner, _flusher, _files));
    _logs.emplace(tp, log);
    return log;
}

std::shared_ptr<partition_log> log_manager::get(const model::topic_partition& tp) const {
    auto it = _logs.find(tp);
    return it == _logs.end() ? nullptr : it->second;
}

std::size_t log_manager::apply_retention(model::processing_time now) {
    std::size_t removed = 0;
    for (auto& [_, log] : _logs) {
        removed += log->apply_retention(now).segments_removed;
    }
    return removed;
}

void log_manager::schedule_cleaning(log_cleaner& cleaner, model::processing_time now) {
    for (auto& [_, log] : _logs) {
        cleaner.schedule(log, _owner, now);
    }
}

void log_manager::close_all(std::function<void(result<void>)> done) {
    struct state {
        std::size_t pending;
        result<void> first = ok();
        std::function<void(result<void>)> done;
    };
    if (_logs.empty()) {
        _owner.post([done = std::move(done)] { done(ok()); });
        return;
    }
    auto st = std::make_shared<state>(state{_logs.size(), ok(), std::move(done)});
    for (auto& [_, log] : _logs) {
        log->close([st](result<void> r) {
            if (!r && st->first) {
                st->first = r;
            }
            if (--st->pending == 0) {
                st->done(st->first);
            }
        });
    }
}

} // namespace runnel::storage
