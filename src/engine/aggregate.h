#pragma once

#include <memory>
#include <string>
#include <vector>

#include <boost/unordered/unordered_flat_set.hpp>

#include "engine/batch.h"
#include "engine/errc.h"
#include "engine/sketch.h"
#include "engine/state_io.h"

namespace runnel::engine {

enum class agg_kind : uint8_t {
    count_star, count, sum, min, max, avg, count_distinct, first_value, last_value, percentile,
};

/// One aggregate of a window as the user asks for it: `sum("price").as("total")`.
/// NULL inputs are ignored by every aggregate except `count()` (COUNT(*)); an aggregate over
/// no non-NULL value is NULL (count: 0). `first_value`/`last_value` take the value at the
/// smallest / largest event time (ties: the first / last to arrive).
struct aggregate_spec {
    agg_kind kind = agg_kind::count_star;
    std::string column;
    double q = 0.5; ///< percentile rank
    std::string name;

    aggregate_spec as(std::string n) const {
        auto c = *this;
        c.name = std::move(n);
        return c;
    }
};

aggregate_spec count();
aggregate_spec count(std::string column);
aggregate_spec sum(std::string column);
aggregate_spec min(std::string column);
aggregate_spec max(std::string column);
aggregate_spec avg(std::string column);
aggregate_spec count_distinct(std::string column);
aggregate_spec first_value(std::string column);
aggregate_spec last_value(std::string column);
/// Approximate percentile (`quantile_sketch`, rank error ≤ 1.5 %), q in [0, 1].
aggregate_spec percentile(std::string column, double q);

/// An aggregate checked against an input schema.
struct bound_aggregate {
    agg_kind kind;
    size_t input = 0;      ///< input column (unused by count_star)
    data_type input_type;
    data_type output_type;
    double q = 0.5;
    std::string name;
};

result<bound_aggregate> bind_aggregate(const aggregate_spec& a, const schema& s);

/// Which part of a two-phase aggregation a window or group stage runs. Pre-aggregating
/// before an exchange (`local`) sends one row of partial accumulators per key (and pane)
/// instead of every input row; the stage after the exchange (`global`) merges the partials
/// of every instance and gives exactly what a `single` stage would have given over the rows.
enum class agg_phase : uint8_t {
    /// Rows in, results out (the default).
    single,
    /// Rows in, partial accumulators out (`partial_fields`), flushed often enough that the
    /// global phase loses no latency.
    local,
    /// The local phase's partials in (the same aggregate specs), results out.
    global,
};

/// True for the aggregates whose accumulators merge exactly, so they can be split into a
/// local and a global phase: COUNT, SUM, MIN, MAX and AVG (as a sum and a count).
bool splittable(agg_kind k);

/// The columns that carry the partial accumulator of `a` from its local phase to its global
/// phase, named after the aggregate: COUNT one int64 `name` (never NULL); SUM, MIN and MAX one
/// `name` of the input's type (NULL: no value yet); AVG a float64 sum `name` and an int64
/// count `name$count`. Precondition: splittable(a.kind).
std::vector<field> partial_fields(const bound_aggregate& a);

/// Binds `a` (as given to the local phase) to its partial columns in `s`, the local phase's
/// output: `input` is its first partial column, `input_type` that column's type, and the
/// output type is what `bind_aggregate` gives over the original input.
result<bound_aggregate> bind_partial(const aggregate_spec& a, const schema& s);

/// The accumulators of one aggregate for many groups, column-wise: slot i is group i.
///
/// `update` folds a run of input rows into their slots in one tight loop per batch;
/// `merge` folds another table's slot into one of ours (panes into windows, sessions into
/// sessions); `emit` appends the final value. Owned by one operator; one thread.
class agg_column {
public:
    explicit agg_column(const bound_aggregate& a);

    size_t size() const { return _slots; }
    void resize(size_t slots);
    /// Resets slot `s` to the empty state (slots are reused).
    void clear(uint32_t s);

    /// Rows [from, to) of `in` (the aggregate's input column; may be null for count_star)
    /// with event times `ts` go to `slots[row - from]`.
    void update(const column* in, const int64_t* ts, const uint32_t* slots, size_t from, size_t to);
    void merge(uint32_t dst, const agg_column& src, uint32_t src_slot);
    void emit(uint32_t s, column& out) const;
    /// merge(dst[i], src, i) for i in [0, n): one loop per batch of slots.
    void merge_range(const uint32_t* dst, const agg_column& src, size_t n);
    /// emit(s, out) for s in [from, to).
    void emit_range(uint32_t from, uint32_t to, column& out) const;
    /// emit(slots[i], out) then clear(slots[i]), for i in [0, n).
    void take_rows(const uint32_t* slots, size_t n, column& out);

    /// Appends the partial accumulators of slots [from, to) to `out[0]` (and `out[1]` for
    /// AVG), as `partial_fields` describes them. Precondition: splittable.
    void emit_partial(uint32_t from, uint32_t to, column* out) const;
    /// Folds partial accumulators, rows [from, to) of `in[0]` (and `in[1]` for AVG), into
    /// `slots[row - from]`: what `update` would have done with the rows they summarise.
    void merge_partial(const column* in, const uint32_t* slots, size_t from, size_t to);

    void write(uint32_t s, state_writer& w) const;
    bool read(uint32_t s, state_reader& r);

private:
    agg_kind _kind;
    data_type _in;
    double _q;
    size_t _slots = 0;
    std::vector<int64_t> _n;   // counts; "has a value" for sum/min/max/first/last
    std::vector<int64_t> _i;   // integral sums, min, max, first, last
    std::vector<double> _d;    // double sums, min, max, first, last
    std::vector<int64_t> _ts;  // event time of first/last
    std::vector<std::string> _s; // string min, max, first, last
    std::vector<std::unique_ptr<boost::unordered_flat_set<std::string, key_hash, key_equal>>> _sets;
    std::vector<std::unique_ptr<quantile_sketch>> _sketches;
};

} // namespace runnel::engine
