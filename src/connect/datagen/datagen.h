#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "engine/connector.h"
#include "engine/engine.h"

namespace runnel::connect::datagen {

/// The SQL type of a column as far as the generator needs it: the engine type alone cannot
/// tell INT from BIGINT (their ranges) or a DECIMAL's scale.
enum class column_kind : uint8_t { tinyint, smallint, int_, bigint, float_, double_, decimal, boolean, string, timestamp };

struct column {
    std::string name;
    column_kind kind = column_kind::bigint;
    /// DECIMAL: precision; CHAR/VARCHAR: the declared length (0: STRING, unbounded).
    int32_t precision = 0;
    /// DECIMAL: scale.
    int32_t scale = 0;
};

/// Rows of a `datagen` table, computed from the table's options as Flink's datagen connector
/// names them: `number-of-rows` (absent: unbounded), `rows-per-second` (read by `source`, not
/// here), `seed` (ours: the same seed gives the same rows) and per column
/// `fields.<col>.kind` = random | sequence, `.min`/`.max` (numbers), `.length` (strings),
/// `.start`/`.end` (sequences), `.null-rate` (random columns).
///
/// Row i's values depend only on the seed, the column's name and i, never on how rows are
/// split into batches, so `seek` is O(1) and a restored source gives exactly the rows it gave
/// before. A sequence column's value of row i is start + i; the rows end when the first
/// sequence is exhausted or at `number-of-rows`, whichever comes first. TIMESTAMP columns hold
/// the time `next` is called with (the current time, as in Flink). A plain value; one thread.
class generator {
public:
    /// `options` are the table's own (without `connector`); errors name the option or the
    /// column that does not fit. `columns` and `schema` describe the same columns in order.
    static engine::result<generator> make(const std::map<std::string, std::string>& options, std::vector<column> columns,
                                          engine::schema_ptr schema);

    /// The next rows: at most `max_rows` and never past the end. `now` fills timestamps.
    engine::batch next(std::size_t max_rows, model::processing_time now);
    /// Rows left before the end (nullopt: unbounded).
    std::optional<int64_t> remaining() const;
    bool done() const { return _end && _position >= *_end; }
    /// Rows generated so far: the position a checkpoint keeps.
    int64_t position() const { return _position; }
    void seek(int64_t position) { _position = position; }
    /// `rows-per-second` (10000 when absent, as in Flink); 0: as fast as the pipeline takes them.
    int64_t rows_per_second() const { return _rate; }
    /// Makes this generator one of `instances` sharing the table (a parallel pipeline): it gives
    /// rows i with i % instances == instance, in order, at its share of the rate, so the
    /// instances together give every row once. Positions then count this slice's rows. Call
    /// before the first `next`.
    void slice(int64_t instance, int64_t instances);
    const engine::schema_ptr& schema() const { return _schema; }

private:
    struct field_gen {
        column col;
        bool sequence = false;
        double min = 0, max = 0;       ///< random numbers (integers exactly within int64 range)
        int64_t imin = 0, imax = 0;    ///< random integers
        int64_t start = 0, end = 0;    ///< sequences
        int64_t length = 100;          ///< random strings
        double null_rate = 0;
        uint64_t salt = 0;             ///< from the seed and the column's name
    };
    generator() = default;
    void fill(const field_gen& f, engine::column& out, int64_t from, std::size_t n, model::processing_time now) const;

    std::vector<field_gen> _fields;
    engine::schema_ptr _schema;
    std::optional<int64_t> _end;
    int64_t _rate = 10000;
    int64_t _position = 0;
    /// Row `_position` of this generator is row `_first + _position * _stride` of the table.
    int64_t _first = 0, _stride = 1;
};

/// A `datagen` table as a checkpointed source: emits the generator's rows at most at its
/// `rows-per-second` (counted from the first poll after a start or a resume), ends when the
/// generator does; the checkpoint keeps the rows emitted and a restore continues from there.
/// Lives on the job's thread. The rate is kept by refusing rows early, so the job must be
/// woken periodically (its manager ticks every 100 ms).
class source final : public engine::checkpointed_source {
public:
    explicit source(generator g, std::function<model::processing_time()> clock = model::processing_now)
      : _g(std::move(g))
      , _clock(std::move(clock)) {}

    engine::source_fn fn() override;
    void pause(bool paused) override;
    std::string state() const override { return std::to_string(_g.position()); }
    runnel::result<void> restore(std::string_view state) override;
    std::size_t buffered_bytes() const override { return 0; }
    void stop() override {}

private:
    generator _g;
    std::function<model::processing_time()> _clock;
    bool _paused = false;
    /// Where the rate's count starts: the time and the position of the first poll.
    std::optional<std::pair<model::processing_time, int64_t>> _since;
};

} // namespace runnel::connect::datagen
