#pragma once

#include <algorithm>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "engine/batch.h"
#include "engine/errc.h"
#include "model/fundamental.h"

namespace runnel::engine {

/// Whether an edge speaks for event time (Flink's WatermarkStatus). An idle edge (every
/// partition behind it went quiet past its idle timeout, or its instance of a parallel job
/// reads no partition at all) holds back no watermark where it meets other edges: a stage's
/// watermark is the minimum over its active inputs only. It turns active again just before its
/// next batch. Rows that then arrive behind a watermark that moved on without them are late,
/// as in Flink.
enum class watermark_status : uint8_t { active, idle };

/// What flows on an edge between stages: a batch of rows, a watermark (in-band, between
/// batches: "no row with event time ≤ this will follow on this edge"), or a change of the
/// edge's `watermark_status`.
using message = std::variant<batch, model::event_time, watermark_status>;

/// The watermark that closes a finished input: every window fires.
inline constexpr model::event_time end_of_time = model::event_time::max();

/// Where inputs meet (a stage's inputs, an exchange's senders): what their watermarks and
/// statuses allow. Give it every input that has not ended, then read it. The watermark is the
/// minimum over the active inputs; with none active and one idle at least, the output is
/// idle and the most advanced idle input's watermark holds (none will move it again: as a
/// watermark stage's when all its partitions are idle, and as Flink's valve flushes).
class watermark_meet {
public:
    void input(int64_t wm, bool idle) {
        if (idle) {
            _idle = true;
            _idle_high = std::max(_idle_high, wm);
        } else {
            _active = true;
            _low = std::min(_low, wm);
        }
    }
    /// Every input left is idle.
    bool idle() const { return _idle && !_active; }
    /// Some input has not ended.
    bool open() const { return _idle || _active; }
    /// The watermark the inputs allow (the end of time once every input has ended).
    int64_t watermark() const { return _active ? _low : _idle ? _idle_high : end_of_time.value(); }

private:
    bool _active = false, _idle = false;
    int64_t _low = INT64_MAX, _idle_high = INT64_MIN;
};

/// Records in and out of a stage, and what it routed aside.
struct stage_metrics {
    uint64_t rows_in = 0;
    uint64_t rows_out = 0;
    uint64_t batches_in = 0;
    uint64_t late_rows = 0;        ///< window stages: rows past the allowed lateness
    uint64_t dead_letters = 0;     ///< decode stages: records that failed to decode
    int64_t watermark = INT64_MIN; ///< the last watermark the stage forwarded
};

/// Where a stage puts what it produces while handling one message. The runner moves it to
/// the downstream queues as they have room (a stage runs only when its previous output has
/// left), so one input message never makes a queue exceed its bound by more than its own
/// output. Owned by the runner; one thread.
class stage_output {
public:
    /// Sends `b` on output `port` (0 = main, 1 = the side output: late rows, dead letters).
    /// Empty batches are dropped.
    void emit(batch b, size_t port = 0) {
        if (b.num_rows() > 0) {
            _pending.emplace_back(port, message(std::move(b)));
        }
    }
    /// Forwards a watermark on every port.
    void watermark(model::event_time wm) { _pending.emplace_back(SIZE_MAX, message(wm)); }
    /// Forwards a change of watermark status on every port.
    void status(watermark_status s) { _pending.emplace_back(SIZE_MAX, message(s)); }

    std::vector<std::pair<size_t, message>>& pending() { return _pending; }

private:
    std::vector<std::pair<size_t, message>> _pending;
};

/// One step of a pipeline: it consumes batches and watermarks from its inputs and emits them on
/// its outputs. The runner calls `on_watermark` with the minimum over all inputs' watermarks,
/// only when it advances, and `on_end` once every input has ended (after a final watermark of
/// `end_of_time`). Built by the pipeline, run by one thread; never shared.
/// Stateful stages implement `snapshot`/`restore` so checkpoints can capture them.
class stage {
public:
    virtual ~stage() = default;

    virtual const char* name() const = 0;
    virtual size_t num_outputs() const { return 1; }
    virtual schema_ptr output_schema(size_t port) const = 0;

    virtual void on_batch(size_t input, batch b, stage_output& out) = 0;
    virtual void on_watermark(model::event_time wm, stage_output& out) { out.watermark(wm); }
    /// Called when the stage's output turns idle (every input it takes watermarks from is idle
    /// or ended, one idle at least) or active again; the runner tracks its inputs' statuses.
    virtual void on_watermark_status(watermark_status s, stage_output& out) { out.status(s); }
    virtual void on_end(stage_output&) {}
    /// Called once per runner pass with the processing time: time-driven work (idle inputs).
    virtual void on_tick(model::processing_time, stage_output&) {}
    /// False while the stage cannot take input (a sink waiting on its destination): the runner
    /// leaves its queue alone, so backpressure reaches the sources.
    virtual bool ready() const { return true; }
    /// True for an input whose watermark does not hold the stage back (the table side of a
    /// lookup join, which has no event time).
    virtual bool ignores_watermark_of(size_t /*input*/) const { return false; }
    /// True for an input the stage reads to its end before it takes any other (the bounded
    /// table of a lookup join): the runner leaves the other inputs queued until then, so
    /// backpressure holds their sources.
    virtual bool waits_for_end_of(size_t /*input*/) const { return false; }

    /// Why the stage cannot go on (its state store failed); empty while it works. The runner
    /// stops the pipeline with it.
    virtual std::string failure() const { return {}; }

    /// What holds the stage's output back, for a person to read ("partition t/1: no data yet,
    /// idle after 5000 ms"); empty while nothing does. Called on the pipeline's thread.
    virtual std::string waiting_for() const { return {}; }

    /// The stage's state as bytes; stateless stages return an empty string.
    virtual std::string snapshot() const { return {}; }
    virtual result<void> restore(std::string_view bytes) {
        if (!bytes.empty()) {
            return fail(errc::corrupt_state, std::string(name()) + " has no state to restore");
        }
        return outcome::success();
    }

    stage_metrics& metrics() { return _metrics; }
    const stage_metrics& metrics() const { return _metrics; }

private:
    stage_metrics _metrics;
};

} // namespace runnel::engine
