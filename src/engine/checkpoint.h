#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>

#include "engine/errc.h"

namespace runnel::engine {

/// One complete checkpoint of a job: its number and named parts (source offsets, each stage's
/// state, the sinks' output awaiting release). What the parts hold is the job's business; the
/// store only keeps them together and durable.
struct checkpoint {
    uint64_t id = 0;
    std::map<std::string, std::string> parts;
};

/// The checkpoints of one job, in a directory of its own.
///
/// A checkpoint is one file, `<id as 20 digits>.ckpt`: the bytes `RNCK`, a format version
/// (u32, 1), the id (u64), the number of parts (u32), each part as name and bytes (u32 length
/// then the bytes), and last a CRC-32C (u32) of everything before it; integers little-endian.
/// `write` puts it in a temporary file, fsyncs it, renames it into place and fsyncs the
/// directory: the checkpoint is complete exactly when the rename is durable. Then all but the
/// newest `keep` checkpoints are deleted. `latest` takes the newest file that reads back
/// whole with a matching CRC, so a torn or damaged newest file falls back to the one before.
///
/// Blocking file I/O: call from a thread that may block (a flusher), never from a shard's
/// loop. One writer per directory.
class checkpoint_store {
public:
    explicit checkpoint_store(std::filesystem::path dir, std::size_t keep = 2);

    const std::filesystem::path& dir() const { return _dir; }

    /// Writes `c` durably, then retires old checkpoints.
    result<void> write(const checkpoint& c);
    /// The newest complete checkpoint, or nothing when there is none.
    result<std::optional<checkpoint>> latest() const;

    /// Encoding and decoding of one checkpoint file's bytes (exposed for tests).
    static std::string encode(const checkpoint& c);
    static result<checkpoint> decode(std::string_view bytes);

private:
    std::filesystem::path _dir;
    std::size_t _keep;
};

} // namespace runnel::engine
