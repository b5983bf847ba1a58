#pragma once

#include <cstdint>
#include <filesystem>
#include <list>
#include <memory>
#include <string>
#include <unordered_map>

#include "base/base.h"

namespace runnel::storage {

/// The open descriptors of sealed segment files, at most `capacity` of them, least recently
/// used closed first (`--max-open-segment-files`).
///
/// A sealed segment holds no descriptor of its own: a read asks the cache, which opens the
/// file read-only on a miss and drops the least recently used entry past `capacity`. A reader
/// still holding a dropped file keeps it open until it lets go, so the bound is on what the
/// cache keeps, and a read never loses its file mid-way. Active segments stay open in their
/// log and are not counted here.
///
/// Shared by the logs of one shard and used only on that shard's thread; not thread-safe.
class file_cache {
public:
    explicit file_cache(std::size_t capacity);
    ~file_cache();
    file_cache(const file_cache&) = delete;
    file_cache& operator=(const file_cache&) = delete;

    /// The open file at `path`, opened read-only on a miss.
    result<std::shared_ptr<file_handle>> get(const std::filesystem::path& path);

    /// Closes and forgets `path` (its segment was removed).
    void forget(const std::filesystem::path& path);

    std::size_t size() const noexcept { return _lru.size(); }
    std::size_t capacity() const noexcept { return _capacity; }
    uint64_t opens() const noexcept { return _opens; }
    uint64_t evictions() const noexcept { return _evictions; }

private:
    using entry = std::pair<std::string, std::shared_ptr<file_handle>>;
    std::size_t _capacity;
    std::list<entry> _lru; ///< most recently used first
    std::unordered_map<std::string, std::list<entry>::iterator> _index;
    uint64_t _opens = 0;
    uint64_t _evictions = 0;
};

} // namespace runnel::storage
