#pragma once

// Engine sources and sinks over local files: one line per record.

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "base/base.h"
#include "engine/engine.h"

namespace runnel::storage {
class flusher;
} // namespace runnel::storage

namespace runnel::connect {

/// The files a `path` names: the file itself, or every regular file of a directory whose name
/// does not start with '.' or '_' (hidden and in-progress files, as Flink skips them), in name
/// order. `why` explains a path that does not exist or cannot be read.
result<std::vector<std::filesystem::path>> files_of(const std::filesystem::path& path, std::string& why);

/// Reads files once, line by line, into batches of one STRING column `value` (a line without
/// its line end; empty lines are skipped), then ends: a bounded source, so the pipeline's final
/// watermark closes every window. The caller decodes the lines (`stream::decode`).
///
/// Reads on the job's thread, at most `max_batch_bytes` a poll. `state()` is the file index and
/// the byte offset after the last line handed out; `restore` reopens there. Lives on the job's
/// thread.
class file_source final : public engine::checkpointed_source {
public:
    explicit file_source(std::vector<std::filesystem::path> files, std::size_t max_batch_bytes = 1u << 20);
    ~file_source() override;

    static engine::schema_ptr schema();
    engine::source_fn fn() override;
    void pause(bool paused) override { _paused = paused; }
    std::string state() const override;
    result<void> restore(std::string_view state) override;
    std::size_t buffered_bytes() const override { return 0; }
    std::string waiting_for() const override { return _failure; }
    void stop() override;

private:
    struct impl;
    std::unique_ptr<impl> _impl;
    bool _paused = false;
    std::string _failure;
};

enum class file_format : uint8_t { json, csv };

struct file_sink_options {
    std::filesystem::path path;
    file_format format = file_format::json;
    /// Output held since the last checkpoint before `ready()` turns false.
    std::size_t max_pending_bytes = 8u << 20;
};

/// Appends one line per row to a file: a JSON object (as the topic sinks write rows, with
/// timestamps as SQL text) or an RFC 4180 CSV line (NULL as an empty field, an empty string as
/// ""). Only inserts: a file has no key to update, so the planner's connector refuses updating
/// queries and a row of another kind fails the sink.
///
/// Exactly once, driven by the job's checkpoints: rows are held in memory; `seal` closes them
/// with the file offset they go at (the checkpoint keeps both); once the checkpoint is durable
/// `release` cuts the file at that offset, writes them there and syncs (on the sink's own
/// thread). After a crash, `recover` with the last checkpoint's part does the same again, so
/// the file ends with each checkpoint's rows exactly once, whatever the crash interrupted.
/// Every method runs on the job's thread (`home`); completions are posted back to it.
class file_sink final : public engine::checkpointed_sink {
public:
    file_sink(file_sink_options opts, executor& home);
    ~file_sink() override;

    /// Creates the file (not its directory) when missing and learns its size.
    void start(int32_t partitions, done_fn done) override;
    void write(const engine::batch& b) override;
    bool ready() const override;
    void set_draining(bool draining) override { _draining = draining; }
    bool wants_checkpoint() const override;
    bool exactly_once() const override { return true; }
    std::string seal() override;
    void release(done_fn done) override;
    void recover(std::string_view sealed, done_fn done) override;
    std::size_t pending_bytes() const override;
    const std::string& name() const override;
    std::string failure() const override;
    void stop() override;

private:
    struct impl;
    /// Cuts the file at `at`, writes `bytes` there and syncs, on `_io`; `done` on `home`.
    void write_at(int64_t at, std::string bytes, done_fn done);

    std::shared_ptr<impl> _impl;
    std::unique_ptr<storage::flusher> _io;
    bool _draining = false;
};

} // namespace runnel::connect
