#pragma once

#include <cstddef>
#include <cstdint>
#include <fcntl.h>
#include <filesystem>
#include <span>
#include <utility>

#include "base/result.h"

namespace runnel {

/// An open file descriptor, closed on destruction. Every call is a plain blocking syscall
/// that retries on EINTR; callers decide which thread may block on which call (an event loop
/// may read and write the page cache, only flush threads call `sync`). Errors are
/// `std::system_category()` codes.
class file_handle {
public:
    file_handle() = default;
    explicit file_handle(int fd) noexcept
      : _fd(fd) {}
    file_handle(file_handle&& o) noexcept
      : _fd(std::exchange(o._fd, -1)) {}
    file_handle& operator=(file_handle&& o) noexcept;
    file_handle(const file_handle&) = delete;
    file_handle& operator=(const file_handle&) = delete;
    ~file_handle();

    /// `flags` as for open(2); O_CLOEXEC is always added.
    static result<file_handle> open(const std::filesystem::path& path, int flags, int mode = 0644);
    /// Opens a directory, for `sync` after creating or removing files in it.
    static result<file_handle> open_directory(const std::filesystem::path& path);

    int fd() const noexcept { return _fd; }
    bool is_open() const noexcept { return _fd >= 0; }

    result<std::uint64_t> size() const;
    /// Reads up to `out.size()` bytes at `pos`; returns how many (fewer only at end of file).
    result<std::size_t> pread(std::span<std::byte> out, std::uint64_t pos) const;
    /// Writes all of `bytes` at `pos`.
    result<void> pwrite(std::span<const std::byte> bytes, std::uint64_t pos) const;
    result<void> truncate(std::uint64_t size) const;
    /// fdatasync(2): the data, and the metadata needed to read it back, are on disk.
    result<void> sync() const;
    /// Takes an exclusive advisory lock (flock) without waiting; fails if another process has it.
    result<void> try_lock() const;

private:
    int _fd = -1;
};

/// The error code for the current `errno`.
std::error_code last_system_error() noexcept;

/// Writes `bytes` to `path` atomically: a temporary file is written and synced, renamed over
/// `path`, and the directory is synced.
result<void> write_file_atomic(const std::filesystem::path& path, std::span<const std::byte> bytes);

} // namespace runnel
