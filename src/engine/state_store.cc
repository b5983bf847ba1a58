#include "engine/state_store.h"

#include "engine/batch.h"
#include "engine/errc.h"
#include "engine/state_io.h"

#include <boost/unordered/unordered_flat_map.hpp>
#include <fmt/format.h>

#include <deque>
#include <rocksdb/db.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/table.h>
#include <rocksdb/utilities/checkpoint.h>
#include <system_error>

namespace runnel::engine {
namespace {

constexpr uint32_t memory_magic = 0x4d545352;  // "RSTM"
constexpr uint32_t rocksdb_magic = 0x52545352; // "RSTR"

class memory_store final : public state_store {
public:
    bool get(std::string_view key, std::string& value) override {
        auto it = _map.find(key);
        if (it == _map.end())
            return false;
        value = it->second;
        return true;
    }
    void put(std::string_view key, std::string_view value) override {
        _map.insert_or_assign(std::string(key), std::string(value));
    }
    void erase(std::string_view key) override {
        if (auto it = _map.find(key); it != _map.end())
            _map.erase(it);
    }
    uint64_t approximate_keys() const override { return _map.size(); }
    std::string snapshot() override {
        state_writer w;
        w.u32(memory_magic);
        w.u32(uint32_t(_map.size()));
        for (const auto& [k, v] : _map) {
            w.str(k);
            w.str(v);
        }
        return std::move(w.bytes());
    }
    result<void> restore(std::string_view bytes) override {
        _map.clear();
        if (bytes.empty())
            return outcome::success();
        state_reader r(bytes);
        if (r.u32() != memory_magic)
            return fail(errc::corrupt_state, "state snapshot: not an in-memory store's");
        uint32_t n = r.count(8);
        for (uint32_t i = 0; i < n && r.ok(); ++i) {
            std::string k(r.str());
            _map.insert_or_assign(std::move(k), std::string(r.str()));
        }
        if (!r.ok() || !r.at_end())
            return fail(errc::corrupt_state, "state snapshot: truncated or damaged");
        return outcome::success();
    }
    const char* kind() const override { return "memory"; }
    const std::string& failure() const override { return _none; }

private:
    boost::unordered_flat_map<std::string, std::string, key_hash, key_equal> _map;
    std::string _none;
};

namespace fs = std::filesystem;

class rocksdb_store final : public state_store {
public:
    explicit rocksdb_store(fs::path dir)
        : _dir(std::move(dir)) {}
    ~rocksdb_store() override { close(); }

    result<void> open_fresh() {
        close();
        std::error_code ec;
        fs::remove_all(_dir, ec);
        fs::create_directories(_dir.parent_path(), ec);
        return open();
    }

    bool get(std::string_view key, std::string& value) override {
        if (!_db)
            return false;
        auto s = _db->Get(_read, rocksdb::Slice(key.data(), key.size()), &value);
        if (s.IsNotFound())
            return false;
        check(s, "read");
        return s.ok();
    }
    void put(std::string_view key, std::string_view value) override {
        if (!_db)
            return;
        check(_db->Put(_write, rocksdb::Slice(key.data(), key.size()),
                       rocksdb::Slice(value.data(), value.size())),
              "write");
    }
    void erase(std::string_view key) override {
        if (!_db)
            return;
        check(_db->Delete(_write, rocksdb::Slice(key.data(), key.size())), "delete");
    }
    uint64_t approximate_keys() const override {
        uint64_t n = 0;
        if (_db)
            _db->GetIntProperty("rocksdb.estimate-num-keys", &n);
        return n;
    }

    std::string snapshot() override {
        // A checkpoint directory of hard links (table files) and small copies (manifest).
        fs::path snap = _dir;
        snap += fmt::format(".snap-{}", ++_snapshots);
        std::error_code ec;
        fs::remove_all(snap, ec);
        if (!_db)
            return {};
        rocksdb::Checkpoint* cp = nullptr;
        check(rocksdb::Checkpoint::Create(_db.get(), &cp), "checkpoint");
        std::unique_ptr<rocksdb::Checkpoint> owned(cp);
        if (cp)
            check(cp->CreateCheckpoint(snap.string()), "checkpoint");
        _kept.push_back(snap);
        while (_kept.size() > 3) {
            fs::remove_all(_kept.front(), ec);
            _kept.pop_front();
        }
        state_writer w;
        w.u32(rocksdb_magic);
        w.u64(_snapshots);
        w.str(snap.string());
        return std::move(w.bytes());
    }

    result<void> restore(std::string_view bytes) override {
        if (bytes.empty())
            return open_fresh();
        state_reader r(bytes);
        if (r.u32() != rocksdb_magic)
            return fail(errc::corrupt_state, "state snapshot: not a RocksDB store's");
        uint64_t n = r.u64();
        fs::path snap(std::string(r.str()));
        if (!r.ok() || !r.at_end())
            return fail(errc::corrupt_state, "state snapshot: truncated or damaged");
        std::error_code ec;
        if (!fs::is_directory(snap, ec)) {
            return fail(
                errc::corrupt_state,
                fmt::format("state snapshot: RocksDB checkpoint {} is missing", snap.string()));
        }
        close();
        fs::remove_all(_dir, ec);
        fs::create_directories(_dir, ec);
        // Table files are immutable: link them. The rest (manifest, CURRENT, OPTIONS) is
        // copied, as the reopened store appends to it.
        for (const auto& e : fs::directory_iterator(snap, ec)) {
            fs::path to = _dir / e.path().filename();
            if (e.path().extension() == ".sst")
                fs::create_hard_link(e.path(), to, ec);
            else
                fs::copy_file(e.path(), to, ec);
            if (ec) {
                return fail(errc::corrupt_state,
                            fmt::format("state snapshot: copying {} from {}: {}",
                                        e.path().filename().string(), snap.string(), ec.message()));
            }
        }
        _snapshots = n;
        _kept.clear();
        _kept.push_back(snap);
        return open(false);
    }
    const char* kind() const override { return "rocksdb"; }
    const std::string& failure() const override { return _failure; }

private:
    result<void> open(bool create = true) {
        rocksdb::Options o;
        o.create_if_missing = create;
        o.IncreaseParallelism(2);
        o.OptimizeLevelStyleCompaction(64 << 20);
        rocksdb::BlockBasedTableOptions t;
        t.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
        o.table_factory.reset(rocksdb::NewBlockBasedTableFactory(t));
        rocksdb::DB* db = nullptr;
        auto s = rocksdb::DB::Open(o, _dir.string(), &db);
        if (!s.ok()) {
            return fail(errc::state_failed,
                        fmt::format("RocksDB state in {}: {}", _dir.string(), s.ToString()));
        }
        _db.reset(db);
        // The job's checkpoint makes state durable: no write-ahead log.
        _write.disableWAL = true;
        return outcome::success();
    }
    void close() { _db.reset(); }
    void check(const rocksdb::Status& s, const char* what) {
        if (!s.ok() && _failure.empty()) {
            _failure = fmt::format("RocksDB state {} in {}: {}", what, _dir.string(), s.ToString());
        }
    }

    fs::path _dir;
    std::unique_ptr<rocksdb::DB> _db;
    rocksdb::ReadOptions _read;
    rocksdb::WriteOptions _write;
    uint64_t _snapshots = 0;
    std::deque<fs::path> _kept;
    std::string _failure;
};

} // namespace

std::unique_ptr<state_store> memory_state() {
    return std::make_unique<memory_store>();
}

result<std::unique_ptr<state_store>> rocksdb_state(std::filesystem::path dir) {
    auto s = std::make_unique<rocksdb_store>(std::move(dir));
    RUNNEL_TRY(s->open_fresh());
    return std::unique_ptr<state_store>(std::move(s));
}

} // namespace runnel::engine
