#pragma once

#include <algorithm>
#include <array>
#include <map>
#include <vector>
#include <optional>
#include <string>

#include "engine/engine.h"
#include "connect/nexmark/generator.h"

namespace runnel::connect::nexmark {

/// The events of one kind (bid, auction or person) of a Nexmark stream as engine rows of a
/// table's columns, matched by name case-insensitively (`dateTime` → date_time, `itemName`,
/// `initialBid`, `emailAddress`, `creditCard`, …). Tables over the same options see the same
/// deterministic stream, so several tables (bids, auctions, people) of one query agree.
///
/// A table with an `event_type` column (and no `event`, or `'event' = 'all'`) is the nested
/// shape Flink's Nexmark setup reads: one row per event, `event_type` 0 person, 1 auction,
/// 2 bid, and the ROWs `person`, `auction`, `bid` as flattened columns (`engine::row_layout`:
/// the ROW's flag, then `bid.price` …), the two that are not the event's kind NULL.
/// A plain value; one thread.
class row_reader {
public:
    /// `options` are the table's (`event`, `events.num`, `first-event.rate`, …); errors name
    /// the option or the column that does not fit.
    static engine::result<row_reader> make(const std::map<std::string, std::string>& options, engine::schema_ptr columns);

    /// Rows of the next events: at most `max_rows` rows, and at most `max_events` events read
    /// (so a rare kind cannot make one call long). Empty when none of those events was of the
    /// table's kind.
    engine::batch next(std::size_t max_rows = 4096, std::size_t max_events = 16384);
    bool done() const { return !_gen->has_next(); }
    /// Events read so far (of every kind): the position a checkpoint keeps.
    int64_t position() const { return _gen->events_so_far(); }
    /// Starts again at `position` (generating the events before it).
    engine::result<void> seek(int64_t position);
    /// Makes this reader one of `instances` sharing the stream (a parallel pipeline): it reads
    /// only events n with n % instances == instance, so the instances together read every
    /// event once. Positions still count every event of the stream.
    void slice(int64_t instance, int64_t instances) {
        _instance = instances > 1 ? instance : 0;
        _instances = std::max<int64_t>(instances, 1);
    }
    const engine::schema_ptr& schema() const { return _schema; }

private:
    row_reader() = default;
    template <typename Event>
    std::size_t read(engine::batch& b, std::size_t max_rows, std::size_t max_events);
    /// Appends the strings of an event to `b`'s columns and its integers to `_ints` at `row`.
    void append(const person& x, engine::batch& b, std::size_t row);
    void append(const auction& x, engine::batch& b, std::size_t row);
    void append(const bid& x, engine::batch& b, std::size_t row);
    template <typename Event>
    void append_event(const Event& x, engine::batch& b, std::size_t row);
    /// The nested shape: which columns are read, and the rows of the next events.
    engine::result<void> make_nested();
    std::size_t read_nested(engine::batch& b, std::size_t max_rows, std::size_t max_events);
    template <typename Event>
    void append_nested(const Event& x, event_kind k, engine::batch& b);

    /// A column of the nested shape: `event_type`, a ROW's flag (`field` -1) or a field.
    struct nested_column {
        bool event_type = false;
        event_kind kind = event_kind::bid;
        int field = -1;
    };
    std::vector<nested_column> _nested_cols; ///< empty: one kind per row
    std::array<field_mask, 3> _nested_want{}; ///< per kind (person, auction, bid)

    generator_config _cfg;
    std::optional<generator> _gen;
    int64_t _instance = 0, _instances = 1; ///< `slice`
    event_kind _kind = event_kind::bid;
    engine::schema_ptr _schema;
    /// For each column, the index of its field in the event struct.
    std::vector<int> _fields;
    /// The fields some column reads.
    field_mask _want = 0;
    /// Rows of this kind among `_total` events (the configured proportions).
    int64_t _share = 1;
    int64_t _total = 1;
    /// For each string column, the bytes a row took in the last batch (0 for the others):
    /// the next batch reserves that much up front rather than growing its arena.
    std::vector<double> _bytes_per_row;
    /// For each integer column, its values of the batch being read, appended in one go at the
    /// end (one validity update rather than one a row).
    std::vector<std::vector<int64_t>> _ints;
    // One event of each kind, its strings' storage reused from row to row.
    person _person;
    auction _auction;
    bid _bid;
};

} // namespace runnel::connect::nexmark
