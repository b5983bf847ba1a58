#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "base/base.h"

namespace runnel::security {

/// A small text file of the data directory (SCRAM credentials, ACLs) that `runnel user` and
/// `runnel acl` edit while a server may run, and that the server rereads when it changed.
///
/// Its owner reads it, parses it, and then says which version it now holds (`seen`), so a
/// file that fails to parse is read again at the next look rather than half applied.
/// `write` replaces the file atomically (directory created, temporary file, fsync, rename).
/// Not thread-safe: the owner locks.
class data_file {
public:
    /// What tells versions of the file apart: modification time and size; nothing when absent.
    using stamp = std::optional<std::pair<std::filesystem::file_time_type, uintmax_t>>;

    explicit data_file(std::filesystem::path path) : _path(std::move(path)) {}
    const std::filesystem::path& path() const noexcept { return _path; }

    /// The file's text (nothing when it does not exist) and its stamp. Larger than
    /// `max_bytes`, or unreadable: an error, with `why`.
    struct contents {
        std::optional<std::string> text;
        stamp at;
    };
    result<contents> read(std::size_t max_bytes, std::string& why) const;

    /// The version the owner now holds.
    void seen(stamp at) { _seen = at; }
    /// Whether the file differs from the version last seen or written.
    bool changed() const { return current() != _seen; }

    /// Replaces the file with `text` and marks it seen.
    result<void> write(std::string_view text, std::string& why);

private:
    stamp current() const;

    std::filesystem::path _path;
    stamp _seen;
};

/// The thread a store of the data directory (ACLs, SCRAM credentials) runs its changes on, so a
/// shard's event loop never waits for a file write and its fsync. Jobs run one at a time in
/// submission order; the thread starts with the first job. The destructor runs the jobs
/// already queued, then joins. `run` is thread-safe.
class writer_thread {
public:
    writer_thread() = default;
    ~writer_thread();
    writer_thread(const writer_thread&) = delete;
    writer_thread& operator=(const writer_thread&) = delete;

    void run(std::function<void()> job);

private:
    std::mutex _mu;
    std::condition_variable _cv;
    std::deque<std::function<void()>> _jobs;
    bool _stopping = false;
    std::thread _thread;
};

/// A line's tab-separated fields.
std::vector<std::string_view> split_tabs(std::string_view line);

/// Calls `record` with the tab-separated fields of each line of `text` that is neither empty
/// nor a `#` comment. The first complaint it returns stops the walk: `why` then names the file
/// and the line, and the result is `invalid_argument`.
result<void> for_each_record(std::string_view text, const std::filesystem::path& file, std::string& why,
                             const std::function<std::optional<std::string>(const std::vector<std::string_view>&)>& record);

} // namespace runnel::security
