#include "connect/file/file.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <fstream>

#include <fmt/format.h>

#include "connect/format/row_format.h"
#include "engine/state_io.h"
#include "storage/flusher.h"

namespace runnel::connect {
namespace {

std::error_code invalid() { return std::error_code(EINVAL, std::generic_category()); }


} // namespace

result<std::vector<std::filesystem::path>> files_of(const std::filesystem::path& path, std::string& why) {
    std::error_code ec;
    auto st = std::filesystem::status(path, ec);
    if (ec || !std::filesystem::exists(st)) {
        why = fmt::format("path '{}' does not exist", path.string());
        return std::error_code(ENOENT, std::generic_category());
    }
    if (std::filesystem::is_regular_file(st)) return std::vector<std::filesystem::path>{path};
    if (!std::filesystem::is_directory(st)) {
        why = fmt::format("path '{}' is neither a file nor a directory", path.string());
        return invalid();
    }
    std::vector<std::filesystem::path> out;
    for (const auto& e : std::filesystem::directory_iterator(path, ec)) {
        const auto name = e.path().filename().string();
        if (name.empty() || name.front() == '.' || name.front() == '_') continue;
        if (e.is_regular_file(ec)) out.push_back(e.path());
    }
    if (ec) {
        why = fmt::format("cannot list directory '{}': {}", path.string(), ec.message());
        return ec;
    }
    std::sort(out.begin(), out.end());
    return out;
}

// ---- file_source ----

struct file_source::impl {
    std::vector<std::filesystem::path> files;
    std::size_t max_batch_bytes;
    std::size_t index = 0; ///< the file being read
    int64_t offset = 0;    ///< after the last line handed out
    std::ifstream in;
    bool open = false;
    std::string line;
};

file_source::file_source(std::vector<std::filesystem::path> files, std::size_t max_batch_bytes)
  : _impl(std::make_unique<impl>()) {
    _impl->files = std::move(files);
    _impl->max_batch_bytes = max_batch_bytes;
}

file_source::~file_source() = default;

engine::schema_ptr file_source::schema() {
    static const auto s = engine::make_schema({{"value", engine::data_type::string(), false}});
    return s;
}

engine::source_fn file_source::fn() {
    return [this]() -> engine::source_poll {
        if (_paused || !_failure.empty()) return engine::source_poll::idle();
        auto& im = *_impl;
        engine::batch out(schema());
        std::size_t bytes = 0;
        while (im.index < im.files.size() && bytes < im.max_batch_bytes) {
            if (!im.open) {
                im.in = std::ifstream(im.files[im.index], std::ios::binary);
                if (!im.in) {
                    _failure = fmt::format("cannot open '{}'", im.files[im.index].string());
                    return engine::source_poll::idle();
                }
                im.in.seekg(im.offset);
                im.open = true;
            }
            if (!std::getline(im.in, im.line)) {
                im.in.close();
                im.open = false;
                ++im.index;
                im.offset = 0;
                continue;
            }
            im.offset += int64_t(im.line.size()) + (im.in.eof() ? 0 : 1);
            if (!im.line.empty() && im.line.back() == '\r') im.line.pop_back();
            if (im.line.empty()) continue;
            bytes += im.line.size();
            out.columns()[0].push_string(im.line);
        }
        out.seal();
        if (out.num_rows() > 0) return engine::source_poll::data(std::move(out));
        return im.index >= im.files.size() ? engine::source_poll::end() : engine::source_poll::idle();
    };
}

std::string file_source::state() const {
    engine::state_writer w;
    w.u64(_impl->index);
    w.i64(_impl->offset);
    return std::move(w.bytes());
}

result<void> file_source::restore(std::string_view state) {
    engine::state_reader r(state);
    const uint64_t index = r.u64();
    const int64_t offset = r.i64();
    if (!r.ok() || !r.at_end() || index > _impl->files.size() || offset < 0) return invalid();
    _impl->index = std::size_t(index);
    _impl->offset = offset;
    _impl->in.close();
    _impl->open = false;
    return ok();
}

void file_source::stop() {
    _impl->in.close();
    _impl->open = false;
}

// ---- file_sink ----

struct file_sink::impl : std::enable_shared_from_this<impl> {
    impl(file_sink_options o, executor& h)
      : opts(std::move(o))
      , home(h)
      , name(opts.path.string()) {}

    file_sink_options opts;
    executor& home;
    std::string name;
    int64_t end = 0;     ///< where the next sealed output goes
    std::string open;    ///< rows since the last seal
    int64_t sealed_at = 0;
    std::string sealed;  ///< the last seal's rows, until released
    std::string failed;  ///< why the sink stopped (a row it cannot write, an I/O error)
    bool stopped = false;

    /// On the sink's thread: the file holds exactly its first `at` bytes, then `bytes`, synced.
    static result<void> put(const std::filesystem::path& path, int64_t at, const std::string& bytes, std::string& why) {
        const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
        if (fd < 0) {
            const std::error_code ec(errno, std::generic_category());
            why = fmt::format("cannot open '{}': {}", path.string(), ec.message());
            return ec;
        }
        std::error_code ec;
        if (::ftruncate(fd, at) != 0) ec = std::error_code(errno, std::generic_category());
        std::size_t done = 0;
        while (!ec && done < bytes.size()) {
            const auto n = ::pwrite(fd, bytes.data() + done, bytes.size() - done, at + int64_t(done));
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) ec = std::error_code(n < 0 ? errno : EIO, std::generic_category());
            else done += std::size_t(n);
        }
        if (!ec && ::fdatasync(fd) != 0) ec = std::error_code(errno, std::generic_category());
        ::close(fd);
        if (ec) why = fmt::format("cannot write '{}': {}", path.string(), ec.message());
        return ec ? result<void>(ec) : ok();
    }
};

file_sink::file_sink(file_sink_options opts, executor& home)
  : _impl(std::make_shared<impl>(std::move(opts), home))
  , _io(std::make_unique<storage::flusher>("file-sink")) {}

// The I/O thread finishes what is queued and joins before the state goes.
file_sink::~file_sink() {
    stop();
    _io.reset();
}

void file_sink::write_at(int64_t at, std::string bytes, done_fn done) {
    auto why = std::make_shared<std::string>();
    auto data = std::make_shared<std::string>(std::move(bytes));
    auto* home = &_impl->home;
    _io->submit([path = _impl->opts.path, at, data, why]() { return impl::put(path, at, *data, *why); },
                [w = std::weak_ptr<impl>(_impl), home, why, done = std::move(done)](result<void> r) {
                    home->post([w, why, r, done] {
                        auto self = w.lock();
                        if (!self || self->stopped) return;
                        if (!r && self->failed.empty()) self->failed = *why;
                        done(r);
                    });
                });
}

void file_sink::start(int32_t, done_fn done) {
    auto& im = *_impl;
    const int fd = ::open(im.opts.path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        const std::error_code ec(errno, std::generic_category());
        im.failed = fmt::format("cannot open '{}': {}", im.name, ec.message());
        return done(ec);
    }
    const auto size = ::lseek(fd, 0, SEEK_END);
    ::close(fd);
    im.end = size < 0 ? 0 : int64_t(size);
    done(ok());
}

void file_sink::write(const engine::batch& b) {
    auto& im = *_impl;
    if (!im.failed.empty() || im.stopped) return;
    for (std::size_t r = 0; r < b.num_rows(); ++r) {
        if (b.kind(r) != engine::row_kind::insert) {
            im.failed = fmt::format("a file takes only inserts, and a row is a {}", engine::row_kind_name(b.kind(r)));
            return;
        }
        if (im.opts.format == file_format::json) {
            im.open += row_to_json(b, r);
        } else {
            append_row_csv(im.open, b, r);
        }
        im.open += '\n';
    }
}

bool file_sink::ready() const { return _draining || _impl->open.size() < _impl->opts.max_pending_bytes; }

bool file_sink::wants_checkpoint() const { return _impl->open.size() >= _impl->opts.max_pending_bytes; }

std::string file_sink::seal() {
    auto& im = *_impl;
    im.sealed_at = im.end;
    im.sealed = std::move(im.open);
    im.open.clear();
    im.end += int64_t(im.sealed.size());
    engine::state_writer w;
    w.i64(im.sealed_at);
    w.str(im.sealed);
    return std::move(w.bytes());
}

void file_sink::release(done_fn done) {
    auto& im = *_impl;
    if (!im.failed.empty()) return done(std::error_code(EIO, std::generic_category()));
    if (im.sealed.empty()) return done(ok());
    write_at(im.sealed_at, std::move(im.sealed), std::move(done));
    im.sealed.clear();
}

void file_sink::recover(std::string_view sealed, done_fn done) {
    auto& im = *_impl;
    if (sealed.empty()) return done(ok());
    engine::state_reader r(sealed);
    const int64_t at = r.i64();
    std::string bytes(r.str());
    if (!r.ok() || !r.at_end() || at < 0) {
        im.failed = "the checkpoint's part of the sink cannot be read";
        return done(invalid());
    }
    im.end = at + int64_t(bytes.size());
    write_at(at, std::move(bytes), std::move(done));
}

std::size_t file_sink::pending_bytes() const { return _impl->open.size() + _impl->sealed.size(); }
const std::string& file_sink::name() const { return _impl->name; }
std::string file_sink::failure() const { return _impl->failed; }
void file_sink::stop() { _impl->stopped = true; }

} // namespace runnel::connect
