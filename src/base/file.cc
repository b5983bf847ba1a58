#include "base/file.h"

#include <cerrno>
#include <fcntl.h>
#include <string>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

namespace runnel {

std::error_code last_system_error() noexcept { return {errno, std::system_category()}; }

file_handle& file_handle::operator=(file_handle&& o) noexcept {
    if (this != &o) {
        if (_fd >= 0) {
            ::close(_fd);
        }
        _fd = std::exchange(o._fd, -1);
    }
    return *this;
}

file_handle::~file_handle() {
    if (_fd >= 0) {
        ::close(_fd);
    }
}

result<file_handle> file_handle::open(const std::filesystem::path& path, int flags, int mode) {
    int fd;
    do {
        fd = ::open(path.c_str(), flags | O_CLOEXEC, mode);
    } while (fd < 0 && errno == EINTR);
    if (fd < 0) {
        return last_system_error();
    }
    return file_handle(fd);
}

result<file_handle> file_handle::open_directory(const std::filesystem::path& path) {
    return open(path, O_RDONLY | O_DIRECTORY);
}

result<std::uint64_t> file_handle::size() const {
    struct stat st {};
    if (::fstat(_fd, &st) != 0) {
        return last_system_error();
    }
    return static_cast<std::uint64_t>(st.st_size);
}

result<std::size_t> file_handle::pread(std::span<std::byte> out, std::uint64_t pos) const {
    std::size_t done = 0;
    while (done < out.size()) {
        ssize_t n = ::pread(_fd, out.data() + done, out.size() - done, static_cast<off_t>(pos + done));
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return last_system_error();
        }
        if (n == 0) {
            break;
        }
        done += static_cast<std::size_t>(n);
    }
    return done;
}

result<void> file_handle::pwrite(std::span<const std::byte> bytes, std::uint64_t pos) const {
    std::size_t done = 0;
    while (done < bytes.size()) {
        ssize_t n
          = ::pwrite(_fd, bytes.data() + done, bytes.size() - done, static_cast<off_t>(pos + done));
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return last_system_error();
        }
        done += static_cast<std::size_t>(n);
    }
    return ok();
}

result<void> file_handle::truncate(std::uint64_t size) const {
    while (::ftruncate(_fd, static_cast<off_t>(size)) != 0) {
        if (errno != EINTR) {
            return last_system_error();
        }
    }
    return ok();
}

result<void> file_handle::sync() const {
    while (::fdatasync(_fd) != 0) {
        if (errno != EINTR) {
            return last_system_error();
        }
    }
    return ok();
}

result<void> file_handle::try_lock() const {
    if (::flock(_fd, LOCK_EX | LOCK_NB) != 0) {
        return last_system_error();
    }
    return ok();
}

result<void> write_file_atomic(const std::filesystem::path& path, std::span<const std::byte> bytes) {
    auto tmp = path;
    tmp += ".tmp";
    {
        RUNNEL_TRY(auto f, file_handle::open(tmp, O_WRONLY | O_CREAT | O_TRUNC));
        RUNNEL_TRY(f.pwrite(bytes, 0));
        RUNNEL_TRY(f.sync());
    }
    if (::rename(tmp.c_str(), path.c_str()) != 0) {
        return last_system_error();
    }
    RUNNEL_TRY(auto dir, file_handle::open_directory(path.parent_path().empty() ? "." : path.parent_path()));
    return dir.sync();
}

} // namespace runnel
