#include "engine/checkpoint.h"

#include <algorithm>
#include <fstream>
#include <vector>

#include <fmt/format.h>

#include "base/crc32c.h"
#include "base/file.h"
#include "engine/state_io.h"

namespace runnel::engine {
namespace {

constexpr std::string_view magic = "RNCK";
constexpr uint32_t version = 1;
constexpr std::string_view suffix = ".ckpt";

std::optional<uint64_t> id_of(const std::filesystem::path& p) {
    auto name = p.filename().string();
    if (name.size() != 20 + suffix.size() || !name.ends_with(suffix)) return std::nullopt;
    uint64_t id = 0;
    for (size_t i = 0; i < 20; ++i) {
        if (name[i] < '0' || name[i] > '9') return std::nullopt;
        id = id * 10 + uint64_t(name[i] - '0');
    }
    return id;
}

} // namespace

checkpoint_store::checkpoint_store(std::filesystem::path dir, std::size_t keep)
  : _dir(std::move(dir))
  , _keep(std::max<std::size_t>(keep, 1)) {}

std::string checkpoint_store::encode(const checkpoint& c) {
    state_writer w;
    w.bytes().append(magic);
    w.u32(version);
    w.u64(c.id);
    w.u32(uint32_t(c.parts.size()));
    for (const auto& [name, bytes] : c.parts) {
        w.str(name);
        w.str(bytes);
    }
    w.u32(crc32c::value(std::string_view(w.bytes())));
    return std::move(w.bytes());
}

result<checkpoint> checkpoint_store::decode(std::string_view bytes) {
    if (bytes.size() < magic.size() + 4 + 8 + 4 + 4 || bytes.substr(0, magic.size()) != magic) {
        return fail(errc::corrupt_state, "checkpoint: not a checkpoint file");
    }
    state_reader crc_r(bytes.substr(bytes.size() - 4));
    if (crc_r.u32() != crc32c::value(bytes.substr(0, bytes.size() - 4))) {
        return fail(errc::corrupt_state, "checkpoint: CRC mismatch (torn or damaged file)");
    }
    state_reader r(bytes.substr(magic.size(), bytes.size() - magic.size() - 4));
    if (auto v = r.u32(); v != version) {
        return fail(errc::corrupt_state, fmt::format("checkpoint: format version {} is not {}", v, version));
    }
    checkpoint c;
    c.id = r.u64();
    uint32_t n = r.count(8);
    for (uint32_t i = 0; i < n && r.ok(); ++i) {
        std::string name(r.str());
        c.parts[name] = std::string(r.str());
    }
    if (!r.ok() || !r.at_end()) return fail(errc::corrupt_state, "checkpoint: parts do not fit the file");
    return c;
}

result<void> checkpoint_store::write(const checkpoint& c) {
    std::error_code ec;
    std::filesystem::create_directories(_dir, ec);
    if (ec) return fail(errc::invalid_argument, fmt::format("checkpoint: cannot create {}: {}", _dir.string(), ec.message()));
    auto bytes = encode(c);
    auto path = _dir / fmt::format("{:020}{}", c.id, suffix);
    if (auto r = write_file_atomic(path, std::as_bytes(std::span(bytes))); !r) {
        return fail(errc::invalid_argument, fmt::format("checkpoint: cannot write {}: {}", path.string(), r.error().message()));
    }
    // Retire all but the newest `keep`, and any temporary file a crash left behind.
    std::vector<uint64_t> ids;
    for (const auto& e : std::filesystem::directory_iterator(_dir, ec)) {
        if (auto id = id_of(e.path())) ids.push_back(*id);
        else if (e.path().extension() == ".tmp") std::filesystem::remove(e.path(), ec);
    }
    std::sort(ids.rbegin(), ids.rend());
    for (size_t i = _keep; i < ids.size(); ++i) {
        std::filesystem::remove(_dir / fmt::format("{:020}{}", ids[i], suffix), ec);
    }
    return outcome::success();
}

result<std::optional<checkpoint>> checkpoint_store::latest() const {
    std::error_code ec;
    std::vector<uint64_t> ids;
    if (!std::filesystem::exists(_dir, ec)) return std::optional<checkpoint>();
    for (const auto& e : std::filesystem::directory_iterator(_dir, ec)) {
        if (auto id = id_of(e.path())) ids.push_back(*id);
    }
    std::sort(ids.rbegin(), ids.rend());
    for (auto id : ids) {
        auto path = _dir / fmt::format("{:020}{}", id, suffix);
        std::ifstream in(path, std::ios::binary);
        std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        auto c = decode(bytes);
        if (c && c.value().id == id) return std::optional<checkpoint>(std::move(c).value());
    }
    return std::optional<checkpoint>();
}

} // namespace runnel::engine
