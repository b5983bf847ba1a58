#pragma once

#include "engine/errc.h"

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>

namespace runnel::engine {

/// Keyed state of one stage that may outgrow memory: byte keys to byte values.
///
/// Two kinds: in memory (a hash map; its snapshot is every entry) and RocksDB on local disk
/// (`rocksdb_state`), whose snapshot is a RocksDB checkpoint — hard links to its immutable
/// table files in a directory beside the store — so a checkpoint costs a memtable flush, not a
/// copy of the state, and the job's checkpoint records only where it is. One thread.
class state_store {
public:
    virtual ~state_store() = default;
    /// The value of `key` into `value`; false when absent.
    virtual bool get(std::string_view key, std::string& value) = 0;
    virtual void put(std::string_view key, std::string_view value) = 0;
    virtual void erase(std::string_view key) = 0;
    /// Keys held (RocksDB: its estimate).
    virtual uint64_t approximate_keys() const = 0;
    /// Bytes that name or hold a consistent copy of the state now; `restore` takes them back.
    virtual std::string snapshot() = 0;
    virtual result<void> restore(std::string_view snapshot) = 0;
    /// "memory" or "rocksdb".
    virtual const char* kind() const = 0;
    /// Why the store stopped working (empty while it works); the stage reports it and the job
    /// fails, to resume from its last checkpoint.
    virtual const std::string& failure() const = 0;
};

std::unique_ptr<state_store> memory_state();

/// A store in directory `dir` (created; a store left there by an earlier run is replaced, as
/// state always comes back through `restore`). Snapshots go to `dir`/../<name>.snap-<n>;
/// the newest three are kept, enough for the job's two retained checkpoints and one being
/// written. Errors name the directory and RocksDB's reason.
result<std::unique_ptr<state_store>> rocksdb_state(std::filesystem::path dir);

} // namespace runnel::engine
