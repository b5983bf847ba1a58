#include "security/data_file.h"

#include <fstream>
#include <sstream>

#include "base/file.h"

namespace runnel::security {

data_file::stamp data_file::current() const {
    std::error_code ec;
    auto mtime = std::filesystem::last_write_time(_path, ec);
    if (ec) {
        return std::nullopt;
    }
    auto size = std::filesystem::file_size(_path, ec);
    if (ec) {
        return std::nullopt;
    }
    return std::pair{mtime, size};
}

result<data_file::contents> data_file::read(std::size_t max_bytes, std::string& why) const {
    std::error_code ec;
    auto mtime = std::filesystem::last_write_time(_path, ec);
    if (ec == std::errc::no_such_file_or_directory) {
        return contents{};
    }
    if (ec) {
        why = fmt::format("cannot read {}: {}", _path.string(), ec.message());
        return ec;
    }
    auto size = std::filesystem::file_size(_path, ec);
    if (!ec && size > max_bytes) {
        why = fmt::format("{} is larger than {} bytes", _path.string(), max_bytes);
        return std::make_error_code(std::errc::file_too_large);
    }
    std::ifstream in(_path, std::ios::binary);
    if (!in) {
        why = fmt::format("cannot open {}", _path.string());
        return std::make_error_code(std::errc::io_error);
    }
    std::ostringstream text;
    text << in.rdbuf();
    return contents{text.str(), std::pair{mtime, size}};
}

result<void> data_file::write(std::string_view text, std::string& why) {
    std::error_code ec;
    std::filesystem::create_directories(_path.parent_path(), ec);
    if (ec) {
        why = fmt::format("cannot create {}: {}", _path.parent_path().string(), ec.message());
        return ec;
    }
    auto r = write_file_atomic(_path, std::as_bytes(std::span(text.data(), text.size())));
    if (!r) {
        why = fmt::format("cannot write {}: {}", _path.string(), r.error().message());
        return r.error();
    }
    _seen = current();
    return outcome::success();
}

std::vector<std::string_view> split_tabs(std::string_view line) {
    std::vector<std::string_view> out;
    std::size_t start = 0;
    for (;;) {
        auto tab = line.find('\t', start);
        out.push_back(line.substr(start, tab == std::string_view::npos ? std::string_view::npos : tab - start));
        if (tab == std::string_view::npos) {
            return out;
        }
        start = tab + 1;
    }
}

result<void> for_each_record(std::string_view text, const std::filesystem::path& file, std::string& why,
                             const std::function<std::optional<std::string>(const std::vector<std::string_view>&)>& record) {
    int number = 0;
    while (!text.empty()) {
        auto end = text.find('\n');
        auto line = text.substr(0, end);
        text = end == std::string_view::npos ? std::string_view{} : text.substr(end + 1);
        ++number;
        if (line.empty() || line[0] == '#') {
            continue;
        }
        if (auto complaint = record(split_tabs(line))) {
            why = fmt::format("{} line {}: {}", file.string(), number, *complaint);
            return std::make_error_code(std::errc::invalid_argument);
        }
    }
    return outcome::success();
}

writer_thread::~writer_thread() {
    {
        std::lock_guard lock(_mu);
        _stopping = true;
    }
    _cv.notify_all();
    if (_thread.joinable()) {
        _thread.join();
    }
}

void writer_thread::run(std::function<void()> job) {
    std::lock_guard lock(_mu);
    if (!_thread.joinable()) {
        _thread = std::thread([this] {
            for (;;) {
                std::function<void()> next;
                {
                    std::unique_lock l(_mu);
                    _cv.wait(l, [this] { return _stopping || !_jobs.empty(); });
                    if (_jobs.empty()) {
                        return;
                    }
                    next = std::move(_jobs.front());
                    _jobs.pop_front();
                }
                next();
            }
        });
    }
    _jobs.push_back(std::move(job));
    _cv.notify_one();
}

} // namespace runnel::security
