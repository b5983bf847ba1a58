#include "storage/file_cache.h"

#include <fcntl.h>

namespace runnel::storage {
namespace {

/// Every shard's cache together, in /metrics.
struct file_cache_metrics {
    metrics::gauge& open = metrics::default_registry()
                             .gauges("runnel_storage_open_segment_files",
                                     "Sealed segment files held open by the open-file caches (--max-open-segment-files)")
                             .with({});
    metrics::counter& evictions = metrics::default_registry().counter_(
      "runnel_storage_segment_file_evictions_total",
      "Sealed segment files closed to stay within --max-open-segment-files (many: raise it)");
};

file_cache_metrics& cache_metrics() {
    static file_cache_metrics m;
    return m;
}

} // namespace

file_cache::file_cache(std::size_t capacity) : _capacity(std::max<std::size_t>(capacity, 1)) {}

file_cache::~file_cache() { cache_metrics().open.sub(static_cast<double>(_lru.size())); }

result<std::shared_ptr<file_handle>> file_cache::get(const std::filesystem::path& path) {
    const auto key = path.string();
    if (auto it = _index.find(key); it != _index.end()) {
        _lru.splice(_lru.begin(), _lru, it->second);
        return it->second->second;
    }
    RUNNEL_TRY(auto f, file_handle::open(path, O_RDONLY));
    ++_opens;
    auto file = std::make_shared<file_handle>(std::move(f));
    while (_lru.size() >= _capacity) {
        _index.erase(_lru.back().first);
        _lru.pop_back();
        ++_evictions;
        cache_metrics().evictions.inc();
        cache_metrics().open.sub(1);
    }
    _lru.emplace_front(key, file);
    _index.emplace(key, _lru.begin());
    cache_metrics().open.add(1);
    return file;
}

void file_cache::forget(const std::filesystem::path& path) {
    if (auto it = _index.find(path.string()); it != _index.end()) {
        _lru.erase(it->second);
        _index.erase(it);
        cache_metrics().open.sub(1);
    }
}

} // namespace runnel::storage
