#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "base/result.h"
#include "engine/operators.h"

namespace runnel::engine {

/// A source that takes part in a job's checkpoints (the embedded log, a Kafka cluster).
///
/// The job polls `fn()` from its thread; `state()` is the position after what the pipeline has
/// taken so far (read-ahead not counted), so that a checkpoint taken at a quiescent point can
/// rewind to it with `restore` (before the first poll). One thread: the job's.
class checkpointed_source {
public:
    virtual ~checkpointed_source() = default;
    virtual source_fn fn() = 0;
    /// While paused, `fn` returns idle (a checkpoint is draining the pipeline).
    virtual void pause(bool paused) = 0;
    virtual std::string state() const = 0;
    virtual runnel::result<void> restore(std::string_view state) = 0;
    /// The checkpoint holding `state` (what `state()` returned for it) is durable: a source
    /// may tell the outside world it consumed that far (a consumer group's committed offsets).
    virtual void checkpoint_durable(std::string_view state) { (void)state; }
    /// Bytes read ahead and held for the pipeline.
    virtual std::size_t buffered_bytes() const = 0;
    /// Records lost before they were read (retention), counted, never silent.
    virtual uint64_t skipped_records() const { return 0; }
    /// Why the source waits, when it is not simply caught up.
    virtual std::string waiting_for() const { return {}; }
    virtual void stop() = 0;
};

/// A sink that takes part in a job's checkpoints. Exactly-once sinks hold their output until
/// the checkpoint covering it is durable (`seal` → checkpoint written → `release`) and repair
/// what a crash interrupted (`recover` with the sealed part of the last checkpoint);
/// at-least-once sinks write as rows come and `release` answers once what they wrote is
/// durable. Completions run on the job's thread. One thread: the job's.
class checkpointed_sink {
public:
    using done_fn = std::function<void(runnel::result<void>)>;
    virtual ~checkpointed_sink() = default;
    /// Prepares the destination (creates it with `partitions` when missing).
    virtual void start(int32_t partitions, done_fn done) = 0;
    virtual void write(const batch& b) = 0;
    virtual bool ready() const = 0;
    /// While a checkpoint drains the pipeline the sink takes rows past its limit.
    virtual void set_draining(bool draining) = 0;
    /// The sink holds enough that the job should checkpoint now.
    virtual bool wants_checkpoint() const = 0;
    virtual bool exactly_once() const = 0;
    /// Closes the output since the last checkpoint; the bytes go into the checkpoint.
    virtual std::string seal() = 0;
    virtual void release(done_fn done) = 0;
    virtual void recover(std::string_view sealed, done_fn done) = 0;
    virtual std::size_t pending_bytes() const = 0;
    /// Where the sink writes (for messages).
    virtual const std::string& name() const = 0;
    /// Why the last failed `start`, `release` or `recover` failed, in the destination's own
    /// words when the error code cannot say it (an external cluster's reason); "" otherwise.
    virtual std::string failure() const { return {}; }
    virtual void stop() = 0;
};

} // namespace runnel::engine
