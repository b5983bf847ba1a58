#pragma once

#include <memory>
#include <string>
#include <vector>

#include <boost/unordered/unordered_flat_map.hpp>

#include "engine/aggregate.h"
#include "engine/stage.h"

namespace runnel::engine {

struct group_options {
    /// The input may carry `update_before` and `delete_row` rows (it is the changelog of a
    /// join, an aggregate or a Top-N). MIN and MAX then keep every value of a group with its
    /// count so that a retraction can take one back. When false they keep one value, and a
    /// retraction arriving anyway stops the stage (`failure`).
    bool retractions = true;
    /// Two-phase aggregation (COUNT, SUM, MIN, MAX and AVG; append-only input). A `local`
    /// stage (`group_local_stage`) turns each input batch into one row of partial
    /// accumulators per key; a `global` `group_stage` with the same keys and aggregates,
    /// after an exchange by the keys, merges them and emits the changelog a `single` stage
    /// would have emitted over the rows.
    agg_phase phase = agg_phase::single;
};

struct group_table;

/// Aggregation without a window (SQL's `GROUP BY k` over a stream, or an aggregate over the
/// whole stream when there are no keys): an updating result per key.
///
/// Each input row adds to its group (`insert`, `update_after`) or takes back from it
/// (`update_before`, `delete_row`): COUNT, SUM and AVG by subtraction, MIN, MAX and
/// COUNT(DISTINCT) from counted multisets of their values. The output is a changelog with
/// the columns (keys…, aggregates…): once per input batch, each group whose result changed
/// emits `update_before` (the previous result) and `update_after` (the new one); a group's
/// first result is an `insert`; a group whose rows were all taken back emits `delete_row` of
/// its last result and is forgotten. A retraction for a group that does not exist is ignored.
/// Aggregates skip NULLs; over no value they give NULL (COUNT gives 0). FIRST_VALUE,
/// LAST_VALUE and percentiles are not supported here.
///
/// State is one entry per live group (its key, its row count and its accumulators, plus the
/// multisets of MIN/MAX/COUNT(DISTINCT)): memory grows with the number of distinct keys and
/// is never reclaimed while a group has rows. `snapshot`/`restore` capture every group.
/// Lives in one pipeline, run by one thread.
class group_stage final : public stage {
public:
    static result<std::unique_ptr<group_stage>> make(schema_ptr input, std::vector<std::string> keys,
                                                     std::vector<aggregate_spec> aggs, group_options opts = {});
    ~group_stage() override;

    const char* name() const override { return "group-aggregate"; }
    schema_ptr output_schema(size_t) const override { return _out; }
    void on_batch(size_t input, batch b, stage_output& out) override;
    std::string failure() const override { return _failure; }
    std::string snapshot() const override;
    result<void> restore(std::string_view bytes) override;

    /// Groups currently held.
    size_t groups() const { return _index.size(); }

private:
    class accumulator;

    group_stage() = default;
    uint32_t add_group(std::string key, const batch& b, size_t row);
    void free_group(uint32_t slot);
    /// Forgets every group.
    void reset();
    std::vector<value> result_row(uint32_t slot) const;

    schema_ptr _in, _out;
    std::vector<size_t> _keys;
    std::vector<bound_aggregate> _aggs;
    group_options _opts;
    std::string _failure;

    boost::unordered_flat_map<std::string, uint32_t, key_hash, key_equal> _index;
    std::vector<std::string> _slot_key;            ///< slot → encoded key ("" when free)
    std::vector<std::vector<value>> _slot_values;  ///< slot → key values
    std::vector<int64_t> _rows;                    ///< slot → rows added minus rows taken back
    std::vector<uint64_t> _seen;                   ///< slot → the batch that last touched it
    std::vector<uint32_t> _free;
    size_t _capacity = 0;                          ///< slots the accumulators have room for
    std::vector<std::unique_ptr<accumulator>> _acc; ///< one per aggregate
    uint64_t _batch_no = 0;
    std::string _key_buf;
};

/// The local phase of a two-phase group aggregation (`group_options::phase`): for each input
/// batch, one row per key of the batch with the partial accumulators of that key's rows
/// (keys…, `partial_fields`…), in the order of each key's first row. It keeps nothing between
/// batches, so it adds no latency and holds at most one batch's keys; a batch of rows with few
/// distinct keys leaves as a handful of rows. Append-only input only: a row that is not an
/// `insert` stops the stage (`failure`), since what it takes back may have been pre-aggregated
/// by another instance. Lives in one pipeline, run by one thread.
class group_local_stage final : public stage {
public:
    static result<std::unique_ptr<group_local_stage>> make(schema_ptr input, std::vector<std::string> keys,
                                                           std::vector<aggregate_spec> aggs);
    ~group_local_stage() override;

    const char* name() const override { return "group-aggregate-local"; }
    schema_ptr output_schema(size_t) const override { return _out; }
    void on_batch(size_t input, batch b, stage_output& out) override;
    std::string failure() const override { return _failure; }

private:
    group_local_stage() = default;

    schema_ptr _out;
    std::vector<size_t> _keys;
    std::vector<bound_aggregate> _aggs;
    std::vector<size_t> _agg_at; ///< aggregate → its first partial column
    std::unique_ptr<group_table> _table; ///< the current batch's keys and accumulators
    std::vector<uint32_t> _slots;
    std::string _key_buf;
    std::string _failure;
};

/// Prepares a changelog for a sink that upserts by `keys` (a table with a PRIMARY KEY):
/// `insert` and `update_after` rows pass (write the row for its key), `delete_row` rows pass
/// (delete the key), and an `update_before` row is dropped when the next row of its batch is
/// the `update_after` of the same key (the write replaces the row anyway); otherwise — its
/// `update_after` was filtered out, e.g. by HAVING — it becomes a `delete_row`. One thread.
class upsert_stage final : public stage {
public:
    static result<std::unique_ptr<upsert_stage>> make(schema_ptr input, const std::vector<std::string>& keys);

    const char* name() const override { return "upsert"; }
    schema_ptr output_schema(size_t) const override { return _schema; }
    void on_batch(size_t input, batch b, stage_output& out) override;

private:
    upsert_stage() = default;
    schema_ptr _schema;
    std::vector<size_t> _keys;
};

} // namespace runnel::engine
